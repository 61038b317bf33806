"""The built book fits its page: nothing but code runs off the main column sideways.

``book/tools/overflow.py`` lays each chapter out in headless Chromium at a laptop's window
width and lists what is wider than the main column (a table or an output behind a
scrollbar, a figure sticking out, content clipped). Code listings may scroll; nothing else
may. Like ``test_book_site.py``, the chapter tests read the site ``make book`` built and are
skipped without one (failing in CI, which builds the book first). The tests of the tool and
of the plotly renderer need no site.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_tool
from test_book_site import HTML, ROOT, not_there, site_is_stale

pytestmark = pytest.mark.browser

BOOK = ROOT / "book"
TOOLS = BOOK / "tools"
colab_cell = load_tool("colab_cell")
CHAPTERS = [p.stem for p in colab_cell.chapter_notebooks(BOOK)]


@pytest.fixture(scope="module")
def overflow(monkeypatch_module):
    """``overflow.py``, with Chromium present."""
    monkeypatch_module.syspath_prepend(str(TOOLS))  # it imports screenshot.py beside it
    tool = load_tool("overflow")
    if not load_tool("screenshot").CHROMIUM.is_file():
        not_there("chromium is missing: apt-get install chromium (.ci/run does)")
    return tool


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def site() -> Path:
    """The HTML folder that ``make book`` built, if it is there and up to date."""
    if not (HTML / f"{CHAPTERS[0]}.html").is_file():
        not_there(f"no built book at {HTML.relative_to(ROOT)}: run `make book` first")
    if site_is_stale():
        not_there("the built book is older than its sources: run `make book` again")
    return HTML


PAGE = """<!DOCTYPE html><html><head><style>
body {{ margin: 0; }} article {{ width: 600px; margin-left: 100px; }}
.scroll {{ overflow-x: auto; }} pre {{ margin: 0; }}
</style></head><body><article>
<p>Some text that wraps as text does, however long the paragraph gets in the end.</p>
{body}
</article></body></html>"""


def measured(overflow, tmp_path: Path, body: str):
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(body=body), encoding="utf-8")
    layout = overflow.measure(page)
    assert not (tmp_path / ".overflow-page.html").exists(), "the probe copy is removed"
    return layout


def test_a_page_that_fits_has_nothing_to_report(overflow, tmp_path: Path) -> None:
    layout = measured(overflow, tmp_path, '<div class="cell"><div class="cell_output">'
                      '<img style="width: 100%; height: 20px"></div></div>')
    assert layout.column == 600
    assert layout.found == []


def test_a_table_behind_a_scrollbar_is_reported(overflow, tmp_path: Path) -> None:
    cells = "".join(f"<td>column_{i}_wide_text</td>" for i in range(12))
    layout = measured(overflow, tmp_path,
                      f'<div class="scroll"><table><tr>{cells}</tr></table></div>')
    (item,) = layout.found
    assert item.kind == "scrolls" and item.by > 100 and item.tag == "div.scroll"
    assert item.cell == -1 and item.text.startswith("column_0_wide_text")


def test_output_and_figures_too_wide_are_reported_code_is_not(overflow, tmp_path: Path) -> None:
    long_line = "x = " + "1 + " * 100
    layout = measured(overflow, tmp_path, f"""
        <div class="cell"><div class="cell_input"><div class="highlight scroll">
          <pre>{long_line}</pre></div></div>
        <div class="cell_output"><div class="highlight scroll"><pre>{long_line}</pre></div>
          <img style="width: 900px; height: 20px"></div></div>""")
    kinds = sorted((item.kind, item.tag, item.cell) for item in layout.found)
    assert kinds == [("scrolls", "div.highlight.scroll", 0), ("sticks out", "img", 0)]


def test_plotly_figures_take_the_column_width_and_keep_their_title_clear() -> None:
    """The book's renderer (installed into the chapters' kernels) drops fixed widths."""
    script = f"""
exec(open({str(TOOLS / "plotly_startup.py")!r}).read())
import plotly.graph_objects as go, plotly.io as pio
fig = go.Figure(go.Bar(y=[1, 2]), layout=dict(width=760, height=380, title="Δ per frame",
                                              margin=dict(t=20)))
print(pio.renderers["book"].to_mimebundle(fig.to_dict())["text/html"])
"""
    html = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout
    call = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*\]),\s*(\{.*\}),\s*(\{.*\})\s*\)",
                     html, re.DOTALL)
    assert call is not None, html[:300]
    layout, config = json.loads(call.group(2)), json.loads(call.group(3))
    assert "width" not in layout and layout["autosize"] is True
    assert config["responsive"] is True
    assert layout["height"] == 380, "a chapter's height is kept"
    assert layout["margin"]["t"] >= 70 and layout["title"]["text"] == "Δ per frame"
    assert layout["title"]["pad"]["t"] >= 30, "below the toolbar"
    assert 'style="height:380px; width:100%;"' in html


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nothing_but_code_overflows_the_main_column(overflow, site: Path, chapter: str) -> None:
    layout = overflow.measure(site / f"{chapter}.html")
    assert layout.column >= 600, f"{chapter}: a main column of {layout.column} px"
    assert not layout.found, f"{chapter}.html at {overflow.WIDTH} px:\n" + "\n".join(
        str(item) for item in layout.found)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_pages_show_no_stderr_and_no_build_machine_path(site: Path, chapter: str) -> None:
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 comes with the book extras")
    soup = bs4.BeautifulSoup((site / f"{chapter}.html").read_text(encoding="utf-8"),
                             "html.parser")
    article = soup.find("article")
    stderr = [o.get_text()[:120] for o in article.select("div.output.stderr")]
    assert not stderr, f"{chapter}: stderr on the page: {stderr}"
    text = article.get_text()
    for path in {str(ROOT), str(ROOT.parent), str(Path.home())} - {"/"}:
        assert path + "/" not in text, f"{chapter}: the page shows a path under {path}"
