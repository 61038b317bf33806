"""Generate the Colab setup cell of every chapter notebook from ``book/_config.yml``.

Each chapter listed in ``_toc.yml`` that is a notebook starts (as its first code cell) with a
cell tagged ``colab-setup``. On Google Colab it clones the repository at the git ref set in
``_config.yml`` (``repository.url`` and ``repository.branch``, the same values the launch
button uses), installs it with pip and moves into the clone's ``book/`` folder, so that
relative paths such as ``../data_samples`` work as they do locally. Anywhere else it does
nothing. The repository and ref are written into the cell because Colab opens the notebook
alone, without the config next to it.

Usage::

    python book/tools/colab_cell.py            # print the cell's source
    python book/tools/colab_cell.py --write    # rewrite the cell in every chapter notebook
    python book/tools/colab_cell.py --check    # exit 1 naming notebooks that are out of sync
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import yaml

BOOK = Path(__file__).resolve().parents[1]
TAG = "colab-setup"
# The cell is collapsed on the web page; on Colab tags change nothing.
TAGS = [TAG, "hide-cell"]
CLONE_DIR = "/content/minternet"

TEMPLATE = '''\
# Colab setup: on Google Colab, install minternet from its repository; elsewhere, do nothing.
# Generated from book/_config.yml by book/tools/colab_cell.py: change those, not this cell.
import sys

if "google.colab" in sys.modules:
    import importlib
    import os
    import subprocess

    REPO, REF, CLONE = {url}, {ref}, {clone}
    if not os.path.isdir(CLONE):
        subprocess.run(["git", "clone", "--quiet", "--depth=1", f"--branch={{REF}}", REPO, CLONE],
                       check=True)
    # minternet asks for version ranges (torch>=2.1), so Colab's own torch stays installed.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", CLONE], check=True)
    importlib.invalidate_caches()
    os.chdir(os.path.join(CLONE, "book"))  # chapters use paths relative to book/'''


def load_config(book: Path = BOOK) -> dict[str, Any]:
    """The book's ``_config.yml``."""
    return yaml.safe_load((book / "_config.yml").read_text())


def repository(config: dict[str, Any]) -> tuple[str, str]:
    """The repository URL and git ref (branch or tag) from the book's config."""
    repo = config.get("repository") or {}
    url, ref = repo.get("url"), repo.get("branch")
    if not url or not ref:
        raise ValueError("_config.yml: repository.url and repository.branch must both be set")
    return str(url).rstrip("/"), str(ref)


def render_source(book: Path = BOOK) -> str:
    """The source of the Colab setup cell for this book's repository and ref."""
    url, ref = repository(load_config(book))
    # JSON string literals are valid Python ones, and double-quoted like the rest of the cell.
    return TEMPLATE.format(url=json.dumps(url), ref=json.dumps(ref), clone=json.dumps(CLONE_DIR))


def toc_files(book: Path = BOOK) -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (the root first), as written there."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def resolve_toc_file(book: Path, entry: str) -> Path | None:
    """The source file a toc entry names (its suffix may be left out), or None."""
    path = book / entry
    if path.suffix in (".ipynb", ".md") and path.is_file():
        return path
    for suffix in (".ipynb", ".md"):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def chapter_notebooks(book: Path = BOOK) -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in toc order."""
    paths = (resolve_toc_file(book, entry) for entry in toc_files(book))
    return [p for p in paths if p is not None and p.suffix == ".ipynb"]


def is_setup_cell(cell: dict[str, Any]) -> bool:
    """Whether a cell carries the ``colab-setup`` tag."""
    return TAG in cell.get("metadata", {}).get("tags", [])


def setup_problems(nb: dict[str, Any], source: str) -> list[str]:
    """Why a notebook's setup cell differs from the generated one (empty when in sync)."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in nb["cells"] if is_setup_cell(c)]
    if not tagged:
        return [f"no cell tagged {TAG!r}"]
    problems = []
    if len(tagged) > 1:
        problems.append(f"{len(tagged)} cells tagged {TAG!r}")
    cell = tagged[0]
    if cell["cell_type"] != "code":
        problems.append(f"the {TAG!r} cell is not a code cell")
    elif code[0] is not cell:
        problems.append(f"the {TAG!r} cell is not the first code cell")
    if cell.get("source") != source:
        problems.append("its source differs from the one rendered from _config.yml")
    if cell.get("metadata", {}).get("tags") != TAGS:
        problems.append(f"its tags are not {TAGS}")
    if cell.get("outputs") or cell.get("execution_count") is not None:
        problems.append("it has outputs or an execution count")
    return problems


def with_setup_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose only setup cell is the generated one, before any other code."""
    nb = copy.deepcopy(nb)
    tagged = [i for i, c in enumerate(nb.cells) if is_setup_cell(c)]
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(TAGS)
    # Keep the existing cell's id and place, so a regenerated notebook differs only where
    # it must; move it only if code comes before it.
    cell["id"] = nb.cells[tagged[0]].get("id", "colab-setup") if tagged else "colab-setup"
    cells = [c for c in nb.cells if not is_setup_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    cells.insert(min(tagged[0], first_code) if tagged else first_code, cell)
    nb.cells = cells
    return nb


def write(book: Path = BOOK) -> list[Path]:
    """Bring every chapter notebook's setup cell in sync; return the notebooks changed."""
    source = render_source(book)
    changed = []
    for path in chapter_notebooks(book):
        nb = nbformat.read(path, as_version=4)
        if not setup_problems(nb, source):
            continue
        nbformat.write(with_setup_cell(nb, source), path)
        changed.append(path)
    return changed


def check(book: Path = BOOK) -> dict[Path, list[str]]:
    """Each out-of-sync chapter notebook and what is wrong with it."""
    source = render_source(book)
    problems = {}
    for path in chapter_notebooks(book):
        found = setup_problems(nbformat.read(path, as_version=4), source)
        if found:
            problems[path] = found
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=BOOK, help="the book's folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the cells in place")
    mode.add_argument("--check", action="store_true", help="exit 1 if any cell is stale")
    args = parser.parse_args(argv)
    book = args.book.resolve()
    if args.write:
        for path in write(book):
            print(f"colab_cell: rewrote the setup cell of {path.relative_to(book)}")
        return 0
    if args.check:
        problems = check(book)
        for path, found in problems.items():
            print(f"{path.relative_to(book)}: {'; '.join(found)}", file=sys.stderr)
        if problems:
            print("colab_cell: run `python book/tools/colab_cell.py --write`", file=sys.stderr)
            return 1
        return 0
    print(render_source(book))
    return 0


if __name__ == "__main__":
    sys.exit(main())
