"""Unpacking untrusted archives without letting anything escape the target folder
(book chapter 9).

Every member is renamed to lie under ``images/`` or ``annotations/`` of the dataset root.
The InterHand2.6M archives hold only folders and regular files, so nothing else is written:
absolute names, ``..``, links (symbolic and hard) and special files are refused, and each
folder on a member's way is checked with ``lstat`` as the member is written, so a link
already in the root, or a file where a folder should be, stops the unpacking instead of
being followed. Files are opened with ``O_NOFOLLOW``. Limits on the member count and the
unpacked bytes stop archive bombs. Several files (the parts of one tar cut at byte offsets)
can be read as one stream.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

MAX_MEMBERS = {"images": 4_000_000, "annotations": 10_000}
"""Members an archive of each kind may hold (the full image tar has about 2.6 M images)."""
MAX_RATIO = 100
"""Unpacked bytes allowed per byte of a compressed annotation archive (JSON packs ~10x)."""


class ArchiveError(RuntimeError):
    """An archive cannot be read, or ends inside a member; the message names it."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the dataset root."""


def _relocate(name: str, anchor: str, archive: str) -> str | None:
    """Member ``name``'s path under the root: from its ``anchor`` folder on (``images`` or
    ``annotations``), else inside ``anchor/``; None for a folder outside ``anchor``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or "\\" in name or "\0" in name or ".." in parts or not parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would land outside the root")
    if anchor in parts:
        return "/".join(parts[parts.index(anchor):])
    return None if name.endswith("/") else "/".join([anchor, *parts])


class Budget:
    """Members and bytes unpacked so far, against an archive's limits."""

    def __init__(self, archive: str, members: int, size: int) -> None:
        self.archive, self.max_members, self.max_bytes = archive, members, size
        self.members = self.bytes = 0

    def take(self, size: int) -> None:
        """Count one more member of ``size`` bytes; raise :class:`ArchiveError` past a limit."""
        self.members, self.bytes = self.members + 1, self.bytes + size
        if self.members > self.max_members:
            raise ArchiveError(f"{self.archive}: more than {self.max_members} members, more "
                               "than an InterHand2.6M archive holds; not unpacked further")
        if self.bytes > self.max_bytes:
            raise ArchiveError(f"{self.archive}: unpacks to more than {self.max_bytes} bytes, "
                               "more than its size allows for; not unpacked further")


def _folder(root: Path, parts: list[str], archive: str, member: str) -> Path:
    """``root/parts...``, each folder created if absent and checked with ``lstat`` to be a
    real folder, not a link or a file."""
    path = root
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            os.mkdir(path)
            mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive}: member {member!r} would be written through the "
                                     f"link {path}, which may lead outside the root")
        if not stat.S_ISDIR(mode):
            raise ArchiveError(f"{archive}: member {member!r} needs {path} to be a folder, "
                               "but it is a file")
    return path


def _write(root: Path, name: str, src: IO[bytes], archive: str, member: str) -> None:
    """Write ``src`` to ``root/name`` (folders checked by :func:`_folder`), never through a
    link; a file cut short by an error is removed."""
    *parents, leaf = name.split("/")
    path = _folder(root, parents, archive, member) / leaf
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EISDIR):
            kind = "a link" if err.errno == errno.ELOOP else "a folder"
            raise UnsafeArchiveError(f"{archive}: member {member!r} would overwrite {path}, "
                                     f"which is {kind}") from None
        raise
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _refuse_link(name: str, archive: str, what: str = "a link") -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: member {name!r} is {what}; an InterHand2.6M archive "
                              "holds only folders and files, and a link could lead outside the "
                              "root")


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
               cut_ok: bool = False, budget: Budget | None = None) -> tuple[int, str | None]:
    """Extract ``tar`` under ``root`` -> (files written, the member cut short at the end of
    the stream, removed; allowed only with ``cut_ok``, for a prefix of the parts).
    ``budget`` (default: :data:`MAX_MEMBERS` of ``anchor``, no byte limit) bounds it."""
    budget = budget or Budget(archive, MAX_MEMBERS[anchor], 1 << 62)
    root.mkdir(parents=True, exist_ok=True)
    written, members, previous = 0, iter(tar), None
    while True:
        try:
            member = next(members)
        except StopIteration:
            break
        except tarfile.ReadError as err:  # the stream ends inside the next member's header
            where = f"the header after {previous}" if previous else "its first header"
            if not cut_ok:
                raise ArchiveError(f"{archive}: ends inside {where} ({err})") from None
            return written, f"({where})"
        previous = member.name
        if (name := _relocate(member.name, anchor, archive)) is None:
            continue
        if member.issym() or member.islnk():
            raise _refuse_link(member.name, archive)
        if not (member.isreg() or member.isdir()) or member.issparse():
            raise _refuse_link(member.name, archive, "not a plain file or folder")
        budget.take(member.size if member.isreg() else 0)
        if member.isdir():
            _folder(root, name.split("/"), archive, member.name)
            continue
        try:
            _write(root, name, tar.extractfile(member), archive, member.name)
        except tarfile.ReadError as err:
            if not cut_ok:
                raise ArchiveError(f"{archive}: ends inside {member.name} ({err})") from None
            return written, name
        written += 1
    return written, None


def unpack_annotations(path: Path, root: Path) -> int:
    """Extract the annotation archive (zip, tar, tar.gz ...) under ``root/annotations`` ->
    files written. At most :data:`MAX_MEMBERS` members and :data:`MAX_RATIO` times the
    archive's size; a zip's announced size must also fit the free space."""
    budget = Budget(path.name, MAX_MEMBERS["annotations"], MAX_RATIO * path.stat().st_size)
    try:
        if not zipfile.is_zipfile(path):
            with tarfile.open(path) as tar:
                return unpack_tar(tar, root, "annotations", path.name, budget=budget)[0]
        with zipfile.ZipFile(path) as archive:
            return _unpack_zip(archive, root, path.name, budget)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ArchiveError(f"{path}: not a readable zip or tar archive ({err})") from None


def _unpack_zip(archive: zipfile.ZipFile, root: Path, label: str, budget: Budget) -> int:
    infos = archive.infolist()
    announced = sum(info.file_size for info in infos)
    root.mkdir(parents=True, exist_ok=True)
    if announced > (free := shutil.disk_usage(root).free):
        raise ArchiveError(f"{label}: unpacks to {announced / 1e9:.2f} GB but {root} has "
                           f"{free / 1e9:.2f} GB free")
    written = 0
    for info in infos:
        if (name := _relocate(info.filename, "annotations", label)) is None:
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse_link(info.filename, label)
        budget.take(info.file_size)
        if info.is_dir():
            _folder(root, name.split("/"), label, info.filename)
            continue
        with archive.open(info) as src:
            _write(root, name, src, label, info.filename)
        written += 1
    return written
