"""Tables of results for the book's pages (rendered as Markdown by the notebook)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown_table", "show_table"]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence], *, digits: int = 4) -> str:
    """A Markdown table; floats are shown with ``digits`` significant digits.

    A ``|`` inside a cell is escaped, so text such as ``q(x | y)`` stays in its cell.
    """
    if any(len(r) != len(headers) for r in rows):
        raise ValueError(f"every row needs {len(headers)} cells, got lengths {[len(r) for r in rows]}")

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def show_table(headers: Sequence[str], rows: Sequence[Sequence], *, digits: int = 4):
    """Display :func:`markdown_table` in a notebook (returns the IPython object)."""
    from IPython.display import Markdown

    return Markdown(markdown_table(headers, rows, digits=digits))
