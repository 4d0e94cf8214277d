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


def test_scratch_left_by_a_killed_writer_is_cleared_at_the_next_write(tmp_path):
    (tmp_path / ".train.abc123").mkdir(mode=0o700)  # a killed download's scratch folder
    (tmp_path / ".train.abc123/train.parquet").write_bytes(b"half")
    (tmp_path / ".results.csv.xyz").write_text("half")
    (tmp_path / ".other.keep").write_text("someone else's")
    with atomic_dir(tmp_path / "train") as scratch:
        (scratch / "train.parquet").write_bytes(b"whole")
    with atomic_file(tmp_path / "results.csv") as scratch:
        scratch.write_text("whole")
    assert sorted(os.listdir(tmp_path)) == [".other.keep", "results.csv", "train"]
