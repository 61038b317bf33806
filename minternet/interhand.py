"""Reading InterHand2.6M annotations into a compact columnar index (book chapter 1).

Two layouts open the same way:

* the official v1.0 tree: ``annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json``
  with images under ``images/{split}/<file_name>``;
* a flat folder holding one ``*_data.json``, ``*_camera.json`` and ``*_joint_3d.json`` next to
  the images (the layout of the real sample frames).

The three JSON files become one dict of numpy arrays, one row per annotation (see
:data:`INDEX_FIELDS`), built by pulling the files' records a chunk at a time from
:mod:`minternet.json_records`, reading each chunk's fields (:mod:`minternet.annotation_columns`)
and joining the columns here; the index is cached as memory-mapped ``.npy`` files keyed by
the source files' paths, sizes and mtimes (:mod:`minternet.index_cache`). Numpy arrays hold
no per-sample Python objects, and mapped ones live in the shared page cache, so DataLoader
workers forked from the parent read them without copy-on-write blow-up.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minternet.annotation_columns import (
    HAND_TYPE_BITS,
    annotation_columns,
    camera,
    image_columns,
    pair_keys,
    world_columns,
)
from minternet.index_cache import ENV_CACHE, cache_folder, cache_root, read_cache, write_cache
from minternet.json_records import (
    CHUNK_ROWS,
    InterHandFormatError,
    JsonStream,
    Record,
    chunked,
    cycle_collection_paused,
    read_json,
)
from minternet.skeleton import JOINTS_PER_HAND, NUM_JOINTS, ROOTS

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
KINDS = ("data", "camera", "joint_3d")
INDEX_VERSION = 2
"""Bump when the index's fields, their meaning or the cache format change, so old caches are
rebuilt (2: a folder of memory-mapped .npy files instead of an .npz)."""

INDEX_FIELDS = {
    "image_path": "(N,) bytes, image path relative to the dataset root",
    "image_id": "(N,) int64, image id in the data file",
    "ann_id": "(N,) int64, annotation id",
    "capture": "(N,) int32",
    "subject": "(N,) int32",
    "seq_name": "(N,) bytes, e.g. b'0266_dh_pray'",
    "camera": "(N,) int32, camera id such as 400026",
    "grey": "(N,) uint8, 1 for the monochrome 41xxxx cameras (still 3-channel JPEGs)",
    "frame_idx": "(N,) int32",
    "width": "(N,) int32, px (334 for portrait cameras)",
    "height": "(N,) int32, px",
    "bbox": "(N, 4) float32, px, [x_min, y_min, w, h] as in the data file",
    "hand_type": "(N, 2) uint8, [right, left]",
    "hand_type_valid": "(N,) uint8",
    "joint_valid": "(N, 42) uint8, data-file validity times its wrist's validity",
    "joint_world": "(N, 42, 3) float32, mm, world space; placeholder kept for absent hands",
    "joint_cam": "(N, 42, 3) float32, mm, camera space",
    "focal": "(N, 2) float32, px",
    "princpt": "(N, 2) float32, px",
    "abs_depth": "(N, 2) float32, mm, camera z of joints 20 and 41",
    "rel_root_depth": "(N,) float32, mm, z41 - z20 (left minus right)",
    "rel_root_valid": "(N,) uint8, valid(20) * valid(41)",
    "camera_row": "(N,) int32, row of this sample's camera in the cam_* table",
    "cam_campos": "(M, 3) float64, mm; the M distinct (capture, camera) pairs",
    "cam_camrot": "(M, 3, 3) float64",
    "cam_focal": "(M, 2) float64, px",
    "cam_princpt": "(M, 2) float64, px",
}


@dataclass(frozen=True)
class AnnotationFiles:
    """Where one split's three annotation files and its images are."""

    data: Path
    camera: Path
    joint_3d: Path
    image_prefix: str
    """Folder of the images relative to the dataset root ('' for the flat layout)."""


