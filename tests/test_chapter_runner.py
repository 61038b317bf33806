"""The book's notebook client: cells run as with nbclient, a stuck cell fails fast naming the
chapter and the cell, and a missed socket wake-up costs a second, not the cell timeout."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import load_tool
from jupyter_client.channels import AsyncZMQSocketChannel
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

runner = load_tool("chapter_runner")
TOOLS = Path(__file__).resolve().parents[1] / "book" / "tools"


def notebook(*sources: str):
    """A notebook of a markdown cell followed by code cells with ids c1, c2, ..."""
    cells = [new_markdown_cell("# A chapter", id="intro")]
    cells += [new_code_cell(src, id=f"c{i}") for i, src in enumerate(sources, 1)]
    return new_notebook(cells=cells)


def run(nb, **options):
    """Execute ``nb`` with the book's client as chapter ``ch.ipynb``; return (nb, seconds).

    The tests watch for a few seconds instead of a minute, so the CPU time that still counts
    as idle shrinks with it: an idle kernel uses none, a busy one far more even on a
    crowded machine."""
    options.setdefault("timeout", 120)
    options.setdefault("idle_cpu", 0.05)
    start = time.monotonic()
    runner.execute(nb, chapter="ch.ipynb", kernel_name="python3", **options)
    return nb, time.monotonic() - start


def text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_cells_run_in_order_and_keep_their_outputs() -> None:
    nb, _ = run(notebook("x = 6 * 7", "print(x)",
                         "from IPython.display import HTML\nHTML('<b>bold</b>')"))
    assert text(nb.cells[2]) == "42\n"
    assert nb.cells[3].outputs[0]["data"]["text/html"] == "<b>bold</b>"
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2, 3]


def test_the_kernel_runs_in_cwd(tmp_path: Path) -> None:
    nb = notebook("import os\nprint(os.getcwd())")
    runner.execute(nb, cwd=str(tmp_path), kernel_name="python3", timeout=120)
    assert text(nb.cells[1]).strip() == str(tmp_path)


def test_a_stuck_cell_fails_fast_naming_chapter_and_cell() -> None:
    nb = notebook("x = 1", "import threading\nthreading.Event().wait()", "print('never')")
    start = time.monotonic()
    with pytest.raises(runner.StuckCellError) as caught:
        run(nb, stuck_after=3, timeout=300)
    # Kernel start plus 3 s of idling, not the 300 s cell timeout.
    assert time.monotonic() - start < 60
    message = str(caught.value)
    assert message.startswith("ch.ipynb, cell 2 (id c2): ")
    assert "'import threading'" in message and "300 s" in message
    assert nb.cells[3].outputs == [], "no cell runs after the stuck one"


def test_a_stuck_cell_is_a_timeout_for_jupyter_cache() -> None:
    # jupyter-cache records CellExecutionError and CellTimeoutError as a failed notebook.
    assert issubclass(runner.StuckCellError, CellTimeoutError)


def test_a_cell_busy_on_the_cpu_is_not_stuck() -> None:
    nb, _ = run(notebook(
        "import time\nend = time.time() + 5\nwhile time.time() < end:\n    pass\nprint('done')"),
        stuck_after=2)
    assert text(nb.cells[1]) == "done\n"


def test_a_cell_that_keeps_printing_is_not_stuck() -> None:
    nb, _ = run(notebook("import time\nfor i in range(8):\n    time.sleep(0.6)\n    print(i)"),
                stuck_after=2)
    assert text(nb.cells[1]).split() == [str(i) for i in range(8)]


def test_a_cell_waiting_on_a_busy_child_process_is_not_stuck() -> None:
    busy = "import time\nend = time.time() + 5\nwhile time.time() < end: pass"
    nb, _ = run(notebook(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', "
                         f"{busy!r}], check=True)\nprint('child done')"), stuck_after=2)
    assert text(nb.cells[1]) == "child done\n"


def test_an_error_names_chapter_and_cell() -> None:
    nb = notebook("x = 1", "y = x / 0", "print('never')")
    with pytest.raises(CellExecutionError) as caught:
        run(nb)
    assert str(caught.value).startswith("ch.ipynb, cell 2 (id c2):\n")
    assert caught.value.ename == "ZeroDivisionError"
    assert "y = x / 0" in str(caught.value), "the failing source is shown"


def test_a_cell_over_its_timeout_names_chapter_and_cell() -> None:
    # The cell is busy, so it is not stuck: the cell timeout ends it.
    nb = notebook("x = 1", "while True:\n    x += 1")
    start = time.monotonic()
    with pytest.raises(CellTimeoutError) as caught:
        run(nb, timeout=3, stuck_after=60)
    assert not isinstance(caught.value, runner.StuckCellError)
    assert str(caught.value).startswith("ch.ipynb, cell 2 (id c2): ")
    assert time.monotonic() - start < 60


def test_a_missed_wake_up_costs_a_slice_not_the_timeout(monkeypatch) -> None:
    """pyzmq may miss the wake-up of a poll; the message is then found only by the check at
    the poll's end. Here every poll misses it: stock nbclient would wait the whole 120 s cell
    timeout for each reply (and forever for output); the book's client waits a slice."""
    get_msg = AsyncZMQSocketChannel.get_msg

    async def deaf_get_msg(self, timeout=None):
        if timeout is None or timeout > 0:
            await asyncio.sleep(3600 if timeout is None else timeout)
        return await get_msg(self, timeout=0)

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", deaf_get_msg)
    nb, seconds = run(notebook("print('a')", "print('b')", "print('c')"), timeout=120,
                      poll_slice=0.25)
    assert [text(c) for c in nb.cells[1:]] == ["a\n", "b\n", "c\n"]
    assert seconds < 30


def test_process_tree_cpu_counts_children_and_ends_with_the_process() -> None:
    before = runner.process_tree_cpu_seconds(os.getpid())
    busy = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", busy], check=True)
    assert runner.process_tree_cpu_seconds(os.getpid()) - before >= 0.45
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert runner.process_tree_cpu_seconds(gone.pid) is None


def test_the_book_build_executes_chapters_with_the_runner(monkeypatch, tmp_path: Path) -> None:
    """``sphinx_offline`` routes jupyter-cache's execution, as myst-nb calls it, through the
    runner, naming the chapter Sphinx is reading."""
    monkeypatch.syspath_prepend(str(TOOLS))
    from jupyter_cache.executors import utils

    monkeypatch.setattr(utils, "executenb", utils.executenb)
    sphinx_offline = load_tool("sphinx_offline")
    env = SimpleNamespace(temp_data={"docname": "02_crops"},
                          doc2path=lambda name: str(tmp_path / f"{name}.ipynb"))
    sphinx_offline.execute_chapters_with_chapter_runner(SimpleNamespace(env=env))
    result = utils.single_nb_execution(notebook("x = 1", "1 / 0"), cwd=str(tmp_path),
                                       timeout=120, allow_errors=False,
                                       kernel_name="python3")
    assert isinstance(result.err, CellExecutionError)
    assert str(result.err).startswith("02_crops.ipynb, cell 2 (id c2):")
