"""Fetch the real InterHand2.6M v1.0 (5 fps) into the tree :mod:`minternet.interhand` reads.

Images: one tar, ``InterHand2.6M.images.5.fps.v1.0.tar``, cut into the 44 :data:`PARTS`
(about 81.7 GB in all) with the md5 list :data:`CHECKSUM_FILE` beside them at
:data:`OFFICIAL_URL`, the image link of :data:`HOMEPAGE`. The cuts fall at byte offsets, not
between files: a subset of parts must start at ``aa`` without gaps, and its last, cut member
is dropped. Annotations: the homepage shares them as a Google Drive folder, which plain HTTP
cannot list, so their archive (zip, tar or tar.gz) is given as a URL or a local file.

Steps: plan (sizes in bytes by HTTP HEAD; free space checked first); fetch into ``archives``
(:mod:`minternet.fetching`: resumable ``.part`` files via HTTP Range, retries, every md5
checked before any part is used); unpack (members go under ``images/`` or ``annotations/``;
absolute names, ``..`` and links leaving the root are refused); verify (annotation files,
image folders, image counts).

Licence: InterHand2.6M is CC-BY-NC 4.0 (Moon et al., ECCV 2020): non-commercial use only.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re
import shutil
import string
import tarfile
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from minternet import transfer
from minternet.archive import (
    MAX_MEMBERS,
    Budget,
    JoinedFiles,
    unpack_annotations,
    unpack_tar,
)
from minternet.fetching import TIMEOUT, DiskFullError, DownloadError, fetch, remote_size
from minternet.index_cache import cache_root
from minternet.interhand import SPLITS, find_annotation_files

HOMEPAGE = "https://mks0601.github.io/InterHand2.6M/"
OFFICIAL_URL = ("https://fb-baas-f32eacb9-8abb-11eb-b2b8-4857dd089e15.s3.amazonaws.com/"
                "InterHand2.6M/InterHand2.6M.images.5.fps.v1.0/")
ARCHIVE = "InterHand2.6M.images.5.fps.v1.0.tar"
CHECKSUM_FILE = f"{ARCHIVE}.CHECKSUM"
"""md5sum-style lines, ``<hex md5>  <part name>``, one per image part."""
PARTS = tuple(f"{ARCHIVE}.part{a}{b}" for a in "ab" for b in string.ascii_lowercase)[:44]
"""The image parts in stream order."""
FULL_RELEASE_IMAGES = {"train": 1_361_062, "val": 380_125, "test": 849_160}
"""Images (one annotation each) per split of the whole v1.0 5 fps release (homepage)."""
STATE_FILE = ".minternet-download.json"
"""Written in the dataset root: what was unpacked, so a rerun does not fetch it again."""
DEADLINE = 48 * 3600.0
"""Seconds allowed for all the transfers of one run (81.7 GB at 0.5 MB/s); a rerun resumes."""


def select(parts: str) -> tuple[bool, tuple[str, ...]]:
    """``parts`` -> (annotations wanted, image parts in stream order).

    Comma-separated tokens: ``all``, ``annotations``, ``images`` (every part), a part suffix
    (``aa``) or a range (``aa-ak``). The image parts must start at ``aa`` without gaps.
    """
    suffixes = [name[-2:] for name in PARTS]
    annotations, chosen = False, set()
    for token in filter(None, (t.strip() for t in parts.split(","))):
        annotations |= token in ("all", "annotations")
        first, _, last = token.partition("-")
        if token in ("all", "images"):
            chosen.update(suffixes)
        elif token != "annotations" and {first, last or first} <= set(suffixes):
            chosen.update(suffixes[suffixes.index(first): suffixes.index(last or first) + 1])
        elif token != "annotations":
            raise ValueError(f"--parts: {token!r} is not all, annotations, images, a part "
                             f"suffix ({suffixes[0]}..{suffixes[-1]}) or a range of them")
    picked = [s for s in suffixes if s in chosen]
    if picked != suffixes[: len(picked)]:
        raise ValueError(f"--parts: image parts {picked} do not start at aa without gaps; the "
                         "tar is cut at byte offsets, so a part needs every part before it")
    if not (annotations or picked):
        raise ValueError(f"--parts: {parts!r} selects nothing")
    return annotations, tuple(f"{ARCHIVE}.part{s}" for s in picked)


def parse_checksums(text: str, source: str) -> dict[str, str]:
    """md5sum output (``<hex>  <name>`` lines, ``*`` binary marks allowed) -> {name: hex}."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", fields[0]):
            raise DownloadError(f"{source}: line {number} is not '<32 hex digits>  <name>': "
                                f"{line[:80]!r}; the checksum file is damaged, so nothing can "
                                "be verified against it")
        sums[posixpath.basename(fields[1].lstrip("*"))] = fields[0].lower()
    return sums


