import os

import pytest
import torch

from pipeline.launch import available_cores, use_available_cores

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cpu_max", "cores"), [
    ("max 100000\n", AFFINITY),
    ("50000 100000\n", 1),        # half a core still gets a thread
    ("150000 100000\n", min(AFFINITY, 2)),
    ("100000000 100000\n", AFFINITY),  # a limit above the cores we may run on
    ("garbage", AFFINITY),
])
def test_available_cores_honours_a_container_cpu_limit(tmp_path, cpu_max, cores):
    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    assert available_cores(limit) == cores


def test_available_cores_without_cgroup_file_is_the_affinity(tmp_path):
    assert available_cores(tmp_path / "missing") == AFFINITY


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_capped_at_the_available_cores(monkeypatch, torch_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("pipeline.launch.available_cores", lambda: 1)
    torch.set_num_threads(2)
    use_available_cores()
    assert torch.get_num_threads() == 1


def test_an_explicit_thread_setting_is_kept(monkeypatch, torch_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr("pipeline.launch.available_cores", lambda: 1)
    torch.set_num_threads(2)
    use_available_cores()
    assert torch.get_num_threads() == 2
