"""Execute a chapter notebook so that the build never waits on a message it already has.

nbclient waits for a cell's reply with one poll of the kernel's shell socket that lasts the
whole cell timeout, and for its output with one poll of the IOPub socket that never times
out. pyzmq's asyncio poll wakes up on an edge of the socket's file descriptor; when that
wake-up is missed, the reply sits unread until the poll times out and its final check finds
it. A chapter that normally runs in 6 s then takes the 300 s timeout plus 6 s, or hangs,
with its kernel idle all along. :class:`ChapterClient` therefore polls in slices of at most
``poll_slice`` seconds (each slice ends with that check), and between slices it watches the
cell: when the kernel and its child processes have used no CPU and sent nothing for
``stuck_after`` seconds while the cell has not finished, the cell fails at once with an
error naming the chapter and the cell, instead of waiting out the cell timeout. Errors and
timeouts of a cell name them too.

``sphinx_offline.py`` makes jupyter-book (myst-nb, through jupyter-cache) execute every
chapter with :func:`execute`.
"""

from __future__ import annotations

import typing as t
from collections.abc import Awaitable, Callable
from queue import Empty
from time import monotonic

import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from traitlets import Bool, Float, Integer, Unicode

GetMsg = Callable[..., Awaitable[dict[str, t.Any]]]

POLL_SLICE = 1.0  # s, the longest single wait on a kernel socket
STUCK_AFTER = 60.0  # s without CPU use or output after which a running cell is stuck
IDLE_CPU = 0.5  # s of CPU (kernel and children) within that time that still count as idle
IOPUB_TIMEOUT = 10  # s to wait for a cell's last output once its reply came


class StuckCellError(CellTimeoutError):
    """A cell whose kernel sat idle, sending nothing, for ``stuck_after`` seconds."""


def process_tree_cpu_seconds(pid: int) -> float | None:
    """CPU time (s, user + system) of process ``pid``, its children (running or reaped),
    and theirs; None when the process is gone."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = root.children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.Error:  # it ended in between; its parent's children_* count it
            continue
        total += times.user + times.system
    return total


class ChapterClient(NotebookClient):
    """A :class:`nbclient.NotebookClient` that polls in slices and fails a stuck cell fast.

    Every error it raises for a cell starts with ``"CHAPTER, cell N (id ID): "``, N being
    the cell's position in the notebook (markdown cells count).
    """

    chapter = Unicode("notebook", help="The notebook's name, as errors report it.").tag(
        config=True)
    poll_slice = Float(POLL_SLICE, help="Longest single wait on a kernel socket (s).").tag(
        config=True)
    stuck_after = Float(STUCK_AFTER, help="Idle time after which a cell is stuck (s).").tag(
        config=True)
    idle_cpu = Float(IDLE_CPU, help="CPU seconds within stuck_after that count as idle.").tag(
        config=True)
    iopub_timeout = Integer(IOPUB_TIMEOUT, help="Wait for a cell's last output (s).").tag(
        config=True)
    raise_on_iopub_timeout = Bool(True, help="Fail a cell whose output stopped short.").tag(
        config=True)

    def __init__(self, nb: NotebookNode, **kwargs: t.Any) -> None:
        super().__init__(nb, **kwargs)
        self._running: tuple[int, NotebookNode] | None = None
        self._last_activity = 0.0  # monotonic time of the last output or CPU use
        self._last_cpu: float | None = None

    def where(self, index: int, cell: NotebookNode) -> str:
        """``"CHAPTER, cell N (id ID)"``."""
        return f"{self.chapter}, cell {index} (id {cell.get('id', '?')})"

    async def async_start_new_kernel_client(self) -> t.Any:
        kc = await super().async_start_new_kernel_client()
        kc.shell_channel.get_msg = self._in_slices(kc.shell_channel.get_msg, watch=True)
        kc.iopub_channel.get_msg = self._in_slices(kc.iopub_channel.get_msg, watch=False)
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def _in_slices(self, get_msg: GetMsg, watch: bool) -> GetMsg:
        """``get_msg`` of a channel, waiting at most ``poll_slice`` seconds at a time; with
        ``watch``, a running cell is checked for being stuck between slices."""

        async def get_msg_in_slices(timeout: float | None = None) -> dict[str, t.Any]:
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                wait = self.poll_slice
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - monotonic()))
                try:
                    msg = await ensure_async(get_msg(timeout=wait))
                except Empty:
                    if deadline is not None and monotonic() >= deadline:
                        raise
                    if watch:
                        self._fail_if_stuck()
                    continue
                self._last_activity = monotonic()
                return msg

        return get_msg_in_slices

    def _kernel_pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def _fail_if_stuck(self) -> None:
        """Raise :class:`StuckCellError` when the running cell's kernel has been idle and
        silent for ``stuck_after`` seconds."""
        if self._running is None:
            return
        pid = self._kernel_pid()
        cpu = None if pid is None else process_tree_cpu_seconds(pid)
        if cpu is None:  # no local kernel process to watch; nbclient's checks remain
            return
        now = monotonic()
        if self._last_cpu is None or cpu - self._last_cpu > self.idle_cpu:
            self._last_cpu, self._last_activity = cpu, max(self._last_activity, now)
            return
        if now - self._last_activity >= self.stuck_after:
            index, cell = self._running
            first_line = cell.source.strip().splitlines()[0][:80]
            raise StuckCellError(
                f"{self.where(index, cell)}: the kernel has used no CPU and sent nothing for "
                f"{self.stuck_after:.0f} s while the cell has not finished, so it is stuck "
                f"(the cell starts with {first_line!r}). Stopped instead of waiting out the "
                f"{self._get_timeout(cell)} s cell timeout."
            )

    async def async_execute_cell(
        self,
        cell: NotebookNode,
        cell_index: int,
        execution_count: int | None = None,
        store_history: bool = True,
    ) -> NotebookNode:
        self._running, self._last_cpu = (cell_index, cell), None
        self._last_activity = monotonic()
        try:
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history)
        except StuckCellError:
            raise
        except CellExecutionError as err:
            where = self.where(cell_index, cell)
            raise CellExecutionError(f"{where}:\n{err.traceback}", err.ename,
                                     err.evalue) from None
        except CellTimeoutError as err:
            raise CellTimeoutError(f"{self.where(cell_index, cell)}: {err}") from None
        finally:
            self._running = None

    execute_cell = run_sync(async_execute_cell)


def execute(nb: NotebookNode, cwd: str | None = None, chapter: str = "notebook",
            **kwargs: t.Any) -> NotebookNode:
    """Execute ``nb`` in place with a :class:`ChapterClient`, the kernel running in ``cwd``;
    a drop-in for :func:`nbclient.execute` (``kwargs`` are the client's options)."""
    resources = {"metadata": {"path": cwd}} if cwd else {}
    return ChapterClient(nb, resources=resources, chapter=chapter, **kwargs).execute()

