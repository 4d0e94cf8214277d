"""The experiment configuration: its schema, and validation with messages a user can act on.

`params.yaml` is composed from `conf/` by Hydra (`python -m pipeline.compose`, or
`dvc exp run`). Every stage reads it through `load_params`, so a typo stops the
run before any heavy work, with the offending key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import ConfigError

PARAMS_FILE = Path("params.yaml")
SPLITS = ("train", "validation", "test")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
#: MLflow refuses '/' and ':' in a registered model's name; quotes would break its filters.
REGISTERED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class GenerationSettings:
    """How models generate text at evaluation (beam search by default)."""

    num_beams: int = 4
    max_new_tokens: int = 64
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    def validate(self, where: str) -> None:
        _check(self.num_beams >= 1, f"{where}.num_beams: must be at least 1")
        _check(self.max_new_tokens >= 1, f"{where}.max_new_tokens: must be at least 1")
        _check(self.no_repeat_ngram_size >= 0, f"{where}.no_repeat_ngram_size: must be >= 0")

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `model.generate`."""
        chosen: dict[str, Any] = {"num_beams": self.num_beams, "max_new_tokens": self.max_new_tokens,
                                  "length_penalty": self.length_penalty}
        if self.num_beams > 1:
            chosen["early_stopping"] = True
        if self.no_repeat_ngram_size:
            chosen["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        return chosen


@dataclass(frozen=True)
class MaskingSettings:
    """Masked language modelling: which tokens the model must restore."""

    #: Share of tokens masked (of which 80% become the mask token, 10% a random token).
    probability: float = 0.15
    #: Mask every piece of a word together (fast tokenizers only).
    whole_word: bool = False
    #: Seed of the one fixed masking of the validation and test splits, so that the
    #: perplexity before and after training is measured on the same masked tokens.
    evaluation_seed: int = 1234

    def validate(self, where: str) -> None:
        _check(0 < self.probability < 1,
               f"{where}.probability: must be between 0 and 1, got {self.probability}")


@dataclass(frozen=True)
class TaskConfig:
    """The task and its settings; each setting below names the tasks that read it."""

    name: Literal["text_classification", "token_classification", "translation", "summarization",
                  "masked_lm", "causal_lm", "question_answering"]
    #: token classification: label every subword (B- becomes I- after the first) instead of
    #: the first subword only. Evaluation always scores the first subword of each word.
    label_all_subwords: bool = False
    #: translation: the language pair (conf/language_pair/); datasets name their columns
    #: after it, and Hub presets pick the matching opus-mt model.
    source_lang: str | None = None
    target_lang: str | None = None
    #: translation, summarization: text put before every source (T5-style, "summarize: ").
    source_prefix: str = ""
    #: translation, summarization: targets are cut to this many tokens for training.
    max_target_length: int = 128
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    #: summarization: the lead-N baseline summarises an article by its first N sentences.
    lead_sentences: int = 1
    #: masked_lm: how tokens are masked for training and evaluation.
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    #: causal_lm: test texts continued by the model (saved as predictions), and how many of
    #: their first tokens make the prompt; generation follows `generation`.
    samples: int = 5
    prompt_tokens: int = 32
    #: question_answering: a context longer than a window is cut into windows that share this
    #: many context tokens, so an answer cut by one window is whole in the next.
    doc_stride: int = 128
    #: question_answering: the longest answer considered, in tokens, and how many of the best
    #: start and end tokens of each window are paired into candidate answers.
    max_answer_length: int = 30
    n_best: int = 20
    #: question_answering: the data has unanswerable questions (SQuAD 2.0: empty answer lists),
    #: and the model may answer nothing: when the no-answer score (start and end logits of the
    #: first token) exceeds the best answer's by more than `no_answer_threshold`. Data with
    #: unanswerable questions is refused unless this is set.
    unanswerable: bool = False
    no_answer_threshold: float = 0.0
    #: causal_lm on Python code: the share of samples whose continuation writes a whole line
    #: and whose prompt + continuation, cut after its last complete line, parses as Python
    #: (`parse_rate`, before and after training).
    code_parse_rate: bool = False

    def validate(self, where: str) -> None:
        _check(self.max_target_length >= 1, f"{where}.max_target_length: must be at least 1")
        _check(self.doc_stride >= 0, f"{where}.doc_stride: must be >= 0, got {self.doc_stride}")
        _check(self.max_answer_length >= 1, f"{where}.max_answer_length: must be at least 1")
        _check(self.n_best >= 1, f"{where}.n_best: must be at least 1")
        _check(self.lead_sentences >= 1, f"{where}.lead_sentences: must be at least 1")
        _check(self.samples >= 0, f"{where}.samples: must be >= 0")
        _check(self.prompt_tokens >= 1, f"{where}.prompt_tokens: must be at least 1")
        if self.code_parse_rate:
            _check(self.name == "causal_lm", f"{where}.code_parse_rate: scores generated code, "
                                             f"so it needs task causal_lm, not {self.name}")
            _check(self.samples >= 1, f"{where}.samples: code_parse_rate needs at least one "
                                      "sample to generate, got 0")
        if self.name == "translation":
            _check(bool(self.source_lang and self.target_lang),
                   f"{where}: translation needs source_lang and target_lang (choose a "
                   "language_pair, e.g. language_pair=fr-en)")


@dataclass(frozen=True)
class SplitCaps:
    """Upper bounds on rows per split (a seeded, stratified sample); null keeps every row."""

    train: int | None = None
    validation: int | None = None
    test: int | None = None

    def validate(self, where: str) -> None:
        for split in SPLITS:
            cap = getattr(self, split)
            _check(cap is None or cap >= 1, f"{where}.{split}: must be at least 1 or null, got {cap}")


@dataclass(frozen=True)
class DatasetConfig:
    """Where the data comes from and which columns hold the text and the label.

    `splits` maps our split names to the source's: a split name on the Hub, or a
    file inside `path` for local and package sources. Splits it leaves out are cut
    from the training data with a seeded, stratified split.
    """

    name: str
    source: Literal["hub", "local", "package"]
    path: str
    #: Input columns; for translation and summarization the source text.
    text_columns: list[str]
    #: The label column; for translation and summarization the target text. Language
    #: modelling reads texts only and leaves it out.
    label_column: str | None = None
    subset: str | None = None
    revision: str | None = None
    #: `parallel`: line-aligned text files, `<split file>.<column>` per column (train.en.gz,
    #: train.fr.gz). `text_files`: one example per file, its first line in column `title`,
    #: the rest in `text`, its folder's name in `label` (BBC News). `squad`: SQuAD JSON, one row
    #: per question (id, title, context, question, answers). `source_files`: every file that
    #: `glob` matches is one document, whole, in column `text` (its path in `file`).
    format: Literal["auto", "csv", "json", "jsonl", "parquet", "conll", "parallel",
                    "text_files", "squad", "source_files"] = "auto"
    #: source_files: the files under `path` that are documents (e.g. `**/tests/*.py`).
    glob: str | None = None
    #: source_files: keep only the files that mention at least one of these words (as a
    #: whole word, e.g. [pandas, sklearn]); empty keeps every file.
    keep_files_mentioning: list[str] = field(default_factory=list)
    #: source_files: larger files are skipped (counted in the log and the manifest).
    max_file_bytes: int = 1_000_000
    #: Files that are not valid UTF-8 (any text format) are read with this encoding (e.g.
    #: cp1252); null: such a file stops the run, naming the first bad byte (source_files: it
    #: is skipped and counted).
    fallback_encoding: str | None = None
    #: CSV column separator; null: the one the header line uses most of , ; tab |.
    delimiter: str | None = None
    #: CoNLL column files (and word<TAB>tag files): which whitespace-separated columns hold
    #: the token and the tag; they become the columns `tokens` and `tags`.
    token_index: int = 0
    tag_index: int = -1
    #: Rewrite IOB1 tags (I- may start an entity) as IOB2 (every entity starts with B-).
    convert_iob1: bool = False
    splits: dict[str, str] = field(default_factory=dict)
    drop_labels: list[str] = field(default_factory=list)
    split_seed: int = 42
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    max_rows: SplitCaps = field(default_factory=SplitCaps)
    #: A column of example ids; if set, an id found in two splits (leakage) stops the run.
    id_column: str | None = None
    #: Question answering: the column naming each context's article (SQuAD's `title`). Seeded
    #: splits keep every question of one article in one split; null: of one context.
    title_column: str | None = None
    #: What DVC hashes to see that the data changed (see conf/config.yaml): the local file or
    #: folder itself, or the file that pins a package or the Hub.
    watch: str | None = None
    #: Strip and lower-case every label, so that 'Pos ' and 'pos' are one class (labels that
    #: differ only so are refused otherwise).
    normalize_labels: bool = False
    #: Drop validation and test rows whose input (whitespace normalised) is also in an
    #: earlier split (train, then validation); they are only counted and shown otherwise.
    drop_duplicates_across_splits: bool = False

    @property
    def columns(self) -> list[str]:
        """The columns the task reads: texts, then the label if there is one."""
        return [*self.text_columns, *([self.label_column] if self.label_column else [])]

    def validate(self, where: str) -> None:
        _check(bool(NAME_PATTERN.match(self.name)),
               f"{where}.name: '{self.name}' must be lower-case letters, digits and '_'")
        _check(1 <= len(self.text_columns) <= 2,
               f"{where}.text_columns: give one column (single texts) or two (sentence pairs), "
               f"got {len(self.text_columns)}")
        _check(self.label_column not in self.text_columns,
               f"{where}.label_column: '{self.label_column}' is also listed in text_columns")
        unknown = sorted(set(self.splits) - set(SPLITS))
        _check(not unknown, f"{where}.splits: unknown split {unknown}; allowed: {list(SPLITS)}")
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0 < value < 0.5, f"{where}.{name}: must be between 0 and 0.5, got {value}")
        self.max_rows.validate(f"{where}.max_rows")
        self._check_source_files(where)

    def _check_source_files(self, where: str) -> None:
        """`glob` and the file filters belong to format source_files, which needs a glob."""
        if self.format == "source_files":
            _check(bool(self.glob), f"{where}.glob: format source_files reads the files that "
                                    "match a pattern under path; set it (e.g. '**/*.py')")
        else:
            for name in ("glob", "keep_files_mentioning"):
                _check(not getattr(self, name), f"{where}.{name}: only read by format "
                                                "source_files (one document per file); remove "
                                                "it or set format: source_files")
        _check(self.max_file_bytes >= 1,
               f"{where}.max_file_bytes: must be at least 1, got {self.max_file_bytes}")


