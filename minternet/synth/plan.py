"""What the synthetic world shows, view by view: captures, sequences and labels (appendix A).

A split is planned as sequences taken from its captures in turn until its image count is
reached. Each capture is a subject (hand shapes, skin tone) with its own dome of cameras;
each frame of a sequence is seen by a few of those cameras, and a view is kept when it
carries a usable label. Per view the labels follow the real files' semantics:
``joint_valid`` is 0 for an absent hand and for joints outside the image;
``hand_type_valid`` is 1 for single-hand frames and, for interacting ones, only when more
than 30 joints are valid; ``bbox`` is the box of the valid joints' projections enlarged 1.2
times about its centre, as in the real annotations.

Everything random is drawn from generators seeded by (seed, split, capture, sequence), so a
plan is the same however, and in whatever order, its parts are computed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minternet.camera import Camera
from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import render, scene
from minternet.synth.cameras import CameraSpec, sample_cameras
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
class PlannedSequence:
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
class CaptureRig:
    """A capture's subject (hand shapes, skin) and its dome of cameras."""

    shapes: tuple[Any, Any]
    skin: np.ndarray
    cameras: list[CameraSpec]
    background_seed: int


def capture_rig(spec: SynthSpec, split: str, capture: int) -> CaptureRig:
    """The rig of one capture; the same numbers whenever it is asked for."""
    rng = _rng(spec, _split_key(split), capture)
    right = sample_shape(rng)
    shapes = (right, sample_shape(rng, scale=right.scale))  # one subject: hands of one size
    skin = render.skin_tone(rng)
    cameras = sample_cameras(rng, spec.cameras, np.zeros(3))
    return CaptureRig(shapes, skin, cameras, int(rng.integers(2**31)))


def plan_split(spec: SynthSpec, split: str) -> Iterator[PlannedSequence]:
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
            yield PlannedSequence(
                split, capture, seq, name, kind, next_frame[capture], motion, views
            )
            next_frame[capture] += spec.frames


def render_view(
    spec: SynthSpec, rig: CaptureRig, motion: scene.Sequence, frame: int, cam: int
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