def find_annotation_files(root: Path | str, split: str | None = None) -> AnnotationFiles:
    """Locate the annotation files of ``split`` under ``root`` in either layout."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset root does not exist or is not a folder")
    if (root / "annotations").is_dir():
        present = [s for s in SPLITS if (root / "annotations" / s).is_dir()]
        if split not in SPLITS:
            raise ValueError(f"{root}: an InterHand2.6M v1.0 tree needs split= one of {present}")
        folder = root / "annotations" / split
        paths = [folder / f"InterHand2.6M_{split}_{kind}.json" for kind in KINDS]
        prefix = f"images/{split}"
    else:
        paths = []
        for kind in KINDS:
            found = sorted(root.glob(f"*_{kind}.json"))
            if len(found) != 1:
                raise FileNotFoundError(
                    f"{root}: a flat InterHand2.6M folder needs exactly one '*_{kind}.json', "
                    f"found {[p.name for p in found]}"
                )
            paths.append(found[0])
        prefix = ""
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: annotation file not found")
    return AnnotationFiles(*paths, image_prefix=prefix)


def _read_data_file(
    files: AnnotationFiles,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[tuple[int, int], str]]:
    """Image columns, annotation columns, and the camera-file key of each (capture, camera)
    in order of first use.
    """
    path, cameras = files.data, {}
    parts: dict[str, list[dict[str, np.ndarray]]] = {"images": [], "annotations": []}
    with JsonStream(path) as stream:
        for key in stream.members("(file)"):
            if key == "images":
                for chunk in stream.chunks(".images", "images[{}]"):
                    parts[key].append(image_columns(chunk, files.image_prefix, cameras))
            elif key == "annotations":
                for chunk in stream.chunks(".annotations", "annotations[{}]"):
                    parts[key].append(annotation_columns(chunk))
            else:
                stream.value()
        stream.end()
    for key, chunks in parts.items():
        if not chunks:  # even an empty array gives one chunk
            raise InterHandFormatError(path, f".{key}", "missing")
    images = _concatenate(parts["images"])
    ids, counts = np.unique(images["image_id"], return_counts=True)
    if (counts > 1).any():  # a second image would silently take the first one's labels
        twice = ids[np.argmax(counts > 1)]
        i, j = np.flatnonzero(images["image_id"] == twice)[:2]
        raise InterHandFormatError(path, f"images[{j}].id", f"image id {twice} repeats images[{i}]")
    return images, _concatenate(parts["annotations"]), cameras


def _concatenate(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The columns of consecutive chunks as one set of columns, (rows, ...)."""
    return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}


def _first_annotations(image_ids: np.ndarray, ann_image_ids: np.ndarray, path: Path) -> np.ndarray:
    """(N,) row of each image's first annotation (mmpose too uses only that one)."""
    ids, first = np.unique(ann_image_ids, return_index=True)
    pos = np.minimum(np.searchsorted(ids, image_ids), max(len(ids) - 1, 0))
    found = ids[pos] == image_ids if len(ids) else np.zeros(len(image_ids), dtype=bool)
    if not found.all():
        i = int(np.argmin(found))
        raise InterHandFormatError(
            path, f"images[{i}].id", f"no annotation has image_id {image_ids[i]}"
        )
    return first[pos]


def _frames(
    stream: JsonStream, wanted: Container[tuple[str, str]], captures: set[str]
) -> Iterator[tuple[Any, tuple[str, str]]]:
    """The joint file's records of the (capture, frame) keys in ``wanted``, each with its
    keys; every capture key met is added to ``captures``."""
    for c in stream.members("(file)"):
        captures.add(c)
        for f in stream.members(f".{c}"):
            record = stream.value()
            if (c, f) in wanted:
                yield record, (c, f)


