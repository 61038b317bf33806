"""Copy the JavaScript the built book needs into ``book/_static/vendor/``.

The pages must work with no network at all, so nothing is loaded from a CDN:

* ``plotly.min.js`` comes from the installed ``plotly`` Python package, so the page runs the
  same plotly.js version that produced the figures;
* require.js, the Jupyter widget manager (``@jupyter-widgets/html-manager``) and MathJax 3 are
  pinned npm dependencies in ``book/package.json``, installed with ``npm ci``.

``_config.yml`` points Sphinx and myst-nb at these copies. The vendor folder is gitignored
and rebuilt from scratch on every run, so no stale file survives a version change.

Usage: ``python book/tools/offline_assets.py [--book BOOK_DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]

# The one MathJax component the pages load; it fetches fonts and TeX extensions from the
# subfolders next to it on demand, so those are copied too (the other combined bundles are not).
MATHJAX_COMPONENT = "tex-mml-chtml.js"
# The widget manager's bundle that renders saved widget state; it runs under require.js and
# refers to its icon fonts by paths relative to itself.
WIDGET_BUNDLE = "embed-amd.js"
FONT_SUFFIXES = (".woff", ".woff2", ".ttf", ".eot", ".svg")


def plotly_js() -> Path:
    """The ``plotly.min.js`` shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the installed plotly package has no plotly.min.js")
    return path


def vendor_files(book: Path) -> dict[str, Path]:
    """Map each destination path inside ``_static/vendor/`` to the file it is copied from."""
    modules = book / "node_modules"
    if not modules.is_dir():
        raise FileNotFoundError(f"{modules} is missing: run `npm ci` in {book} first")
    files = {"plotly.min.js": plotly_js(), "require.js": modules / "requirejs" / "require.js"}

    manager = modules / "@jupyter-widgets" / "html-manager" / "dist"
    files[f"html-manager/{WIDGET_BUNDLE}"] = manager / WIDGET_BUNDLE
    for font in sorted(manager.iterdir()):
        if font.suffix in FONT_SUFFIXES:
            files[f"html-manager/{font.name}"] = font

    mathjax = modules / "mathjax" / "es5"
    files[f"mathjax/{MATHJAX_COMPONENT}"] = mathjax / MATHJAX_COMPONENT
    for sub in sorted(p for p in mathjax.iterdir() if p.is_dir()):
        for path in sorted(sub.rglob("*")):
            if path.is_file():
                files[f"mathjax/{path.relative_to(mathjax).as_posix()}"] = path

    missing = [str(src) for src in files.values() if not src.is_file()]
    if missing:
        raise FileNotFoundError("missing (run `npm ci` again?): " + ", ".join(missing))
    return files


def copy_assets(book: Path = BOOK) -> Path:
    """Recreate ``book/_static/vendor`` from the sources; return its path."""
    files = vendor_files(book)
    vendor = book / "_static" / "vendor"
    if vendor.exists():
        shutil.rmtree(vendor)
    for rel, src in files.items():
        dest = vendor / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return vendor


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=BOOK, help="the book's folder")
    args = parser.parse_args(argv)
    try:
        vendor = copy_assets(args.book.resolve())
    except FileNotFoundError as err:
        print(f"offline_assets: {err}", file=sys.stderr)
        return 1
    count = sum(1 for p in vendor.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in vendor.rglob("*") if p.is_file())
    print(f"offline_assets: {count} files ({size / 2**20:.1f} MiB) in {vendor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
