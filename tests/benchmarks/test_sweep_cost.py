"""Which stage runs a cache could have skipped: pure bookkeeping, no timing asserted."""

import pytest
import yaml

from benchmarks.sweep_cost import Execution, change_setting, executions, mark_repeats, report


def execution(stage: str, outputs: tuple[str, ...], seconds: float = 5.0) -> Execution:
    return Execution(stage, stage.split("@")[0], seconds, outputs)


def test_a_stage_repeating_another_cells_outputs_is_flagged():
    run = [execution("baseline_eval@minilm-1", ("a",)), execution("baseline_eval@minilm-2", ("a",)),
           execution("baseline_eval@minilm-3", ("b",)), execution("train@minilm-2", ("a",))]
    mark_repeats(run, {})
    assert [e.repeats for e in run] == [None, "baseline_eval@minilm-1", None, None]


def test_a_stage_recomputing_its_own_earlier_outputs_is_flagged():
    first = {"download": execution("download", ("raw",)), "train@m-1": execution("train@m-1", ("x",))}
    second = [execution("download", ("raw",)), execution("train@m-1", ("y",))]
    mark_repeats(second, first)
    assert [e.repeats for e in second] == ["download (previous run)", None]


def test_report_sums_the_repeated_seconds_against_the_goal():
    clean = {"wall_seconds": 20.0, "executions": [execution("train@m-1", ("x",), 10.0)]}
    wasteful = {"wall_seconds": 20.0, "executions": [execution("download", ("raw",), 4.0)]}
    wasteful["executions"][0].repeats = "download (previous run)"
    assert "| seconds of stages a cache could have skipped | 0.0   | 0    | met     |" in report(
        {"experiment": clean}, "setup")
    text = report({"experiment": clean, "after x=1": wasteful}, "setup")
    assert "NOT MET" in text and "repeated: download (4.0 s) = download (previous run)" in text


def test_executions_are_matched_with_dvc_lock_by_command(tmp_path):
    lock = {"schema": "2.0", "stages": {
        "train@m-1": {"cmd": "py clock.py log python -m pipeline.stages.train --model m --seed 1",
                      "outs": [{"path": "models/m-1", "md5": "d1.dir"}, {"path": "x.json", "md5": "j"}]},
        "train@m-11": {"cmd": "py clock.py log python -m pipeline.stages.train --model m --seed 11",
                       "outs": [{"path": "models/m-11", "md5": "d2.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    found = executions(tmp_path, [{"command": "python -m pipeline.stages.train --model m --seed 1",
                                   "seconds": 3.5}])
    assert found == [Execution("train@m-1", "train", 3.5, ("d1.dir", "j"))]


def test_change_setting_sets_a_dotted_key_and_refuses_unknown_ones(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  data_fraction: 1.0\n  epochs: 1\n")
    change_setting(tmp_path, "train.data_fraction=0.5")
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["train"] == {
        "data_fraction": 0.5, "epochs": 1}
    with pytest.raises(SystemExit, match=r"no key 'train\.nope'"):
        change_setting(tmp_path, "train.nope=1")
