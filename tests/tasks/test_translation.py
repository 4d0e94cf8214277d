import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import TaskConfig
from pipeline.tasks.translation import Translation

TASK = Translation(TaskConfig("translation", source_lang="fr", target_lang="en"))
REFERENCES = ["A man is riding a red bike down the street.", "Two dogs play in the snow.",
              "A woman sings on a stage."]
HYPOTHESES = ["A man rides a red bike down the road.", "Two dogs play in snow.",
              "A woman is singing on stage."]


def test_identical_output_scores_100():
    scalars, _ = TASK.metrics(REFERENCES, REFERENCES, {})
    assert scalars["bleu"] == pytest.approx(100) and scalars["chrf"] == pytest.approx(100)
    assert scalars["gen_words"] == pytest.approx((10 + 6 + 6) / 3)


def test_bleu_equals_the_sacrebleu_command_line_and_records_the_signature(tmp_path):
    scalars, report = TASK.metrics(HYPOTHESES, REFERENCES, {})
    Path(tmp_path / "hyp.txt").write_text("\n".join(HYPOTHESES) + "\n")
    Path(tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n")
    command = [Path(sys.executable).parent / "sacrebleu", tmp_path / "ref.txt", "-i",
               tmp_path / "hyp.txt", "-m", "bleu", "chrf", "-b", "-w", "4"]
    bleu, chrf = json.loads(subprocess.run(command, capture_output=True, text=True,
                                           check=True).stdout)
    assert scalars["bleu"] == pytest.approx(bleu, abs=1e-4)
    assert scalars["chrf"] == pytest.approx(chrf, abs=1e-4)
    assert 0 < scalars["bleu"] < 100
    assert report["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
