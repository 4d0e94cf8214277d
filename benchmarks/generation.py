"""Seq2seq generation at evaluation, Multi30k English -> French (experiment=multi30k_en_fr):
the pipeline's own evaluation path against the example recipe and a raw loop, on the test split.

No training: every variant generates with the untuned model that baseline_eval scores (for
minilm2minilm, BERT2BERT warm-started from MiniLM, whose new cross-attention is random, so its
BLEU is near 0 and says nothing about quality). Its outputs rarely stop early, so most
sentences run to max_new_tokens: the heaviest case for the decoding loop. All variants use the
experiment's generation settings (beams, max_new_tokens, length penalty), as one would pass
them to run_translation.py, and its test rows.

- pipeline: the task adapter's `evaluate`, as baseline_eval and final_eval call it, in-process
  on the test split tokenized by the adapter: generation over length-sorted batches of
  train.eval_batch_size, then the teacher-forced loss pass; the model stays where it loads,
  as in those stages (on a GPU machine: the CPU; the example and raw variants use the GPU);
- example: our re-implementation of transformers' run_translation.py defaults with
  --do_predict --predict_with_generate: Seq2SeqTrainer.predict, batch 8 in dataset order,
  DataCollatorForSeq2Seq padding per batch, sources up to 1,024 tokens, targets 128, the loss
  computed beside each generated batch (as Seq2SeqTrainer does when labels are present);
- raw: model.generate over length-sorted batches of train.eval_batch_size: generation only.

Each runs in its own fresh process. Sentences/s and tokens/s are over the seconds of that pass
(batching, generation, decoding; for the pipeline and the example the loss too); BLEU is the
pipeline's sacreBLEU (the adapter's `metrics`) on the references as written; tokens are the
decoded outputs' tokens, counted by the model's tokenizer for every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from typing import Any

from benchmarks.project import (
    add_run_options,
    chosen_variants,
    environment,
    overrides,
    work_folder,
    write_params,
)
from benchmarks.report import (
    EXAMPLE,
    PIPELINE,
    RAW,
    VARIANTS,
    GenerationMeasurement,
    checks_table,
    generation_checks,
    generation_table,
)
from benchmarks.text_classification import launch, same_rows
from benchmarks.variants import (
    Runner,
    adapter_tokenized,
    apply_threads,
    device,
    only_model,
    peak_rss_bytes,
    rows_digest,
    starting_point,
)
from pipeline.config import Params
from pipeline.tasks.seq2seq import SOURCE, TARGET

NAME, EXPERIMENT = "generation", "multi30k_en_fr"
EXAMPLE_EVAL_BATCH = 8  # Seq2SeqTrainingArguments' per_device_eval_batch_size default
EXAMPLE_MAX_SOURCE_LENGTH = 1024  # run_translation.py's max_source_length
EXAMPLE_MAX_TARGET_LENGTH = 128  # run_translation.py's max_target_length (the labels)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-rows", type=int, default=None,
                        help=f"cap on test rows (default: experiment={EXPERIMENT}'s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="minilm2minilm",
                        help="a pretrained model of the experiment with the model's own tokenizer")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a further Hydra override, e.g. task.generation.num_beams=1")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, run in this order (default: {','.join(VARIANTS)})")
    add_run_options(parser)
    args = parser.parse_args(argv)
    args.variants = chosen_variants(parser, args.variants, VARIANTS)
    return args


def runners() -> dict[str, Runner]:
    return {PIPELINE: lambda params, args: run_pipeline(params, args.launched_at).to_json(),
            EXAMPLE: lambda params, args: run_example(params, args.launched_at).to_json(),
            RAW: lambda params, args: run_raw(params, args.launched_at).to_json()}


def generated_tokens(tokenizer: Any, texts: list[str]) -> int:
    """Tokens of the decoded outputs, without special tokens: one count for every variant."""
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def untuned(params: Params) -> tuple[Any, str, Any, Any, Any, dict[str, Any]]:
    """What every variant starts from: the task, the model's name, its config, tokenizer and
    untuned network (as baseline_eval builds it, left where it loads: on the CPU), and the
    rows."""
    model_name = only_model(params)[0]
    model_cfg = params.model(model_name)
    if model_cfg.tokenizer is not None or not model_cfg.pretrained:
        raise ValueError(f"models.{model_name}: the generation benchmark needs a pretrained "
                         "model with its own tokenizer (its baseline is what it times)")
    task, _, _, tokenizer, model, splits = starting_point(params)
    return task, model_name, model_cfg, tokenizer, model.eval(), splits


def measured(variant: str, task: Any, tokenizer: Any, splits: dict[str, Any],
             hypotheses: list[str], seconds: float, launched_at: float,
             extra: dict[str, Any]) -> GenerationMeasurement:
    references = list(splits["test"][TARGET])
    scores = task.metrics(hypotheses, references, {"labels": []})[0]
    return GenerationMeasurement(
        variant=variant, sentences=len(hypotheses),
        generated_tokens=generated_tokens(tokenizer, hypotheses), eval_seconds=seconds,
        wall_seconds=time.time() - launched_at, test_score=scores["bleu"],
        peak_rss_bytes=peak_rss_bytes(resource.RUSAGE_SELF), threads=apply_threads(None),
        extra={"rows": rows_digest(splits), "chrf": scores["chrf"],
               "first_hypotheses": hypotheses[:3], **extra})


# --- (a) the pipeline's evaluation path ---------------------------------------------------------

def run_pipeline(params: Params, launched_at: float) -> GenerationMeasurement:
    """The adapter's `evaluate` on the test split as the tokenize stage writes it; the seconds
    of its generation alone (`pipeline.evaluation.generate_texts`, which it imports when
    called) are kept beside."""
    from pipeline import evaluation

    task, model_name, model_cfg, tokenizer, model, splits = untuned(params)
    test = adapter_tokenized(task, splits["test"], tokenizer, model_cfg.max_length, [],
                             training=False)
    batch_size = params.model(model_name).training(params.train).eval_batch_size
    generating = {"seconds": 0.0}
    generate_texts = evaluation.generate_texts

    def timed(*args: Any, **kwargs: Any) -> list[str]:  # the adapter's generation, timed
        started = time.perf_counter()
        texts = generate_texts(*args, **kwargs)
        generating["seconds"] += time.perf_counter() - started
        return texts

    evaluation.generate_texts = timed
    try:
        started = time.perf_counter()
        scalars, _, hypotheses = task.evaluate(model, tokenizer, test, {"labels": []},
                                               batch_size, f"pipeline {model_name}")
        seconds = time.perf_counter() - started
    finally:
        evaluation.generate_texts = generate_texts
    return measured(PIPELINE, task, tokenizer, splits, hypotheses, seconds, launched_at,
                    {"batch_size": batch_size, "generate_texts_seconds": generating["seconds"],
                     "evaluate_bleu": scalars["bleu"], "loss": scalars["loss"]})


# --- (b) the example script's recipe --------------------------------------------------------------

def example_encoding(task: Any, tokenizer: Any, frame: Any) -> dict[str, list]:
    """run_translation.py's tokenization: the prefixed sources up to 1,024 tokens, the targets
    (the labels) up to 128."""
    encoded = tokenizer(task.prefixed(list(frame[SOURCE])), max_length=EXAMPLE_MAX_SOURCE_LENGTH,
                        truncation=True)
    encoded["labels"] = tokenizer(text_target=list(frame[TARGET]),
                                  max_length=EXAMPLE_MAX_TARGET_LENGTH,
                                  truncation=True)["input_ids"]
    return dict(encoded)


def run_example(params: Params, launched_at: float) -> GenerationMeasurement:
    """run_translation.py's prediction: Seq2SeqTrainer.predict with generation, batch 8."""
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    task, _, _, tokenizer, model, splits = untuned(params)
    encoded = example_encoding(task, tokenizer, splits["test"])
    seed = only_model(params)[1]
    with tempfile.TemporaryDirectory(prefix="example-recipe-") as output:
        arguments = Seq2SeqTrainingArguments(
            output_dir=output, seed=seed, per_device_eval_batch_size=EXAMPLE_EVAL_BATCH,
            predict_with_generate=True, report_to="none")
        trainer = Seq2SeqTrainer(model=model, args=arguments, processing_class=tokenizer,
                                 data_collator=DataCollatorForSeq2Seq(tokenizer, model=model))
        started = time.perf_counter()
        predicted = trainer.predict(Dataset.from_dict(encoded),
                                    **params.task.generation.as_kwargs())
        ids = np.where(predicted.predictions != -100, predicted.predictions,
                       tokenizer.pad_token_id)
        hypotheses = [text.strip() for text in
                      tokenizer.batch_decode(ids, skip_special_tokens=True)]
        seconds = time.perf_counter() - started
    return measured(EXAMPLE, task, tokenizer, splits, hypotheses, seconds, launched_at,
                    {"batch_size": EXAMPLE_EVAL_BATCH,
                     "loss": predicted.metrics.get("test_loss")})


