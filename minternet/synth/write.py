"""Writing the synthetic world as an InterHand2.6M v1.0 tree (book appendix A).

Output layout, identical to the real dataset's::

    images/{split}/Capture{c}/{seq_name}/cam{camera}/image{frame_idx}.jpg
    annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d}.json

Per view the labels follow the real files' semantics: ``joint_valid`` is 0 for an absent
hand and for joints outside the image; the joint file keeps world coordinates with the
placeholder ``[1, 1, 1]`` for an absent hand; ``hand_type_valid`` is 1 for single-hand
frames and, for interacting ones, only when more than 30 joints are valid; ``bbox`` is the
box of the valid joints' projections enlarged 1.2 times about its centre.

The JSON is streamed to disk, so ``--annotations-only`` scales to InterHand2.6M's full
size, and everything random is drawn from generators seeded by (seed, split, capture,
sequence), so the same seed writes the same bytes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm.auto import tqdm

from minternet.camera import Camera
from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import render, scene
from minternet.synth.hand import hand_capsules, sample_shape

KIND_CODES = {"right": "rh", "left": "lh", "interacting": "dh"}
"""Sequence-name codes of the three scene kinds; ``hand_type`` is read back from them."""
KIND_CYCLE = ("interacting", "right", "interacting", "left")
"""Sequences take kinds in turn: half interacting, as in InterHand2.6M's train split, and
every kind present even in a small split."""
MIN_VALID_JOINTS = 6
"""Views with fewer valid joints carry no usable label and are skipped (and counted)."""
BBOX_ENLARGE = 1.2
"""The real annotations' box is the valid joints' extent times 1.2 about its centre."""


@dataclass(frozen=True)
class SynthSpec:
    """What to generate. Each split has its own captures (subjects), drawn from ``seed``.

    A split's capacity is captures x sequences x frames x views; it stops at its image count.
    """

    seed: int = 0
    images: dict[str, int] = field(default_factory=lambda: {"train": 800, "val": 120, "test": 120})
    captures: int = 2
    sequences: int = 20
    frames: int = 10
    cameras: int = 16
    views: int = 3
    jpeg_quality: int = 70
    annotations_only: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.views <= self.cameras:
            raise ValueError(f"views ({self.views}) must be between 1 and cameras ({self.cameras})")
        for split, count in self.images.items():
            capacity = self.captures * self.sequences * self.frames * self.views
            if count > capacity:
                raise ValueError(
                    f"{split}: {count} images asked for, but captures x sequences "
                    f"x frames x views = {capacity}"
                )


def view_labels(
    joint_world: np.ndarray, present: np.ndarray, camera: Camera, width: int, height: int
) -> dict[str, Any] | None:
    """The data-file labels of one frame seen by one camera, or None when unusable.

    joint_world: (42, 3) mm, world space; present: (2,) bool, [right, left].
    """
    joint_cam = camera.world_to_camera(joint_world)
    uv = camera.camera_to_pixel(joint_cam)
    inside = (
        (joint_cam[:, 2] > 0)
        & (uv[:, 0] >= 0)
        & (uv[:, 0] <= width - 1)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] <= height - 1)
    )
    valid = inside & np.repeat(present, JOINTS_PER_HAND)
    if valid.sum() < MIN_VALID_JOINTS:
        return None
    lo, hi = uv[valid].min(axis=0), uv[valid].max(axis=0)
    centre, extent = (lo + hi) / 2, (hi - lo) * BBOX_ENLARGE
    interacting = bool(present.all())
    return {
        "bbox": [*(centre - extent / 2).tolist(), *extent.tolist()],
        "joint_valid": valid.astype(int),
        "hand_type_valid": int(not interacting or valid.sum() > 30),
    }


@dataclass
class _Planned:
    """One sequence with the views chosen for it (labels only, no pixels yet)."""

    split: str
    capture: int
    index: int
    name: str
    kind: str
    first_frame: int
    motion: scene.Sequence
    views: list[tuple[int, int, dict[str, Any]]]
    """(frame within the sequence, camera number in the dome, data-file labels)."""


def _rng(spec: SynthSpec, *key: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, *key])


def _split_key(split: str) -> int:
    return zlib.crc32(split.encode())


@dataclass(frozen=True)
class _Rig:
    """A capture's subject (hand shapes, skin) and its dome of cameras."""

    shapes: tuple[Any, Any]
    skin: np.ndarray
    cameras: list[scene.CameraSpec]
    background_seed: int


