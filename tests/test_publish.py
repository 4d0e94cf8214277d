"""`python -m pipeline.publish` on a hand-made project: the folder it builds, and every refusal.
Nothing reaches the network: the Hub is off (HF_HUB_OFFLINE=1), or its client is replaced."""

import json
import sys
from pathlib import Path

import huggingface_hub
import pandas as pd
import pytest
from huggingface_hub import constants

from pipeline import publish
from pipeline.compose import compose
from pipeline.errors import run_cli
from pipeline.io import write_json
from tests.conftest import REPO, save_local_model

SENTINEL = "hf_publishTestSentinel0123456789"
METRICS = ("accuracy", "macro_f1", "macro_precision", "macro_recall", "loss")
CARD = """---
license: mit
---

# rotten_tomatoes: {cell}

## Test results

```python
model = pipeline("text-classification", model="models/{cell}/model")
```
"""


def row(model: str, seed: int, accuracy: float | None) -> dict:
    values = {"status": "success" if accuracy else "failed", "model": model, "seed": seed}
    for name in METRICS:
        values.update({f"base_{name}": 0.5, f"finetuned_{name}": accuracy,
                       f"improvement_{name}": accuracy - 0.5 if accuracy else None})
    return {**values, "train_seconds": 7.5, "mlflow_run_id": f"run-{model}-{seed}",
            "error": "" if accuracy else "RuntimeError: out of memory"}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "model"
    save_local_model(folder, corrupt=False)
    (folder / "training_args.bin").write_bytes(b"a pickle")  # Trainer writes one
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch, model_folder) -> Path:
    """The default experiment's params, its reports (minilm-2 failed), the cards and the model
    folders of the successful cells."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(compose([], REPO / "conf"))
    results = [row("minilm", 1, 0.8), row("minilm", 2, None), row("tiny_bert", 1, 0.7)]
    Path("reports/cards").mkdir(parents=True)
    pd.DataFrame(results).to_csv("reports/results.csv", index=False)
    for cell in ("minilm-1", "tiny_bert-1"):
        Path(f"reports/cards/{cell}.md").write_text(CARD.format(cell=cell))
        (tmp_path / "models" / cell).mkdir(parents=True)
        (tmp_path / "models" / cell / "model").symlink_to(model_folder)
        write_json(tmp_path / "models" / cell / "train.json",
                   {"status": "success", "mlflow_run_id": f"run-{cell}"})
        write_json(tmp_path / "models" / cell / "curves.json", [{"loss": 0.6, "step": 5}])
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    return tmp_path


def publish_cli(capsys, *args: str) -> tuple[int, str]:
    """Run the command in this process; its exit code and everything it printed."""
    saved, sys.argv = sys.argv, ["pipeline.publish", *args]
    try:
        run_cli(publish.main)
        code = 0
    except SystemExit as error:
        code = error.code
    finally:
        sys.argv = saved
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def files_under(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_dry_run_writes_the_folder_to_upload_and_nothing_else(project, capsys, tmp_path):
    target = tmp_path / "out"
    code, output = publish_cli(capsys, "minilm", "1", "--dry-run", str(target))
    assert code == 0, output
    assert sorted(files_under(target)) == ["README.md", "config.json", "curves.json",
                                           "metrics.json", "model.safetensors", "tokenizer.json",
                                           "tokenizer_config.json"]  # no training_args.bin
    assert f'model="{target.resolve()}"' in (target / "README.md").read_text()
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["finetuned_accuracy"] == 0.8 and metrics["seed"] == 1
    assert "mlflow_run_id" not in metrics and "status" not in metrics
    assert "nothing was uploaded" in output


def test_a_dry_run_names_the_repo_in_the_card_and_keeps_a_folder_that_is_not_empty(project, capsys,
                                                                                  tmp_path):
    code, _ = publish_cli(capsys, "minilm", "1", "--repo-id", "alice/mini", "--dry-run", "out")
    assert code == 0
    assert 'model="alice/mini"' in (tmp_path / "out/README.md").read_text()
    code, output = publish_cli(capsys, "minilm", "1", "--dry-run", "out")
    assert code == 2
    assert "--dry-run out: exists and is not an empty folder" in output


@pytest.mark.parametrize(("args", "message"), [
    (["minilm", "1", "--repo-id", "just-a-name"], "--repo-id 'just-a-name': not a Hub repository "
                                                  "id. Give namespace/name"),
    (["minilm", "1", "--repo-id", "a/b/c"], "--repo-id 'a/b/c': not a Hub repository id"),
    (["minilm", "1", "--repo-id", "alice/bad name"], "--repo-id 'alice/bad name': not a Hub"),
    (["minilm", "2", "--repo-id", "alice/m"], "minilm-2: the cell failed (RuntimeError: out of "
                                              "memory); there is no model to share. Fix the cause "
                                              "and run `make repro`"),
    (["minilm", "3", "--repo-id", "alice/m"], "minilm-3: no row in reports/results.csv. Run "
                                              "`dvc repro`"),
    (["tiny_bert", "9", "--repo-id", "alice/m"], "seed 9: not in seeds [1, 2, 3]"),
    (["nope", "1", "--repo-id", "alice/m"], "models.nope: no such model"),
])
def test_a_bad_repo_id_or_a_missing_or_failed_cell_is_refused_in_one_line(project, capsys, args,
                                                                         message):
    code, output = publish_cli(capsys, *args)
    assert code == 2
    assert output.startswith(f"error: {message}"), output
    assert output.count("\n") == 1


def test_a_model_trained_again_since_the_report_is_refused(project, capsys):
    write_json(project / "models/minilm-1/train.json", {"mlflow_run_id": "a-newer-run"})
    code, output = publish_cli(capsys, "minilm", "1", "--dry-run", "out")
    assert code == 2
    assert "was trained by run a-newer-run. Run `dvc repro` to report it." in output


def test_without_a_token_it_says_how_to_log_in(project, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    code, output = publish_cli(capsys, "minilm", "1", "--repo-id", "alice/mini")
    assert code == 2
    assert output.startswith("error: no Hugging Face token: log in with `hf auth login`")


def test_offline_it_stops_and_keeps_the_folder_without_the_token(project, capsys):
    assert constants.HF_HUB_OFFLINE  # tests/conftest.py
    code, output = publish_cli(capsys, "minilm", "1", "--repo-id", "alice/mini")
    assert code == 2
    assert "error: the Hugging Face Hub is off here (HF_HUB_OFFLINE is set): nothing was " \
           "uploaded to alice/mini. The folder to upload is ready in " in output
    folder = Path(output.split("is ready in ")[1].split(" (what --dry-run")[0])
    try:
        files = files_under(folder)
        assert "model.safetensors" in files and "README.md" in files
        assert not any(SENTINEL.encode() in content for content in files.values())
        assert SENTINEL not in output
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def test_an_unreachable_hub_is_said_as_such(project, capsys, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unreachable)
    code, output = publish_cli(capsys, "minilm", "1", "--repo-id", "alice/mini")
    assert code == 2
    assert "error: the Hugging Face Hub cannot be reached (ConnectionError: [Errno 101]" in output


def test_an_upload_creates_the_repo_then_commits_the_folder(project, capsys, monkeypatch):
    calls = []

    def create_repo(api, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(api, **kwargs):
        calls.append(("upload_folder", files_under(Path(kwargs["folder_path"])), kwargs))

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    code, output = publish_cli(capsys, "tiny_bert", "1", "--repo-id", "alice/tiny", "--private")
    assert code == 0, output
    assert calls[0] == ("create_repo", "alice/tiny", {"private": True, "exist_ok": True})
    _, files, options = calls[1]
    assert options["repo_id"] == "alice/tiny"
    assert b'model="alice/tiny"' in files["README.md"]
    assert not any(SENTINEL.encode() in content for content in files.values())
    assert not Path(options["folder_path"]).exists()  # the scratch folder is gone
    assert output.strip() == "tiny_bert-1: uploaded to https://huggingface.co/alice/tiny"


def test_best_picks_the_best_models_best_seed_and_says_it_was_chosen_on_the_test_split(
        project, capsys):
    code, output = publish_cli(capsys, "--best", "--dry-run", "out")
    assert code == 0, output
    assert output.startswith("--best: minilm-1 (")
    assert "Both choices were made on the test split" in output
    card = (project / "out/README.md").read_text()
    assert "Both choices were made on the test split, so its test figures are optimistic." in card
    assert card.index("picked by `pipeline.publish --best`") < card.index("## Test results")
