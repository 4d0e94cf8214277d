import pandas as pd
from transformers import AutoTokenizer, Seq2SeqTrainingArguments

from benchmarks.generation import example_encoding
from benchmarks.run import COMPARISONS, chosen
from benchmarks.seq2seq_training import BENCHMARK
from benchmarks.text_classification import parse_args
from benchmarks.variants import example_arguments
from pipeline.config import TaskConfig, TrainConfig
from pipeline.tasks.translation import Translation


def test_the_seq2seq_benchmark_trains_the_bert2bert_model_unless_told_another():
    assert parse_args([], BENCHMARK).model == "minilm2minilm"
    assert parse_args(["--model", "bart_scratch"], BENCHMARK).model == "bart_scratch"
    assert parse_args([]).model == "minilm"  # text classification's default is unchanged


def test_it_runs_when_named_but_not_in_all():
    assert chosen(["seq2seq_training", "--epochs", "2"]) == (["seq2seq_training"],
                                                             ["--epochs", "2"])
    assert "seq2seq_training" not in COMPARISONS


def test_the_translation_recipe_trains_with_seq2seq_arguments_of_the_shared_settings(tmp_path):
    cfg = TrainConfig(learning_rate=3e-5, batch_size=16)
    arguments = example_arguments(cfg, tmp_path, 7, seq2seq=True)
    assert isinstance(arguments, Seq2SeqTrainingArguments)
    assert (arguments.learning_rate, arguments.per_device_train_batch_size, arguments.seed) == (
        3e-5, 16, 7)
    assert not isinstance(example_arguments(cfg, tmp_path, 7), Seq2SeqTrainingArguments)


def test_the_translation_recipe_keeps_sources_to_1024_tokens_and_targets_to_128(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    task = Translation(TaskConfig("translation", source_lang="en", target_lang="fr",
                                  source_prefix="translate: "))
    long_text = " ".join(["word"] * 3000)
    frame = pd.DataFrame({"source": ["a dog runs", long_text], "target": ["un chien court",
                                                                          long_text]})
    encoded = example_encoding(task, tokenizer, frame)
    assert [len(ids) for ids in encoded["input_ids"]] == [
        len(tokenizer("translate: a dog runs")["input_ids"]), 1024]
    assert [len(ids) for ids in encoded["labels"]] == [
        len(tokenizer(text_target="un chien court")["input_ids"]), 128]
