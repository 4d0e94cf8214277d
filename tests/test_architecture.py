"""The structure the code must keep: imports point down the layers, every DVC stage depends on
exactly the code it runs, and the modules that only read YAML or compute statistics stay free
of torch. Each check names the file to fix."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PACKAGE = REPO / "pipeline"
#: Command-line entry points: they import the library and nothing imports them.
ENTRY_POINTS = ("pipeline.stages.*", "pipeline.compose", "pipeline.run", "pipeline.sweep",
                "pipeline.pool_experiments", "pipeline.predict", "pipeline.retry_failed",
                "pipeline.confirm", "pipeline.publish", "pipeline.ui")
#: The bottom layer: reading config, data, sources and models, the task adapters and the pure
#: statistics they build on (per-example metric statistics, the bootstrap). It never
#: imports the library above it (training, tracking, records, reports, statistics...).
FOUNDATION = ("pipeline", "pipeline.errors", "pipeline.paths", "pipeline.io", "pipeline.config",
              "pipeline.bootstrap", "pipeline.example_statistics", "pipeline.markdown",
              "pipeline.sources", "pipeline.data", "pipeline.tokenizer_training",
              "pipeline.evaluation", "pipeline.model_files", "pipeline.modeling",
              "pipeline.tasks", "pipeline.tasks.*")
#: Modules that must load without torch, transformers or datasets: composing a config, the
#: statistics, the report stage (model cards included), the data stages (`download`,
#: `download_extra`) and publishing a cell (it copies files).
TORCH_FREE = ("pipeline.compose", "pipeline.comparison", "pipeline.costs", "pipeline.stages.report",
              "pipeline.stages.download", "pipeline.stages.download_extra",
              "pipeline.pool_experiments", "pipeline.run", "pipeline.publish")
HEAVY = ("torch", "transformers", "datasets")
#: Modules that read tokenizers but build no network: transformers' model code (and the
#: torch.distributed and scipy modules it pulls in) would add 3-4 s to each of their processes.
MODEL_FREE = ("pipeline.stages.tokenize", "pipeline.stages.train_tokenizer")
MODEL_CODE = ("transformers.modeling_utils", "scipy", "peft")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path:
    path = REPO.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported_names(tree: ast.AST) -> list[str]:
    """Every `pipeline` module named by an import that runs: at module level and inside
    functions, but not under `if TYPE_CHECKING:`."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            found.extend(name for child in node.orelse for name in imported_names(child))
            continue
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                         else node.module for alias in node.names)
        found.extend(imported_names(node))
    return [name for name in found if name.split(".")[0] == "pipeline"]


def with_packages(name: str) -> set[str]:
    """A module and the packages whose `__init__` runs when it is imported."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@cache
def direct_imports(name: str) -> frozenset[str]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    return frozenset(module for imported in imported_names(tree)
                     for module in with_packages(imported) if module in MODULES) - {name}


def closure(name: str) -> set[str]:
    seen, todo = set(), [*with_packages(name)]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(direct_imports(module))
    return seen


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_stage_helper(name: str, imported: str) -> bool:
    """The stages share their command-line helpers (pipeline/stages/common.py)."""
    return imported == "pipeline.stages.common" and name.startswith("pipeline.stages.")


def layer_violations(imports: Callable[[str], frozenset[str]] = direct_imports) -> list[str]:
    problems = []
    for name in MODULES:
        for imported in sorted(imports(name)):
            if matches(imported, ENTRY_POINTS) and not is_stage_helper(name, imported):
                problems.append(f"{MODULES[name].relative_to(REPO)} imports the entry point "
                                f"{imported}: move what it needs into a library module")
            elif matches(name, FOUNDATION) and not matches(imported, FOUNDATION):
                problems.append(f"{MODULES[name].relative_to(REPO)} (foundation) imports "
                                f"{imported} from the library layer above it")
    return problems


def stage_modules(dvc_file: Path) -> dict[str, tuple[str, list[str]]]:
    """Each stage of dvc.yaml: the module its command runs and its deps under pipeline/."""
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = body["cmd"].split("python -m ", 1)[1].split()[0]
        deps = [dep for dep in body.get("deps", []) if str(dep).startswith("pipeline")]
        found[name] = (module, deps)
    return found


def covered_files(deps: list[str]) -> set[Path]:
    files = set()
    for dep in deps:
        path = REPO / dep
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    return files


def dependency_problems(dvc_file: Path) -> list[str]:
    problems = []
    for stage, (module, deps) in stage_modules(dvc_file).items():
        needed = {MODULES[name] for name in closure(module)}
        covered = covered_files(deps)
        problems += [f"dvc.yaml: stage {stage} runs {path.relative_to(REPO)} but does not "
                     "depend on it; add it to its deps" for path in sorted(needed - covered)]
        problems += [f"dvc.yaml: stage {stage} depends on {path.relative_to(REPO)}, which it "
                     "does not run; remove it from its deps" for path in sorted(covered - needed)]
    return problems


def test_imports_point_down_the_layers():
    assert layer_violations() == []


def test_every_stage_depends_on_exactly_the_code_it_runs():
    assert dependency_problems(REPO / "dvc.yaml") == []


def test_a_missing_code_dependency_is_named(tmp_path):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    deps = dvc["stages"]["download"]["deps"]
    deps.remove("pipeline/data.py")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    assert dependency_problems(tmp_path / "dvc.yaml") == [
        "dvc.yaml: stage download runs pipeline/data.py but does not depend on it; add it to "
        "its deps"]


def test_a_function_level_import_counts_and_type_checking_does_not():
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from pipeline.training import fit\n"
                     "def f():\n    from pipeline.records import SUCCESS\n    import pipeline.io\n")
    assert imported_names(tree) == ["pipeline.records", "pipeline.io"]


def test_upward_imports_are_named():
    def with_upward_imports(name: str) -> frozenset[str]:
        extra = {"pipeline.comparison": {"pipeline.stages.train"},
                 "pipeline.data": {"pipeline.tracking"}}.get(name, set())
        return direct_imports(name) | extra

    assert layer_violations(with_upward_imports) == [
        "pipeline/comparison.py imports the entry point pipeline.stages.train: move what it "
        "needs into a library module",
        "pipeline/data.py (foundation) imports pipeline.tracking from the library layer above it"]


@pytest.mark.parametrize(("module", "unwanted"),
                         [*((module, HEAVY) for module in TORCH_FREE),
                          *((module, MODEL_CODE) for module in MODEL_FREE)])
def test_modules_load_only_the_libraries_they_need(module, unwanted):
    """Those that need no model load no torch; those that read tokenizers only load no model
    code."""
    check = (f"import sys, {module}; "
             f"print([name for name in {unwanted!r} if name in sys.modules])")
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} imports {result.stdout.strip()}"