def _read_joint_file(
    path: Path, capture: np.ndarray, frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World joints of the frames the images show, (F, 42, 3) float64 mm, and each image's
    row in them, (N,). Only those frames are read into arrays (and checked).
    """
    keys, rows = np.unique(pair_keys(capture, frame), return_inverse=True)
    wanted = {(str(k >> 32), str(k & 0xFFFFFFFF)): row for row, k in enumerate(keys.tolist())}
    captures: set[str] = set()
    with JsonStream(path) as stream:
        frames = _frames(stream, wanted, captures)
        parts = [world_columns(chunk, wanted) for chunk in chunked(path, ".{}.{}", frames)]
        stream.end()
    table = _concatenate(parts)
    world = np.zeros((len(keys), NUM_JOINTS, 3))
    world[table["row"]] = table["world_coord"]  # a repeated key: the last one wins, as in json
    missing = np.ones(len(keys), dtype=bool)
    missing[table["row"]] = False
    if missing[rows].any():
        i = int(np.argmax(missing[rows]))
        c, f = int(capture[i]), int(frame[i])
        raise InterHandFormatError(path, f".{c}.{f}" if str(c) in captures else f".{c}", "missing")
    return world, rows


def build_index(files: AnnotationFiles) -> dict[str, np.ndarray]:
    """Read the three files into the arrays of :data:`INDEX_FIELDS` (mmpose semantics).

    The data and joint files are streamed and converted :data:`CHUNK_ROWS` rows at a time,
    so the peak memory is about the index's own size. Like mmpose, only the first annotation
    of each image is used (InterHand has one); every annotation is checked.
    """
    with cycle_collection_paused():
        images, anns, camera_keys = _read_data_file(files)
    cameras = Record(read_json(files.camera), files.camera, "")
    used = [camera(cameras, capture, key) for (capture, _), key in camera_keys.items()]
    first = _first_annotations(images["image_id"], anns.pop("image_id"), files.data)
    index = images | {key: value[first] for key, value in anns.items()}
    pairs = pair_keys(*np.array(list(camera_keys), dtype=np.int64).reshape(-1, 2).T)
    order = np.argsort(pairs)
    at = np.searchsorted(pairs, pair_keys(index["capture"], index["camera"]), sorter=order)
    index["camera_row"] = order[at].astype(np.int32)
    index["hand_type"] = HAND_TYPE_BITS[index["hand_type"]]
    for key, shape in (("campos", (3,)), ("camrot", (3, 3)), ("focal", (2,)), ("princpt", (2,))):
        values = [getattr(camera, key) for camera in used]
        index[f"cam_{key}"] = np.asarray(values, dtype=np.float64).reshape(-1, *shape)
    with cycle_collection_paused():
        world, frame_rows = _read_joint_file(files.joint_3d, index["capture"], index["frame_idx"])
    index = _derive(index, world, frame_rows)
    broken = ~np.isfinite(index["joint_cam"]).all(axis=(1, 2))
    if broken.any():  # world and camera values in range, their product not
        i = int(np.argmax(broken))
        raise InterHandFormatError(
            files.joint_3d,
            f".{index['capture'][i]}.{index['frame_idx'][i]}.world_coord",
            f"too large: not finite in camera {index['camera'][i]}'s space as float32",
        )
    return index


def _derive(
    index: dict[str, np.ndarray], world: np.ndarray, frame_rows: np.ndarray
) -> dict[str, np.ndarray]:
    """Add the quantities derived from the read columns; world: (F, 42, 3) float64 mm of the
    frames, frame_rows: (N,) each row's frame.
    """
    n, rows = len(frame_rows), index["camera_row"]
    index["grey"] = (index["camera"] // 10000 == 41).astype(np.uint8)
    valid = index["joint_valid"].reshape(n, 2, JOINTS_PER_HAND)
    # A hand whose wrist is not valid counts as fully invalid (mmpose and the original agree).
    valid = valid * valid[:, :, JOINTS_PER_HAND - 1 :]
    index["joint_valid"] = valid.reshape(n, NUM_JOINTS)
    index["rel_root_valid"] = index["joint_valid"][:, ROOTS].prod(axis=1).astype(np.uint8)
    index["focal"] = index["cam_focal"][rows].astype(np.float32)
    index["princpt"] = index["cam_princpt"][rows].astype(np.float32)
    for key in ("joint_world", "joint_cam"):
        index[key] = np.empty((n, NUM_JOINTS, 3), dtype=np.float32)
    index["abs_depth"] = np.empty((n, 2), dtype=np.float32)
    index["rel_root_depth"] = np.empty(n, dtype=np.float32)
    # In chunks: float64 copies of the whole split would double the build's peak memory.
    for start in range(0, n, CHUNK_ROWS):
        part, cams = slice(start, start + CHUNK_ROWS), rows[start : start + CHUNK_ROWS]
        joint_world = world[frame_rows[part]]
        offset = joint_world - index["cam_campos"][cams][:, None, :]
        joint_cam = np.einsum("nij,nkj->nki", index["cam_camrot"][cams], offset)  # R (X - C)
        index["joint_world"][part] = joint_world
        with np.errstate(over="ignore"):  # an overflow is reported by build_index
            index["joint_cam"][part] = joint_cam
        abs_depth = joint_cam[:, ROOTS, 2]
        index["abs_depth"][part] = abs_depth
        index["rel_root_depth"][part] = abs_depth[:, 1] - abs_depth[:, 0]
    return {name: index[name] for name in INDEX_FIELDS}


def load_index(files: AnnotationFiles, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """The index of ``files``, memory-mapped from the cache (:mod:`minternet.index_cache`);
    built and cached first when the files changed since, or the cache is damaged.

    The arrays are read-only views of the cache files: forked DataLoader workers share their
    pages, and opening costs milliseconds whatever the split's size.
    """
    sources = [files.data, files.camera, files.joint_3d]
    salt = repr((INDEX_VERSION, files.image_prefix))
    folder = cache_folder(sources, salt, cache_dir or cache_root() / "index")
    index = read_cache(folder, list(INDEX_FIELDS))
    if index is None:
        log.info("%s: building the annotation index", files.data)
        index = build_index(files)
        try:
            index = write_cache(folder, index)
        except OSError as err:  # e.g. a read-only cache folder, or a file in its place
            log.warning(
                "%s: cannot write the index cache (%s); the index stays in memory, set %s to "
                "a writable folder to keep it",
                folder.parent,
                err,
                ENV_CACHE,
            )
    return index
