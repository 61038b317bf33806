"""Reading InterHand2.6M annotations into a compact columnar index (book chapter 1).

Two layouts open the same way:

* the official v1.0 tree: ``annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json``
  with images under ``images/{split}/<file_name>``;
* a flat folder holding one ``*_data.json``, ``*_camera.json`` and ``*_joint_3d.json`` next to
  the images (the layout of the real sample frames).

The three JSON files become one dict of numpy arrays, one row per annotation (see
:data:`INDEX_FIELDS`), cached to an ``.npz`` keyed by the source files' paths, sizes and
mtimes. Numpy arrays hold no per-sample Python objects, so DataLoader workers forked from the
parent share them without copy-on-write blow-up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from minternet.camera import Camera
from minternet.hub import cache_root
from minternet.skeleton import JOINTS_PER_HAND, NUM_JOINTS, ROOTS

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
KINDS = ("data", "camera", "joint_3d")
HAND_TYPES = {"right": (1, 0), "left": (0, 1), "interacting": (1, 1)}
"""``hand_type`` string -> [right, left] bits, as mmpose encodes it."""
INDEX_VERSION = 1
"""Bump when the index's fields or their meaning change, so old caches are rebuilt."""

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


class InterHandFormatError(ValueError):
    """An annotation file is missing, malformed, or has a field of the wrong shape or type."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path, self.field = Path(path), field
        super().__init__(f"{path}: field '{field}': {problem}")


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


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise InterHandFormatError(path, "(file)", f"not valid JSON: {err}") from None


@dataclass(frozen=True)
class _Record:
    """One JSON object and where it sits, so every check can name the file and the field."""

    value: Any
    path: Path
    where: str

    def get(self, key: str) -> Any:
        if not isinstance(self.value, dict) or key not in self.value:
            raise InterHandFormatError(self.path, f"{self.where}.{key}", "missing")
        return self.value[key]

    def sub(self, key: str) -> _Record:
        return _Record(self.get(key), self.path, f"{self.where}.{key}")

    def fail(self, key: str, problem: str) -> InterHandFormatError:
        return InterHandFormatError(self.path, f"{self.where}.{key}", problem)

    def int(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise self.fail(key, f"expected a non-negative integer, got {value!r}")
        return int(value)

    def flag(self, key: str) -> int:
        value = self.get(key)
        if value not in (0, 1):  # True and False compare equal to 1 and 0
            raise self.fail(key, f"expected 0/1, got {value!r}")
        return int(value)

    def array(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """A finite float64 array of ``shape`` (42 x [v] lists are flattened to (42,))."""
        try:
            arr = np.asarray(self.get(key), dtype=np.float64)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected numbers of shape {shape}") from None
        if arr.size != int(np.prod(shape)) or not np.all(np.isfinite(arr)):
            raise self.fail(key, f"expected finite numbers of shape {shape}, got {arr.shape}")
        return arr.reshape(shape)


def _camera(cameras: _Record, capture: int, cam: str) -> Camera:
    """Camera ``cam`` of ``capture`` from the camera file."""
    record = cameras.sub(str(capture))
    shapes = {"campos": (3,), "camrot": (3, 3), "focal": (2,), "princpt": (2,)}
    return Camera(**{name: record.sub(name).array(cam, shape) for name, shape in shapes.items()})


def build_index(files: AnnotationFiles) -> dict[str, np.ndarray]:
    """Read the three files into the arrays of :data:`INDEX_FIELDS` (mmpose semantics).

    Like mmpose, only the first annotation of each image is used (InterHand has one).
    """
    data = _Record(_read_json(files.data), files.data, "")
    cameras = _Record(_read_json(files.camera), files.camera, "")
    joints = _Record(_read_json(files.joint_3d), files.joint_3d, "")
    anns_by_image: dict[int, _Record] = {}
    for i, ann in enumerate(data.get("annotations")):
        ann = _Record(ann, files.data, f"annotations[{i}]")
        anns_by_image.setdefault(ann.int("image_id"), ann)
    cols: dict[str, list] = {k: [] for k in INDEX_FIELDS}
    cam_rows: dict[tuple[int, int], int] = {}
    for i, image in enumerate(data.get("images")):
        image = _Record(image, files.data, f"images[{i}]")
        image_id, capture, frame = image.int("id"), image.int("capture"), image.int("frame_idx")
        if image_id not in anns_by_image:
            raise image.fail("id", f"no annotation has image_id {image_id}")
        ann = anns_by_image[image_id]
        camera = image.int("camera")
        if (capture, camera) not in cam_rows:
            cam_rows[capture, camera] = len(cam_rows)
            cam = _camera(cameras, capture, str(image.get("camera")))
            for name in ("campos", "camrot", "focal", "princpt"):
                cols[f"cam_{name}"].append(getattr(cam, name))
        hand_type = ann.get("hand_type")
        if hand_type not in HAND_TYPES:
            raise ann.fail("hand_type", f"expected one of {sorted(HAND_TYPES)}, got {hand_type!r}")
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise image.fail("file_name", "expected a relative image path")
        valid = ann.array("joint_valid", (NUM_JOINTS,))
        if not np.isin(valid, (0, 1)).all():
            raise ann.fail("joint_valid", "expected 0/1 values")
        for side in ("width", "height"):
            if image.int(side) == 0:
                raise image.fail(side, "must be positive")
            cols[side].append(image.int(side))
        cols["image_path"].append(os.path.join(files.image_prefix, file_name).encode())
        cols["image_id"].append(image_id)
        cols["ann_id"].append(ann.int("id"))
        cols["capture"].append(capture)
        cols["subject"].append(image.int("subject") if "subject" in image.value else -1)
        cols["seq_name"].append(str(image.get("seq_name")).encode())
        cols["camera"].append(camera)
        cols["frame_idx"].append(frame)
        cols["bbox"].append(ann.array("bbox", (4,)))
        cols["hand_type"].append(HAND_TYPES[hand_type])
        cols["hand_type_valid"].append(ann.flag("hand_type_valid"))
        cols["joint_valid"].append(valid)
        frame_joints = joints.sub(str(capture)).sub(str(frame))
        cols["joint_world"].append(frame_joints.array("world_coord", (NUM_JOINTS, 3)))
        cols["camera_row"].append(cam_rows[capture, camera])
    return _derive(cols)


def _derive(cols: dict[str, list]) -> dict[str, np.ndarray]:
    """Turn per-record lists into arrays and add the quantities derived from them."""
    n = len(cols["image_id"])
    index: dict[str, np.ndarray] = {
        "image_path": np.asarray(cols["image_path"], dtype=bytes),
        "seq_name": np.asarray(cols["seq_name"], dtype=bytes),
        "image_id": np.asarray(cols["image_id"], dtype=np.int64),
        "ann_id": np.asarray(cols["ann_id"], dtype=np.int64),
        "bbox": np.asarray(cols["bbox"], dtype=np.float32).reshape(n, 4),
        "hand_type": np.asarray(cols["hand_type"], dtype=np.uint8).reshape(n, 2),
        "hand_type_valid": np.asarray(cols["hand_type_valid"], dtype=np.uint8),
    }
    for key in ("capture", "subject", "camera", "frame_idx", "width", "height", "camera_row"):
        index[key] = np.asarray(cols[key], dtype=np.int32)
    for key, shape in (("campos", (3,)), ("camrot", (3, 3)), ("focal", (2,)), ("princpt", (2,))):
        index[f"cam_{key}"] = np.asarray(cols[f"cam_{key}"], dtype=np.float64).reshape(-1, *shape)
    index["grey"] = (index["camera"] // 10000 == 41).astype(np.uint8)
    rows = index["camera_row"]
    joint_world = np.asarray(cols["joint_world"], dtype=np.float64).reshape(n, NUM_JOINTS, 3)
    offset = joint_world - index["cam_campos"][rows][:, None, :]
    joint_cam = np.einsum("nij,nkj->nki", index["cam_camrot"][rows], offset)  # R (X - C)
    valid = np.asarray(cols["joint_valid"], dtype=np.uint8).reshape(n, 2, JOINTS_PER_HAND)
    # A hand whose wrist is not valid counts as fully invalid (mmpose and the original agree).
    valid = valid * valid[:, :, JOINTS_PER_HAND - 1 :]
    index["joint_valid"] = valid.reshape(n, NUM_JOINTS)
    index["joint_world"] = joint_world.astype(np.float32)
    index["joint_cam"] = joint_cam.astype(np.float32)
    index["focal"] = index["cam_focal"][rows].astype(np.float32)
    index["princpt"] = index["cam_princpt"][rows].astype(np.float32)
    abs_depth = joint_cam[:, ROOTS, 2]
    index["abs_depth"] = abs_depth.astype(np.float32)
    index["rel_root_depth"] = (abs_depth[:, 1] - abs_depth[:, 0]).astype(np.float32)
    index["rel_root_valid"] = index["joint_valid"][:, ROOTS].prod(axis=1).astype(np.uint8)
    return index


def _cache_path(files: AnnotationFiles, cache_dir: Path) -> tuple[Path, str]:
    """The cache file for ``files`` and the key of their current sizes and mtimes."""
    sources = [files.data, files.camera, files.joint_3d]
    where = hashlib.sha1("\n".join(str(p.resolve()) for p in sources).encode()).hexdigest()[:16]
    stats = [(p.stat().st_size, p.stat().st_mtime_ns) for p in sources]
    key = hashlib.sha1(repr((INDEX_VERSION, files.image_prefix, stats)).encode()).hexdigest()
    return cache_dir / f"interhand-{where}.npz", key


def load_index(files: AnnotationFiles, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """The index of ``files``, from the cache when its key matches, else built and cached."""
    cache_path, key = _cache_path(files, cache_dir or cache_root() / "index")
    if cache_path.is_file():
        with np.load(cache_path) as cached:
            if str(cached["_key"]) == key:
                return {k: cached[k] for k in cached.files if k != "_key"}
        log.info("%s: annotation files changed since the cache was made; rebuilding", cache_path)
    index = build_index(files)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename, so a crash never leaves a truncated cache.
    fd, tmp = tempfile.mkstemp(dir=cache_path.parent, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, _key=np.array(key), **index)
    os.replace(tmp, cache_path)
    return index


def read_image(path: Path, width: int, height: int) -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB; grey JPEGs come back with 3 channels."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image named by field 'file_name' not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InterHandFormatError(path, "file_name", "cannot be decoded as an image")
    if bgr.shape[:2] != (height, width):
        # Camera 400412 stores rotated images under a landscape width and height.
        raise InterHandFormatError(
            path,
            "width/height",
            f"data file says {width}x{height}, image is {bgr.shape[1]}x{bgr.shape[0]}",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
