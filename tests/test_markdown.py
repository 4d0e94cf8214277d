from pipeline.markdown import CELL_CHARS, cell


def test_table_cells_are_one_line_escaped_and_cut():
    assert cell("a | b\nc") == "a \\| b c"
    long = cell("word " * 200)
    assert len(long) == CELL_CHARS and long.endswith("…")
    assert long == ("word " * 200)[:CELL_CHARS - 1] + "…"
