"""Reading a dataset from its source, and cutting seeded splits (stratified, or by group).

Everything here is task-agnostic: tables in, tables out. What the columns mean is
the task adapter's business (`pipeline.tasks`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import logging
import lzma
import re
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.config import SPLITS, DatasetConfig
from pipeline.errors import DataError, SourceError
from pipeline.io import sha256
from pipeline.paths import extra_dir, raw_dir
from pipeline.sources import package_version, resolve_path

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

ALL_ROWS = "all"
DECOMPRESSORS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
COMPRESSIONS = (*DECOMPRESSORS, ".zip")
DOCUMENT_START = "-DOCSTART-"
#: Column separators a CSV file may use; the one its header line holds most often is taken.
DELIMITERS = (",", ";", "\t", "|")


def file_bytes(path: Path) -> bytes:
    """A file's content, uncompressed (gzip, bzip2, xz, or a zip holding one file)."""
    data = path.read_bytes()
    if path.suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if len(names) != 1:
                raise DataError(f"{path}: a zip file must hold exactly one file, found {names}")
            return archive.read(names[0])
    decompress = DECOMPRESSORS.get(path.suffix)
    try:
        return decompress(data) if decompress else data
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise DataError(f"{path}: cannot be uncompressed ({error})") from None


def read_text(path: Path, cfg: DatasetConfig) -> str:
    """A whole text file: UTF-8, or `dataset.fallback_encoding` where it is not valid UTF-8
    (every text format: csv, json, jsonl, CoNLL, parallel and text files)."""
    data = file_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if cfg.fallback_encoding is None:
            where = "of the uncompressed text " if path.suffix in COMPRESSIONS else ""
            line = data.count(b"\n", 0, error.start) + 1
            raise DataError(f"{path}: not valid UTF-8 text (byte {error.start} {where}on line "
                            f"{line}: 0x{data[error.start]:02x}, {error.reason}). Re-encode the "
                            "file as UTF-8, or set dataset.fallback_encoding (e.g. cp1252).") from None
        log.warning("%s: not UTF-8, read as %s", path, cfg.fallback_encoding)
        return data.decode(cfg.fallback_encoding)


def header_delimiter(text: str, path: Path) -> str:
    """The separator a CSV header line uses most (a semicolon- or tab-separated export reads
    as one column otherwise)."""
    header = text.split("\n", 1)[0]
    delimiter = max(DELIMITERS, key=header.count)
    if delimiter != "," and header.count(delimiter) > header.count(","):
        log.info("%s: columns separated by %r (from its header line; set dataset.delimiter to "
                 "choose another)", path, delimiter)
        return delimiter
    return ","


def read_csv(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    text = read_text(path, cfg)
    delimiter = cfg.delimiter or header_delimiter(text, path)
    return pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)


def read_jsonl(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """One JSON object per line; a broken line is named by its number."""
    rows = []
    for number, line in enumerate(read_text(path, cfg).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg}, column "
                            f"{error.colno}). Each line of a JSON Lines file must be one JSON "
                            "object.") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object ({{...}}), got "
                            f"{type(row).__name__}")
        rows.append(row)
    return pd.DataFrame(rows)


def read_json_file(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """A JSON document (records, or columns): a syntax error is named by line and column."""
    text = read_text(path, cfg)
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON "
                        f"({error.msg}). For one object per line, name the file .jsonl or set "
                        "dataset.format: jsonl.") from None
    return pd.read_json(io.StringIO(text), dtype=False)


def conll_sentences(lines: Iterable[str], path: Path, token_index: int,
                    tag_index: int) -> pd.DataFrame:
    """CoNLL columns (one token per line, blank lines between sentences, `-DOCSTART-` lines
    skipped) as one row per sentence: `tokens`, `tags`, and the `line` it starts on."""
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        columns = line.split()
        if not columns or columns[0] == DOCUMENT_START:
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags, "line": start})
            tokens, tags = [], []
            continue
        try:
            token, tag = columns[token_index], columns[tag_index]
        except IndexError:
            raise DataError(f"{path}, line {number}: expected a token in column "
                            f"{token_index} and a tag in column {tag_index}, found "
                            f"{len(columns)} column(s). Set dataset.token_index and "
                            "dataset.tag_index.") from None
        if not tokens:
            start = number
        tokens.append(token)
        tags.append(tag)
    if tokens:
        sentences.append({"tokens": tokens, "tags": tags, "line": start})
    return pd.DataFrame(sentences, columns=["tokens", "tags", "line"])