@dataclass(frozen=True)
class PeftSettings:
    """Parameter-efficient fine-tuning: `lora` freezes the pretrained weights and trains a
    low-rank update (rank `r`, scaled by `alpha / r`) of the `target_modules`, plus the task
    head and `modules_to_save` in full. `none` trains every weight (full fine-tuning)."""

    method: Literal["none", "lora"] = "none"
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    #: Names (or dotted name endings) of the linear layers that get a low-rank update; null:
    #: the attention query and value projections of the model's family (pipeline/adapters.py).
    target_modules: list[str] | None = None
    #: Modules trained in full besides the task head (which always is: classification,
    #: token-classification and question-answering heads start random).
    modules_to_save: list[str] = field(default_factory=list)
    bias: Literal["none", "all", "lora_only"] = "none"

    @property
    def label(self) -> str:
        """How results.csv names the variant: `none`, or `lora r=8 alpha=16`."""
        return "none" if self.method == "none" else f"{self.method} r={self.r} alpha={self.alpha:g}"

    def validate(self, where: str) -> None:
        _check(1 <= self.r <= 1024, f"{where}.r: the rank must be between 1 and 1024, got {self.r}")
        _check(0 < self.alpha <= 4096,
               f"{where}.alpha: must be above 0 and at most 4096 (the update is scaled by "
               f"alpha / r), got {self.alpha}")
        _check(0 <= self.dropout < 1, f"{where}.dropout: must be in [0, 1), got {self.dropout}")
        _check(self.target_modules is None or bool(self.target_modules),
               f"{where}.target_modules: an empty list adapts nothing; name modules or set null "
               "for the model family's default")


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    eval_steps: int | None = None
    logging_steps: int = 10
    metric_for_best_model: str = "accuracy"
    early_stopping_patience: int | None = 2
    save_total_limit: int = 1
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    group_by_length: bool = True
    dataloader_workers: int = 0
    #: Train on this share of the tokenized training split: a sample seeded by
    #: dataset.split_seed, stratified by label, each smaller share a subset of every larger
    #: one. Applied by the train stage, so a learning curve (data_size_curve) reuses the
    #: download, tokenization and baseline of every share.
    data_fraction: float = 1.0
    #: Weight the loss by inverse label frequency in the training split.
    class_weighted_loss: bool = False
    #: Train in `processes` processes on this machine, started by torchrun or `accelerate
    #: launch`; `batch_size` stays the global batch, split evenly between them.
    launcher: Literal["none", "torchrun", "accelerate"] = "none"
    processes: int = 1
    #: Full fine-tuning (method none) or LoRA; see PeftSettings.
    peft: PeftSettings = field(default_factory=PeftSettings)
    #: With LoRA, also save the model with the update merged into its weights (models/<cell>/
    #: model), which every loader reads as a normal model; false keeps the adapter only.
    peft_merge: bool = True

    def validate(self, where: str) -> None:
        _check(self.epochs > 0 or self.max_steps > 0,
               f"{where}: set epochs > 0 or max_steps > 0 (got epochs={self.epochs}, "
               f"max_steps={self.max_steps})")
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "save_total_limit"):
            value = getattr(self, name)
            _check(value >= 1, f"{where}.{name}: must be at least 1, got {value}")
        _check(0 < self.learning_rate < 1,
               f"{where}.learning_rate: must be between 0 and 1, got {self.learning_rate}")
        _check(self.weight_decay >= 0, f"{where}.weight_decay: must be >= 0")
        _check(self.warmup >= 0,
               f"{where}.warmup: a ratio of the training steps (< 1) or a step count, got "
               f"{self.warmup}")
        _check(self.eval_strategy != "steps" or (self.eval_steps or 0) >= 1,
               f"{where}.eval_steps: must be at least 1 when eval_strategy is 'steps'")
        _check(self.early_stopping_patience is None or self.early_stopping_patience >= 1,
               f"{where}.early_stopping_patience: must be at least 1, or null to disable")
        _check(self.dataloader_workers >= 0, f"{where}.dataloader_workers: must be >= 0")
        _check(0 < self.data_fraction <= 1,
               f"{where}.data_fraction: must be above 0 and at most 1, got {self.data_fraction}")
        self._check_processes(where)

    def _check_processes(self, where: str) -> None:
        """A global batch that cannot be split evenly would change what one step learns from."""
        _check(self.processes >= 1, f"{where}.processes: must be at least 1, got {self.processes}")
        _check(self.launcher != "none" or self.processes == 1,
               f"{where}.processes: {self.processes} processes need a launcher; set "
               f"{where}.launcher to torchrun or accelerate, or processes to 1")
        _check(self.batch_size % self.processes == 0,
               f"{where}.batch_size: {self.batch_size} is the global batch, split evenly between "
               f"{self.processes} processes; make it a multiple of {self.processes} (e.g. "
               f"{max(1, round(self.batch_size / self.processes)) * self.processes})")


