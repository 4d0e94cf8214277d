import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pipeline.config import DatasetConfig, ModelConfig, TaskConfig, build
from pipeline.errors import DataError
from pipeline.evaluation import token_scores
from pipeline.modeling import build_model
from pipeline.tasks.translation import Translation

TASK = Translation(TaskConfig("translation", source_lang="fr", target_lang="en",
                              source_prefix="fr: ", max_target_length=6))
HUB_LAYOUT = pd.DataFrame({"id": ["0", "1", "2"], "translation": [
    {"en": "A dog.", "fr": "Un chien."}, {"en": " ", "fr": "Vide."},
    {"en": "Two cats run.", "fr": "Deux chats courent."}]})


def dataset_config(**changes) -> DatasetConfig:
    return build(DatasetConfig, {"name": "pairs", "source": "local", "path": "x",
                                 "text_columns": ["translation.fr"],
                                 "label_column": "translation.en", **changes}, "dataset")


def test_prepare_reads_fields_of_the_hubs_translation_column_and_drops_blank_pairs():
    frame = TASK.prepare(HUB_LAYOUT, dataset_config(), "data")
    assert frame.to_dict("records") == [{"source": "Un chien.", "target": "A dog."},
                                        {"source": "Deux chats courent.",
                                         "target": "Two cats run."}]
    with pytest.raises(DataError, match=r"no column 'translation.de'.*dataset.text_columns"):
        TASK.prepare(HUB_LAYOUT, dataset_config(text_columns=["translation.de"]), "data")


def test_tokenize_prefixes_sources_cuts_targets_and_keeps_references(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    split = Dataset.from_pandas(pd.DataFrame({
        "source": ["Un chien."], "target": ["A very long reference sentence indeed."]}))
    tokenized = TASK.tokenize(split, tokenizer, 32, {}, training=True)
    row = tokenized[0]
    assert tokenizer.decode(row["input_ids"], skip_special_tokens=True) == "fr : un chien."
    assert len(row["labels"]) == 6 and row["labels"][-1] == tokenizer.sep_token_id
    assert row["reference"] == "A very long reference sentence indeed."


def test_warm_started_encoder_decoder_generates_from_cls_to_sep_and_reloads(minilm_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    cfg = build(ModelConfig, {"source": "local", "path": str(minilm_dir),
                              "encoder_decoder": True}, "models.m")
    model = build_model(TASK, cfg, {}, tokenizer, seed=1, where="models.m")
    assert model.generation_config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.generation_config.eos_token_id == tokenizer.sep_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert model.decoder.config.add_cross_attention and model.decoder.config.is_decoder
    encoder_weights = model.encoder.embeddings.word_embeddings.weight
    assert torch.equal(encoder_weights, model.decoder.bert.embeddings.word_embeddings.weight)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(reloaded).__name__ == "EncoderDecoderModel"
    batch = tokenizer(["un chien"], return_tensors="pt")
    generated = reloaded.generate(**batch, max_new_tokens=3, num_beams=1)
    assert generated[0, 0].item() == tokenizer.cls_token_id


def test_test_loss_is_the_models_own_teacher_forced_loss_with_targets_longer_than_sources(
        minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    cfg = build(ModelConfig, {"source": "local", "path": str(minilm_dir),
                              "encoder_decoder": True}, "models.m")
    model = build_model(TASK, cfg, {}, tokenizer, seed=1, where="models.m")
    task = Translation(TaskConfig("translation", source_lang="fr", target_lang="en",
                                  max_target_length=32))
    split = Dataset.from_pandas(pd.DataFrame({
        "source": ["Un chien.", "Deux chats courent vite."],
        "target": ["A dog that is much longer than its source.", "Two cats run."]}))
    tokenized = task.tokenize(split, tokenizer, 32, {}, training=False)
    collator = task.collator(tokenizer)
    scores = token_scores(model, tokenized, collator, batch_size=2)
    batch = collator([{name: row[name] for name in ("input_ids", "attention_mask", "labels")}
                      for row in tokenized])
    with torch.inference_mode():
        expected = model(**batch).loss.item()
    assert scores.counts.sum() == (batch["labels"] != -100).sum()
    assert scores.mean_loss == pytest.approx(expected, rel=1e-5)
