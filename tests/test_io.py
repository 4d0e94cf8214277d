import os

import pytest

from pipeline.io import atomic_dir, atomic_file


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_outputs_get_the_modes_of_normal_files_not_private_scratch_ones(tmp_path, umask_022):
    with atomic_file(tmp_path / "reports/results.csv") as scratch:
        scratch.write_text("a,b\n")
    with atomic_dir(tmp_path / "models/cell") as scratch:
        (scratch / "config.json").write_text("{}")
    assert (tmp_path / "reports/results.csv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "models/cell").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_the_old_file_and_no_scratch(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as scratch:
        scratch.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["results.csv"]