@dataclass(frozen=True)
class TokenizerTraining:
    """A tokenizer trained on the training split's texts, for models built from scratch.

    `bpe` is byte-level BPE (RoBERTa/BART style, every string encodable); `wordpiece` is
    BERT's. Special tokens map the roles (bos_token, eos_token, pad_token, unk_token,
    mask_token, cls_token, sep_token) to strings; unset roles get the algorithm's usual ones.
    """

    algorithm: Literal["bpe", "wordpiece"] = "bpe"
    vocab_size: int = 8000
    min_frequency: int = 2
    lowercase: bool = False
    special_tokens: dict[str, str] = field(default_factory=dict)
    #: bpe: no Unicode normalization and no space put before each text, so decoding gives
    #: every text back exactly (code: indentation, newlines, trailing spaces). Off, texts
    #: are NFC-normalized and start with a space, so a first word is tokenized like the rest.
    lossless: bool = False

    def validate(self, where: str) -> None:
        _check(100 <= self.vocab_size <= 1_000_000,
               f"{where}.vocab_size: must be between 100 and 1000000, got {self.vocab_size}")
        _check(self.min_frequency >= 1, f"{where}.min_frequency: must be at least 1")
        _check(not self.lossless or (self.algorithm == "bpe" and not self.lowercase),
               f"{where}.lossless: gives texts back exactly, which needs algorithm bpe without "
               f"lowercase (got algorithm {self.algorithm}, lowercase {self.lowercase})")
        roles = {"bos_token", "eos_token", "pad_token", "unk_token", "mask_token", "cls_token",
                 "sep_token"}
        unknown = sorted(set(self.special_tokens) - roles)
        _check(not unknown, f"{where}.special_tokens: unknown role(s) {unknown}; allowed: "
                            f"{sorted(roles)}")


