"""scripts/check_site.py catches what it claims to: defects are planted in a tiny site.

One clean site must pass; one site with a defect on each page must report each defect
against its own page. Needs the system's Chromium (CI installs it before the tests).
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import check_site  # noqa: E402
import genbook_site  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser") or os.environ.get("CHROMIUM")),
    reason="needs the system's Chromium (apt-get install chromium)",
)

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<script>window.MathJax = {{options: {{processHtmlClass: "math"}},
  tex: {{packages: {{"[-]": ["noundefined"]}}}}}};</script>
<script defer src="{up}{mathjax}"></script></head>
<body class="tex2jax_ignore"><section id="top"><h1>{title}</h1>{body}</section></body></html>"""
FIGURE = (
    '<figure id="fig-dot"><div class="cell_output docutils container"><img src="dot.png" alt="plot"></div>'
    "<figcaption><p>A dot.</p></figcaption></figure>"
)
GOOD = (
    '<p>Inline <span class="math">\\(e^{-E}/Z\\)</span> and a link to '
    '<a href="other.html#part">the other page</a>.</p>'
    '<div class="math">\\[ p(\\theta \\mid D) = \\frac{p(D \\mid \\theta) p(\\theta)}{p(D)} \\]</div>'
    '<img src="dot.png" alt="a dot">'
    '<div class="cell_output docutils container"><div class="output stream"><pre>0.7</pre></div></div>'
)
GOOD += FIGURE
EXERCISES = (
    '<section id="exercises"><h2>Exercises</h2><div class="dropdown admonition">'
    '<p class="admonition-title">Solution</p><p>0.7</p></div></section>'
)
TRACEBACK = (
    '<div class="cell_output docutils container"><div class="output traceback highlight-ipythontb">'
    "<pre>Traceback (most recent call last):\nZeroDivisionError: division by zero</pre></div></div>"
)
# page name -> (body, text the report must give for that page)
PLANTED = {
    "anchor.html": (GOOD.replace("other.html#part", "other.html#nowhere"), "broken anchor 'other.html#nowhere'"),
    "page.html": (GOOD.replace("other.html", "gone.html"), "broken link 'gone.html#part'"),
    "image.html": (GOOD.replace("dot.png", "missing.png"), "image did not load: missing.png"),
    "raises.html": (GOOD + TRACEBACK, "ZeroDivisionError"),
    "macro.html": (GOOD + '<div class="math">\\[ \\fracc{1}{2} \\]</div>', "Undefined control sequence"),
    "exponent.html": (GOOD + '<span class="math">\\(x^2^3\\)</span>', "Double exponent"),
    "brace.html": (GOOD + '<div class="math">\\[ \\frac{1}{ \\]</div>', "equation not typeset"),
    "cdn.html": (
        GOOD + '<script src="https://cdn.example.org/mathjax.js"></script>',
        "outside the site: https://cdn.example.org",
    ),
    "nocaption.html": (
        GOOD + '<div class="cell_output docutils container"><img src="dot.png" alt="plot"></div>',
        "figure without a caption: dot.png",
    ),
    "wide.html": (GOOD + '<div style="width: 900px">wide</div>', "wider than a 390px phone screen"),
    "nomathjax.html": (GOOD, "MathJax did not start"),
    "book/02_sampling.html": ("<section><h2>Summary</h2></section>", 'no section titled "Exercises"'),
    "book/03_energy.html": (
        "<section><h2>Exercises</h2><p>no solutions</p></section>",
        "no hidden (toggled) solutions",
    ),
}

_PNG = bytes.fromhex(  # a valid 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db4"
    "0000000049454e44ae426082"
)


def _write(site: Path, name: str, body: str, mathjax: str = "_static/mathjax/tex-chtml.js") -> None:
    up = "../" * name.count("/")
    (site / name).parent.mkdir(parents=True, exist_ok=True)
    (site / name).write_text(PAGE.format(title=name, up=up, mathjax=mathjax, body=body))


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "html"
    src = genbook_site.mathjax_source()
    dest = site / "_static" / "mathjax"
    dest.mkdir(parents=True)
    for name in genbook_site._FILES:
        os.link(src / name, dest / name)  # hard links: fast, and inside the site
    for name in genbook_site._DIRS:
        shutil.copytree(src / name, dest / name, copy_function=os.link)
    (site / "dot.png").write_bytes(_PNG)
    _write(site, "index.html", GOOD)
    _write(site, "other.html", '<h2 id="part">Part</h2>')
    one_down = GOOD.replace("other.html", "../other.html").replace("dot.png", "../dot.png")
    _write(site, "book/01_bayes.html", one_down + EXERCISES)
    return site


def test_clean_site_passes_and_leaves_screenshots(tmp_path):
    site = _site(tmp_path)
    report = check_site.run(site, tmp_path / "shots", searches={})
    assert report.failures == []
    shots = sorted(p.name for p in (tmp_path / "shots").iterdir())
    assert "book__01_bayes-wide.png" in shots and "index-narrow.png" in shots and len(shots) == 6


def test_each_planted_defect_is_reported_on_its_page(tmp_path):
    site = _site(tmp_path)
    for name, (body, _) in PLANTED.items():
        mathjax = "_static/nomathjax/tex-chtml.js" if name == "nomathjax.html" else "_static/mathjax/tex-chtml.js"
        _write(site, name, body, mathjax)
    failures = check_site.run(site, tmp_path / "shots", searches={}).failures
    for name, (_, expected) in PLANTED.items():
        mine = [f for f in failures if f.startswith(f"{name}: ")]
        assert any(expected in f for f in mine), (name, expected, mine)
    # the pages without a defect stay clean
    assert not [f for f in failures if f.split(":")[0] in ("index.html", "other.html", "book/01_bayes.html")]
