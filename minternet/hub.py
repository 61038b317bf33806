"""Fetch the InterHand2.6M sample frames that the book and the tests run on.

Four real frames (JPEG, 334x512 or 512x334 px) and their three annotation files: the
unit-test fixture of OpenMMLab mmpose, ``tests/data/interhand2.6m/`` at commit :data:`COMMIT`.

Licence: the content is InterHand2.6M's (Moon et al., ECCV 2020), CC-BY-NC 4.0, non-commercial
only, though mmpose is Apache-2.0; so it goes to a user cache and never into this repository.

Sources, first that works wins: ``$MINTERNET_SAMPLES``; the cache
``$MINTERNET_CACHE/interhand2.6m_samples`` (default root ``~/.cache/minternet``); a download
into that cache; an offline copy ``../shared/samples/interhand2.6m_mmpose_tests`` beside the
repository or beside a parent of the working directory. Every file is sha256-checked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from http.client import HTTPException
from pathlib import Path

from tqdm.auto import tqdm

COMMIT = "759b39c13fea6ba094afc1fa932f51dc1b11cbf9"
BASE_URL = f"https://raw.githubusercontent.com/open-mmlab/mmpose/{COMMIT}/tests/data/interhand2.6m/"
_SHA256SUMS = """\
85c8f42a26fbfd591634b8d0ed3c15e6912fb4b152f75e90822219bb097facfb  image2017.jpg
025140831b54c996f86e84e344e13a4493d0956c74d8e7a17ae69a8723478ea4  image29590.jpg
2f9d885799dae9463e2dd0e3e1a3b807b918cd4db96d98cf797707d1bc6f4528  image44669.jpg
0c53c6caac11bd33a09b963bd0ac5e8308eb783c4911abd5292eb9382731085f  image69148.jpg
e532ff2023d0c1e23c9395f06f21856b74c6c0c397901acb75061cbac0b509e8  test_interhand2.6m_camera.json
990492cd45c13564dfd37531c1857ac06157d17f8d6f3fe5f98ba644603fb676  test_interhand2.6m_data.json
253cfc90a4ef2da011de56c1fe38aaa1e82df13214cd1edf1fc306ec14424809  test_interhand2.6m_joint_3d.json
"""
SAMPLES_SHA256: dict[str, str] = {n: d for d, n in map(str.split, _SHA256SUMS.splitlines())}
"""File name -> hex sha256 of the seven sample files (``sha256sum`` lines above)."""
ENV_SAMPLES = "MINTERNET_SAMPLES"
ENV_CACHE = "MINTERNET_CACHE"
OFFLINE_COPY = Path("..", "shared", "samples", "interhand2.6m_mmpose_tests")
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


class SamplesNotFoundError(FileNotFoundError):
    """No source could provide the sample files."""


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256",
                chunk_size: int = 1 << 20) -> str:
    """Hex digest (hashlib ``algorithm``) of a file, read in ``chunk_size``-byte blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk_size``-byte blocks."""
    return file_digest(path, "sha256", chunk_size)


def cache_root() -> Path:
    """``$MINTERNET_CACHE``, or ``~/.cache/minternet`` when unset."""
    return Path(os.environ.get(ENV_CACHE) or "~/.cache/minternet").expanduser()


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
    expected hex digests, checked when given; a mismatch deletes the temporary file. ``size``
    is the file's expected bytes (e.g. from a HEAD request): a body announced or running
    longer is refused as it comes. ``deadline`` (a :func:`time.monotonic` value) ends the
    transfer however slowly the bytes trickle in (``timeout`` bounds each stall). Raises
    :class:`ConnectionError` when the body is shorter than its Content-Length or the server
    answers another range, :class:`TransferLimitError` past ``size`` or ``deadline``,
    :class:`ChecksumError` on a digest mismatch, and ``urllib.error.URLError`` /
    :class:`OSError` on network and disk errors.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if resume:
        tmp = partial_path(dest)
        have = tmp.stat().st_size if tmp.exists() else 0
    else:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        tmp, have = Path(tmp_name), 0
    expected = {name: hexd for name, hexd in (("sha256", sha256), ("md5", md5)) if hexd}
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
            if (actual := digests[name].hexdigest()) != hexd:
                keep = False
                raise ChecksumError(dest, hexd, actual, source=url, algorithm=name)
        os.replace(tmp, dest)
    finally:
        if not keep:
            tmp.unlink(missing_ok=True)
    return dest


def default_offline_dirs() -> list[Path]:
    """Where an offline copy may sit: ``../shared/...`` from the repository root (the parent
    of the package folder), then from the working directory and each of its parents."""
    cwd = Path.cwd()
    bases = (Path(__file__).resolve().parents[1], cwd, *cwd.parents)
    return list(dict.fromkeys((base / OFFLINE_COPY).resolve() for base in bases))


def _bad_files(folder: Path) -> dict[str, str | None]:
    """Sample files in ``folder`` that are missing (-> None) or wrong (-> their sha256)."""
    found = {n: sha256_file(folder / n) if (folder / n).is_file() else None for n in SAMPLES_SHA256}
    return {n: got for n, got in found.items() if got != SAMPLES_SHA256[n]}


def _verify(folder: Path, source: str) -> Path:
    """``folder``, if it holds all seven files with their pinned digests; else raise."""
    for name, got in _bad_files(folder).items():
        if got is None:
            raise FileNotFoundError(f"{source}: missing sample file {folder / name}")
        raise ChecksumError(folder / name, SAMPLES_SHA256[name], got, source=source)
    return folder


def interhand_samples(
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str = BASE_URL,
    *,
    offline_dirs: Iterable[str | os.PathLike[str]] | None = None,
    timeout: float = TIMEOUT,
    progress: bool = True,
) -> Path:
    """Folder holding the seven verified InterHand2.6M sample files (see :data:`SAMPLES_SHA256`).

    ``cache_dir`` is the folder that receives the files (default
    ``cache_root() / "interhand2.6m_samples"``); ``base_url`` is the folder URL they are
    fetched from; ``offline_dirs`` replaces :func:`default_offline_dirs` (``()`` disables the
    offline copy). A set but wrong ``$MINTERNET_SAMPLES`` raises rather than falling through.
    """
    if env := os.environ.get(ENV_SAMPLES):
        return _verify(Path(env).expanduser(), f"${ENV_SAMPLES}={env}")
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "interhand2.6m_samples"
    try:
        for name in _bad_files(cache):
            download(
                base_url.rstrip("/") + "/" + name,
                cache / name,
                SAMPLES_SHA256[name],
                timeout=timeout,
                progress=progress,
            )
        return cache
    # Offline, blocked or cut off: try a local copy. A wrong digest is not caught, it is news.
    except (OSError, HTTPException) as err:
        failure = err
    dirs = default_offline_dirs() if offline_dirs is None else [Path(d) for d in offline_dirs]
    for folder in dirs:
        if folder.is_dir():
            return _verify(folder, f"offline copy {folder}")
    raise SamplesNotFoundError(
        f"InterHand2.6M sample files not found. Tried: ${ENV_SAMPLES} (unset); the cache "
        f"{cache} (incomplete); downloading from {base_url} ({failure}); offline copies "
        f"{[str(d) for d in dirs]} (none exist). Set {ENV_SAMPLES} to a folder holding the "
        f"seven files ({', '.join(SAMPLES_SHA256)}), or connect to the internet and call again."
    ) from failure
