"""Cross-chapter statements of the book that can be checked mechanically.

* A chapter uses only package modules that its own or an earlier chapter introduces, where
  "introduces" is the README's chapter table.
* The README's table names every module of the package, and only those; the modules a
  chapter's **Builds:** line names exist and are among its row's.
* The chapters named in :data:`WITH_REQUIREMENTS` open with the "Before you start" block.
* Every link in the book's text points to a host of :data:`ALLOWED_HOSTS`.
"""

from __future__ import annotations

import ast
import importlib
import re
import types
from pathlib import Path

import nbformat
import pytest
from conftest import load_tool

import minternet

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
colab_cell = load_tool("colab_cell")
CHAPTERS = colab_cell.chapter_notebooks(BOOK)

WITH_REQUIREMENTS = (
    "00_setup", "01_dataset_geometry", "02_crops_and_augmentation", "03_resnet_features",
    "04_heatmaps", "05_root_depth", "06_handedness", "07_metrics", "08_training",
    "09_full_scale", "10_trained_model", "A_synthetic_interhand",
)
"""Every chapter: each opens with the requirements block."""
NEEDS = ("CPU is enough", "a GPU helps", "a GPU and the dataset")
"""What a chapter may say it needs, word for word at the start of its **Needs:** line."""
ALLOWED_HOSTS = {
    "arxiv.org", "github.com", "download.openmmlab.com", "mks0601.github.io",
    "mmpose.readthedocs.io", "colab.research.google.com", "pytorch.org",
}


def chapter_key(path: Path) -> str:
    """``book/04_heatmaps.ipynb`` -> ``"4"``; ``A_synthetic_interhand`` -> ``"A"``."""
    prefix = path.stem.split("_", 1)[0]
    return str(int(prefix)) if prefix.isdigit() else prefix


def readme_modules() -> dict[str, set[str]]:
    """Chapter key -> the package modules the README's chapter table lists for it."""
    table: dict[str, set[str]] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d+|[A-Z]", cells[0]):
            table[cells[0]] = set(re.findall(r"`([\w.]+)`", cells[2]))
    return table


def package_modules() -> set[str]:
    """Every module of the package as the README names it: ``interhand``, ``synth`` (its
    ``__init__``), ``synth.hand``."""
    package = ROOT / "minternet"
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:
            names.add(".".join(parts))
    return names


def module_of(name: str) -> str | None:
    """The top-level package module that ``minternet.<name>`` is or comes from."""
    value = getattr(minternet, name, None)
    if value is None:
        try:
            value = importlib.import_module(f"minternet.{name}")
        except ImportError:
            return None
    module = value.__name__ if isinstance(value, types.ModuleType) else getattr(
        value, "__module__", None)  # a constant such as __version__ names no module
    if not isinstance(module, str):
        return None
    parts = module.split(".")
    return parts[1] if parts[0] == "minternet" and len(parts) > 1 else None


def code_of(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells
                     if c.cell_type == "code" and not colab_cell.is_setup_cell(c))


def modules_used(code: str) -> set[str]:
    """Package modules a chapter's code imports or reaches as ``minternet.<name>``."""
    used: set[str] = set()
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "minternet":
                continue
            if len(parts) > 1:
                used.add(parts[1])
            else:
                used |= {m for alias in node.names if (m := module_of(alias.name))}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "minternet" and len(parts) > 1:
                    used.add(parts[1])
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "minternet"):
            if module := module_of(node.attr):
                used.add(module)
    return used


def test_module_resolution_reads_imports_names_and_attributes() -> None:
    code = ("from minternet import HeatmapCodec, hub\nfrom minternet.losses import heatmap_loss\n"
            "import minternet.metrics\nimport minternet\nx = minternet.make_loader\n")
    assert modules_used(code) == {"codec", "hub", "losses", "metrics", "loader"}


def test_readme_table_names_every_chapter() -> None:
    table = readme_modules()
    assert [chapter_key(p) for p in CHAPTERS] == list(table), "README table vs _toc.yml"