def capture_rig(spec: SynthSpec, split: str, capture: int) -> _Rig:
    """The rig of one capture; the same numbers whenever it is asked for."""
    rng = _rng(spec, _split_key(split), capture)
    right = sample_shape(rng)
    shapes = (right, sample_shape(rng, scale=right.scale))  # one subject: hands of one size
    skin = render.skin_tone(rng)
    cameras = scene.sample_cameras(rng, spec.cameras, np.zeros(3))
    return _Rig(shapes, skin, cameras, int(rng.integers(2**31)))


def plan_split(spec: SynthSpec, split: str) -> Iterator[_Planned]:
    """The split's sequences in writing order, captures taken in turn, up to its image count."""
    budget = spec.images[split]
    rigs = [capture_rig(spec, split, c) for c in range(spec.captures)]
    next_frame = [0] * spec.captures
    for seq in range(spec.sequences):
        for capture, rig in enumerate(rigs):
            if budget == 0:
                return
            rng = _rng(spec, _split_key(split), capture, seq + 1)
            kind = KIND_CYCLE[(seq * spec.captures + capture) % len(KIND_CYCLE)]
            motion = scene.sample_sequence(rng, kind, spec.frames, *rig.shapes)
            views = []
            for frame in range(spec.frames):
                for cam in rng.choice(spec.cameras, size=spec.views, replace=False):
                    spec_cam = rig.cameras[cam]
                    labels = view_labels(
                        motion.joint_world[frame],
                        motion.present,
                        spec_cam.camera,
                        spec_cam.width,
                        spec_cam.height,
                    )
                    if labels is not None and len(views) < budget:
                        views.append((frame, int(cam), labels))
            budget -= len(views)
            name = f"{seq * spec.captures + capture:04d}_{KIND_CODES[kind]}_{motion.motion}"
            yield _Planned(split, capture, seq, name, kind, next_frame[capture], motion, views)
            next_frame[capture] += spec.frames


def render_view(
    spec: SynthSpec, rig: _Rig, motion: scene.Sequence, frame: int, cam: int
) -> render.Render:
    """Frame ``frame`` of ``motion`` seen by camera ``cam`` of the rig."""
    spec_cam = rig.cameras[cam]
    segments, radii, owner = [], [], []
    for hand in np.flatnonzero(motion.present):
        joints = motion.joint_world[frame, hand * JOINTS_PER_HAND : (hand + 1) * JOINTS_PER_HAND]
        seg, rad = hand_capsules(joints, rig.shapes[hand])
        segments.append(spec_cam.camera.world_to_camera(seg))
        radii.append(rad)
        owner.append(np.full(len(rad), hand + 1))
    radii_all = np.concatenate(radii)
    colors = np.tile(rig.skin, (len(radii_all), 1))
    # A camera's background stays the same through a capture, as in a real studio.
    background = render.background(
        np.random.default_rng([rig.background_seed, cam]), (spec_cam.width, spec_cam.height)
    )
    return render.render_capsules(
        np.concatenate(segments),
        radii_all,
        np.concatenate(owner),
        colors,
        spec_cam.camera.focal,
        spec_cam.camera.princpt,
        (spec_cam.width, spec_cam.height),
        background,
    )


def _render_jpegs(job: tuple[SynthSpec, _Planned]) -> list[bytes]:
    spec, planned = job
    rig = capture_rig(spec, planned.split, planned.capture)
    jpegs = []
    for frame, cam, _ in planned.views:
        image = render_view(spec, rig, planned.motion, frame, cam).image
        image = render.to_grey(image) if rig.cameras[cam].grey else image
        jpegs.append(render.encode_jpeg(image, spec.jpeg_quality))
    return jpegs


def _rendered(
    spec: SynthSpec, plans: Iterator[_Planned], workers: int
) -> Iterator[tuple[_Planned, list[bytes] | None]]:
    """Each planned sequence with its JPEGs (None when only annotations are written)."""
    if spec.annotations_only:
        yield from ((planned, None) for planned in plans)
    elif workers <= 1:
        yield from ((planned, _render_jpegs((spec, planned))) for planned in plans)
    else:
        plans_list = list(plans)  # joints and labels only: small next to the images
        with ProcessPoolExecutor(workers) as pool:
            yield from zip(
                plans_list, pool.map(_render_jpegs, [(spec, p) for p in plans_list]), strict=True
            )


class _JsonArray:
    """Items of one JSON array streamed to a temporary file."""

    def __init__(self, folder: Path) -> None:
        self.file: IO[str] = tempfile.TemporaryFile("w+", dir=folder)
        self.count = 0

    def add(self, text: str) -> None:
        self.file.write(("," if self.count else "") + text)
        self.count += 1

    def copy_to(self, out: IO[str]) -> None:
        self.file.seek(0)
        shutil.copyfileobj(self.file, out)
        self.file.close()


