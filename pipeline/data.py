"""Reading a dataset from its source, and cutting seeded, stratified splits.

Everything here is task-agnostic: tables in, tables out. What the columns mean is
the task adapter's business (`pipeline.tasks`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import logging
import lzma
import re
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.config import SPLITS, DatasetConfig
from pipeline.errors import DataError, SourceError
from pipeline.io import sha256
from pipeline.paths import raw_dir
from pipeline.sources import package_version, resolve_path

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

ALL_ROWS = "all"
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
DOCUMENT_START = "-DOCSTART-"


def open_text(path: Path) -> IO[str]:
    opener = OPENERS.get(path.suffix, open)
    return opener(path, "rt", encoding="utf-8")


def read_conll(path: Path, token_index: int = 0, tag_index: int = -1) -> pd.DataFrame:
    """CoNLL columns (one token per line, blank lines between sentences, `-DOCSTART-` lines
    skipped) as one row per sentence: `tokens`, `tags`, and the `line` it starts on."""
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
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


def read_text(path: Path, cfg: DatasetConfig) -> str:
    """A whole text file: UTF-8, or `dataset.fallback_encoding` where it is not valid UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if cfg.fallback_encoding is None:
            raise DataError(f"{path}: not valid UTF-8 text ({error.reason} at byte {error.start}). "
                            "Re-encode the file as UTF-8, or set dataset.fallback_encoding "
                            "(e.g. cp1252).") from None
        log.warning("%s: not UTF-8, read as %s", path, cfg.fallback_encoding)
        return data.decode(cfg.fallback_encoding)


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
    columns = {}
    for column, path in parallel_files(stem, cfg.columns).items():
        with open_text(path) as handle:
            columns[column] = handle.read().splitlines()
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
    "csv": lambda path, cfg: pd.read_csv(path, dtype=str, keep_default_na=False),
    "json": lambda path, cfg: pd.read_json(path, dtype=False),
    "jsonl": lambda path, cfg: pd.read_json(path, lines=True, dtype=False),
    "parquet": lambda path, cfg: pd.read_parquet(path),
    "conll": lambda path, cfg: read_conll(path, cfg.token_index, cfg.tag_index),
    "parallel": read_parallel,
    "text_files": read_text_files,
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
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not valid UTF-8 text ({error.reason} at byte {error.start}). "
                        "Re-encode the file as UTF-8.") from None
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


def _cut(frame: pd.DataFrame, size: int | float, strata: pd.Series | None, seed: int,
         what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `frame` into (rest, part) with `size` rows (or that fraction) in `part`."""
    from sklearn.model_selection import train_test_split

    if strata is not None and strata.value_counts().min() < 2:
        log.warning("%s: some classes have a single example; splitting without stratification",
                    what)
        strata = None
    try:
        rest, part = train_test_split(frame, test_size=size, random_state=seed, stratify=strata)
    except ValueError as error:
        raise DataError(f"{what}: cannot cut {size} rows from {len(frame)} ({error})") from None
    return rest, part


def make_splits(frames: dict[str, pd.DataFrame], cfg: DatasetConfig,
                strata_column: str | None) -> dict[str, pd.DataFrame]:
    """Fill in missing splits from the training data, then apply the row caps."""
    frames = dict(frames)
    strata = (lambda f: f[strata_column]) if strata_column else (lambda f: None)
    if ALL_ROWS in frames:  # fractions of the whole file
        everything = frames.pop(ALL_ROWS)
        sizes = {split: round(len(everything) * fraction) for split, fraction in
                 (("test", cfg.test_fraction), ("validation", cfg.validation_fraction))}
        rest = everything
        for split, rows in sizes.items():
            rest, frames[split] = _cut(rest, rows, strata(rest), cfg.split_seed,
                                       f"dataset ({split} split)")
        frames["train"] = rest
    if "train" not in frames:
        raise DataError("dataset.splits: a train split is required (map 'train' to a split or file)")
    for split, fraction in (("validation", cfg.validation_fraction), ("test", cfg.test_fraction)):
        if split not in frames:  # a fraction of the source's training split
            train = frames["train"]
            frames["train"], frames[split] = _cut(train, round(len(train) * fraction),
                                                  strata(train), cfg.split_seed,
                                                  f"dataset (carving {split} from train)")
    for split in SPLITS:
        cap = getattr(cfg.max_rows, split)
        frame = frames[split]
        if cap is not None and len(frame) > cap:
            _, frames[split] = _cut(frame, cap, strata(frame), cfg.split_seed,
                                    f"dataset.max_rows.{split}")
    return {split: frames[split].reset_index(drop=True) for split in SPLITS}


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
