from pipeline.stages.export_csv import EXAMPLE_CELL_CHARS, markdown_cell


def test_example_cells_are_one_line_escaped_and_cut():
    assert markdown_cell("a | b\nc") == "a \\| b c"
    long = markdown_cell("word " * 200)
    assert len(long) == EXAMPLE_CELL_CHARS and long.endswith("…")