# --- (c) the raw loop ---------------------------------------------------------------------------

def run_raw(params: Params, launched_at: float) -> GenerationMeasurement:
    """model.generate over length-sorted batches, longest first; nothing else."""
    import torch

    task, model_name, model_cfg, tokenizer, model, splits = untuned(params)
    model = model.to(device())
    batch_size = params.model(model_name).training(params.train).eval_batch_size
    settings = params.task.generation.as_kwargs()
    encoded = tokenizer(task.prefixed(list(splits["test"][SOURCE])), truncation=True,
                        max_length=model_cfg.max_length)
    ids, masks = encoded["input_ids"], encoded["attention_mask"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    hypotheses = [""] * len(ids)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in chosen],
                                   "attention_mask": [masks[i] for i in chosen]},
                                  return_tensors="pt")
            generated = model.generate(**{key: value.to(model.device)
                                          for key, value in batch.items()}, **settings)
            for i, text in zip(chosen, tokenizer.batch_decode(generated, skip_special_tokens=True),
                               strict=True):
                hypotheses[i] = text.strip()
    seconds = time.perf_counter() - started
    return measured(RAW, task, tokenizer, splits, hypotheses, seconds, launched_at,
                    {"batch_size": batch_size})


# --- the driver ---------------------------------------------------------------------------------