#: What architectures call their number of positions (GPT-2: n_positions).
POSITION_KEYS = ("max_position_embeddings", "n_positions")


def check_positions(architecture: dict[str, Any], max_length: int, where: str) -> None:
    """A network built from `architecture` must have a position for every token."""
    for key in POSITION_KEYS:
        positions = architecture.get(key)
        _check(positions is None or max_length <= positions,
               f"{where}.max_length: {max_length} tokens, but architecture.{key} is "
               f"{positions}; lower max_length or raise {key}")


@dataclass(frozen=True)
class ModelConfig:
    """A model to fine-tune. With `pretrained: false` the network is built from
    `architecture` with random weights, and only the tokenizer is taken from `path`, or
    trained on the training split when `tokenizer` is set."""

    source: Literal["hub", "local", "package"] | None = None
    path: str | None = None
    revision: str | None = None
    pretrained: bool = True
    architecture: dict[str, Any] | None = None
    #: Train a new tokenizer on the training split (from-scratch models only).
    tokenizer: TokenizerTraining | None = None
    #: A GGUF file inside `path` (llama.cpp format, e.g. SmolLM2). It is dequantized to
    #: float32 once and kept as a normal model folder that every later load reads.
    gguf_file: str | None = None
    #: Sequence-to-sequence tasks: an encoder-decoder whose encoder and decoder both start
    #: from the encoder-only checkpoint at `path` (BERT2BERT); cross-attention starts random.
    encoder_decoder: bool = False
    max_length: int = 128
    train: dict[str, Any] = field(default_factory=dict)
    #: Run Python code that ships with a Hub model. Off unless you trust its author.
    trust_remote_code: bool = False
    #: Load pickled (.bin) weights, which can run code on load. Off: safetensors only.
    allow_unsafe_weights: bool = False
    #: What DVC hashes to see that the model changed (see conf/config.yaml): a local model
    #: folder itself, or the file that pins a package or the Hub.
    watch: str | None = None

    def validate(self, where: str) -> None:
        _check(8 <= self.max_length <= 8192,
               f"{where}.max_length: must be between 8 and 8192, got {self.max_length}")
        _check(self.pretrained or bool(self.architecture),
               f"{where}.architecture: required when pretrained is false (e.g. model_type: bert, "
               "hidden_size: 128, num_hidden_layers: 2)")
        _check(not self.architecture or "model_type" in self.architecture,
               f"{where}.architecture.model_type: missing (e.g. bert)")
        _check(self.tokenizer is None or not self.pretrained,
               f"{where}.tokenizer: a trained tokenizer needs a model built from scratch "
               "(pretrained: false); a pretrained model keeps its own tokenizer")
        _check(not (self.encoder_decoder and not self.pretrained),
               f"{where}.encoder_decoder: warm-starts from pretrained weights; set pretrained: true")
        if self.gguf_file:
            _check(self.source is not None and self.path is not None,
                   f"{where}.gguf_file: needs source and path (the folder or Hub id holding it)")
            _check(self.pretrained and not self.encoder_decoder,
                   f"{where}.gguf_file: loads pretrained weights of a decoder; it cannot be used "
                   "with pretrained: false or encoder_decoder: true")
        if self.architecture:
            check_positions(self.architecture, self.max_length, where)
        if self.tokenizer is None:
            _check(self.source is not None and self.path is not None,
                   f"{where}: source and path are required (or, for a model built from scratch, "
                   "a tokenizer to train)")
        # Per-model overrides must be valid training settings themselves.
        self.training(TrainConfig(), f"{where}.train")

    @property
    def origin(self) -> str:
        """Where the weights (or the tokenizer) come from, for tables and logs."""
        return self.path if self.path is not None else "trained tokenizer, random weights"

    def training(self, defaults: TrainConfig, where: str = "train") -> TrainConfig:
        """The global training settings with this model's overrides applied; a nested setting
        (`peft`) is merged key by key, so `train: {peft: {r: 32}}` keeps the global method."""
        merged = dataclasses.asdict(defaults)
        for key, value in self.train.items():
            nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = {**merged[key], **value} if nested else value
        return build(TrainConfig, merged, where)