def check_space(needs: dict[Path, int]) -> None:
    """Raise :class:`DiskFullError` unless each filesystem has the bytes headed for it."""
    totals: dict[int, list[Any]] = {}
    for path, size in needs.items():
        probe = next(p for p in (path, *path.parents) if p.exists())
        totals.setdefault(probe.stat().st_dev, [probe, 0])[1] += size
    for probe, size in totals.values():
        if size > (free := shutil.disk_usage(probe).free):
            raise DiskFullError(f"{probe}: {size / 1e9:.2f} GB needed but {free / 1e9:.2f} GB "
                                "free; free some space or choose --out / --archives elsewhere")


def verify_tree(root: Path, splits: Iterable[str], annotations: bool, all_images: bool
                ) -> dict[str, dict[str, int]]:
    """Per split: annotation files present (if ``annotations``), images folder present (if
    ``all_images``); JPEG count next to the full release's."""
    report = {}
    for split in splits:
        folder = root / "images" / split
        try:
            if annotations:
                find_annotation_files(root, split)
            if all_images and not folder.is_dir():
                raise FileNotFoundError(f"{folder}: images folder not found")
        except (FileNotFoundError, ValueError) as err:
            raise DownloadError(f"verification of {root} failed: {err} (to unpack again, "
                                f"delete {root / STATE_FILE})") from None
        jpegs = sum(f.endswith(".jpg") for _, _, files in os.walk(folder) for f in files)
        report[split] = {"images": jpegs, "full_release": FULL_RELEASE_IMAGES[split]}
    return report


ANNOTATIONS_HELP = (
    f"the InterHand2.6M v1.0 annotations are a Google Drive folder linked from {HOMEPAGE}, "
    "which plain HTTP cannot fetch: download that archive by hand (or find a mirror) and pass "
    "--annotations FILE_OR_URL, or leave annotations out of --parts")


