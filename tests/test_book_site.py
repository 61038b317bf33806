"""The built book works offline: plots drawn, widgets rendered, math typeset, no CDN.

The tests read the site ``make book`` built; without one, or with one older than its sources,
they are skipped with a message saying so (in CI, which builds the book first, they fail).
Chapter 1 is opened in headless Chromium with every host name failing to
resolve, and its DOM is read after the page's scripts ran.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import load_tool

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML = BOOK / "_build" / "html"
CHAPTER_1 = HTML / "01_dataset_geometry.html"

# Hosts that serve the scripts and styles a Sphinx/Jupyter page usually pulls in.
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com", "cdn.plot.ly",
             "fonts.googleapis.com", "code.jquery.com", "polyfill.io")
# sphinx-thebe writes the URL it would load thebe from into every page, but loads it only
# when a reader presses a thebe button, and the book has none (launch_buttons.thebe: false).
THEBE_URL = re.compile(r'const THEBE_JS_URL = "https://unpkg\.com/thebe@[^"]*"')
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)


def sources() -> list[Path]:
    """Everything the built chapter 1 depends on."""
    paths = [ROOT / "pyproject.toml", BOOK / "package-lock.json"]
    paths += [p for p in BOOK.iterdir() if p.suffix in (".md", ".ipynb", ".yml")]
    paths += list((BOOK / "tools").glob("*.py"))
    paths += list((ROOT / "minternet").rglob("*.py"))
    return [p for p in paths if p.is_file()]


def site_is_stale() -> bool:
    """Whether chapter 1's page is missing or older than any of its sources."""
    if not CHAPTER_1.is_file():
        return True
    built = CHAPTER_1.stat().st_mtime
    return any(p.stat().st_mtime > built for p in sources())


def not_there(reason: str) -> None:
    """Skip, saying what to do; in CI (``CI=true``, where .ci/run builds the book before the
    tests and installs Chromium) a missing piece is a failure instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI builds the book before the tests, so this is an error)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site() -> Path:
    """The HTML folder that ``make book`` built, if it is there and up to date."""
    if not CHAPTER_1.is_file():
        not_there(f"no built book at {HTML.relative_to(ROOT)}: run `make book` first")
    if site_is_stale():
        not_there("the built book is older than its sources: run `make book` again")
    return HTML


@pytest.fixture(scope="module")
def chapter_1_dom(site: Path):
    """Chapter 1's DOM after its scripts ran in headless Chromium, parsed."""
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 comes with the book extras")
    screenshot = load_tool("screenshot")
    if not screenshot.CHROMIUM.is_file():
        not_there(f"{screenshot.CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    dom = screenshot.dump_dom(site / CHAPTER_1.name)
    return bs4.BeautifulSoup(dom, "html.parser")


def test_no_page_loads_anything_from_the_internet(site: Path) -> None:
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 comes with the book extras")
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    assert CHAPTER_1 in pages
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        soup = bs4.BeautifulSoup(text, "html.parser")
        for tag, attr in (("script", "src"), ("img", "src"), ("iframe", "src"),
                          ("link", "href")):
            for element in soup.find_all(tag):
                url = element.get(attr) or ""
                # Plain links to other pages (rel="canonical", "next", ...) load nothing.
                rel = element.get("rel") or []
                loads = tag != "link" or {"stylesheet", "preload", "modulepreload",
                                          "icon"} & set(rel)
                if loads and EXTERNAL.match(url):
                    found.append(f"{page.name}: <{tag} {attr}={url}>")
        scanned = THEBE_URL.sub("", text)
        found += [f"{page.name}: mentions {host}" for host in CDN_HOSTS if host in scanned]
    assert not found, "pages reach out to the internet:\n" + "\n".join(found)


def test_plotly_figure_is_drawn(chapter_1_dom) -> None:
    plots = chapter_1_dom.select(".js-plotly-plot")
    assert plots, "no plotly figure was drawn (is window.Plotly defined before require.js?)"
    for plot in plots:
        assert plot.select(".main-svg"), "plotly drew no SVG layer"
        # 2D traces are SVG groups; 3D scenes are drawn into a WebGL canvas.
        assert plot.select(".trace") or plot.select("canvas"), "the figure has no trace"


def test_widgets_are_rendered_by_the_widget_manager(chapter_1_dom) -> None:
    views = chapter_1_dom.select('script[type="application/vnd.jupyter.widget-view+json"]')
    assert views, "chapter 1 has no widget output to render"
    for view in views:
        # The manager puts the live widget next to the view's script tag.
        assert view.parent.select(".jupyter-widgets"), "a saved widget was not rendered"
    assert chapter_1_dom.select(".jupyter-widgets.widget-slider"), "no slider was rendered"


def test_math_is_typeset_by_mathjax(chapter_1_dom) -> None:
    math = chapter_1_dom.select(".math")
    assert math, "chapter 1 has no math"
    untyped = [m.get_text()[:60] for m in math if not m.select("mjx-container")]
    assert not untyped, f"MathJax did not typeset: {untyped}"
    errors = [e.get_text()[:60] for e in chapter_1_dom.select("mjx-merror")]
    assert not errors, f"TeX errors: {errors}"