@dataclass(frozen=True)
class PretrainingConfig:
    """A language model pre-trained from scratch on the experiment's training texts, before
    fine-tuning: `train_tokenizer@<name>` trains its tokenizer, `pretrain@<name>` its
    network. The result, pretrained/<name>/, is a normal model folder: fine-tuned
    models name it as `source: local, path: pretrained/<name>`."""

    tokenizer: TokenizerTraining
    architecture: dict[str, Any]
    #: What the network learns: masked_lm (an encoder: BERT, RoBERTa) or causal_lm (a
    #: decoder: GPT-2, Llama, predicting each next token).
    objective: Literal["masked_lm", "causal_lm"] = "masked_lm"
    #: Tokens per training block (texts are concatenated, then cut into blocks).
    max_length: int = 128
    #: masked_lm: which tokens the network must restore.
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    seed: int = 1
    #: Training settings (epochs, learning_rate, batch_size...) over TrainConfig's defaults.
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> ModelConfig:
        """The network to build: random weights shaped by `architecture`."""
        return ModelConfig(pretrained=False, architecture=self.architecture,
                           tokenizer=self.tokenizer, max_length=self.max_length)

    @property
    def task(self) -> TaskConfig:
        """The objective as a task, scored by perplexity alone: no samples are generated
        (the main stages' causal_lm task does that, before and after fine-tuning)."""
        return TaskConfig(name=self.objective, masking=self.masking, samples=0)

    def validate(self, where: str) -> None:
        _check("model_type" in self.architecture,
               f"{where}.architecture.model_type: missing (e.g. bert)")
        _check(8 <= self.max_length <= 8192,
               f"{where}.max_length: must be between 8 and 8192, got {self.max_length}")
        check_positions(self.architecture, self.max_length, where)
        _check(self.train.get("metric_for_best_model", "loss") == "loss",
               f"{where}.train.metric_for_best_model: pre-training keeps the checkpoint with the "
               "lowest validation loss; leave it out or set 'loss'")
        self.training(f"{where}.train")

    def training(self, where: str = "train") -> TrainConfig:
        """Training settings of their own (the experiment's `train` is for fine-tuning, so
        changing it does not redo the pre-training): the defaults with these overrides, and
        the best checkpoint the one with the lowest validation loss."""
        return build(TrainConfig, {"metric_for_best_model": "loss", **self.train}, where)


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow settings; a null tracking_uri means `sqlite:///<repository>/mlflow.db`."""

    tracking_uri: str | None = None
    #: The report stage logs the best cell's model folder (the one `pipeline.publish` uploads:
    #: safetensors weights, tokenizer, card, metrics) as the artifact `model` of its run.
    log_model: bool = False
    #: Register that model in the MLflow Model Registry under this name, its card as the
    #: version's description; null: no registration.
    register: str | None = None
    max_param_length: int = 250

    def validate(self, where: str) -> None:
        _check(self.max_param_length >= 16, f"{where}.max_param_length: must be at least 16")
        if self.register is None:
            return
        _check(self.log_model, f"{where}.register: registers the model that {where}.log_model "
                               f"logs; set {where}.log_model: true as well")
        _check(bool(REGISTERED_NAME.match(self.register)),
               f"{where}.register: '{self.register}' is not a registered model name; use "
               "letters, digits, '-', '_' and '.' (e.g. rotten-tomatoes-classifier)")


@dataclass(frozen=True)
class CardConfig:
    """What the model cards (reports/cards/) cannot find out by themselves. Only the report
    stage reads it, so changing it rewrites the cards and retrains nothing."""

    #: The fine-tuned model's license (a Hub license id, e.g. apache-2.0); null: the base
    #: model's, read from its own card when that is at hand (package, local folder, Hub cache).
    license: str | None = None
    #: Languages of the data (ISO 639-1); null: the task's language pair, else the base
    #: model card's.
    language: list[str] | None = None
    #: The Hub id of a model or dataset that is read from a package or a local copy, by its
    #: `path`: the card's `base_model` and `datasets` must name Hub ids.
    hub_ids: dict[str, str] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for path, hub_id in self.hub_ids.items():
            _check(hub_id.count("/") == 1 and all(hub_id.split("/")),
                   f"{where}.hub_ids.{path}: '{hub_id}' is not a Hub id (namespace/name)")


@dataclass(frozen=True)
class ReportConfig:
    """How the report stage measures uncertainty beyond the seeds: bootstrap resamples of the
    test examples, from the predictions every cell writes."""

    #: Resamples per interval and test; more narrows their Monte-Carlo error (about 1/sqrt(n)).
    bootstrap_samples: int = 1000
    #: Seed of the resampling, so that a report is reproducible to the digit.
    bootstrap_seed: int = 0
    #: How p-values of the comparisons with the best model are adjusted for their number:
    #: Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).
    adjustment: Literal["holm", "bh"] = "holm"
    #: The half-width of the 95% interval of each model's gain that the "how many seeds"
    #: plan aims at; null: half the current one.
    target_half_width: float | None = None

    def validate(self, where: str) -> None:
        _check(100 <= self.bootstrap_samples <= 100_000,
               f"{where}.bootstrap_samples: must be between 100 and 100000, got "
               f"{self.bootstrap_samples}")
        _check(self.target_half_width is None or self.target_half_width > 0,
               f"{where}.target_half_width: must be above 0, or null")


@dataclass(frozen=True)
class EvaluationConfig:
    """Extra test sets, scored before and after fine-tuning beside the main test split: other
    text of the same task shows domain shift (a review classifier on other reviews) and
    forgetting (a language model adapted to news, scored on text of another kind). Only the
    test split of each is read: `splits.test` when it maps one, else the test share cut from
    the whole source as for the main dataset."""

    extra: dict[str, DatasetConfig] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for name, dataset in self.extra.items():
            _check(isinstance(name, str) and bool(NAME_PATTERN.match(name)),
                   f"{where}.extra.{name}: names must be lower-case letters, digits and '_'")
            check_watch(dataset.source, dataset.path, dataset.watch, f"{where}.extra.{name}")


@dataclass(frozen=True)
class Params:
    experiment_name: str
    task: TaskConfig
    dataset: DatasetConfig
    models: dict[str, ModelConfig]
    seeds: list[int]
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    card: CardConfig = field(default_factory=CardConfig)
    pretraining: dict[str, PretrainingConfig] = field(default_factory=dict)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    #: The file DVC watches for a dataset or model of each non-local source (conf/config.yaml).
    source_pins: dict[str, str] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        _check(bool(self.models), "models: at least one model is required")
        for group in ("models", "pretraining"):
            for name in getattr(self, group):
                _check(isinstance(name, str) and bool(NAME_PATTERN.match(name)),
                       f"{group}.{name}: names must be lower-case letters, digits and '_', "
                       "starting with a letter or digit, and written as text (quote a name made "
                       "of digits only: '2024')")
        check_watch(self.dataset.source, self.dataset.path, self.dataset.watch, "dataset")
        for name, model in self.models.items():
            check_watch(model.source, model.path, model.watch, f"models.{name}")
        _check(bool(self.seeds), "seeds: at least one seed is required")
        _check(len(set(self.seeds)) == len(self.seeds), f"seeds: duplicates in {self.seeds}")
        for name, model in self.models.items():
            training = model.training(self.train, f"models.{name}.train")
            _check(training.peft.method == "none" or model.pretrained,
                   f"models.{name}: train.peft.method is '{training.peft.method}', but the model "
                   "starts from random weights (pretrained: false); LoRA adapts pretrained "
                   "weights. Set its train.peft.method to none.")

    def cells(self) -> list[tuple[str, int]]:
        """Every model x seed pair: one MLflow run and one row of results.csv each."""
        return [(model, seed) for model in self.models for seed in self.seeds]

    def model(self, name: str) -> ModelConfig:
        if name not in self.models:
            raise ConfigError(f"models.{name}: no such model; configured: {sorted(self.models)}")
        return self.models[name]

    def extra_set(self, name: str) -> DatasetConfig:
        if name not in self.evaluation.extra:
            raise ConfigError(f"evaluation.extra.{name}: no such extra test set; configured: "
                              f"{sorted(self.evaluation.extra)}")
        return self.evaluation.extra[name]

    def pretraining_entry(self, name: str) -> PretrainingConfig:
        if name not in self.pretraining:
            raise ConfigError(f"pretraining.{name}: no such entry; configured: "
                              f"{sorted(self.pretraining)}")
        return self.pretraining[name]


def check_watch(source: str | None, path: str | None, watch: str | None, where: str) -> None:
    """DVC notices a changed input only through `watch`: it must be set, and a local source
    must be watched itself (or through a folder holding it)."""
    _check(watch is not None,
           f"{where}.watch: missing. DVC hashes this file or folder to see that the input "
           "changed: a local source's own path, requirements-data.txt for a package, "
           "requirements.txt for the Hub. The presets in conf/ set it from `source` and `path`.")
    if source == "local" and path is not None:
        inside = Path(path) == Path(watch) or Path(watch) in Path(path).parents
        _check(inside, f"{where}.watch: '{watch}' does not hold the local data '{path}', so DVC "
                       f"would not see it change; set {where}.watch to '{path}'")


def cell_name(model: str, seed: int) -> str:
    return f"{model}-{seed}"


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from plain data, checking keys, types and values."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{_join(where, key)}: unknown key.{hint} "
                          f"Allowed keys: {', '.join(sorted(fields))}")
    values = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _coerce(hints[name], data[name], _join(where, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(where, name)}: missing required key")
    obj = cls(**values)
    if hasattr(obj, "validate"):
        obj.validate(where)
    return obj


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return _coerce(options[0], value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: '{value}' is not allowed; choose one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        return [_coerce(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
        return {key: _coerce(args[1], item, _join(where, key)) for key, item in value.items()}
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {hint.__name__}, got {_describe(value)}")


def _describe(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def parse_params(data: Any, source: str = "params") -> Params:
    try:
        return build(Params, data, "")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_params(path: Path = PARAMS_FILE) -> Params:
    if not path.exists():
        raise ConfigError(f"{path}: not found. Compose it from conf/ with "
                          "`python -m pipeline.compose` (run from the repository root).")
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({yaml_problem(error)}). Fix the file, or "
                              "compose it again with `python -m pipeline.compose`.") from None
    return parse_params(data, str(path))


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what, in one line: `line 3, column 2: expected ',' or ']', but got ':'`."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
