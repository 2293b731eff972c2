"""Check the built site the way a reader meets it: in a real browser, with no network.

Serves ``_build/html`` on 127.0.0.1, opens every page in headless Chromium (the system's
browser, driven by Playwright; nothing downloads a browser) and fails when

- an equation is not typeset, or MathJax reports an error;
- an image does not load, or any page asks for a resource outside the site;
- a cell shows an error, a traceback or stderr output;
- an internal link or anchor leads nowhere;
- a figure made by a cell has no caption;
- a chapter has no "Exercises" section with hidden solutions;
- the page is wider than a phone screen (horizontal scrolling of the whole page);
- the site search does not find a chapter for its word ("posterior" -> chapter 1, and
  "Metropolis" -> the sampling chapter, "contrastive" -> the energy chapter).

A full-page screenshot of every page, wide and narrow, goes to ``_build/screenshots/``.
Usage: ``python scripts/check_site.py [--html _build/html] [--shots _build/screenshots]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

from bs4 import BeautifulSoup

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE, NARROW = (1280, 900), (390, 844)  # a laptop and a phone
# word -> file-name pattern of the page the site search must return for it
SEARCHES = {
    "posterior": r"book/\d+_bayes\.html",
    "Metropolis": r"book/\d+_sampling\.html",
    "contrastive": r"book/\d+_energy\.html",
    "autoregressive": r"book/\d+_autoregressive\.html",
    "coupling": r"book/\d+_flows\.html",
    "ELBO": r"book/\d+_autoencoders\.html",
    "discriminator": r"book/\d+_gans\.html",
    "denoising": r"book/\d+_diffusion\.html",
    "attention": r"book/\d+_transformers\.html",
    "leaderboard": r"book/\d+_comparison\.html",
}
CHAPTER = re.compile(r"book/\d+_[a-z0-9_]+\.html$")

JS_MATH = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const maths = [...document.querySelectorAll('span.math, div.math')];
  return {
    hasMathJax: !!(window.MathJax && MathJax.startup),
    total: maths.length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
    errors: [...document.querySelectorAll('mjx-merror, [data-mjx-error]')].map(
      e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120)),
  };
}"""
JS_IMAGES = """() => [...document.images]
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => img.getAttribute('src'))"""
JS_CELL_ERRORS = """() => {
  const bad = [...document.querySelectorAll(
    '.cell_output .traceback, .cell_output .output.error, .cell_output .stderr, .cell_output .output.stderr')];
  const text = [...document.querySelectorAll('.cell_output')]
    .filter(o => /Traceback \\(most recent call last\\)|\\w+Error: /.test(o.textContent));
  return [...new Set([...bad, ...text])].map(o => o.textContent.trim().slice(0, 160));
}"""
# Console messages that are not defects. sphinx-book-theme 1.3 stores the light/dark choice
# in localStorage; on a reader's first visit it is empty and pydata-sphinx-theme logs this
# before choosing "auto", which is the behaviour we want.
BENIGN_CONSOLE = (re.compile(r"^Got invalid theme mode: \. Resetting to auto\.$"),)
JS_OVERFLOW = "() => document.scrollingElement.scrollWidth - window.innerWidth"


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, page: str, what: str) -> None:
        line = f"{page}: {what}"
        if line not in self.failures:  # one line per distinct finding (a link repeated on a page counts once)
            self.failures.append(line)


def pages(root: Path) -> list[str]:
    """Every HTML page of the site, relative to its root (the theme's assets excluded)."""
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*.html") if not p.relative_to(root).parts[0].startswith("_")
    )


@functools.lru_cache(maxsize=None)
def _soup(path: Path) -> BeautifulSoup:
    """Each page is parsed once per run (``run`` clears the cache) and shared by every check."""
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _ids(path: Path) -> frozenset[str]:
    soup = _soup(path)
    return frozenset(el["id"] for el in soup.find_all(id=True)) | frozenset(
        el["name"] for el in soup.find_all("a", attrs={"name": True})
    )


