"""Serve MathJax from the built site itself, so equations typeset with no network.

MathJax 3 comes from the PyPI package ``django-static-mathjax`` (a plain copy of MathJax's
files; it needs no Django). After an HTML build, the parts that ``tex-chtml.js`` loads
are copied to ``_static/mathjax``; ``_config.yml`` points ``mathjax_path`` there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# tex-chtml.js and what it loads on demand (TeX extensions, fonts, menu, accessibility).
_FILES = ("tex-chtml.js", "startup.js", "core.js", "loader.js")
_DIRS = ("input", "output", "ui", "a11y", "sre", "adaptors")


def mathjax_source() -> Path:
    import mathjax  # from django-static-mathjax

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax not found at {es5}; install django-static-mathjax")
    return es5


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src, dest = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        shutil.copy2(src / name, dest / name)
    for name in _DIRS:
        shutil.copytree(src / name, dest / name, dirs_exist_ok=True)


def check_config(app, config) -> None:
    if config.mathjax_path.startswith(("http:", "https:", "//")):
        raise ValueError(f"mathjax_path must point into the site, not to {config.mathjax_path!r}")
    mathjax_source()


def setup(app):
    app.connect("config-inited", check_config)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
