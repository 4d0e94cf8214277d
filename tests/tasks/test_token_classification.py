import gzip

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from pipeline.config import DatasetConfig, TaskConfig, build
from pipeline.data import read_conll, read_table
from pipeline.errors import DataError
from pipeline.tasks.token_classification import (
    IGNORED,
    TokenClassification,
    group_entities,
    iob1_to_iob2,
)

TASK = TokenClassification(TaskConfig("token_classification"))
ALL_SUBWORDS = TokenClassification(TaskConfig("token_classification", label_all_subwords=True))
TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
MANIFEST = {"labels": TAGS}


def ner_config(**changes) -> DatasetConfig:
    base = {"name": "ner", "source": "local", "path": ".", "format": "conll",
            "text_columns": ["tokens"], "label_column": "tags", **changes}
    return build(DatasetConfig, base, "dataset")


def conlleval_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """Chunks as conlleval finds them: a chunk starts at B-X, or at I-X after O or another type."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, this = tag.partition("-")
        begins = prefix == "B" or (prefix == "I" and this != kind)
        if kind is not None and (tag == "O" or begins):
            spans.add((start, i, kind))
            kind = None
        if tag != "O" and (begins or kind is None):
            start, kind = i, this
    return spans


def test_iob1_becomes_iob2():
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]) == [
        "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]


def test_conll_reader_skips_docstart_and_splits_on_blank_lines(tmp_path):
    path = tmp_path / "eng.train.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
                     "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n\n\n")
    frame = read_conll(path, ner_config(token_index=0, tag_index=3))
    assert frame["tokens"].tolist() == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert frame["tags"].tolist() == [["I-ORG", "O"], ["I-PER", "I-PER"]]
    assert frame["line"].tolist() == [3, 6]


def test_word_tab_tag_files_with_tab_only_breaks(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text("Empire\tB-facility\nState\tI-facility\n\t\nHi\tO\n")
    frame = read_table(path, ner_config(tag_index=1))
    assert frame["tags"].tolist() == [["B-facility", "I-facility"], ["O"]]


def test_short_conll_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP I-NP I-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad.conll, line 2: expected a token in column 0 and "
                                        r"a tag in column 3, found 1 column"):
        read_conll(path, ner_config(token_index=0, tag_index=3))


def test_file_with_no_sentences_is_refused(tmp_path):
    path = tmp_path / "empty.conll"
    path.write_text("-DOCSTART- -X- O O\n\n")
    with pytest.raises(DataError, match="the file has no rows"):
        read_table(path, ner_config())


def test_token_and_tag_count_mismatch_names_file_and_sentence():
    frame = pd.DataFrame({"tokens": [["a", "b"], ["c", "d", "e"]], "tags": [["O", "O"], ["O"]]})
    with pytest.raises(DataError, match=r"data/train.jsonl: sentence 1 has 3 tokens but 1 tags"):
        TASK.prepare(frame, ner_config(), "data/train.jsonl")


def test_prepare_converts_iob1_on_request_and_keeps_plain_tags():
    frame = pd.DataFrame({"tokens": [["Rome", "fell"], []], "tags": [["I-LOC", "O"], []]})
    prepared = TASK.prepare(frame, ner_config(convert_iob1=True), "x")
    assert prepared["tags"].tolist() == [["B-LOC", "O"]]
    plain = pd.DataFrame({"tokens": [["a", "b"]], "tags": [["O", "METAPHOR"]]})
    assert TASK.prepare(plain, ner_config(), "x")["tags"].tolist() == [["O", "METAPHOR"]]


def test_unknown_tag_outside_train_is_refused():
    splits = {"train": pd.DataFrame({"tags": [["O", "B-PER"]]}),
              "validation": pd.DataFrame({"tags": [["O"]]}),
              "test": pd.DataFrame({"tags": [["B-GPE"]]})}
    with pytest.raises(DataError, match=r"test split: tag\(s\) \['B-GPE'\] never occur"):
        TASK.describe(splits)


def test_describe_counts_tokens_and_warns_on_a_small_entity_share(caplog):
    splits = {split: pd.DataFrame({"tags": [["O"] * 19 + ["B-PER"]]})
              for split in ("train", "validation", "test")}
    description = TASK.describe(splits)
    assert description["labels"] == ["O", "B-PER"]
    assert description["label_counts"]["train"] == {"B-PER": 1, "O": 19}
    assert "entity tokens are 5.0% of all tokens" in caplog.text


def test_first_subword_alignment_and_every_subword_alignment(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    split = Dataset.from_dict({"tokens": [["Blackburn", "visited", "Kwazulunatalstad"]],
                               "tags": [["B-PER", "O", "B-LOC"]]})
    words = tokenizer(split["tokens"][0], is_split_into_words=True).word_ids()
    first = TASK.tokenize(split, tokenizer, 64, MANIFEST, training=True)["labels"][0]
    every = ALL_SUBWORDS.tokenize(split, tokenizer, 64, MANIFEST, training=True)["labels"][0]
    scored = ALL_SUBWORDS.tokenize(split, tokenizer, 64, MANIFEST, training=False)["labels"][0]
    assert words[0] is None and first[0] == IGNORED and first[-1] == IGNORED
    assert [label for label in first if label != IGNORED] == [3, 0, 1]
    strasbourg = [i for i, word in enumerate(words) if word == 2]
    assert len(strasbourg) > 1, "the test needs a word split into subwords"
    assert [every[i] for i in strasbourg] == [1] + [2] * (len(strasbourg) - 1)
    assert [first[i] for i in strasbourg] == [1] + [IGNORED] * (len(strasbourg) - 1)
    assert scored == first


def test_metrics_equal_an_independent_span_count():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "I-LOC", "O", "B-PER"],
                  ["B-LOC", "O", "O"], ["O", "O", "B-PER", "I-PER", "I-PER"]]
    predictions = [["B-PER", "I-PER", "O", "B-PER"], ["O", "B-LOC", "O", "O", "I-PER"],
                   ["B-LOC", "B-LOC", "O"], ["O", "O", "B-PER", "I-PER", "I-LOC"]]
    index = {tag: i for i, tag in enumerate(TAGS)}
    width = 7
    logits = np.zeros((len(references), width, len(TAGS)))
    labels = []
    for row, (reference, predicted) in enumerate(zip(references, predictions, strict=True)):
        for position, tag in enumerate(predicted, start=1):  # position 0 is [CLS]
            logits[row, position, index[tag]] = 5.0
        labels.append([IGNORED] + [index[tag] for tag in reference] + [IGNORED])
    scalars, report = TASK.metrics(logits, labels, MANIFEST)

    true, found = set(), set()
    for row, (reference, predicted) in enumerate(zip(references, predictions, strict=True)):
        true |= {(row, *span) for span in conlleval_spans(reference)}
        found |= {(row, *span) for span in conlleval_spans(predicted)}
    correct = len(true & found)
    precision, recall = correct / len(found), correct / len(true)
    assert scalars["precision"] == pytest.approx(precision)
    assert scalars["recall"] == pytest.approx(recall)
    assert scalars["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    tokens = [tag for sentence in references for tag in sentence]
    hits = sum(r == p for ref, pred in zip(references, predictions, strict=True)
               for r, p in zip(ref, pred, strict=True))
    assert scalars["accuracy"] == pytest.approx(hits / len(tokens))
    for kind in ("PER", "LOC"):
        kind_true = {span for span in true if span[3] == kind}
        kind_found = {span for span in found if span[3] == kind}
        kind_correct = len(kind_true & kind_found)
        assert report["per_label"][kind]["precision"] == pytest.approx(
            kind_correct / len(kind_found))
        assert report["per_label"][kind]["recall"] == pytest.approx(kind_correct / len(kind_true))
        assert report["per_label"][kind]["support"] == len(kind_true)


def test_entities_group_words_with_character_spans():
    text = "Peter Blackburn flew to New  York ."
    spans = [(0, 5), (6, 15), (16, 20), (21, 23), (24, 27), (29, 33), (34, 35)]
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    entities = group_entities(text, spans, tags, [0.9, 0.7, 1, 1, 0.8, 0.6, 1])
    assert entities == [
        {"word": "Peter Blackburn", "label": "PER", "score": pytest.approx(0.8), "start": 0,
         "end": 15},
        {"word": "New  York", "label": "LOC", "score": pytest.approx(0.7), "start": 24,
         "end": 33}]
    plain = group_entities("a b c", [(0, 1), (2, 3), (4, 5)], ["METAPHOR", "METAPHOR", "O"],
                           [1, 1, 1])
    assert [(e["word"], e["label"]) for e in plain] == [("a b", "METAPHOR")]


def test_an_evaluation_split_without_entities_is_refused():
    splits = {"train": pd.DataFrame({"tags": [["O", "B-PER"]]}),
              "validation": pd.DataFrame({"tags": [["B-PER"]]}),
              "test": pd.DataFrame({"tags": [["O", "O"]]})}
    with pytest.raises(DataError, match="test split: no token is tagged as an entity"):
        TASK.describe(splits)


def test_tags_differing_only_by_case_are_refused():
    splits = {"train": pd.DataFrame({"tags": [["O", "B-PER", "B-Per"]]}),
              "validation": pd.DataFrame({"tags": [["B-PER"]]}),
              "test": pd.DataFrame({"tags": [["B-PER"]]})}
    with pytest.raises(DataError, match=r"tags that differ only by case .*'B-PER' / 'B-Per'"):
        TASK.describe(splits)


def test_sentences_without_tokens_are_dropped_and_counted(caplog):
    raw = pd.DataFrame({"tokens": [["EU", "rejects"], []], "tags": [["B-ORG", "O"], []]})
    prepared = TASK.prepare(raw, ner_config(), "train.conll")
    assert prepared["tokens"].tolist() == [["EU", "rejects"]]
    assert "train.conll: 1 of 2 rows dropped for having no tokens" in caplog.text