def describe_setup(params: Params) -> str:
    (name, model), = params.models.items()
    cfg = model.training(params.train)
    return (f"machine: {platform.machine()}, {os.cpu_count()} logical cores, "
            f"Python {platform.python_version()}\n"
            f"model {name} ({model.path}, untuned: baseline generation), dataset "
            f"{params.dataset.name} {params.task.source_lang}->{params.task.target_lang} "
            f"(test rows: {params.dataset.max_rows.test}), seed {params.seeds[0]}\n"
            f"generation {params.task.generation.as_kwargs()}; batch: pipeline and raw "
            f"{cfg.eval_batch_size} (length-sorted), example {EXAMPLE_EVAL_BATCH} (dataset order); "
            f"source max length: pipeline and raw {model.max_length}, "
            f"example {EXAMPLE_MAX_SOURCE_LENGTH}")


def report(results: dict[str, GenerationMeasurement], setup: str) -> str:
    lines = [setup, "", generation_table(results), ""]
    lines.append(f"torch threads per variant: "
                 f"{ {name: result.threads for name, result in results.items()} }")
    if results:
        lines.append(same_rows(results))
    if PIPELINE in results:
        pipeline = results[PIPELINE]
        generating = pipeline.extra["generate_texts_seconds"]
        lines.append(f"pipeline: generation {generating:.1f} s of its {pipeline.eval_seconds:.1f}"
                     f" s evaluate (the rest: the teacher-forced loss pass)")
    lines += ["", checks_table(generation_checks(results))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from pipeline.config import load_params

    args = parse_args(argv)
    folder = work_folder(args.workdir, NAME)
    env = environment(args.threads)
    try:
        params_file = write_params(folder, overrides(EXPERIMENT, None, None, args.test_rows, None,
                                                     [args.seed], args.override), args.model)
        results = {variant: GenerationMeasurement.from_json(
                       launch(variant, NAME, folder, folder, env, args.threads))
                   for variant in args.variants}
        text = report(results, describe_setup(load_params(params_file)))
        print("\n" + text)
        if args.json:
            args.json.write_text(json.dumps({
                "results": {name: result.to_json() for name, result in results.items()},
                "report": text, "argv": sys.argv[1:]}, indent=2), encoding="utf-8")
    finally:
        if args.keep:
            print(f"work folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
