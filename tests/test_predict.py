import argparse

import pytest

from pipeline.errors import SourceError
from pipeline.predict import argument_parser, question_inputs


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


@pytest.mark.parametrize("argv", [["minilm", "1", "--json", "a b", "c"],
                                  ["minilm", "1", "a b", "--json", "c"],
                                  ["--json", "minilm", "1", "a b", "c"]])
def test_texts_may_come_before_or_after_the_options(argv):
    args = argument_parser().parse_intermixed_args(argv)
    assert (args.model, args.seed, args.inputs, args.json) == ("minilm", 1, ["a b", "c"], True)