def test_no_chapter_uses_a_module_before_the_chapter_that_introduces_it() -> None:
    table = readme_modules()
    order = [chapter_key(p) for p in CHAPTERS]
    introduced: dict[str, int] = {}
    for position, key in enumerate(order):
        for module in table[key]:
            introduced.setdefault(module, position)
    problems = []
    for position, path in enumerate(CHAPTERS):
        for module in sorted(modules_used(code_of(path))):
            if module not in introduced:
                problems.append(f"{path.name} uses minternet.{module}, which no chapter of the "
                                "README's table introduces")
            elif introduced[module] > position:
                problems.append(f"{path.name} uses minternet.{module} before chapter "
                                f"{order[introduced[module]]} introduces it")
    assert not problems, "\n".join(problems)


def requirements(name: str) -> dict[str, str]:
    """The fields of chapter ``name``'s "Before you start" block, in order."""
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    match = re.search(r"^:::\{admonition\} Before you start\n(.*?)^:::$", first.source,
                      re.MULTILINE | re.DOTALL)
    assert match, f"{name}: the first cell has no 'Before you start' block"
    items = re.sub(r"\n +", " ", match.group(1))  # an item's continuation lines
    return dict(re.findall(r"^\* \*\*([\w ]+):\*\* (.+)$", items, re.MULTILINE))


@pytest.mark.parametrize("name", WITH_REQUIREMENTS)
def test_chapter_opens_with_the_requirements_block(name: str) -> None:
    fields = requirements(name)
    assert list(fields) == ["Builds", "Needs", "Runs for", "Know first"], fields
    assert fields["Needs"].startswith(NEEDS), fields["Needs"]
    runs = fields["Runs for"]
    assert re.search(r"\d+ (s|min) on a 2-core CPU", runs), runs
    assert "Colab GPU" in runs, runs


def test_readme_table_names_every_package_module_and_no_other() -> None:
    listed = set().union(*readme_modules().values())
    modules = package_modules()
    assert {"interhand", "synth", "synth.hand", "__main__"} <= modules
    unlisted, unknown = sorted(modules - listed), sorted(listed - modules)
    assert not unlisted, f"modules no chapter of the README's table introduces: {unlisted}"
    assert not unknown, f"the README's table names no such module: {unknown}"


@pytest.mark.parametrize("name", WITH_REQUIREMENTS)
def test_builds_line_names_modules_of_its_readme_row(name: str) -> None:
    # The list closes the line: "...: `codec`, `model.HandHead`, `losses`." (a module or
    # one of its names); a chapter that builds no module ends without one.
    named = re.findall(r"`([\w.]+)`", requirements(name)["Builds"].rsplit(": ", 1)[-1])
    row = readme_modules()[chapter_key(BOOK / f"{name}.ipynb")]
    for entry in named:
        module, _, attribute = entry.partition(".")
        assert module in row, f"{name} builds `{entry}`, which its README row does not list"
        assert module in package_modules(), f"{name} builds `{entry}`: no such module"
        if attribute:
            assert hasattr(importlib.import_module(f"minternet.{module}"), attribute), entry


def book_texts() -> list[tuple[str, str]]:
    """(where, text) of every markdown cell and every Markdown page of the book."""
    texts = []
    for entry in colab_cell.toc_files(BOOK):
        path = colab_cell.resolve_toc_file(BOOK, entry)
        if path.suffix == ".md":
            texts.append((path.name, path.read_text()))
        else:
            nb = nbformat.read(path, as_version=4)
            texts += [(f"{path.name} cell {c.get('id')}", c.source) for c in nb.cells
                      if c.cell_type == "markdown"]
    return texts


def test_every_link_points_to_an_allowed_host() -> None:
    links = [(where, url) for where, text in book_texts()
             for url in re.findall(r"https?://[^\s)>\]\"'`]+", text)]
    assert links, "the book links to its sources"
    bad = [f"{where}: {url}" for where, url in links
           if url.split("/")[2].lower() not in ALLOWED_HOSTS]
    assert not bad, "links to hosts outside ALLOWED_HOSTS:\n" + "\n".join(bad)
    assert all(url.startswith("https://") for _, url in links), "links use https"


def test_every_chapter_is_held_to_the_requirements_block() -> None:
    chapters = {path.stem for path in colab_cell.chapter_notebooks(BOOK)}
    assert chapters == set(WITH_REQUIREMENTS)
