"""Unpacking untrusted archives without letting anything escape the target folder
(book chapter 9).

Every member is renamed to lie under ``images/`` or ``annotations/`` of the dataset root;
absolute names, ``..``, links pointing outside and special files are refused; tarfile's own
``data`` filter runs on top where Python has it. Several files (the parts of one tar cut at
byte offsets) can be read as one stream.
"""

from __future__ import annotations

import copy
import posixpath
import shutil
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# Members reach extract() already checked and renamed by _place (data filter included).
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}


class ArchiveError(RuntimeError):
    """An archive cannot be read, or ends inside a member; the message names it."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the dataset root."""


def _relocate(name: str, anchor: str, archive: str) -> str | None:
    """Member ``name``'s path under the root: from its ``anchor`` folder on (``images`` or
    ``annotations``), else inside ``anchor/``; None for a folder outside ``anchor``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or "\\" in name or ".." in parts or not parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would land outside the root")
    if anchor in parts:
        return "/".join(parts[parts.index(anchor):])
    return None if name.endswith("/") else "/".join([anchor, *parts])


def _place(member: tarfile.TarInfo, root: Path, anchor: str, archive: str
           ) -> tarfile.TarInfo | None:
    """``member`` renamed by :func:`_relocate`, links checked to stay inside the root, then
    passed through tarfile's ``data`` filter where Python has it; None: skip it."""
    name = _relocate(member.name, anchor, archive)
    if name is None or (member.isdir() and name == anchor):
        return None
    placed = copy.copy(member)
    placed.name = name
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target.split("/")[0] == "..":
            raise UnsafeArchiveError(f"{archive}: link {member.name!r} -> {member.linkname!r} "
                                     "points outside the root")
    elif member.islnk():
        placed.linkname = _relocate(member.linkname, anchor, archive) or anchor
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} is not a file or folder")
    if data_filter := getattr(tarfile, "data_filter", None):
        try:
            return data_filter(placed, str(root))
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"{archive}: {err}") from None
    return placed


def _blocks(paths: Iterable[Path], size: int = 1 << 20) -> Iterator[bytes]:
    """The files' bytes back to back, in blocks of at most ``size`` bytes."""
    for path in paths:
        with open(path, "rb") as f:
            yield from iter(lambda: f.read(size), b"")


class JoinedFiles:
    """Files as one stream: tarfile's ``"r|"`` mode takes blocks of any size from ``read``."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._blocks = _blocks(paths)

    def read(self, size: int = -1) -> bytes:
        return next(self._blocks, b"")

    def close(self) -> None:
        self._blocks.close()


def unpack_tar(tar: tarfile.TarFile, root: Path, anchor: str, archive: str,
               cut_ok: bool = False) -> tuple[int, str | None]:
    """Extract ``tar`` under ``root`` -> (files written, the member cut short at the end of
    the stream, removed; allowed only with ``cut_ok``, for a prefix of the parts)."""
    written = 0
    for member in tar:
        if (placed := _place(member, root, anchor, archive)) is None:
            continue
        try:
            tar.extract(placed, root, **_TRUSTED)
        except tarfile.ReadError as err:
            (root / placed.name).unlink(missing_ok=True)
            if not cut_ok:
                raise ArchiveError(f"{archive}: ends inside {member.name} ({err})") from None
            return written, placed.name
        written += placed.isfile()
    return written, None


def unpack_annotations(path: Path, root: Path) -> int:
    """Extract the annotation archive (zip, tar, tar.gz ...) under ``root/annotations`` ->
    files written (zipfile writes links as plain files)."""
    if not zipfile.is_zipfile(path):
        try:
            with tarfile.open(path) as tar:
                return unpack_tar(tar, root, "annotations", path.name)[0]
        except tarfile.ReadError as err:
            raise ArchiveError(f"{path}: not a readable zip or tar archive ({err})") from None
    written = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if (name := _relocate(info.filename, "annotations", path.name)) and not info.is_dir():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(root / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                written += 1
    return written
