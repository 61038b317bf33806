"""Verified downloads: the InterHand2.6M sample frames and mmpose's published InterNet weights.

The sample frames (book chapter 1): four real frames (JPEG, 334x512 or 512x334 px) and
their three annotation files, the unit-test fixture of OpenMMLab mmpose,
``tests/data/interhand2.6m/`` at commit :data:`COMMIT`.

Licence: the content is InterHand2.6M's (Moon et al., ECCV 2020), CC-BY-NC 4.0, non-commercial
only, though mmpose is Apache-2.0; so it goes to a user cache and never into this repository.

Sources, first that works wins: ``$MINTERNET_SAMPLES``; the cache
``$MINTERNET_CACHE/interhand2.6m_samples`` (default root ``~/.cache/minternet``); a download
into that cache; an offline copy ``../shared/samples/interhand2.6m_mmpose_tests`` beside the
repository or beside a parent of the working directory. Every file is sha256-checked.

The published checkpoints (book chapter 10): :data:`CHECKPOINTS`, by short name, fetched by
:func:`checkpoint_file` into ``$MINTERNET_CACHE/weights`` and checked against the sha256
prefix that OpenMMLab writes into each file name; :func:`load_model` makes a model of one,
or of any checkpoint file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from http.client import HTTPException
from pathlib import Path

import torch

from minternet.convert import load_mmpose_checkpoint
from minternet.index_cache import cache_root
from minternet.model import InterNet
from minternet.transfer import TIMEOUT, ChecksumError, download, file_digest

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
OFFLINE_COPY = Path("..", "shared", "samples", "interhand2.6m_mmpose_tests")
class SamplesNotFoundError(FileNotFoundError):
    """No source could provide the sample files."""


def default_offline_dirs() -> list[Path]:
    """Where an offline copy may sit: ``../shared/...`` from the repository root (the parent
    of the package folder), then from the working directory and each of its parents."""
    cwd = Path.cwd()
    bases = (Path(__file__).resolve().parents[1], cwd, *cwd.parents)
    return list(dict.fromkeys((base / OFFLINE_COPY).resolve() for base in bases))


def _bad_files(folder: Path) -> dict[str, str | None]:
    """Sample files in ``folder`` that are missing (-> None) or wrong (-> their sha256)."""
    found = {n: file_digest(folder / n) if (folder / n).is_file() else None for n in SAMPLES_SHA256}
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


WEIGHTS_URL = "https://download.openmmlab.com"
"""Where OpenMMLab serves its checkpoints; ``$MINTERNET_WEIGHTS_URL`` replaces it (a mirror)."""
ENV_WEIGHTS_URL = "MINTERNET_WEIGHTS_URL"
ENV_WEIGHTS = "MINTERNET_WEIGHTS"
"""A folder already holding checkpoint files under their own names (machines offline)."""
_NAME_DIGEST = re.compile(r"-([0-9a-f]{8})_\d{8}\.pth$")  # OpenMMLab: NAME-<sha256[:8]>_<date>.pth


class WeightsUnavailableError(FileNotFoundError):
    """A published checkpoint could be neither found locally nor downloaded."""


@dataclasses.dataclass(frozen=True)
class PublishedCheckpoint:
    """A checkpoint file OpenMMLab publishes, and the numbers it is published with.

    ``results`` maps a set ("test (H+M)", "val (M)") to MPJPE_single, MPJPE_interacting,
    MPJPE_all and MRRPE in mm and APh as a fraction, as the model zoo lists them.
    """

    name: str
    url: str
    results: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """The 8 hex digits of the file's sha256 that its name carries."""
        if not (found := _NAME_DIGEST.search(self.filename)):
            raise ValueError(f"{self.url}: the file name carries no '-<8 hex digits>_<date>.pth' "
                             "sha256 prefix, so the download cannot be verified")
        return found.group(1)

    def source(self) -> str:
        """The URL to fetch from: :attr:`url` with ``$MINTERNET_WEIGHTS_URL`` in place of
        :data:`WEIGHTS_URL` when set."""
        mirror = os.environ.get(ENV_WEIGHTS_URL)
        if mirror and self.url.startswith(WEIGHTS_URL + "/"):
            return mirror.rstrip("/") + self.url[len(WEIGHTS_URL) :]
        return self.url


def _results(single: float, interacting: float, every: float, mrrpe: float, aph: float
             ) -> dict[str, float]:
    keys = ("MPJPE_single", "MPJPE_interacting", "MPJPE_all", "MRRPE", "APh")
    return dict(zip(keys, (single, interacting, every, mrrpe, aph), strict=True))


