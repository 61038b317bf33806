"""Render a page of the built book in headless Chromium, as a reader would see it offline.

Usage: ``python book/tools/screenshot.py PAGE.html OUT.png [--width 1280] [--height 2400]``

``tests/test_book_site.py`` uses :func:`dump_dom` from here to read the page's DOM after
its scripts ran. Every request that would leave the machine fails (no host name resolves),
so a page that still needs a CDN shows it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Long enough for plotly, the widget manager and MathJax to finish; it is virtual time, so
# an idle page does not wait for it.
VIRTUAL_TIME_BUDGET_MS = 15000


def chromium_command(user_data_dir: Path) -> list[str]:
    """Chromium, headless, with no first-run work, no background traffic and no network."""
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--hide-scrollbars",
        # No name resolves: a page that fetches anything from the internet fails here.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={user_data_dir}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
    ]


def run_chromium(extra: list[str], page: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [*chromium_command(Path(profile)), *extra, page.resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=True, stdin=subprocess.DEVNULL)


def dump_dom(page: Path, timeout: float = 120.0) -> str:
    """The page's DOM, serialised after its scripts ran."""
    return run_chromium(["--dump-dom"], page, timeout).stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2400,
               timeout: float = 120.0) -> Path:
    """Save a PNG of the top ``width`` x ``height`` pixels of the page."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    run_chromium([f"--window-size={width},{height}", f"--screenshot={out}"], page, timeout)
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="an HTML file of the built book")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"{args.page}: no such file (build the book first: make book)")
    print(screenshot(args.page, args.out, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
