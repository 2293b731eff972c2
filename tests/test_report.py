"""Tables for the book's pages."""

import pytest

from genbook.report import markdown_table


def test_markdown_table_layout_and_float_digits():
    text = markdown_table(["name", "value"], [("a", 1.234567), ("b", 2)], digits=3)
    assert text.splitlines() == ["| name | value |", "|---|---|", "| a | 1.23 |", "| b | 2 |"]


def test_pipes_in_cells_and_headers_are_escaped():
    lines = markdown_table(["p(x | y)", "v"], [("q(s | S)", 0.5)]).splitlines()
    assert lines[0] == r"| p(x \| y) | v |"
    assert lines[2] == r"| q(s \| S) | 0.5 |"
    # every row still splits into exactly two cells on unescaped pipes
    for line in (lines[0], lines[2]):
        assert len(line.replace(r"\|", "").strip("|").split("|")) == 2


def test_ragged_rows_are_refused():
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["a", "b"], [(1,)])
