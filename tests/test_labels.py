"""Every equation label that the package cites in a docstring is defined by some chapter.

Docstrings name the book equation they implement (``eq-...``); a renamed or deleted label
would leave the reader with a reference to nothing, and Sphinx cannot see docstrings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*")
DEFINED = (
    re.compile(r"\$\$\s*\((eq-[\w-]+)\)"),  # $$ ... $$ (eq-label)
    re.compile(r"^\((eq-[\w-]+)\)=\s*$", re.M),  # (eq-label)= target
    re.compile(r"^:label:\s*(eq-[\w-]+)\s*$", re.M),  # {math} directive option
)


def defined_labels() -> set[str]:
    labels = set()
    for md in (ROOT / "book").glob("*.md"):
        text = md.read_text()
        for pattern in DEFINED:
            labels.update(pattern.findall(text))
    return labels


def cited_labels() -> list[tuple[str, str]]:
    out = []
    for py in sorted((ROOT / "genbook").rglob("*.py")):
        for lineno, line in enumerate(py.read_text().splitlines(), 1):
            out += [(f"{py.relative_to(ROOT)}:{lineno}", label) for label in CITED.findall(line)]
    return out


def test_the_chapters_define_labels():
    labels = defined_labels()
    assert len(labels) > 50, f"only {len(labels)} equation labels found: has the label syntax changed?"
    assert "eq-bayes" in labels


@pytest.mark.parametrize("where,label", cited_labels(), ids=lambda v: v)
def test_cited_label_is_defined(where, label):
    assert label in defined_labels(), f"{where} cites {label}, which no chapter in book/ defines"


def test_the_patterns_catch_a_dangling_label(tmp_path):
    assert CITED.findall("the exact log Z (eq. ``eq-rbm-logz``).") == ["eq-rbm-logz"]
    assert DEFINED[0].findall("$$\nZ = 1\n$$ (eq-z)") == ["eq-z"]
    assert DEFINED[1].findall("(eq-z)=\n") == ["eq-z"]
