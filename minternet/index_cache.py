"""The on-disk cache of the annotation index: a folder of uncompressed ``.npy`` files, one per
field, opened memory-mapped (book chapter 1).

Mapping instead of reading makes opening take milliseconds at any size, and the pages come
from the kernel's page cache: every process that opens the cache, and every DataLoader worker
forked from one, reads the same physical memory instead of holding its own copy.

A folder is named by the sources' resolved paths and by a key of their sizes, mtimes, a
digest of their first and last megabyte, and a caller's salt (format version, image
prefix), so a changed source names a new folder. (An edit inside the middle of a file that
keeps its size and has its mtime set back goes unseen: reading whole multi-GB files at every
open would cost seconds.) It is
written under a temporary name and renamed, so it only ever appears complete; a folder
damaged afterwards (a truncated or missing file) is discarded and rebuilt.

A mapped index pickles as the names of its files (:func:`index_state`), so that processes
started by spawn map the same pages too.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PREFIX = "interhand-"
ENV_CACHE = "MINTERNET_CACHE"
"""The environment variable naming the cache root."""


EDGE_BYTES = 1 << 20
"""Bytes read from each end of a source for the cache key."""


def cache_root() -> Path:
    """``$MINTERNET_CACHE``, or ``~/.cache/minternet`` when unset: the index caches are in
    its ``index`` folder, downloads (:mod:`minternet.hub`, :mod:`minternet.download`) beside."""
    return Path(os.environ.get(ENV_CACHE) or "~/.cache/minternet").expanduser()


def _edges_digest(path: Path) -> str:
    """sha1 of the first and last :data:`EDGE_BYTES` of ``path`` (the whole of a small file)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        digest.update(f.read(EDGE_BYTES))
        size = f.seek(0, 2)
        f.seek(max(size - EDGE_BYTES, EDGE_BYTES))
        digest.update(f.read())
    return digest.hexdigest()


def cache_folder(sources: Sequence[Path], salt: str, cache_dir: Path) -> Path:
    """The folder of the index of ``sources`` as they are now (see the module docstring)."""
    where = hashlib.sha1("\n".join(str(p.resolve()) for p in sources).encode()).hexdigest()[:16]
    stats = [(p.stat().st_size, p.stat().st_mtime_ns, _edges_digest(p)) for p in sources]
    key = hashlib.sha1(repr((salt, stats)).encode()).hexdigest()[:16]
    return cache_dir / f"{PREFIX}{where}-{key}"


def _open(folder: Path, fields: Iterable[str]) -> dict[str, np.ndarray]:
    """Every field of ``folder`` as a read-only array backed by its file."""
    # Plain ndarray views of the maps: indexing them is as fast as indexing any array.
    return {name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r")) for name in fields}


def read_cache(folder: Path, fields: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The cached index in ``folder``, memory-mapped; None when there is none or it is damaged
    (then it is deleted, so the caller rebuilds it). ``cam_*`` fields may have their own row
    count; every other field must have the same one.
    """
    if not folder.is_dir():
        return None
    try:
        index = _open(folder, fields)
        rows = {len(v) for k, v in index.items() if not k.startswith("cam_")}
        if len(rows) > 1:
            raise ValueError(f"fields disagree on the number of rows: {sorted(rows)}")
    except (OSError, ValueError, EOFError) as err:
        log.warning("%s: damaged index cache (%s); rebuilding it", folder, err)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return index


def write_cache(folder: Path, index: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Save ``index`` as ``folder`` atomically, delete older caches of the same sources, and
    return the saved index memory-mapped (so the built arrays can be freed).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        for name, array in index.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not folder.is_dir():
            raise  # the write failed, e.g. on a full disk
        # Otherwise another process finished the same cache first: its copy is as good.
    sources = folder.name.rsplit("-", 1)[0]
    # Older keys' folders, and the single .npz file of cache format 1. Processes still
    # mapping their files keep reading them: unlinking is safe.
    for stale in folder.parent.glob(f"{sources}[-.]*"):
        if stale.is_dir() and stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.is_file():
            stale.unlink(missing_ok=True)
    return _open(folder, index)


def _mapped_file(array: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset) when ``array`` is a whole memory-mapped file's array, else None."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    if base is None or base.filename is None or not isinstance(base.base, mmap.mmap):
        return None
    whole = base.__array_interface__
    if array.__array_interface__ != {**whole, "typestr": array.__array_interface__["typestr"]}:
        return None  # a view of part of the file
    return base.filename, base.offset


MappedColumn = tuple[str, str, int, str, tuple[int, ...]]
"""How a whole mapped column pickles: ("mapped", file, byte offset, dtype, shape)."""


def index_state(index: dict[str, np.ndarray]) -> dict[str, np.ndarray | MappedColumn]:
    """``index`` as it is best pickled: a column that is a whole mapped cache file as that
    file (a :data:`MappedColumn`), so that a process unpickling it (a DataLoader worker
    started by spawn) maps the same pages instead of holding a copy (1.6 GB for the train
    split); any other column, e.g. a selection of rows, as its values.
    """
    state: dict[str, np.ndarray | MappedColumn] = {}
    for name, column in index.items():
        if (where := _mapped_file(column)) is not None:
            column = ("mapped", *where, column.dtype.str, column.shape)
        state[name] = column
    return state


def index_from_state(state: dict[str, np.ndarray | MappedColumn]) -> dict[str, np.ndarray]:
    """The index :func:`index_state` gave ``state`` for, mapped columns mapped again."""
    index = {}
    for name, column in state.items():
        if isinstance(column, tuple):
            _, filename, offset, dtype, shape = column
            column = np.asarray(np.memmap(filename, dtype, "r", offset, shape))
        index[name] = column
    return index