def _num(values: np.ndarray, decimals: int = 4) -> list:
    """Floats rounded (0.1 micrometre, 1e-4 px by default) so the files stay small and stable."""
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def write_split(
    spec: SynthSpec, root: Path, split: str, workers: int = 1, progress: bool = True
) -> dict[str, int]:
    """Write one split under ``root``; returns counts of images by hand type and skipped views."""
    ann_dir = root / "annotations" / split
    ann_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = _JsonArray(ann_dir), _JsonArray(ann_dir)
    joints: dict[int, _JsonArray] = {}
    cameras: dict[str, dict[str, dict[str, list]]] = {}
    counts = dict.fromkeys(KIND_CODES, 0)
    with tqdm(total=spec.images[split], desc=split, unit="img", disable=not progress) as bar:
        for planned, jpegs in _rendered(spec, plan_split(spec, split), workers):
            rig = capture_rig(spec, split, planned.capture)
            _write_sequence(root, split, planned, rig, jpegs, images, annotations, joints, cameras)
            counts[planned.kind] += len(planned.views)
            bar.update(len(planned.views))
    prefix = ann_dir / f"InterHand2.6M_{split}"
    with open(f"{prefix}_data.json", "w") as out:
        out.write('{"images": [')
        images.copy_to(out)
        out.write('], "annotations": [')
        annotations.copy_to(out)
        out.write("]}")
    with open(f"{prefix}_joint_3d.json", "w") as out:
        out.write("{")
        for n, capture in enumerate(sorted(joints)):
            out.write(f'{", " if n else ""}"{capture}": {{')
            joints[capture].copy_to(out)
            out.write("}")
        out.write("}")
    with open(f"{prefix}_camera.json", "w") as out:
        json.dump(cameras, out)
    return counts


def _write_sequence(
    root: Path,
    split: str,
    planned: _Planned,
    rig: _Rig,
    jpegs: list[bytes] | None,
    images: _JsonArray,
    annotations: _JsonArray,
    joints: dict[int, _JsonArray],
    cameras: dict,
) -> None:
    capture, motion = planned.capture, planned.motion
    frame_valid = [[bool(v)] for v in np.repeat(motion.present, JOINTS_PER_HAND)]
    part = joints.setdefault(capture, _JsonArray(root / "annotations" / split))
    for f in range(len(motion.joint_world)):
        record = {
            "world_coord": _num(motion.joint_world[f]),
            "joint_valid": frame_valid,
            "hand_type": planned.kind,
            "hand_type_valid": True,
            "seq": planned.name,
        }
        part.add(f'"{planned.first_frame + f}": {json.dumps(record)}')
    if str(capture) not in cameras:  # like the real file: every camera of the dome
        cameras[str(capture)] = {
            # Rotations keep 9 decimals: 1e-4 would move a joint 1 m away by 0.1 mm.
            key: {
                c.name: _num(getattr(c.camera, key), 9 if key == "camrot" else 4)
                for c in rig.cameras
            }
            for key in ("campos", "camrot", "focal", "princpt")
        }
    for n, (frame, cam, labels) in enumerate(planned.views):
        spec_cam = rig.cameras[cam]
        frame_idx = planned.first_frame + frame
        file_name = f"Capture{capture}/{planned.name}/cam{spec_cam.name}/image{frame_idx}.jpg"
        image_id = images.count
        images.add(
            json.dumps(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": spec_cam.width,
                    "height": spec_cam.height,
                    "capture": capture,
                    "subject": capture,
                    "seq_name": planned.name,
                    "camera": spec_cam.name,
                    "frame_idx": frame_idx,
                }
            )
        )
        annotations.add(
            json.dumps(
                {
                    "id": image_id,
                    "image_id": image_id,
                    "bbox": _num(labels["bbox"]),
                    "joint_valid": [[int(v)] for v in labels["joint_valid"]],
                    "hand_type": planned.kind,
                    "hand_type_valid": labels["hand_type_valid"],
                }
            )
        )
        if jpegs is not None:
            path = root / "images" / split / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpegs[n])


def write_dataset(
    spec: SynthSpec, root: Path | str, workers: int = 1, progress: bool = True
) -> dict[str, dict[str, int]]:
    """Write every split of ``spec`` under ``root``; returns image counts by split and kind."""
    root = Path(root)
    return {split: write_split(spec, root, split, workers, progress) for split in spec.images}
