"""Resumable HTTP downloads that only ever leave a complete, verified file behind.

Used by :mod:`minternet.hub` (sample frames, published weights) and
:mod:`minternet.download` (the real dataset).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

TIMEOUT = 5.0
"""Seconds allowed to connect and for each read stall, so an offline machine fails fast."""



class ChecksumError(ValueError):
    """A file's digest differs from the pinned one (``path``, ``expected``, ``actual`` in hex;
    ``algorithm`` is the hashlib name, sha256 unless told)."""

    def __init__(self, path: Path, expected: str, actual: str, source: str = "",
                 algorithm: str = "sha256") -> None:
        where = f"{source}: " if source else ""
        super().__init__(
            f"{where}{algorithm} mismatch for {path}: expected {expected}, got {actual}"
        )
        self.path, self.expected, self.actual, self.algorithm = path, expected, actual, algorithm


class TransferLimitError(ConnectionError):
    """A transfer was stopped: the server sent more than the expected size, or the deadline
    passed. Retrying the same way would fail the same way."""


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256",
                chunk_size: int = 1 << 20) -> str:
    """Hex digest (hashlib ``algorithm``) of a file, read in ``chunk_size``-byte blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def partial_path(dest: str | os.PathLike[str]) -> Path:
    """The file a resumable :func:`download` of ``dest`` grows in: ``dest`` + ``.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | os.PathLike[str], sha256: str | None = None, *,
             timeout: float = TIMEOUT, progress: bool = True, chunk_size: int = 1 << 16,
             md5: str | None = None, resume: bool = False, size: int | None = None,
             deadline: float | None = None) -> Path:
    """Stream ``url`` to ``dest``; ``dest`` only ever appears complete and verified.

    Bytes go to a temporary file in ``dest``'s folder (same filesystem, so the final
    :func:`os.replace` is atomic) and are hashed on the way. Without ``resume`` it is a hidden
    file, deleted on any failure. With ``resume`` it is :func:`partial_path`, kept after a
    failed transfer: the next call asks for the rest with an HTTP ``Range`` request and starts
    over when the server ignores it (status 200 instead of 206). ``sha256`` and ``md5`` are
    expected hex digests, or their first 8 or more characters, checked when given; a
    mismatch deletes the temporary file. ``size`` is the file's expected bytes (e.g. from a
    HEAD request): a body announced or running longer is refused as it comes. ``deadline``
    (a :func:`time.monotonic` value) ends the transfer however slowly the bytes trickle in
    (``timeout`` bounds each stall). Raises :class:`ConnectionError` when the body is shorter
    than its Content-Length or the server answers another range, :class:`TransferLimitError`
    past ``size`` or ``deadline``, :class:`ChecksumError` on a digest mismatch, and
    ``urllib.error.URLError`` / :class:`OSError` on network and disk errors.
    """
    dest = Path(dest)
    expected = {name: hexd.lower() for name, hexd in (("sha256", sha256), ("md5", md5)) if hexd}
    if any(len(hexd) < 8 for hexd in expected.values()):
        raise ValueError(f"{url}: a digest prefix of under 8 hex digits verifies nothing")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        tmp = partial_path(dest)
        have = tmp.stat().st_size if tmp.exists() else 0
    else:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        tmp, have = Path(tmp_name), 0
    digests = {name: hashlib.new(name) for name in expected}
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    keep = resume
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            start = have if resp.status == 206 else 0
            if start and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise ConnectionError(f"{url}: asked for bytes {have}- but got "
                                      f"{resp.headers.get('Content-Range')!r}")
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            if size is not None and total is not None and total != size:
                raise TransferLimitError(f"{url}: the server announces {total} bytes, "
                                         f"{size} were expected")
            with open(tmp, "r+b" if start else "w+b") as out, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, desc=dest.name,
                    disable=not progress, leave=False) as bar:
                for block in iter(lambda: out.read(chunk_size), b""):  # the kept bytes, if any
                    for digest in digests.values():
                        digest.update(block)
                # read1: whatever has arrived, so that a trickle still meets the deadline.
                while block := resp.read1(chunk_size):
                    if size is not None and out.tell() + len(block) > size:
                        raise TransferLimitError(f"{url}: the body runs past the {size} "
                                                 "bytes expected")
                    if deadline is not None and time.monotonic() > deadline:
                        raise TransferLimitError(f"{url}: not complete by the deadline "
                                                 f"({out.tell()} bytes received)")
                    out.write(block)
                    for digest in digests.values():
                        digest.update(block)
                    bar.update(len(block))
        # http.client returns b"" instead of raising when the peer hangs up early.
        if total is not None and (size := tmp.stat().st_size) != total:
            raise ConnectionError(f"{url}: connection closed after {size} of {total} bytes")
        for name, hexd in expected.items():
            if not (actual := digests[name].hexdigest()).startswith(hexd):
                keep = False
                raise ChecksumError(dest, hexd, actual[: len(hexd)], source=url, algorithm=name)
        os.replace(tmp, dest)
    finally:
        if not keep:
            tmp.unlink(missing_ok=True)
    return dest