CHECKPOINTS: dict[str, PublishedCheckpoint] = {
    c.name: c
    for c in (
        PublishedCheckpoint(
            "mmpose-1.x",
            f"{WEIGHTS_URL}/mmpose/v1/hand_3d_keypoint/internet/interhand3d/"
            "internet_res50_interhand3d-d6ff20d6_20230913.pth",
            {"test (H+M)": _results(9.69, 13.72, 11.86, 29.27, 0.99),
             "val (M)": _results(11.30, 15.57, 13.36, 32.15, 0.98)},
        ),
        PublishedCheckpoint(
            "mmpose-0.x",
            f"{WEIGHTS_URL}/mmpose/hand3d/internet/"
            "res50_intehand3dv1.0_all_256x256-42b7f2ac_20210702.pth",
            {"test (H+M)": _results(9.47, 13.40, 11.59, 29.28, 0.99),
             "val (M)": _results(11.22, 15.23, 13.16, 31.73, 0.98)},
        ),
    )
}
"""mmpose's published InterNet-ResNet-50 checkpoints (256 x 256, 64^3) by short name."""


def checkpoint_file(
    checkpoint: str | PublishedCheckpoint,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = TIMEOUT,
    progress: bool = True,
    attempts: int = 3,
) -> Path:
    """The verified local file of a published checkpoint: a name of :data:`CHECKPOINTS`, an
    OpenMMLab URL whose file name carries its sha256 prefix, or a :class:`PublishedCheckpoint`.

    ``$MINTERNET_WEIGHTS``, when set, is the folder that must hold the file. Otherwise the
    file is looked for in ``cache_dir`` (default ``cache_root() / "weights"``) and, if absent
    or not matching, downloaded there from :meth:`PublishedCheckpoint.source`, resuming a cut
    transfer (``attempts`` in all). Nothing is returned unverified.

    Raises:
        ChecksumError: the file's sha256 does not start with the prefix in its name (a
            downloaded file is deleted).
        WeightsUnavailableError: no local file and no download; says what to put where.
    """
    if isinstance(checkpoint, str):
        checkpoint = CHECKPOINTS.get(checkpoint) or _from_url(checkpoint)
    prefix = checkpoint.sha256_prefix
    if folder := os.environ.get(ENV_WEIGHTS):
        path = Path(folder).expanduser() / checkpoint.filename
        if not path.is_file():
            raise WeightsUnavailableError(
                f"${ENV_WEIGHTS}={folder} has no {checkpoint.filename}: download it from "
                f"{checkpoint.url} and put it there, or unset {ENV_WEIGHTS} to download it")
        if (actual := file_digest(path)[: len(prefix)]) != prefix:
            raise ChecksumError(path, prefix, actual, source=f"${ENV_WEIGHTS}")
        return path
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "weights"
    dest = cache / checkpoint.filename
    if dest.is_file() and file_digest(dest).startswith(prefix):
        return dest
    dest.unlink(missing_ok=True)
    url = checkpoint.source()
    failure: Exception | None = None
    for _ in range(attempts):
        try:
            return download(url, dest, prefix, timeout=timeout, progress=progress, resume=True)
        except ConnectionError as err:  # cut off mid-file: the next attempt resumes the .part
            failure = err
        except (OSError, HTTPException) as err:  # unreachable, refused, missing: final
            failure = err
            break
    raise WeightsUnavailableError(
        f"checkpoint {checkpoint.name} needs {checkpoint.filename}, which could not be "
        f"downloaded from {url} ({failure}). On a machine with network access, download it "
        f"from {checkpoint.url} and put it in {cache} or in a folder named by ${ENV_WEIGHTS}"
    ) from failure


def _from_url(url: str) -> PublishedCheckpoint:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{url!r} is neither a published checkpoint ({', '.join(CHECKPOINTS)}) "
                         "nor a URL")
    checkpoint = PublishedCheckpoint(url.rsplit("/", 1)[-1], url)
    checkpoint.sha256_prefix  # noqa: B018 - refuse a URL that cannot be verified, early
    return checkpoint


def is_checkpoint_reference(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` names a published checkpoint or a URL rather than a local path."""
    return isinstance(value, str) and (value in CHECKPOINTS or "://" in value)


def load_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device | None = None
) -> InterNet:
    """An :class:`~minternet.model.InterNet` in eval mode on ``device`` (default: CUDA when
    available, else the CPU) from ``checkpoint``: a file (mmpose 1.x / 0.x or minternet's,
    :func:`~minternet.convert.load_mmpose_checkpoint`), or a published checkpoint's name or
    URL, fetched and verified by :func:`checkpoint_file`.

    Raises:
        FileNotFoundError: no such file (the path is named), or a published checkpoint that
            can be neither found nor downloaded (:class:`WeightsUnavailableError`).
        ValueError: the file is not a checkpoint of tensors, its weights do not fit, or the
            device is unknown or unavailable.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    if is_checkpoint_reference(checkpoint):
        checkpoint = checkpoint_file(os.fspath(checkpoint))
    return load_mmpose_checkpoint(checkpoint).to(device)
