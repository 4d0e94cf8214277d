"""The code a stage runs, on a small package written here: what its digest lists and when
the digest changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.code_closure import PackageImports
from pipeline.errors import PipelineError

FILES = {
    "pipeline/__init__.py": "",
    "pipeline/io.py": "import json\n",
    "pipeline/records.py": "from pipeline import io\n",
    "pipeline/training.py": "X = 1\n",
    "pipeline/unused.py": "",
    "pipeline/stages/__init__.py": "",
    "pipeline/stages/common.py": "",
    "pipeline/stages/report.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pipeline.training import X\n"
        "def main():\n    from pipeline.records import SUCCESS\n"),
    "pipeline/stages/train.py": "import pipeline.training\n",
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / "pipeline"


def md5sum_lines(root: Path, paths: list[str]) -> str:
    return "".join(f"{hashlib.md5((root / path).read_bytes()).hexdigest()}  {path}\n"
                   for path in paths)


def test_a_digest_lists_the_files_its_script_imports_where_they_run(package):
    digest = PackageImports(package).digest("pipeline.stages.report")
    # records comes from inside main(), io through records, training only for type checkers
    assert digest == md5sum_lines(package.parent, [
        "pipeline/__init__.py", "pipeline/io.py", "pipeline/records.py",
        "pipeline/stages/__init__.py", "pipeline/stages/report.py"])


def test_only_the_scripts_get_a_digest(package):
    assert PackageImports(package).stage_scripts() == [
        "pipeline.stages.report", "pipeline.stages.train"]


def test_a_digest_changes_with_the_files_it_lists_and_no_other(package):
    before = {script: PackageImports(package).digest(script)
              for script in ("pipeline.stages.report", "pipeline.stages.train")}
    (package / "io.py").write_text("import json  # edited\n")
    (package / "unused.py").write_text("Y = 2\n")
    after = {script: PackageImports(package).digest(script) for script in before}
    assert after["pipeline.stages.train"] == before["pipeline.stages.train"]
    assert after["pipeline.stages.report"] != before["pipeline.stages.report"]


def test_a_module_that_does_not_parse_is_named_with_its_line(package):
    (package / "records.py").write_text("from pipeline import io\ndef broken(:\n")
    with pytest.raises(PipelineError, match=r"records\.py, line 2: .*fix the file"):
        PackageImports(package).digest("pipeline.stages.report")