def check_links(root: Path, page: str, report: Report) -> None:
    """Every relative link must reach a file in the site, and its #anchor an id there."""
    soup = _soup(root / page)
    for tag, attr in (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src")):
        for el in soup.find_all(tag, attrs={attr: True}):
            url = el[attr]
            parsed = urlparse(url)
            if parsed.scheme or url.startswith("//") or url.startswith(("mailto:", "javascript:")):
                continue
            target, anchor = urldefrag(url)
            target = urlparse(target).path  # drop ?v=... cache busters
            path = (root / page).parent / unquote(target) if target else root / page
            path = path.resolve()
            if path.is_dir():
                path = path / "index.html"
            if root.resolve() not in path.parents and path != root.resolve():
                report.fail(page, f"link {url!r} leaves the site")
            elif not path.is_file():
                report.fail(page, f"broken link {url!r}: no file {path.relative_to(root.resolve())}")
            elif anchor and path.suffix == ".html" and unquote(anchor) not in _ids(path):
                report.fail(page, f"broken anchor {url!r}: no id {anchor!r} in {path.name}")


def redirect_target(root: Path, page: str) -> str | None:
    """The URL a ``<meta http-equiv="refresh">`` page sends the reader to, else None."""
    soup = _soup(root / page)
    meta = soup.find("meta", attrs={"http-equiv": re.compile("^refresh$", re.I)})
    if meta is None:
        return None
    match = re.search(r"url=(.+)$", meta.get("content", ""), re.I)
    return match.group(1).strip("'\" ") if match else ""


def check_captions(root: Path, page: str, report: Report) -> None:
    """Every image a cell draws sits in a <figure> with a caption (myst-nb's figure metadata)."""
    soup = _soup(root / page)
    for img in soup.select(".cell_output img"):
        figure = img.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        if caption is None or not caption.get_text(strip=True):
            report.fail(page, f"figure without a caption: {img.get('src', '?')}")


def check_chapter_anatomy(root: Path, page: str, report: Report) -> None:
    """A chapter ends with an Exercises section whose solutions are hidden in toggles."""
    soup = _soup(root / page)
    headings = [
        h for h in soup.find_all(["h2"]) if h.get_text(" ", strip=True).rstrip("#").strip().endswith("Exercises")
    ]
    if not headings:
        report.fail(page, 'no section titled "Exercises"')
        return
    section = headings[0].find_parent("section")
    toggles = section.select(".dropdown, details, .toggle") if section else []
    if not toggles:
        report.fail(page, "the Exercises section has no hidden (toggled) solutions")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the output to the findings
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # the browser may close a connection before a file is sent: not a finding
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit(
            "check-site needs Chromium: install it (Debian/Ubuntu: apt-get install chromium) "
            "or set CHROMIUM=/path/to/chromium"
        )
    return found


def check_page(browser, base: str, root: Path, page: str, shots: Path, report: Report) -> None:
    for name, (width, height) in (("wide", WIDE), ("narrow", NARROW)):
        context = browser.new_context(viewport={"width": width, "height": height})
        tab = context.new_page()
        outside, missing, console = [], [], []

        def route(r):
            if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                return r.continue_()
            outside.append(r.request.url)
            return r.abort()

        tab.route("**/*", route)
        tab.on("response", lambda resp: resp.status >= 400 and missing.append(f"{resp.status} {resp.url}"))
        tab.on("pageerror", lambda err: console.append(str(err)))
        tab.on("console", lambda msg: msg.type == "error" and console.append(msg.text))
        console_ok = lambda text: any(p.search(text) for p in BENIGN_CONSOLE)  # noqa: E731
        tab.goto(f"{base}/{page}", wait_until="load")
        math = tab.evaluate(JS_MATH)
        tab.wait_for_timeout(200)  # let MathJax finish laying out before measuring
        if name == "wide":
            if math["total"] and not math["hasMathJax"]:
                report.fail(page, f"{math['total']} equations but MathJax did not start")
            for tex in math["untypeset"]:
                report.fail(page, f"equation not typeset: {tex!r}")
            for err in math["errors"]:
                report.fail(page, f"MathJax error: {err!r}")
            for src in tab.evaluate(JS_IMAGES):
                report.fail(page, f"image did not load: {src}")
            for text in tab.evaluate(JS_CELL_ERRORS):
                report.fail(page, f"cell output shows an error: {text!r}")
            for url in outside:
                report.fail(page, f"requested a resource outside the site: {url}")
            for line in missing:
                report.fail(page, f"resource failed: {line}")
            for line in console:
                if not console_ok(line):
                    report.fail(page, f"browser console error: {line}")
        else:
            overflow = tab.evaluate(JS_OVERFLOW)
            if overflow > 1:
                report.fail(page, f"wider than a {width}px phone screen by {overflow}px (page scrolls sideways)")
        shot = shots / f"{page.removesuffix('.html').replace('/', '__')}-{name}.png"
        tab.screenshot(path=str(shot), full_page=True)
        context.close()


def check_search(browser, base: str, root: Path, searches: dict[str, str], report: Report) -> None:
    all_pages = pages(root)
    for word, pattern in searches.items():
        wanted = [p for p in all_pages if re.fullmatch(pattern, p)]
        if not wanted:
            report.notes.append(f"search for {word!r}: no page matches {pattern} yet, not checked")
            continue
        if not (root / "search.html").is_file():
            report.fail("search.html", f"the site has no search page (needed to find {word!r})")
            continue
        tab = browser.new_page()
        tab.goto(f"{base}/search.html?q={word}", wait_until="load")
        try:
            tab.wait_for_function(
                "() => document.querySelectorAll('#search-results ul.search li').length > 0 ||"
                " /did not match any|found 0/i.test(document.querySelector('#search-results')?.textContent || '')",
                timeout=15_000,
            )
        except Exception:  # the search never produced an answer
            report.fail("search.html", f"search for {word!r} produced no answer within 15 s")
            tab.close()
            continue
        hits = tab.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
        if not any(wanted[0] in (h or "") for h in hits):
            report.fail("search.html", f"search for {word!r} does not find {wanted[0]} (found {hits[:5]})")
        tab.close()


def run(html: Path, shots: Path, *, searches: dict[str, str] = SEARCHES) -> Report:
    from playwright.sync_api import sync_playwright

    report = Report()
    _soup.cache_clear()  # a site rebuilt (or planted) in the same process is read afresh
    if not (html / "index.html").is_file():
        raise SystemExit(f"{html}/index.html not found: build the book first (make book)")
    all_pages = pages(html)
    shots.mkdir(parents=True, exist_ok=True)
    browsable = []
    for page in all_pages:
        target = redirect_target(html, page)
        if target is not None:  # a redirect: its target must exist; nothing to render
            if not target or not ((html / page).parent / urldefrag(target)[0]).is_file():
                report.fail(page, f"redirects to a missing page {target!r}")
            continue
        browsable.append(page)
        check_links(html, page, report)
        check_captions(html, page, report)
        if CHAPTER.search(page):
            check_chapter_anatomy(html, page, report)
    server, base = serve(html)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            for page in browsable:
                check_page(browser, base, html, page, shots, report)
            check_search(browser, base, html, searches, report)
            browser.close()
    finally:
        server.shutdown()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=Path("_build/html"))
    parser.add_argument("--shots", type=Path, default=Path("_build/screenshots"))
    args = parser.parse_args(argv)
    report = run(args.html, args.shots)
    n = len(pages(args.html))
    for note in report.notes:
        print(f"note: {note}")
    for failure in report.failures:
        print(f"FAIL {failure}")
    print(f"check-site: {n} pages, {len(report.failures)} failures; screenshots in {args.shots}/")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
