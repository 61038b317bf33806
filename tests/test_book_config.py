"""The book's configuration, table of contents and committed chapter notebooks agree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


colab_cell = load_tool("colab_cell")
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text())
CHAPTERS = colab_cell.chapter_notebooks(BOOK)


def test_every_toc_entry_exists() -> None:
    entries = colab_cell.toc_files(BOOK)
    assert entries, "_toc.yml lists no file"
    missing = [e for e in entries if colab_cell.resolve_toc_file(BOOK, e) is None]
    assert not missing, f"_toc.yml names files that do not exist in book/: {missing}"
    assert CHAPTERS, "_toc.yml lists no notebook"


def test_colab_launch_button_opens_the_chapter_from_the_repository() -> None:
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    repo = CONFIG["repository"]
    assert repo["url"].startswith("https://github.com/"), "Colab opens notebooks from GitHub"
    assert repo["branch"], "the git ref Colab opens and installs"
    # The button opens <url>/blob/<branch>/<path_to_book>/<chapter>.ipynb.
    assert (ROOT / repo["path_to_book"]).resolve() == BOOK


def test_a_failing_cell_fails_the_build() -> None:
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "force", "chapters are executed at every build"
    assert execute["allow_errors"] is False
    assert int(execute["timeout"]) > 0, "a per-cell timeout"
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_a_chapter_timeout_only_ever_raises_the_book_timeout(notebook: Path) -> None:
    own = nbformat.read(notebook, as_version=4).metadata.get("mystnb", {})
    if "execution_timeout" in own:
        assert int(own["execution_timeout"]) > int(CONFIG["execute"]["timeout"]), (
            f"{notebook.name}: its own cell timeout is below the book's"
        )


def test_pages_load_scripts_from_the_book_only() -> None:
    sphinx = CONFIG["sphinx"]["config"]
    scripts = {sphinx["mathjax_path"]: {}, **sphinx["nb_ipywidgets_js"]}
    scripts.update({path: attrs for path, attrs in sphinx["html_js_files"]})
    for path in scripts:
        assert "://" not in path and path.startswith("vendor/"), path
    # plotly.min.js must run before require.js, or it registers as an AMD module only.
    plotly_first = scripts["vendor/plotly.min.js"]["priority"]
    for path in sphinx["nb_ipywidgets_js"]:
        assert plotly_first < scripts[path].get("priority", 500), path


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_colab_setup_cell_is_generated_from_the_config(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    problems = colab_cell.setup_problems(nb, colab_cell.render_source(BOOK))
    assert not problems, (
        f"{notebook.name}: {'; '.join(problems)}. Run `python book/tools/colab_cell.py --write`."
    )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{notebook.name}: cell {i} has outputs"
            assert cell.execution_count is None, f"{notebook.name}: cell {i} has a count"


def copy_book(dest: Path) -> Path:
    """A writable copy of the book's config, toc and chapter notebooks."""
    dest.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(BOOK / name, dest / name)
    for notebook in CHAPTERS:
        shutil.copy(notebook, dest / notebook.name)
    return dest


def test_changing_the_repository_makes_the_notebooks_stale(tmp_path: Path) -> None:
    book = copy_book(tmp_path / "book")
    config = yaml.safe_load((book / "_config.yml").read_text())
    config["repository"]["url"] = "https://github.com/someone-else/minternet"
    config["repository"]["branch"] = "v9.9"
    (book / "_config.yml").write_text(yaml.safe_dump(config))

    stale = colab_cell.check(book)
    assert sorted(p.name for p in stale) == sorted(p.name for p in CHAPTERS)

    assert sorted(p.name for p in colab_cell.write(book)) == sorted(p.name for p in CHAPTERS)
    assert colab_cell.check(book) == {}
    assert colab_cell.write(book) == [], "a second --write changes nothing"
    for notebook in CHAPTERS:
        source = nbformat.read(book / notebook.name, as_version=4).cells
        setup = next(c for c in source if c.cell_type == "code")
        assert '"https://github.com/someone-else/minternet", "v9.9"' in setup.source


def test_check_command_names_the_stale_notebook(tmp_path: Path) -> None:
    book = copy_book(tmp_path / "book")
    victim = book / CHAPTERS[0].name
    nb = nbformat.read(victim, as_version=4)
    nb.cells = [c for c in nb.cells if not colab_cell.is_setup_cell(c)]
    nbformat.write(nb, victim)

    script = BOOK / "tools" / "colab_cell.py"
    run = [sys.executable, str(script), "--book", str(book)]
    result = subprocess.run([*run, "--check"], capture_output=True, text=True)
    assert result.returncode == 1
    assert victim.name in result.stderr and "no cell tagged" in result.stderr

    assert subprocess.run([*run, "--write"], capture_output=True).returncode == 0
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 0
    cells = nbformat.read(victim, as_version=4).cells
    assert colab_cell.is_setup_cell(next(c for c in cells if c.cell_type == "code"))


def test_setup_cell_does_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran {args} outside Colab")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(os, "chdir", forbidden)
    exec(colab_cell.render_source(BOOK), {})


def test_setup_cell_on_colab_clones_the_ref_and_keeps_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands: list[list[str]] = []
    moved_to: list[str] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(list(cmd)))
    monkeypatch.setattr(os, "chdir", moved_to.append)
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    exec(colab_cell.render_source(BOOK), {})

    url, ref = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    clone, pip = commands
    assert clone[:2] == ["git", "clone"] and "--depth=1" in clone
    assert f"--branch={ref}" in clone and clone[-2:] == [url, "/content/minternet"]
    assert pip[1:4] == ["-m", "pip", "install"] and pip[-1] == "/content/minternet"
    forbidden = {"-U", "--upgrade", "--force-reinstall", "--no-deps", "--ignore-installed"}
    assert not forbidden & set(pip) and not any("torch" in arg for arg in pip)
    assert moved_to == ["/content/minternet/book"]
