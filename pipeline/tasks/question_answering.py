"""Extractive question answering (SQuAD): the answer is a span of the context, found by
scoring every context token as its start and as its end.

A context longer than a window is cut into windows that share `task.doc_stride` tokens, each
with the whole question. Training labels each window with its answer's first and last token,
or twice with the first token ([CLS]) when the answer is not inside the window (or the
question has none). At evaluation, a question's answer is the best span over all its windows
(pairs of the `n_best` best start and end tokens, inside the context, at most
`max_answer_length` tokens), cut from the context text by the tokens' character offsets, and
scored with SQuAD's exact match and F1 (0-100). Validation during training measures the loss
only: post-processing every window on each evaluation would cost more than it tells.
"""

from __future__ import annotations

import json
import logging
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.config import DatasetConfig, ModelConfig
from pipeline.errors import ConfigError, DataError
from pipeline.tasks.base import PAIR_SEPARATOR, TaskAdapter

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

    from pipeline.bootstrap import ExampleStatistics

log = logging.getLogger(__name__)

ID, QUESTION, CONTEXT, ANSWERS, GROUP = "id", "question", "context", "answers", "group"
#: Evaluation windows also keep the row of their question in the split and, per token, its
#: character span in the context (None outside the context).
EXAMPLE, OFFSETS = "example", "offset_mapping"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: The fewest tokens a window needs besides the shared context: one of question, [CLS] and
#: two [SEP] (BERT; RoBERTa needs one more).
MIN_WINDOW_OVERHEAD = 4
PUNCTUATION = frozenset(string.punctuation)
ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(char for char in text.lower() if char not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def question_scores(prediction: str, golds: list[str]) -> tuple[float, float]:
    """Exact match and F1 of one question, the best over its gold answers; as SQuAD 2.0's
    script does, a question without gold answers is right only when the prediction is empty."""
    golds = [gold for gold in golds if normalize(gold)] or [""]
    return (max(float(normalize(prediction) == normalize(gold)) for gold in golds),
            max(token_f1(prediction, gold) for gold in golds))


def squad_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Exact match and F1 (0-100) averaged over questions; with unanswerable questions in the
    split, also over the answerable (`has_answer_*`) and the unanswerable (`no_answer_*`)
    ones, as SQuAD 2.0's evaluation script reports them."""
    scores = 100 * np.array([question_scores(prediction, golds)
                             for prediction, golds in zip(predictions, references, strict=True)])
    answerable = np.array([len(golds) > 0 for golds in references])
    result = {"f1": scores[:, 1].mean(), "exact_match": scores[:, 0].mean()}
    if not answerable.all():
        for name, rows in (("has_answer", answerable), ("no_answer", ~answerable)):
            if rows.any():
                result[f"{name}_f1"] = scores[rows, 1].mean()
                result[f"{name}_exact"] = scores[rows, 0].mean()
    return {name: float(value) for name, value in result.items()}


def answer_lists(value: Any, where: str) -> tuple[list[str], list[int]]:
    """The gold answers' texts and start characters, from the Hub's layout
    ({"text": [...], "answer_start": [...]}) or that mapping written as JSON (csv files)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping) or not {"text", "answer_start"} <= set(value):
        raise DataError(f"{where}: answers must be {{\"text\": [...], \"answer_start\": [...]}} "
                        f"(empty lists: unanswerable), got {value!r}")
    texts, starts = [str(text) for text in value["text"]], [int(s) for s in value["answer_start"]]
    if len(texts) != len(starts):
        raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values")
    return texts, starts


def checked_question(identifier: str, question: Any, context: Any, answers: Any,
                     where: str) -> dict[str, Any]:
    """One question in the canonical columns, refused when it cannot be trained or scored."""
    where = f"{where}: question '{identifier}'"
    if not isinstance(context, str) or not context.strip():
        raise DataError(f"{where} has no context. Every question needs the paragraph its answer "
                        "is taken from; add it or remove the question.")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where} has no question text; add it or remove the row.")
    texts, starts = answer_lists(answers, where)
    for text, start in zip(texts, starts, strict=True):
        found = context[start:start + len(text)]
        if found != text:
            place = context.find(text)
            hint = (f"the text occurs at character {place}" if place >= 0
                    else "the text does not occur in the context")
            raise DataError(f"{where}: answer '{text}' does not start at character {start} of its "
                            f"context (found '{found}'); {hint}. Fix its answer_start.")
    return {ID: identifier, QUESTION: question.strip(), CONTEXT: context,
            ANSWERS: {"text": texts, "answer_start": starts}}


def gold_span(answers: Mapping[str, Any]) -> tuple[int, int] | None:
    """The characters [start, end) of the first gold answer, which training aims at."""
    if not len(answers["text"]):
        return None
    start = int(answers["answer_start"][0])
    return start, start + len(answers["text"][0])


def context_offsets(encoded: BatchEncoding, window: int) -> list[tuple[int, int] | None]:
    """Each token's character span in the context; None for the question and special tokens."""
    return [offset if sequence == 1 else None
            for offset, sequence in zip(encoded["offset_mapping"][window],
                                        encoded.sequence_ids(window), strict=True)]


def answer_tokens(offsets: list[tuple[int, int] | None], answer: tuple[int, int] | None,
                  no_answer: int) -> list[int]:
    """The window's first and last token of the answer's characters [start, end); the
    no-answer token twice when the answer is not wholly inside the window, or there is none."""
    context = [i for i, offset in enumerate(offsets) if offset is not None]
    if answer is None or offsets[context[0]][0] > answer[0] or offsets[context[-1]][1] < answer[1]:
        return [no_answer, no_answer]
    first = max(i for i in context if offsets[i][0] <= answer[0])
    last = min(i for i in context if offsets[i][1] >= answer[1])
    return [first, last]


def no_answer_position(input_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> int:
    """Where a window says "no answer here": its [CLS] (or <s>) token."""
    cls = tokenizer.cls_token_id
    return input_ids.index(cls) if cls in input_ids else 0


def span_logits(output: Any) -> torch.Tensor:
    """A window's start and end logits, stacked on the last axis."""
    import torch

    return torch.stack([output.start_logits, output.end_logits], dim=-1)


def log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=0)
    return shifted - np.log(np.exp(shifted).sum(axis=0))


def span_loss(logits: np.ndarray, windows: list[list[int]], labels: list[list[int]]) -> float:
    """The mean over windows of the cross-entropy of the gold start and end tokens (averaged,
    as the model's own loss), each window scored over its own tokens, without padding."""
    losses = []
    for row, ids, (start, end) in zip(logits, windows, labels, strict=True):
        scores = log_softmax(row[:len(ids)])
        losses.append(-(scores[start, 0] + scores[end, 1]) / 2)
    return float(np.mean(losses))


@dataclass(frozen=True)
class Window:
    """One window of a question's context: its start and end logits (one per token), each
    token's character span in the context (None outside it), and its no-answer token."""

    starts: np.ndarray
    ends: np.ndarray
    offsets: list[tuple[int, int] | None]
    no_answer: int

    @property
    def inside(self) -> list[int]:
        """The positions of the context's tokens."""
        return [i for i, offset in enumerate(self.offsets) if offset is not None]

    @property
    def no_answer_logit(self) -> float:
        return float(self.starts[self.no_answer] + self.ends[self.no_answer])

    def candidates(self, n_best: int, max_answer_length: int) -> Iterator[tuple[float, int, int]]:
        """(logit, first token, last token) of every span pairing the `n_best` best starts
        and ends inside the context, at most `max_answer_length` tokens long."""
        inside = np.array(self.inside)
        starts = inside[np.argsort(-self.starts[inside], kind="stable")[:n_best]]
        ends = inside[np.argsort(-self.ends[inside], kind="stable")[:n_best]]
        for first in starts:
            for last in ends:
                if first <= last < first + max_answer_length:
                    yield float(self.starts[first] + self.ends[last]), int(first), int(last)

    def probability(self, first: int, last: int) -> float:
        """How likely the model finds this span (or the no-answer token twice) among the
        window's context tokens and its no-answer token."""
        keep = [*self.inside, self.no_answer]
        where = {position: i for i, position in enumerate(keep)}
        starts, ends = log_softmax(self.starts[keep]), log_softmax(self.ends[keep])
        return float(np.exp(starts[where[first]] + ends[where[last]]))


def best_answer(context: str, windows: list[Window], n_best: int, max_answer_length: int,
                allow_no_answer: bool, threshold: float) -> dict[str, Any]:
    """The answer to one question: the best span over all its windows, cut from the context
    by its tokens' offsets (so the text keeps the context's case), with its character span and
    probability. Where no answer is allowed, it is empty when the lowest no-answer logit over
    the windows beats the best span's by more than `threshold` (SQuAD 2.0's rule)."""
    spans = [(logit, window, first, last) for window in windows
             for logit, first, last in window.candidates(n_best, max_answer_length)]
    best = max(spans, key=lambda span: span[0], default=None)
    if allow_no_answer:
        nothing = min(windows, key=lambda window: window.no_answer_logit)
        if best is None or nothing.no_answer_logit - best[0] > threshold:
            return {"answer": "", "start": 0, "end": 0,
                    "score": nothing.probability(nothing.no_answer, nothing.no_answer)}
    if best is None:  # no span within the limits: answer nothing rather than anything
        return {"answer": "", "score": 0.0, "start": 0, "end": 0}
    _, window, first, last = best
    start, end = window.offsets[first][0], window.offsets[last][1]
    return {"answer": context[start:end], "score": window.probability(first, last),
            "start": start, "end": end}


class WindowCollator:
    """Pads the model inputs of a batch of windows; their `labels` become the start and end
    positions that the model's loss reads. Offsets, contexts and answers stay out."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.pad([{key: row[key] for key in MODEL_INPUTS if key in row} for row in rows])
        if "labels" in rows[0]:
            positions = torch.tensor([row["labels"] for row in rows])
            batch["start_positions"], batch["end_positions"] = positions[:, 0], positions[:, 1]
        return batch


class QuestionAnswering(TaskAdapter):
    metric_names = ("f1", "exact_match", "loss")
    lower_is_better = ("loss",)
    validation_metric_names = ("loss",)
    reports_truncation = False  # long contexts become several windows, none is cut
    #: Trainer keeps the `labels` column, which the collator turns into start and end positions.
    collator_reads_extra_columns = True
    group_column = GROUP
    model_class_name = "AutoModelForQuestionAnswering"
    pipeline_tag = "question-answering"
    peft_task_type = "QUESTION_ANS"
    peft_head_modules = ("qa_outputs",)

    def check_model_config(self, model: ModelConfig, where: str) -> None:
        stride = self.config.doc_stride
        if stride + MIN_WINDOW_OVERHEAD >= model.max_length:
            raise ConfigError(
                f"task.doc_stride: {stride} context tokens shared by consecutive windows leave no "
                f"room in {where}.max_length {model.max_length}, which also holds the question "
                f"and 3-4 special tokens. Lower task.doc_stride (e.g. {model.max_length // 4}) "
                f"or raise {where}.max_length.")

    def prepare(self, frame: pd.DataFrame, cfg: DatasetConfig, where: str) -> pd.DataFrame:
        if len(cfg.text_columns) != 2:
            raise DataError(f"dataset.text_columns: question answering reads two columns, "
                            f"[question, context]; got {cfg.text_columns}")
        question, context = cfg.text_columns
        needed = [*cfg.columns, *(name for name in (cfg.id_column, cfg.title_column) if name)]
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            raise DataError(
                f"{where}: missing column(s) {missing}; the data has {list(frame.columns)}. "
                "Question answering reads dataset.text_columns [question, context], "
                "dataset.label_column (answers: {text: [...], answer_start: [...]}) and, where "
                "set, dataset.id_column and dataset.title_column; SQuAD JSON files need "
                "dataset.format: squad.")
        ids = (frame[cfg.id_column].astype(str) if cfg.id_column
               else pd.Series([str(row) for row in range(len(frame))], index=frame.index))
        rows = [checked_question(identifier, *values, where=where) for identifier, *values in
                zip(ids, frame[question], frame[context], frame[cfg.label_column], strict=True)]
        canonical = pd.DataFrame(rows, columns=[ID, QUESTION, CONTEXT, ANSWERS])
        titles = (frame[cfg.title_column].fillna("").astype(str).to_numpy() if cfg.title_column
                  else np.full(len(frame), ""))
        canonical[GROUP] = np.where(titles != "", titles, canonical[CONTEXT])
        return canonical

    def describe(self, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """Questions, contexts, groups and unanswerable questions per split; a context found in
        two splits (a test answer seen in training) is refused."""
        self.check_unanswerable(splits)
        contexts = {split: set(frame[CONTEXT]) for split, frame in splits.items()}
        names = list(splits)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                shared = contexts[first] & contexts[second]
                if shared:
                    frame = splits[second]
                    example = frame[frame[CONTEXT].isin(shared)][ID].iloc[0]
                    raise DataError(
                        f"the {first} and {second} splits share {len(shared)} context(s) (one is "
                        f"the context of question '{example}' in {second}); every question of "
                        "one context must be in one split. Give splits that do not overlap, or "
                        "one file for the pipeline to split by article (dataset.title_column).")
        counts = {split: {"questions": len(frame), "contexts": int(frame[CONTEXT].nunique()),
                          "groups": int(frame[GROUP].nunique()),
                          "unanswerable": int(sum(len(a["text"]) == 0 for a in frame[ANSWERS]))}
                  for split, frame in splits.items()}
        return {"labels": [], "label_counts": {}, "questions": counts}

    def check_unanswerable(self, splits: dict[str, pd.DataFrame]) -> None:
        """Questions without answers are scored as SQuAD 2.0 does only if the model may answer
        nothing; otherwise every one of them would count as wrong."""
        if self.config.unanswerable:
            return
        for split, frame in splits.items():
            empty = frame[[len(answers["text"]) == 0 for answers in frame[ANSWERS]]]
            if len(empty):
                raise DataError(f"{split} split: {len(empty)} question(s) have no answer (e.g. "
                                f"'{empty[ID].iloc[0]}'). Set task.unanswerable: true to let the "
                                "model answer nothing (SQuAD 2.0), or remove them.")

    def head_config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Two outputs per token: its scores as the answer's start and as its end."""
        return {"num_labels": 2}

    def texts(self, frame: pd.DataFrame) -> Iterator[str]:
        yield from frame[QUESTION]
        yield from frame[CONTEXT].drop_duplicates()

    def inputs(self, frame: pd.DataFrame) -> pd.Series:
        return frame[QUESTION].str.split().str.join(" ") + " ||| " + \
            frame[CONTEXT].str.split().str.join(" ")

    def windows(self, questions: list[str], contexts: list[str],
                tokenizer: PreTrainedTokenizerBase, max_length: int,
                names: list[str]) -> BatchEncoding:
        """Each question with its context, in windows of `max_length` tokens: the question
        whole, the context cut with `doc_stride` tokens shared, character offsets kept.
        `names` say which question a refusal is about."""
        if not tokenizer.is_fast:
            raise DataError(f"question answering: the tokenizer {type(tokenizer).__name__} is not a "
                            "fast (tokenizers-backed) one, and answers are mapped back to the "
                            "context through the character offsets only fast tokenizers give. "
                            "Choose a model that ships a tokenizer.json.")
        special = tokenizer.num_special_tokens_to_add(pair=True)
        lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
        for name, length in zip(names, lengths, strict=True):
            room = max_length - length - special
            if self.config.doc_stride >= room:
                raise DataError(
                    f"{name}: the question takes {length} tokens, which leaves {max(room, 0)} of "
                    f"max_length {max_length} for the context ({special} special tokens); "
                    f"task.doc_stride ({self.config.doc_stride}) must be smaller than that. Lower "
                    "task.doc_stride or raise the model's max_length.")
        return tokenizer(questions, contexts, truncation="only_second", max_length=max_length,
                         stride=self.config.doc_stride, return_overflowing_tokens=True,
                         return_offsets_mapping=True)

    def tokenize(self, split: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 manifest: dict[str, Any], training: bool) -> Dataset:
        """Windows labelled with their answer's first and last token (the first gold answer);
        held-out windows also keep their question's row, offsets, context and gold answers."""
        source = f"dataset '{manifest['dataset']}' ({manifest['source']['path']})"

        def encode(batch: dict[str, list], rows: list[int]) -> dict[str, list]:
            encoded = self.windows(batch[QUESTION], batch[CONTEXT], tokenizer, max_length,
                                   [f"{source}, question '{name}'" for name in batch[ID]])
            owners = encoded.pop("overflow_to_sample_mapping")
            offsets = [context_offsets(encoded, window) for window in range(len(owners))]
            del encoded[OFFSETS]
            encoded["labels"] = [
                answer_tokens(offsets[window], gold_span(batch[ANSWERS][owner]),
                              no_answer_position(encoded["input_ids"][window], tokenizer))
                for window, owner in enumerate(owners)]
            if not training:
                encoded[EXAMPLE] = [rows[owner] for owner in owners]
                encoded[OFFSETS] = offsets
                encoded[CONTEXT] = [batch[CONTEXT][owner] for owner in owners]
                encoded[ANSWERS] = [list(batch[ANSWERS][owner]["text"]) for owner in owners]
            return encoded

        windows = split.map(encode, batched=True, with_indices=True,
                            remove_columns=split.column_names, desc="tokenize into windows")
        log.info("%d questions in %d windows of %d tokens", len(split), len(windows), max_length)
        return windows

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        return WindowCollator(tokenizer)

    def answers(self, logits: np.ndarray, input_ids: list[list[int]],
                offsets: list[list[tuple[int, int] | None]], questions: list[int],
                contexts: list[str], tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        """The answer to each question from the logits of its windows (`questions` names each
        window's question, numbered from 0)."""
        grouped: dict[int, list[Window]] = defaultdict(list)
        for row, ids, offset, question in zip(logits, input_ids, offsets, questions, strict=True):
            grouped[question].append(Window(row[:len(ids), 0], row[:len(ids), 1], offset,
                                             no_answer_position(ids, tokenizer)))
        context = dict(zip(questions, contexts, strict=True))
        return [best_answer(context[question], grouped[question], self.config.n_best,
                            self.config.max_answer_length, self.config.unanswerable,
                            self.config.no_answer_threshold)
                for question in range(max(questions) + 1)]

    def evaluate(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: Dataset,
                 manifest: dict[str, Any], batch_size: int,
                 desc: str) -> tuple[dict[str, float], dict[str, Any], list[str]]:
        """SQuAD scores of each question's best answer over its windows, and the loss of the
        windows' gold start and end tokens."""
        from pipeline.evaluation import predict_logits

        logits = predict_logits(model, split, self.collator(tokenizer), batch_size, desc,
                                read=span_logits)
        questions, input_ids = split[EXAMPLE], split["input_ids"]
        answers = self.answers(logits, input_ids, split[OFFSETS], questions, split[CONTEXT],
                               tokenizer)
        golds = dict(zip(questions, split[ANSWERS], strict=True))
        references = [golds[question] for question in range(len(answers))]
        predictions = [answer["answer"] for answer in answers]
        scalars, report = self.metrics(predictions, references, manifest)
        scalars["loss"] = span_loss(logits, input_ids, split["labels"])
        report["examples"] = [{"answers": gold, "prediction": predicted}
                              for gold, predicted in zip(references[:5], predictions[:5],
                                                         strict=True)]
        return scalars, report, predictions

    def metrics(self, outputs: list[str], references: list[list[str]],
                manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        answerable = sum(len(golds) > 0 for golds in references)
        return squad_scores(outputs, references), {
            "questions": len(references), "answerable": answerable,
            "unanswerable": len(references) - answerable}

    def validation_metrics(self, manifest: dict[str, Any]) -> None:
        return None

    def prediction_table(self, raw: pd.DataFrame, outputs: list[str],
                         manifest: dict[str, Any], labels: Any) -> pd.DataFrame:
        """Enough to rescore with any SQuAD evaluation script: gold answers as a JSON list,
        the prediction empty for "no answer"."""
        return pd.DataFrame({
            ID: raw[ID], QUESTION: raw[QUESTION], CONTEXT: raw[CONTEXT],
            ANSWERS: [json.dumps([str(text) for text in answers["text"]], ensure_ascii=False)
                      for answers in raw[ANSWERS]],
            "prediction": outputs})

    def example_statistics(self, table: pd.DataFrame,
                           manifest: dict[str, Any]) -> dict[str, ExampleStatistics]:
        """SQuAD's scores are means over questions: each question's best EM and F1."""
        from pipeline import example_statistics as statistics

        scores = 100 * np.array([question_scores(str(prediction), json.loads(golds))
                                 for prediction, golds in zip(table["prediction"],
                                                              table[ANSWERS], strict=True)])
        return {"f1": statistics.mean_score(scores[:, 1]),
                "exact_match": statistics.mean_score(scores[:, 0])}

    def usage(self, location: str) -> str:
        """transformers 5 has no question-answering pipeline: the model's best start and end
        token (one window; `python -m pipeline.predict` also reads long contexts window by
        window and weighs the n best spans)."""
        return ("import torch\nfrom transformers import AutoModelForQuestionAnswering, "
                "AutoTokenizer\n\n"
                f'tokenizer = AutoTokenizer.from_pretrained("{location}")\n'
                f'model = AutoModelForQuestionAnswering.from_pretrained("{location}")\n'
                'question = "Who built the tower?"\n'
                'context = "The tower was built by the company of Gustave Eiffel in 1889."\n'
                'inputs = tokenizer(question, context, truncation="only_second", '
                'return_tensors="pt")\n'
                "with torch.no_grad():\n    output = model(**inputs)\n"
                "start, end = int(output.start_logits.argmax()), int(output.end_logits.argmax())\n"
                'print(tokenizer.decode(inputs["input_ids"][0, start:end + 1]))')

    def format_prediction(self, result: dict[str, Any]) -> str:
        return (f"{result['answer'] or '(no answer)'}\t{result['score']:.4f}\t"
                f"{result['start']}-{result['end']}\t{result['question']}")

    def predict(self, inputs: list[str], model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        """The answer to each "question ||| context" input, with its score and character span
        in the context, in windows as long as the model takes."""
        from datasets import Dataset

        from pipeline.evaluation import predict_logits

        pairs = [text.partition(PAIR_SEPARATOR) for text in inputs]
        for number, (_, separator, _) in enumerate(pairs, start=1):
            if not separator:
                raise DataError(f"input {number}: question answering reads \"question ||| "
                                "context\" (or --question and --context)")
        questions, contexts = [q.strip() for q, _, _ in pairs], [c for _, _, c in pairs]
        length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
        encoded = self.windows(questions, contexts, tokenizer, length,
                               [f"input {number}" for number in range(1, len(inputs) + 1)])
        windows = Dataset.from_dict({key: encoded[key] for key in MODEL_INPUTS if key in encoded})
        logits = predict_logits(model, windows, self.collator(tokenizer), len(windows), "predict",
                                read=span_logits)
        owners = encoded["overflow_to_sample_mapping"]
        offsets = [context_offsets(encoded, window) for window in range(len(owners))]
        answers = self.answers(logits, encoded["input_ids"], offsets, owners,
                               [contexts[owner] for owner in owners], tokenizer)
        return [{"input": text, "question": question, **answer}
                for text, question, answer in zip(inputs, questions, answers, strict=True)]
