"""Site-level additions to the book's HTML (a local Sphinx extension, see ``_config.yml``).

- MathJax is served from the built site, so equations typeset with no network. MathJax 3
  comes from the PyPI package ``django-static-mathjax`` (a plain copy of MathJax's files;
  it needs no Django). After an HTML build the parts that ``tex-chtml.js`` loads are
  copied to ``_static/mathjax``; ``_config.yml`` points ``mathjax_path`` there.
- ``genbook.css``: wide equations and tables scroll in their own box on narrow screens.
- Inline scripts added twice by the toolchain (sphinx-thebe's configuration, which
  otherwise raises "Identifier 'THEBE_JS_URL' has already been declared") are kept once.
"""

from __future__ import annotations

import shutil
import zlib
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


def add_static(app) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))
    app.add_css_file("genbook.css")


def check_config(app, config) -> None:
    if config.mathjax_path.startswith(("http:", "https:", "//")):
        raise ValueError(f"mathjax_path must point into the site, not to {config.mathjax_path!r}")
    mathjax_source()


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # an inline script may come with filename None or '' (same script, added twice)
        name = getattr(script, "filename", script) or ""
        key = (str(name), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def _files_version() -> int:
    """A number that changes whenever this extension or its static files change, so that
    Sphinx rewrites the site (it otherwise skips the write, static files included, when
    no page changed). Execution is unaffected: jupyter-cache keys on the code cells."""
    here = Path(__file__).parent
    digest = zlib.crc32(Path(__file__).read_bytes())
    for path in sorted((here / "static").rglob("*")):
        if path.is_file():
            digest = zlib.crc32(path.read_bytes(), digest)
    return digest


def setup(app):
    app.connect("config-inited", check_config)
    app.connect("build-finished", copy_mathjax)
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    app.connect("builder-inited", add_static)
    return {"env_version": _files_version(), "parallel_read_safe": True, "parallel_write_safe": True}
