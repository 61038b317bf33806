"""The fields of InterHand2.6M's annotation records, checked and read into numpy columns
(book chapter 1).

The index builder (:mod:`minternet.interhand`) pulls the records of the data file from
:mod:`minternet.json_records` a :class:`~minternet.json_records.Chunk` at a time and reads
each chunk's columns here; a camera comes from the camera file's record. Every check names
the file and the field of the first bad record (an :class:`InterHandFormatError`).
"""

from __future__ import annotations

import os

import numpy as np

from minternet.camera import Camera
from minternet.json_records import Chunk, Record
from minternet.skeleton import NUM_JOINTS

HAND_TYPES = {"right": (1, 0), "left": (0, 1), "interacting": (1, 1)}
"""``hand_type`` string -> [right, left] bits, as mmpose encodes it."""
_HAND_TYPE_CODES = {name: code for code, name in enumerate(HAND_TYPES)}
HAND_TYPE_BITS = np.array(list(HAND_TYPES.values()), dtype=np.uint8)
"""(3, 2) uint8: row ``code`` holds the [right, left] bits of :func:`annotation_columns`'
``hand_type`` code."""


def camera(cameras: Record, capture: int, cam: str) -> Camera:
    """Camera ``cam`` of ``capture`` from the camera file's record (focal lengths > 0)."""
    record = cameras.sub(str(capture))
    shapes = {"campos": (3,), "camrot": (3, 3), "focal": (2,), "princpt": (2,)}
    values = {name: record.sub(name).array(cam, shape) for name, shape in shapes.items()}
    if not (values["focal"] > 0).all():
        raise record.sub("focal").fail(cam, f"must be positive, got {values['focal'].tolist()}")
    return Camera(**values)


def pair_keys(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """One int64 per (high, low) pair of non-negative int32s, ordered like the pairs."""
    return high.astype(np.int64) << 32 | low


def image_columns(
    chunk: Chunk, image_prefix: str, cameras: dict[tuple[int, int], str]
) -> dict[str, np.ndarray]:
    """Index columns of some ``images[]`` records, image paths under ``image_prefix``; adds
    the (capture, camera) pairs they use first to ``cameras``, each with its key in the
    camera file.
    """
    columns = {"image_id": chunk.ints("id")}
    for key in ("capture", "camera", "frame_idx", "width", "height"):
        columns[key] = _int32(chunk, key)
    for side in ("width", "height"):
        if not columns[side].all():
            raise chunk.record(int(np.argmin(columns[side]))).fail(side, "must be positive")
    names = chunk.column("file_name")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise chunk.record(j).fail("file_name", "expected a relative image path")
        if os.path.isabs(name) or "\\" in name or ".." in name.split("/"):
            raise chunk.record(j).fail(
                "file_name",
                f"image id {columns['image_id'][j]}: {name!r} leaves the image folder "
                "(absolute, or climbing with '..')",
            )
    paths = [os.path.join(image_prefix, name).encode() for name in names]
    columns["image_path"] = np.asarray(paths, dtype=bytes)
    seq_names = [str(name).encode() for name in chunk.column("seq_name")]
    columns["seq_name"] = np.asarray(seq_names, dtype=bytes)
    has_subject = ["subject" in image for image in chunk.values]  # optional: -1 if absent
    subjects = (
        _int32(chunk, "subject")
        if all(has_subject)
        else [chunk.record(j).int("subject") if has else -1 for j, has in enumerate(has_subject)]
    )
    columns["subject"] = np.asarray(subjects, dtype=np.int32)
    pairs = pair_keys(columns["capture"], columns["camera"])
    _, first = np.unique(pairs, return_index=True)
    keys = chunk.column("camera")
    for j in np.sort(first):  # the camera file names a camera as the data file does
        cameras.setdefault((int(columns["capture"][j]), int(columns["camera"][j])), str(keys[j]))
    return columns


def _int32(chunk: Chunk, key: str) -> np.ndarray:
    """(n,) int32 of :meth:`Chunk.ints` (an index column's dtype)."""
    values = chunk.ints(key)
    if len(values) and values.max() > np.iinfo(np.int32).max:
        raise chunk.record(int(np.argmax(values))).fail(key, "too large for int32")
    return values.astype(np.int32)


def annotation_columns(chunk: Chunk) -> dict[str, np.ndarray]:
    """Columns of some ``annotations[]`` records (hand_type as a row of HAND_TYPE_BITS)."""
    hand_types = chunk.column("hand_type")
    codes = [_HAND_TYPE_CODES.get(t) if isinstance(t, str) else None for t in hand_types]
    if None in codes:
        j = codes.index(None)
        raise chunk.record(j).fail(
            "hand_type", f"expected one of {sorted(HAND_TYPES)}, got {hand_types[j]!r}"
        )
    return {
        "ann_id": chunk.ints("id"),
        "image_id": chunk.ints("image_id"),
        "hand_type": np.asarray(codes, dtype=np.uint8),
        "hand_type_valid": chunk.flags("hand_type_valid"),
        "bbox": _boxes(chunk),
        "joint_valid": chunk.numbers("joint_valid", (NUM_JOINTS,), flags=True).astype(np.uint8),
    }


def _boxes(chunk: Chunk) -> np.ndarray:
    """(n, 4) float32 boxes [x_min, y_min, w, h]; a box without area would be mirrored or
    divide by zero in the crop."""
    boxes = chunk.numbers("bbox", (4,)).astype(np.float32)
    flat = ~(boxes[:, 2:] > 0).all(axis=1)
    if flat.any():
        j = int(np.argmax(flat))
        raise chunk.record(j).fail(
            "bbox",
            f"annotation id {chunk.values[j].get('id')}: width and height must be positive, "
            f"got {boxes[j, 2:].tolist()}",
        )
    return boxes


def world_columns(chunk: Chunk, rows: dict[tuple, int]) -> dict[str, np.ndarray]:
    """``row`` (n,) int64: each joint-file record's row of ``rows`` (keyed by its place),
    and ``world_coord`` (n, 42, 3) float64 mm."""
    return {
        "row": np.asarray([rows[place] for place in chunk.places], dtype=np.int64),
        "world_coord": chunk.numbers("world_coord", (NUM_JOINTS, 3)),
    }