def fetch_interhand(out: str | os.PathLike[str], parts: str = "all", *,
                    annotations: str | None = None, base_url: str = OFFICIAL_URL,
                    archives: str | os.PathLike[str] | None = None,
                    splits: Iterable[str] = SPLITS, keep_archives: bool = False,
                    dry_run: bool = False, retries: int = 5, backoff: float = 2.0,
                    timeout: float = TIMEOUT, deadline: float | None = DEADLINE,
                    progress: bool = True, log: Callable[[str], object] = print
                    ) -> dict[str, Any]:
    """Fetch, check, unpack and verify InterHand2.6M v1.0 5 fps under ``out``; returns a report.

    ``parts``: see :func:`select`. ``annotations``: URL or local path of the annotation
    archive. ``base_url``: folder of the image parts and :data:`CHECKSUM_FILE` (or a mirror).
    ``archives``: download folder (default ``cache_root()/interhand2.6m_v1.0_5fps``), whose
    fetched files are deleted after unpacking unless ``keep_archives``. ``dry_run`` logs the
    plan (sizes by HTTP HEAD) and returns it. ``deadline``: seconds allowed for all the
    transfers (None: no limit); each file must have the size HEAD announced. Raises
    :class:`DownloadError` subclasses, and
    :class:`~minternet.archive.ArchiveError` for an archive that is unsafe or cut short.
    """
    root, base = Path(out), base_url.rstrip("/") + "/"
    ends = None if deadline is None else time.monotonic() + deadline
    if unknown := set(splits) - set(SPLITS):
        raise ValueError(f"--splits: {sorted(unknown)} are not among {list(SPLITS)}")
    store = Path(archives) if archives else cache_root() / "interhand2.6m_v1.0_5fps"
    want_annotations, chosen = select(parts)
    state = json.loads((root / STATE_FILE).read_text()) if (root / STATE_FILE).is_file() else {}
    images = () if set(chosen) <= set(state.get("images", ())) else chosen
    if want_annotations and annotations is None and "annotations" not in state:
        raise DownloadError(ANNOTATIONS_HELP)
    urls = {name: base + name for name in images}
    local = None
    if want_annotations and annotations:
        remote = "://" in annotations
        local = store / posixpath.basename(annotations.split("?")[0]) if remote else Path(
            annotations)
        if local.name == state.get("annotations"):  # unpacked by an earlier run
            local = None
        elif remote:
            urls[local.name] = annotations
        elif not local.is_file():
            raise DownloadError(f"{local}: annotation archive not found")
    sizes = {name: remote_size(url, timeout) for name, url in urls.items()}
    have = {n: max([p.stat().st_size for p in (store / n, transfer.partial_path(store / n))
                    if p.is_file()], default=0) for n in urls}
    to_fetch = sum(max(s - have[n], 0) for n, s in sizes.items() if s is not None)
    to_unpack = sum(s or 0 for s in sizes.values()) + (local.stat().st_size if local and
                                                       local.name not in urls else 0)
    for name, url in urls.items():
        log(f"fetch {url}: {sizes[name]} bytes, {have[name]} already in {store / name}")
    log(f"disk: {to_fetch / 1e9:.3f} GB to download into {store}, at least "
        f"{to_unpack / 1e9:.3f} GB to unpack into {root}")
    plan = {"out": str(root), "archives": str(store), "bytes": sizes, "bytes_on_disk": have,
            "bytes_to_download": to_fetch, "bytes_to_unpack_at_least": to_unpack}
    if dry_run:
        return {"dry_run": True, "plan": plan}
    check_space({store: to_fetch, root: to_unpack})
    root.mkdir(parents=True, exist_ok=True)
    if 0 < len(images) < len(PARTS):
        log(f"note: {len(images)} of {len(PARTS)} image parts is a partial set; scores on it "
            "are not comparable with the full release's")

    sums: dict[str, str] = {}
    if images:
        path = fetch(base + CHECKSUM_FILE, store / CHECKSUM_FILE, None, retries=retries,
                     backoff=backoff, timeout=timeout, progress=False, deadline=ends)
        sums = parse_checksums(path.read_text(), base + CHECKSUM_FILE)
    for name, url in urls.items():
        if name in images and name not in sums:
            raise DownloadError(f"{name}: not listed in {base + CHECKSUM_FILE}")
        dest, md5 = store / name, sums.get(name)
        if dest.is_file() and md5 and transfer.file_digest(dest, "md5") != md5:
            log(f"{dest}: md5 differs from the checksum file; deleted, fetching it again")
            dest.unlink()
        if not dest.is_file():
            fetch(url, dest, md5, retries=retries, backoff=backoff, timeout=timeout,
                  progress=progress, size=sizes[name], deadline=ends)

    report: dict[str, Any] = {"out": str(root), "plan": plan}
    try:
        if images:
            label = f"{ARCHIVE}.part{images[0][-2:]}..{images[-1][-2:]}"
            # An uncompressed tar unpacks to less than its own size (sparse files are refused).
            budget = Budget(label, MAX_MEMBERS["images"],
                            sum((store / n).stat().st_size for n in images))
            with closing(JoinedFiles(store / n for n in images)) as stream, tarfile.open(
                    fileobj=stream, mode="r|") as tar:
                written, cut = unpack_tar(tar, root, "images", label, len(images) < len(PARTS),
                                          budget)
            report["images"] = {"parts": len(images), "files": written, "cut_member": cut}
            state["images"] = list(images)
            (root / STATE_FILE).write_text(json.dumps(state))
        if local is not None:
            report["annotations"] = {"archive": local.name,
                                     "files": unpack_annotations(local, root)}
            state["annotations"] = local.name
            (root / STATE_FILE).write_text(json.dumps(state))
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"{root}: disk full while unpacking; free some space") from None
        raise
    for name in urls if not keep_archives else ():
        (store / name).unlink(missing_ok=True)
    report["splits"] = verify_tree(root, splits, "annotations" in state,
                                   set(PARTS) <= set(state.get("images", ())))
    return report