def read_conll(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    return conll_sentences(read_text(path, cfg).splitlines(), path, cfg.token_index,
                           cfg.tag_index)


def parallel_files(stem: Path, columns: list[str]) -> dict[str, Path]:
    """`<stem>.<column>` for each column, optionally compressed (train.en.gz, train.fr.gz)."""
    files = {}
    for column in columns:
        candidates = [stem.with_name(f"{stem.name}.{column}{suffix}")
                      for suffix in ("", *COMPRESSIONS)]
        found = [path for path in candidates if path.is_file()]
        if not found:
            raise SourceError(f"dataset: no file '{candidates[0]}' (or .gz/.bz2/.xz) for column "
                              f"'{column}'. Parallel data needs one line-aligned file per column.")
        files[column] = found[0]
    return files


def read_parallel(stem: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """Line-aligned text files, one per column: line i of every file is example i."""
    columns = {column: read_text(path, cfg).splitlines()
               for column, path in parallel_files(stem, cfg.columns).items()}
    lengths = {column: len(lines) for column, lines in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{stem}: parallel files differ in line count {lengths}; line i of each "
                        "file must be the same example")
    return pd.DataFrame(columns)


def text_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.txt"))


def read_text_files(folder: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """One example per `<label>/<name>.txt`: first line `title`, the rest `text`."""
    rows = []
    for path in text_files(folder):
        title, _, body = read_text(path, cfg).strip().partition("\n")
        rows.append({"label": path.parent.name, "title": title.strip(), "text": body.strip(),
                     "file": f"{path.parent.name}/{path.name}"})
    return pd.DataFrame(rows, columns=["label", "title", "text", "file"])


def read_squad(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """SQuAD JSON (data -> paragraphs -> qas) as one row per question: `id`, `title`,
    `context`, `question` and `answers` ({"text": [...], "answer_start": [...]}, the Hub's
    layout). SQuAD 2.0's unanswerable questions (`is_impossible`) get empty answer lists."""
    try:
        document = json.loads(read_text(path, cfg))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON "
                        f"({error.msg})") from None
    rows = []
    try:
        for article in document["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                    rows.append({
                        "id": str(qa["id"]), "title": article.get("title", ""),
                        "context": paragraph.get("context"), "question": qa.get("question"),
                        "answers": {"text": [answer["text"] for answer in answers],
                                    "answer_start": [answer["answer_start"] for answer in answers]},
                    })
    except (KeyError, TypeError) as error:
        raise DataError(f"{path}: not SQuAD JSON: {type(error).__name__} {error} after "
                        f"{len(rows)} questions. SQuAD JSON holds data -> paragraphs (context, "
                        "qas) -> qas (id, question, answers: text, answer_start).") from None
    return pd.DataFrame(rows, columns=["id", "title", "context", "question", "answers"])


def source_files(folder: Path, cfg: DatasetConfig, where: str) -> list[Path]:
    """The files under `folder` that `dataset.glob` matches (source_files format)."""
    found = sorted(path for path in folder.glob(cfg.glob) if path.is_file()) \
        if folder.is_dir() else []
    if not found:
        raise SourceError(f"{where}: no file matches dataset.glob '{cfg.glob}' under '{folder}'. "
                          "Check the pattern (relative to that folder; '**/' descends into "
                          "subfolders) and the path.")
    return found


#: Why a source file is skipped: over dataset.max_file_bytes, not UTF-8 (and no
#: fallback_encoding), blank, or mentioning none of dataset.keep_files_mentioning.
SKIP_REASONS = ("too_large", "not_utf8", "empty", "mentions_none")


def read_document(path: Path, cfg: DatasetConfig,
                  mentions: re.Pattern | None) -> tuple[str, None] | tuple[None, str]:
    """(a file's whole text, None), or (None, why it is skipped: one of SKIP_REASONS)."""
    if path.stat().st_size > cfg.max_file_bytes:
        return None, "too_large"
    try:
        text = read_text(path, cfg)
    except DataError:  # not UTF-8 (and no fallback_encoding)
        return None, "not_utf8"
    if not text.strip():
        return None, "empty"
    if mentions is not None and not mentions.search(text):
        return None, "mentions_none"
    return text, None


def read_source_files(folder: Path, cfg: DatasetConfig) -> pd.DataFrame:
    """One document per file that `dataset.glob` matches: its whole text (`text`) and its path
    inside the folder (`file`). Files over `max_file_bytes`, not UTF-8, empty or mentioning
    none of `keep_files_mentioning` are skipped and counted (frame.attrs['skipped'])."""
    mentions = re.compile(r"\b(?:" + "|".join(map(re.escape, cfg.keep_files_mentioning)) + r")\b") \
        if cfg.keep_files_mentioning else None
    rows, reasons = [], Counter()
    matched = source_files(folder, cfg, "dataset.glob")
    for path in matched:
        text, reason = read_document(path, cfg, mentions)
        if reason:
            reasons[reason] += 1
        else:
            rows.append({"text": text, "file": path.relative_to(folder).as_posix()})
    skipped = {reason: reasons[reason] for reason in SKIP_REASONS}
    log.info("%s: %d of %d files matching '%s' kept; skipped: %s", folder, len(rows),
             len(matched), cfg.glob, skipped)
    if not rows:
        raise DataError(f"{folder}: none of the {len(matched)} files matching '{cfg.glob}' is "
                        f"usable (skipped: {skipped}). Check dataset.max_file_bytes, "
                        "dataset.keep_files_mentioning and the files' encoding.")
    frame = pd.DataFrame(rows, columns=["text", "file"])
    frame.attrs["skipped"] = skipped
    return frame


READERS = {
    "csv": read_csv,
    "json": read_json_file,
    "jsonl": read_jsonl,
    "parquet": lambda path, cfg: pd.read_parquet(path),
    "conll": read_conll,
    "parallel": read_parallel,
    "text_files": read_text_files,
    "squad": read_squad,
    "source_files": read_source_files,
}
SUFFIX_FORMATS = {**{name: name for name in READERS}, "txt": "conll"}


def file_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = [s for s in path.suffixes if s not in COMPRESSIONS]
    suffix = suffixes[-1].lstrip(".") if suffixes else ""
    if suffix not in SUFFIX_FORMATS:
        raise DataError(f"{path}: cannot tell the file format from '{path.name}'. Set "
                        f"dataset.format to one of {sorted(READERS)}.")
    return SUFFIX_FORMATS[suffix]


def read_table(path: Path, cfg: DatasetConfig) -> pd.DataFrame:
    declared_format = file_format(path, cfg.format)
    try:
        frame = READERS[declared_format](path, cfg)
    except (ValueError, OSError, EOFError) as error:  # pandas and pyarrow parse errors
        raise DataError(f"{path}: cannot be read as {declared_format} ({error})") from None
    if frame.empty:
        raise DataError(f"{path}: the file has no rows")
    return frame


def input_files(target: Path, cfg: DatasetConfig, where: str) -> list[Path]:
    """The files that make up one split (or the whole dataset) of a local or package source."""
    if cfg.format == "parallel":
        return list(parallel_files(target, cfg.columns).values())
    if cfg.format == "text_files":
        found = text_files(target) if target.is_dir() else []
        if not found:
            raise SourceError(f"{where}: '{target}' is not a folder of <label>/<name>.txt files")
        return found
    if cfg.format == "source_files":
        return source_files(target, cfg, where)
    if target.is_dir():
        raise SourceError(f"{where}: '{target}' is a folder; name the file, or map each split "
                          "to a file inside it with dataset.splits")
    if not target.is_file():
        raise SourceError(f"{where}: file '{target}' does not exist")
    return [target]


def read_files(cfg: DatasetConfig) -> tuple[dict[str, pd.DataFrame], dict]:
    """A local or package source: one file, folder or file stem (split later), or one per
    split."""
    root = resolve_path(cfg.source, cfg.path, "dataset.path")
    if cfg.splits:
        targets = {split: (root / name, f"dataset.splits.{split}")
                   for split, name in cfg.splits.items()}
    else:
        targets = {ALL_ROWS: (root, "dataset.path")}
    frames, files = {}, {}
    for split, (target, where) in targets.items():
        paths = input_files(target, cfg, where)
        frames[split] = read_table(target, cfg)
        digest = sha256(paths[0]) if len(paths) == 1 else hashlib.sha256(
            "".join(sha256(path) for path in paths).encode()).hexdigest()
        files[split] = {"path": str(target), "files": len(paths), "sha256": digest,
                        **frames[split].attrs}
    revision = package_version(cfg.path) if cfg.source == "package" else None
    return frames, {"revision": revision, "files": files}


def read_hub(cfg: DatasetConfig) -> tuple[dict[str, pd.DataFrame], dict]:
    """A Hugging Face Hub dataset; class-label ids become their names."""
    import datasets

    try:
        loaded = datasets.load_dataset(cfg.path, cfg.subset, revision=cfg.revision)
    except Exception as error:  # the hub client raises many types; all mean "not available"
        raise SourceError(f"dataset.path: cannot load '{cfg.path}' from the Hugging Face Hub "
                          f"({type(error).__name__}: {error}). Check the id and your network, "
                          "or use a local or package source.") from None
    mapping = cfg.splits or {split: split for split in SPLITS if split in loaded}
    frames = {}
    for split, name in mapping.items():
        if name not in loaded:
            raise SourceError(f"dataset.splits.{split}: '{cfg.path}' has no split '{name}'; "
                              f"it has {sorted(loaded)}")
        part = loaded[name]
        frame = part.to_pandas()
        for column, feature in part.features.items():
            inner = getattr(feature, "feature", None)  # a list of class labels (NER tags)
            if isinstance(feature, datasets.ClassLabel):
                frame[column] = [feature.int2str(int(v)) if v >= 0 else None for v in frame[column]]
            elif isinstance(inner, datasets.ClassLabel):
                frame[column] = [[inner.int2str(int(v)) for v in row] for row in frame[column]]
        frames[split] = frame
    provenance = {
        "revision": cfg.revision or "main",
        "fingerprints": {split: loaded[name]._fingerprint for split, name in mapping.items()},
    }
    return frames, provenance


def read_source(cfg: DatasetConfig) -> tuple[dict[str, pd.DataFrame], dict]:
    frames, provenance = read_hub(cfg) if cfg.source == "hub" else read_files(cfg)
    return frames, {"source": cfg.source, "path": cfg.path, "subset": cfg.subset, **provenance}


def check_ids(frames: dict[str, pd.DataFrame], cfg: DatasetConfig) -> None:
    """Each id in `dataset.id_column` belongs to one example of one split."""
    if cfg.id_column is None:
        return
    seen: dict[str, str] = {}
    for split, frame in frames.items():
        if cfg.id_column not in frame:
            raise DataError(f"dataset.id_column: '{cfg.id_column}' is not a column of the "
                            f"{split} data ({list(frame.columns)})")
        for identifier in frame[cfg.id_column].astype(str):
            if identifier in seen:
                where = "twice in" if seen[identifier] == split else f"in {seen[identifier]} and"
                raise DataError(f"dataset.id_column: id '{identifier}' appears {where} {split}. "
                                "Remove the duplicates so that no example is in two splits.")
            seen[identifier] = split


def _cut(frame: pd.DataFrame, size: int, strata: pd.Series | None, seed: int,
         what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into (rest, part) with `size` rows in `part`, stratified where every class
    can be represented."""
    from sklearn.model_selection import train_test_split

    if not 1 <= size < len(frame):
        raise DataError(f"{what}: cannot take {size} of {len(frame)} rows; the data is too small "
                        "for this split. Add rows, raise dataset.validation_fraction or "
                        "dataset.test_fraction (or dataset.max_rows), or give the split its own "
                        "file with dataset.splits.")
    if strata is not None and (strata.value_counts().min() < 2 or strata.nunique() > size
                               or strata.nunique() > len(frame) - size):
        log.warning("%s: too few rows per class to stratify; splitting without stratification",
                    what)
        strata = None
    rest, part = train_test_split(frame, test_size=size, random_state=seed, stratify=strata)
    return rest, part


def _cut_groups(frame: pd.DataFrame, count: int, groups: pd.Series, seed: int,
                what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into (rest, part) with `count` whole groups, drawn with `seed`, in `part`."""
    names = groups.drop_duplicates().to_numpy()
    if not 0 < count < len(names):
        raise DataError(f"{what}: cannot set {count} of {len(names)} groups (articles or contexts) "
                        "aside: each split needs at least one whole group, and train the rest. "
                        "Change dataset.validation_fraction or test_fraction, or give the split "
                        "as a file (dataset.splits).")
    chosen = names[np.random.default_rng(seed).permutation(len(names))[:count]]
    part = groups.isin(chosen)
    return frame[~part], frame[part]


def make_splits(frames: dict[str, pd.DataFrame], cfg: DatasetConfig, strata_column: str | None,
                group_column: str | None = None) -> dict[str, pd.DataFrame]:
    """Fill in missing splits from the training data, then apply the row caps. With a
    `group_column` (question answering: the article or context), a missing split takes whole
    groups, so that no group is in two splits, and its fraction counts groups."""
    frames = dict(frames)
    strata = (lambda f: f[strata_column]) if strata_column else (lambda f: None)

    def size(frame: pd.DataFrame, fraction: float) -> int:
        return round((frame[group_column].nunique() if group_column else len(frame)) * fraction)

    def cut(frame: pd.DataFrame, count: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if group_column:
            return _cut_groups(frame, count, frame[group_column], cfg.split_seed, what)
        return _cut(frame, count, strata(frame), cfg.split_seed, what)

    if ALL_ROWS in frames:  # fractions of the whole file
        everything = frames.pop(ALL_ROWS)
        sizes = {split: size(everything, fraction) for split, fraction in
                 (("test", cfg.test_fraction), ("validation", cfg.validation_fraction))}
        rest = everything
        for split, count in sizes.items():
            rest, frames[split] = cut(rest, count, f"dataset ({split} split)")
        frames["train"] = rest
    if "train" not in frames:
        raise DataError("dataset.splits: a train split is required (map 'train' to a split or file)")
    for split, fraction in (("validation", cfg.validation_fraction), ("test", cfg.test_fraction)):
        if split not in frames:  # a fraction of the source's training split
            train = frames["train"]
            frames["train"], frames[split] = cut(train, size(train, fraction),
                                                 f"dataset (carving {split} from train)")
    for split in SPLITS:
        cap = getattr(cfg.max_rows, split)
        frame = frames[split]
        if cap is not None and len(frame) > cap:
            _, frames[split] = _cut(frame, cap, strata(frame), cfg.split_seed,
                                    f"dataset.max_rows.{split}")
    return {split: frames[split].reset_index(drop=True) for split in SPLITS}


def repeated_inputs(inputs: dict[str, pd.Series]) -> dict[str, np.ndarray]:
    """For validation and test, which rows' inputs already occur in an earlier split (train,
    then validation): a test scored on training examples overstates what a model learnt."""
    seen = set(inputs["train"])
    repeated = {}
    for split in ("validation", "test"):
        repeated[split] = inputs[split].isin(seen).to_numpy()
        seen |= set(inputs[split])
    return repeated


def training_share(split: Dataset, fraction: float, seed: int) -> Dataset:
    """The first `fraction` of each class in one seeded order: every share of a learning
    curve holds the smaller ones, so its points differ only by the added examples. Rows
    are stratified by a scalar `labels` column; others (tags, blocks) are shared as one."""
    from datasets import ClassLabel, Value

    if fraction >= 1:
        return split
    positions = np.random.default_rng(seed).permutation(len(split))
    scalar_labels = isinstance(split.features.get("labels"), Value | ClassLabel)
    labels = np.asarray(split["labels"])[positions] if scalar_labels else np.zeros(len(split))
    keys = pd.Series(labels)
    rank = keys.groupby(keys).cumcount()
    quota = keys.map(keys.value_counts()).mul(fraction).round().clip(lower=1)
    return split.select(np.sort(positions[(rank < quota).to_numpy()]))


def load_split(dataset: str, split: str) -> pd.DataFrame:
    """A split of the snapshot written by the download stage."""
    return pd.read_parquet(raw_dir(dataset) / f"{split}.parquet")


def load_extra(name: str) -> pd.DataFrame:
    """The test split of an extra test set, as download_extra@<name> wrote it."""
    return pd.read_parquet(extra_dir(name) / "test.parquet")


def column(frame: pd.DataFrame, name: str, where: str) -> pd.Series:
    """A column, or a field of a column of mappings: `translation.fr` reads the `fr` entry of
    each row's `translation` (the Hub's layout for translation pairs)."""
    if name in frame:
        return frame[name]
    outer, _, inner = name.partition(".")
    if inner and outer in frame:
        values = frame[outer].map(lambda row: row.get(inner) if isinstance(row, dict) else None)
        if values.notna().all():
            return values
    raise DataError(f"{where}: no column '{name}'; the data has {list(frame.columns)}. Set "
                    "dataset.text_columns (and dataset.label_column) to the right names.")
