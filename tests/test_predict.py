import argparse

import pytest

from pipeline.errors import SourceError
from pipeline.predict import question_inputs


def namespace(**values) -> argparse.Namespace:
    return argparse.Namespace(**{"question": [], "context": None, "context_file": None, **values})


def test_questions_are_paired_with_the_context_or_its_file(tmp_path):
    parser = argparse.ArgumentParser()
    assert question_inputs(namespace(question=["Who?", "When?"], context="Ada, 1843."),
                           parser) == ["Who? ||| Ada, 1843.", "When? ||| Ada, 1843."]
    (tmp_path / "context.txt").write_text("Ada wrote it.\n", encoding="utf-8")
    assert question_inputs(namespace(question=["Who?"], context_file=tmp_path / "context.txt"),
                           parser) == ["Who? ||| Ada wrote it.\n"]
    assert question_inputs(namespace(), parser) == []
    with pytest.raises(SourceError, match=r"--context-file: '.*nope.txt' does not exist"):
        question_inputs(namespace(question=["Who?"], context_file=tmp_path / "nope.txt"), parser)
    with pytest.raises(SystemExit):
        question_inputs(namespace(question=["Who?"]), parser)
