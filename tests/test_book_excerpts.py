"""The chapters' code excerpts (``literalinclude`` with ``:pyobject:``) still show what they meant to.

An excerpt with ``:lines:`` picks lines by number inside the object, so re-wrapping a
docstring in ``genbook`` silently shifts it. Sphinx cannot notice; these tests do: the
selected lines must exist, must not cut into the docstring, and must reach the object's
last line (every excerpt in the book shows a signature and the code after the docstring).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"```\{literalinclude\} (?P<path>\S+)\n(?P<options>(?::[a-z-]+:.*\n)+)")


def _excerpts():
    for md in sorted((ROOT / "book").glob("*.md")):
        for m in DIRECTIVE.finditer(md.read_text()):
            options = dict(re.findall(r":([a-z-]+):\s*(.*)", m["options"]))
            if "pyobject" in options:
                yield pytest.param(
                    md, (md.parent / m["path"]).resolve(), options, id=f"{md.stem}:{options['pyobject']}"
                )


def _find(tree: ast.AST, dotted: str) -> ast.AST:
    node = tree
    for name in dotted.split("."):
        matches = [
            n
            for n in ast.iter_child_nodes(node)
            if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
        ]
        assert matches, f"{dotted}: no {name!r} found"
        node = matches[0]
    return node


def _selected(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


EXCERPTS = list(_excerpts())


def test_the_book_has_excerpts():
    assert len(EXCERPTS) >= 10  # the pattern still matches the chapters' directives


@pytest.mark.parametrize("md, source, options", EXCERPTS)
def test_excerpt_names_an_object_and_selects_its_code(md, source, options):
    assert source.is_file(), f"{md.name}: {source} does not exist"
    node = _find(ast.parse(source.read_text()), options["pyobject"])
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    length = node.end_lineno - start + 1
    if "lines" not in options:
        return
    chosen = _selected(options["lines"])
    assert max(chosen) <= length, (
        f"{md.name}: lines {options['lines']} go past the {length} lines of {options['pyobject']}"
    )
    assert max(chosen) == length, f"{md.name}: lines {options['lines']} stop before the end of {options['pyobject']}"
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        doc = set(range(first.lineno - start + 1, first.end_lineno - start + 2))
        assert not doc & set(chosen), (
            f"{md.name}: lines {options['lines']} cut into the docstring of {options['pyobject']}"
        )
