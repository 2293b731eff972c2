"""The rules every chapter keeps (README, "Writing a chapter") that can be read off its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.md"))
MACHINE_TALK = (
    "set_num_threads",
    "set_num_interop_threads",
    "fit_in_background",
    "multiprocessing",
    "subprocess",
    "threading",
)


def _code_and_prose(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_thread_or_process_management_on_a_page(path):
    text = _code_and_prose(path)
    found = [word for word in MACHINE_TALK if word in text]
    assert not found, f"{path.name} mentions {found}: pages teach the model, not the machine (rule 5)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_at_most_two_on_the_slides_boxes(path):
    boxes = re.findall(r"^[`:]{3,}\{admonition\} On the slides?\b", path.read_text(), flags=re.M)
    assert len(boxes) <= 2, f"{path.name} has {len(boxes)} 'On the slides' boxes; merge them into one or two (rule 8)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_notation_table_near_the_start(path):
    lines = path.read_text().splitlines()
    head = lines[: max(200, len(lines) // 4)]
    headers = [ln for ln in head if ln.startswith("|") and re.search(r"slide", ln, flags=re.I)]
    assert headers, f"{path.name}: no notation table (a table whose header names the slides) near the start (rule 6)"


def test_the_rules_can_fail(tmp_path):
    page = tmp_path / "09_x.md"
    page.write_text("```{admonition} On the slides\n```\n" * 3 + "torch.set_num_threads(1)\n")
    with pytest.raises(AssertionError):
        test_at_most_two_on_the_slides_boxes(page)
    with pytest.raises(AssertionError):
        test_no_thread_or_process_management_on_a_page(page)
    with pytest.raises(AssertionError):
        test_a_notation_table_near_the_start(page)
    # the singular title, as in "On the slide: ...", counts too
    singular = tmp_path / "10_y.md"
    singular.write_text("```{admonition} On the slide: a slip\n```\n" * 2 + ":::{admonition} On the slides\n:::\n")
    with pytest.raises(AssertionError):
        test_at_most_two_on_the_slides_boxes(singular)
