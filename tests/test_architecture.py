"""The structure the code must keep: imports point down the layers, every DVC stage depends on
the digest of exactly the code it runs, and the modules that only read YAML or compute
statistics stay free of torch. Each check names the file to fix."""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.code_closure import PackageImports
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


PACKAGE_IMPORTS = PackageImports(PACKAGE)
MODULES = PACKAGE_IMPORTS.modules
direct_imports = PACKAGE_IMPORTS.direct_imports


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


def code_dependency_problems(dvc_file: Path) -> list[str]:
    """Every stage depends on the digest of the code its script runs, and on no code file
    itself (stage_code's digests cover them); `stage_code` depends on the whole package."""
    problems = []
    for name, stage in yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"].items():
        body = stage.get("do", stage)
        script = body["cmd"].split("python -m pipeline.stages.", 1)[1].split()[0]
        deps = [str(dep) for dep in body.get("deps", [])]
        wanted = ["pipeline"] if name == "stage_code" else [f"stage_code/{script}.txt"]
        problems += [f"dvc.yaml: stage {name} does not depend on {dep}; add it to its deps"
                     for dep in wanted if dep not in deps]
        problems += [f"dvc.yaml: stage {name} depends on {dep}, which stage_code/{script}.txt "
                     "covers; remove it from its deps"
                     for dep in deps if dep.startswith("pipeline") and dep not in wanted]
    return problems


def test_imports_point_down_the_layers():
    assert layer_violations() == []


def test_every_stage_depends_on_the_digest_of_its_code():
    assert code_dependency_problems(REPO / "dvc.yaml") == []


def test_a_missing_digest_and_a_code_file_listed_instead_are_named(tmp_path):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    deps = dvc["stages"]["download"]["deps"]
    deps[deps.index("stage_code/download.txt")] = "pipeline/data.py"
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    assert code_dependency_problems(tmp_path / "dvc.yaml") == [
        "dvc.yaml: stage download does not depend on stage_code/download.txt; add it to its deps",
        "dvc.yaml: stage download depends on pipeline/data.py, which stage_code/download.txt "
        "covers; remove it from its deps"]


@pytest.mark.parametrize("script", ["pipeline.stages.download", "pipeline.stages.report"])
def test_a_digest_lists_every_module_its_script_loads(script):
    """Checked against the modules Python really loads (those imported inside functions load
    later; the test below covers them)."""
    check = (f"import sys, {script}; "
             "print(' '.join(sorted(name for name in sys.modules if name.startswith('pipeline'))))")
    loaded = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split()
    listed = {line.split("  ")[1] for line in PACKAGE_IMPORTS.digest(script).splitlines()}
    assert script in loaded
    assert sorted(path for name in loaded if (path := str(MODULES[name].relative_to(REPO)))
                  not in listed) == []


def test_a_function_level_import_counts_and_type_checking_does_not():
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from pipeline.training import fit\n"
                     "def f():\n    from pipeline.records import SUCCESS\n    import pipeline.io\n")
    assert PACKAGE_IMPORTS.imported_names(tree) == ["pipeline.records", "pipeline.io"]


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
