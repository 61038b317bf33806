"""Measure what sticks out of a built page's main column, as headless Chromium lays it out.

Usage: ``python book/tools/overflow.py PAGE.html [PAGE.html ...] [--width 1280]``

The main column is the page's ``<article>``. Inside it, an element overflows when it
scrolls sideways (its content is wider than its box: a table, an output or a figure behind a
horizontal scrollbar), when it clips content it has no room for, or when it sticks out of the
column. Code listings are left out: cell inputs and code blocks outside cell outputs may
scroll, as code does everywhere. Printed outputs, tables, figures and text may not.
``tests/test_book_layout.py`` runs this over every chapter of the built book.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

from screenshot import run_chromium

WIDTH, HEIGHT = 1280, 2000  # px, a laptop's browser window
SLACK = 1  # px of rounding allowed
REPORT_ID = "overflow-report"
# Runs after the page's own scripts (plotly, widgets, MathJax), in virtual time.
SETTLE_MS = 8000

MEASURE_JS = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const column = document.querySelector("article");
  const found = [];
  // Inline math is clipped to its line by the theme; MathJax keeps a hidden copy of each
  // formula (mjx-assistive-mml) for screen readers.
  const exempt = (e) => e.closest(".cell_input") || e.closest("span.math, mjx-assistive-mml")
    || (e.closest("div.highlight") && !e.closest(".cell_output"));
  const describe = (e) => {
    const cls = (e.getAttribute("class") || "").trim().split(/\\s+/).slice(0, 3).join(".");
    const cell = e.closest(".cell");
    const where = cell ? [...document.querySelectorAll("article .cell")].indexOf(cell) : -1;
    const text = (e.innerText || e.textContent || "").trim().replace(/\\s+/g, " ");
    return {tag: e.tagName.toLowerCase() + (cls ? "." + cls : ""), cell: where,
            text: text.slice(0, 80), y: Math.round(e.getBoundingClientRect().top + scrollY)};
  };
  if (column) {
    const limit = column.getBoundingClientRect();
    for (const e of column.querySelectorAll("*")) {
      if (exempt(e)) continue;
      const box = e.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      const style = getComputedStyle(e);
      // An inline box has no width of its own to overflow (its clientWidth is 0).
      const clips = style.display !== "inline" && !["visible", "clip"].includes(style.overflowX);
      if (clips && e.scrollWidth > e.clientWidth + %(slack)d) {
        found.push({...describe(e), kind: style.overflowX === "hidden" ? "clips" : "scrolls",
                    by: e.scrollWidth - e.clientWidth});
        continue;
      }
      // Sticking out of the column counts once, for the outermost element, and not for
      // what a clipping or scrolling box around it already holds.
      let up = e.parentElement, inside = false;
      while (up && up !== column) {
        const s = getComputedStyle(up);
        if (!["visible", "clip"].includes(s.overflowX)) { inside = true; break; }
        if (up.getBoundingClientRect().right > limit.right + %(slack)d) { inside = true; break; }
        up = up.parentElement;
      }
      if (!inside && (box.right > limit.right + %(slack)d || box.left < limit.left - %(slack)d))
        found.push({...describe(e), kind: "sticks out",
                    by: Math.round(Math.max(box.right - limit.right, limit.left - box.left))});
    }
  }
  const out = document.createElement("script");
  out.type = "application/json";
  out.id = "%(report)s";
  out.textContent = JSON.stringify({column: column ? column.clientWidth : null,
                                    height: document.documentElement.scrollHeight, found});
  document.body.appendChild(out);
}, %(settle)d));
</script>
"""


class Overflow(NamedTuple):
    """One element of the main column that is wider than the room it has."""

    kind: str  # "scrolls", "clips" or "sticks out"
    by: float  # px too wide
    tag: str  # tag.class of the element
    cell: int  # index of the notebook cell among the page's cells, -1 outside cells
    text: str  # the start of its text
    y: int  # px from the top of the page

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell >= 0 else "text"
        return (f"{where} (y {self.y}): <{self.tag}> {self.kind} by {self.by:.0f} px: "
                f"{self.text!r}")


class Layout(NamedTuple):
    """What :func:`measure` found on a page."""

    column: int  # px, width of the main column
    height: int  # px, height of the whole page
    found: list[Overflow]


def measure(page: Path, width: int = WIDTH, height: int = HEIGHT) -> Layout:
    """The main column's width and what overflows it on ``page``, in a ``width`` px wide
    window. A copy of the page with the measuring script is made next to it (so its
    relative links resolve) and removed afterwards."""
    html = page.read_text(encoding="utf-8")
    script = MEASURE_JS % {"slack": SLACK, "report": REPORT_ID, "settle": SETTLE_MS}
    probe = page.with_name(f".overflow-{page.name}")
    probe.write_text(html.replace("</body>", script + "</body>", 1), encoding="utf-8")
    try:
        dom = run_chromium([f"--window-size={width},{height}", "--dump-dom"], probe, 180.0).stdout
    finally:
        probe.unlink()
    match = re.search(rf'<script type="application/json" id="{REPORT_ID}">(.*?)</script>',
                      dom, re.DOTALL)
    if match is None:
        raise RuntimeError(f"{page}: the measuring script did not run (no report in the DOM)")
    report = json.loads(match.group(1))
    if report["column"] is None:
        raise RuntimeError(f"{page}: no <article>, so no main column to measure")
    return Layout(report["column"], report["height"],
                  [Overflow(**item) for item in report["found"]])


def main(argv: list[str] | None = None) -> int:
    """Print what overflows on each page; exit 1 if anything does."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", type=Path, nargs="+", help="HTML files of the built book")
    parser.add_argument("--width", type=int, default=WIDTH, help="window width (px)")
    args = parser.parse_args(argv)
    worst = 0
    for page in args.pages:
        layout = measure(page, args.width)
        print(f"{page.name}: column {layout.column} px, page {layout.height} px high, "
              f"{len(layout.found)} overflowing")
        for item in layout.found:
            print(f"  {item}")
        worst = max(worst, len(layout.found))
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
