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

import functools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from minternet.camera import Camera
from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import render, scene, studio
from minternet.synth.cameras import CameraSpec, sample_cameras
from minternet.synth.hand import dressed_hand, sample_shape
from minternet.synth.skin import CAPSULE_KINDS, SkinSurface, palm_tone, skin_tone

KIND_CODES = {"right": "rh", "left": "lh", "interacting": "dh"}
"""Sequence-name codes of the three scene kinds; ``hand_type`` is read back from them."""
KIND_CYCLE = ("interacting", "right", "interacting", "left")
"""Sequences take kinds in turn: half interacting, as in InterHand2.6M's train split, every
kind present even in a small split, and every capture showing every kind (see
:func:`sequence_kind`)."""
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
    captures: int = 4
    sequences: int = 20
    frames: int = 10
    cameras: int = 16
    views: int = 3
    jpeg_quality: int = 60
    annotations_only: bool = False

    HELP: ClassVar[dict[str, str]] = {
        "seed": "same seed, same bytes",
        "images": "images in the split",
        "captures": "captures (subjects with their own camera dome) per split",
        "sequences": "sequences per capture, at most",
        "frames": "frames per sequence",
        "cameras": "cameras in each capture's dome",
        "views": "cameras, drawn from the dome, that see each frame",
        "jpeg_quality": "JPEG quality of the images, 1-100",
        "annotations_only": "write only the JSON files (no rendering), e.g. for scale tests",
    }
    """What each setting means, for the command line (``python -m minternet synth``)."""

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


def sequence_kind(seq: int, capture: int, captures: int) -> str:
    """The kind of sequence ``seq`` of ``capture`` (of ``captures``): :data:`KIND_CYCLE`
    stepped once per sequence in writing order, and once more per round of captures when
    their number is even. Without that extra step an even number of captures would give
    each capture only some kinds (with two, one capture all the interacting sequences), and
    a subject's looks would tell which hand is shown.
    """
    step = captures + (captures % 2 == 0)  # odd, so each capture runs through all four
    return KIND_CYCLE[(seq * step + capture) % len(KIND_CYCLE)]


def _rng(spec: SynthSpec, *key: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, *key])


def _split_key(split: str) -> int:
    return zlib.crc32(split.encode())


@dataclass(frozen=True)
class CaptureRig:
    """A capture's subject (hand shapes, skin: (3,) RGB of the backs, sleeve: (3,) RGB of
    the cloth) and its dome of cameras; each camera's backdrop, light, blur and noise level
    are drawn from ``studio_seed`` and its number."""

    shapes: tuple[Any, Any]
    skin: np.ndarray
    sleeve: np.ndarray
    cameras: list[CameraSpec]
    studio_seed: int


def capture_rig(spec: SynthSpec, split: str, capture: int) -> CaptureRig:
    """The rig of one capture; the same numbers whenever it is asked for."""
    rng = _rng(spec, _split_key(split), capture)
    right = sample_shape(rng)
    shapes = (right, sample_shape(rng, scale=right.scale))  # one subject: hands of one size
    skin = skin_tone(rng)
    cameras = sample_cameras(rng, spec.cameras, np.zeros(3))
    studio_seed = int(rng.integers(2**31))
    sleeve = rng.uniform(0.05, 0.8) * rng.uniform(0.4, 1.0, 3)  # drawn last: rigs stay put
    return CaptureRig(shapes, skin, sleeve, cameras, studio_seed)


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
            kind = sequence_kind(seq, capture, spec.captures)
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


@functools.lru_cache(maxsize=128)
def camera_studio(
    studio_seed: int, cam: int, size: tuple[int, int]
) -> tuple[np.ndarray, render.Lighting, float, float]:
    """One camera's studio, the same through a capture: its backdrop ((H, W, 3) uint8,
    read-only), light, blur (px) and noise level (grey levels). Kept for the next views,
    since drawing the backdrop costs more than drawing the hands."""
    backdrop = studio.background(np.random.default_rng([studio_seed, cam]), size)
    backdrop.flags.writeable = False
    rng = np.random.default_rng([studio_seed, cam, 1])
    return (
        backdrop,
        studio.lighting(rng),
        float(rng.uniform(0.5, 1.1)),
        float(rng.uniform(0.5, 2.5)),
    )


def render_view(
    spec: SynthSpec, rig: CaptureRig, motion: scene.Sequence, frame: int, cam: int
) -> render.Render:
    """Frame ``frame`` of ``motion`` seen by camera ``cam`` of the rig.

    Each hand is drawn with its two-sided skin (palm lighter, creases, nails, knuckles) and
    a sleeve beyond the forearm; the sleeve is scenery, not part of the hands' volume.
    """
    spec_cam = rig.cameras[cam]
    to_camera = spec_cam.camera.world_to_camera
    segments, radii, owner, palmar = [], [], [], []
    for hand in np.flatnonzero(motion.present):
        joints = motion.joint_world[frame, hand * JOINTS_PER_HAND : (hand + 1) * JOINTS_PER_HAND]
        seg, rad, sides = dressed_hand(joints, rig.shapes[hand], "right" if hand == 0 else "left")
        segments.append(to_camera(seg))
        radii.append(rad)
        owner.append(np.full(len(rad), hand + 1))
        palmar.append(sides @ spec_cam.camera.camrot.T)  # directions: rotate only
    count = sum(len(r) for r in radii)
    back = np.tile(rig.skin, (count, 1))
    surface = SkinSurface(
        np.concatenate(palmar),
        np.tile(CAPSULE_KINDS, len(radii)),
        back,
        palm_tone(back),
        rig.sleeve,
    )
    size = (spec_cam.width, spec_cam.height)
    background, light, blur, noise = camera_studio(rig.studio_seed, cam, size)
    drawn = render.render_capsules(
        np.concatenate(segments),
        np.concatenate(radii),
        np.concatenate(owner),
        back,
        spec_cam.camera.focal,
        spec_cam.camera.princpt,
        size,
        background,
        light,
        soften=blur,
        surface=surface,
    )
    pose_key = zlib.crc32(motion.joint_world[frame].tobytes())
    rows, cols = np.nonzero(drawn.owner)
    region = None
    if len(rows):  # the hands' box, with a margin for the blur
        region = (slice(max(rows.min() - 3, 0), rows.max() + 4),
                  slice(max(cols.min() - 3, 0), cols.max() + 4))  # fmt: skip
    rng = np.random.default_rng([rig.studio_seed, cam, pose_key])
    image = studio.sensor(drawn.image, rng, noise, region)
    return render.Render(image, drawn.owner, drawn.depth)
