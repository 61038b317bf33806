"""Sequences of one or two moving hands, and how two of them meet (appendix A).

World frame: millimetres, y pointing down as in InterHand2.6M (its cameras are mounted
upright, so "up" is -y); the hands move around the scene centre at the world origin.
Two interacting hands touch but never pass through each other: no capsule of one
(:func:`~minternet.synth.hand.hand_capsules`) comes closer to one of the other than
:data:`CLEARANCE` times the sum of their radii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minternet.synth.hand import HandShape, forward_kinematics, hand_capsules, rotation_matrix
from minternet.synth.motion import MAX_STEP, keyframe_track, pose_track

PLACEHOLDER = 1.0
"""InterHand stores every joint of an absent hand as [1, 1, 1] mm."""
CLEARANCE = 0.8
"""Two capsules of different hands may not be closer, axis to axis, than this times the sum
of their radii: a little skin may press in, nothing may pass through."""
SINGLE_MOTIONS: dict[str, tuple[str, ...] | None] = {
    "fist": ("fist", "relaxed"),
    "spread": ("spread", "open", "relaxed"),
    "point": ("point", "relaxed"),
    "pinch": ("pinch", "relaxed", "open"),
    "thumbup": ("thumbup", "fist"),
    "grip": ("grip", "open"),
    "claw": ("claw", "spread"),
    "rom": None,  # range of motion: random poses
}
"""Single-hand motion label -> gestures its keyframes cycle through."""


@dataclass(frozen=True)
class Interaction:
    """How the passive hand meets the active one, in the active hand's local frame.

    Both hands cycle through their gestures. The passive hand's fingers and palm normal
    point along ``fingers`` and ``palm`` after a random turn (deg, within ``twist``) about
    ``axis``; its point ``anchor`` (mm at scale 1, right-hand local coordinates) goes to the
    active hand's point ``target``; then it slides along ``push`` from slightly inside to the
    first position where no capsules of the two hands intersect, so that they touch.
    """

    active: tuple[str, ...]
    passive: tuple[str, ...]
    fingers: tuple[float, float, float]
    palm: tuple[float, float, float]
    axis: tuple[float, float, float]
    twist: tuple[float, float]
    anchor: tuple[float, float, float]
    target: tuple[float, float, float]
    push: tuple[float, float, float]


_OPEN = ("open", "relaxed")
INTERACTIONS: dict[str, Interaction] = {
    "pray": Interaction(_OPEN, _OPEN, (0, 1, 0), (0, 0, -1), (0, 0, 1), (-10, 10),
                         (0, 45, 0), (0, 45, 0), (0, 0, 1)),
    "palms": Interaction((*_OPEN, "spread"), (*_OPEN, "spread"), (0, 1, 0), (0, 0, -1),
                          (0, 0, 1), (40, 80), (0, 50, 0), (0, 50, 0), (0, 0, 1)),
    "clasp": Interaction(("hook",), ("hook",), (0, 1, 0), (0, 0, -1), (0, 0, 1), (165, 195),
                          (0, 100, 0), (14, 100, 35), (0, 1, 0)),
    "interlock": Interaction(("lace",), ("claw",), (0, 1, 0), (0, 0, -1), (0, 0, 1), (-15, 10),
                              (0, 72, 0), (-24, 74, 55), (0, 0, 1)),
    "stack": Interaction(_OPEN, _OPEN, (0, 1, 0), (0, 0, 1), (0, 0, 1), (-60, 60),
                          (0, 45, 0), (0, 45, 0), (0, 0, 1)),
    "touch": Interaction(("point",), (*_OPEN, "spread"), (1, 0, 0), (0, -1, 0), (0, 1, 0),
                          (-180, 180), (0, 50, 0), (28, 170, 6), (0, 1, 0)),
}  # fmt: skip
"""Two-hand motion label -> how the hands meet, written for a right active hand:

* pray: palms pressed together, fingers aligned; palms: the same with the fingers crossed;
* clasp: curled fingers hooked into each other, hands pulling apart;
* interlock: two claws facing each other, fingertips meshing;
* stack: one palm resting on the back of the other hand;
* touch: the index tip of "point" (at (28, 170, 6)) on the other palm.

The placements came from a search over relative poses for clear, touching, compact ones."""


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class Sequence:
    """One sequence of frames of one subject.

    joint_world: (T, 42, 3) float64 mm, world; an absent hand's joints are all
    :data:`PLACEHOLDER`. present: (2,) bool, [right, left]. kind: "right", "left" or
    "interacting". motion: a label for the sequence name, e.g. "thumbup" or "clasp".
    """

    joint_world: np.ndarray
    present: np.ndarray
    kind: str
    motion: str


def segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Closest distance between segments p0-p1 and q0-q1; (..., 3) each, broadcast -> (...).

    Minimises |p0 + s dp - q0 - t dq| over s, t in [0, 1]: the unclamped optimum's s is
    clamped, t follows from s, and when t leaves [0, 1] it is clamped and s recomputed. A
    segment of zero length is a point (its parameter stays 0), however short the other is.
    """
    dp, dq, r = p1 - p0, q1 - q0, p0 - q0
    a, e = _dot(dp, dp), _dot(dq, dq)
    b, c, f = _dot(dp, dq), _dot(dp, r), _dot(dq, r)
    p_len, q_len = a > 0, e > 0
    denom = a * e - b * b
    # Parallel segments (denom 0): any s is optimal, take 0 and let the clamps below fix t.
    s = np.where(p_len & q_len & (denom > 0), (b * f - c * e) / np.where(denom > 0, denom, 1), 0)
    s = np.where(p_len & ~q_len, -c / np.where(p_len, a, 1), s)  # q is a point
    s = np.clip(s, 0, 1)
    t = np.where(q_len, (b * s + f) / np.where(q_len, e, 1), 0)
    s_low, s_high = (np.clip(v / np.where(p_len, a, 1), 0, 1) for v in (-c, b - c))
    s = np.where(p_len & (t < 0), s_low, np.where(p_len & (t > 1), s_high, s))
    t = np.clip(t, 0, 1)
    gap = r + s[..., None] * dp - t[..., None] * dq
    return np.sqrt(_dot(gap, gap))


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", u, v)


def capsule_gaps(
    seg_a: np.ndarray, rad_a: np.ndarray, seg_b: np.ndarray, rad_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Axis distance over radius sum, and surface gap (mm), of every pair of capsules.

    seg_a: (..., A, 2, 3), rad_a: (A,); seg_b: (..., B, 2, 3), rad_b: (B,). Returns two
    (..., A, B) arrays; a ratio below :data:`CLEARANCE` is an interpenetration.
    """
    a, b = seg_a[..., :, None, :, :], seg_b[..., None, :, :, :]
    dist = segment_distance(a[..., 0, :], a[..., 1, :], b[..., 0, :], b[..., 1, :])
    total = rad_a[:, None] + rad_b[None, :]
    return dist / total, dist - total


_MIRROR = np.diag([-1.0, 1.0, 1.0])
_SEARCH = (-10.0, 250.0, 8.0, 2.0)
"""mm: start, stop, coarse and fine step of the slide that searches for contact."""
_SMOOTH = 3
"""frames: half window of the running max and mean that smooth the contact positions."""


FOREARM_MEAN = (0.45, 0.6, -1.0)
"""World direction, wrist -> elbow, about which a right forearm is drawn: the subject sits on
the -z side of the scene centre facing +z (so their right is +x, with y down) and holds the
hands up in front, elbows down, back and out to the side."""
FOREARM_SPREAD = 35.0
"""deg: standard deviation of the forearm's angle from :data:`FOREARM_MEAN`."""
WRIST_BEND = 30.0
"""deg: at most this between the hand's axis (wrist -> middle MCP) and the forearm's line."""
FOREARM_ROLL = 135.0
"""deg: the palm turns at most this far either way from facing the body's midline (thumb
up): palm down at -90, palm up at +90, as far as the forearm and shoulder turn."""


def held_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) hand-local -> world rotation of a right hand held up in front of the subject.

    Real hands are filmed on the end of an arm: the forearm leaves the picture towards the
    body, so fingers seldom point down at the floor, and which way the arm runs, together
    with which side of the hand faces the camera, is part of what tells the hands apart.
    Local frame: +y wrist -> middle MCP, +z palmar, +x radial (towards the thumb).
    """
    mean = np.asarray(FOREARM_MEAN) / np.linalg.norm(FOREARM_MEAN)
    tilt = np.radians(rng.normal(0.0, FOREARM_SPREAD, 3))
    elbow = rotation_matrix(tilt - mean * (tilt @ mean)) @ mean  # a turn off the mean line
    bend = rng.normal(size=3)
    bend -= elbow * (bend @ elbow)
    bend *= np.radians(rng.uniform(0.0, WRIST_BEND)) / np.linalg.norm(bend)
    fingers = rotation_matrix(bend) @ -elbow
    medial = np.array([-1.0, 0.0, 0.0]) + fingers * fingers[0]  # -x, made normal to fingers
    palm = rotation_matrix(fingers * np.radians(rng.uniform(-FOREARM_ROLL, FOREARM_ROLL)))
    palm = palm @ (medial / np.linalg.norm(medial))
    return np.stack([np.cross(fingers, palm), fingers, palm], axis=1)


def _wander(
    rng: np.random.Generator, n_frames: int, rot_sd: float, move_sd: float, lever: float
) -> np.ndarray:
    """(n_frames, 6) smooth random [rotation vector (rad), offset (mm)], keys within two
    standard deviations of zero; a point ``lever`` mm out moves at most ~MAX_STEP mm a frame."""
    scale = np.repeat([rot_sd, move_sd], 3)
    return keyframe_track(
        rng,
        n_frames,
        lambda: np.clip(rng.normal(0.0, scale), -2 * scale, 2 * scale),
        lambda d: 1.5 * (lever * np.linalg.norm(d[:3]) + np.linalg.norm(d[3:])) / MAX_STEP,
    )


def _contact(
    joints_a: np.ndarray,
    joints_p: np.ndarray,
    shape_a: HandShape,
    shape_p: HandShape,
    push: np.ndarray,
) -> np.ndarray:
    """(T,) mm: how far to slide the passive hand along ``push`` in each frame.

    Per frame, the first slide (coarse, then fine steps) where the capsules are clear, so
    the hands touch; then a running max and a running mean of equal windows, which keep
    every frame at or beyond its own contact position while removing jumps.
    """
    seg_a, rad_a = hand_capsules(joints_a, shape_a)
    seg_p, rad_p = hand_capsules(joints_p, shape_p)
    start, stop, coarse, fine = _SEARCH

    def clear(frames: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """(F,) frame indices, (F, K) mm slides -> (F, K) bool, no capsules intersect."""
        moved = seg_p[frames, None] + shift[..., None, None, None] * push
        ratio = capsule_gaps(seg_a[frames, None], rad_a, moved, rad_p)[0]
        return ratio.min(axis=(-2, -1)) >= CLEARANCE

    frames = np.arange(len(joints_a))
    first, pending = np.full(len(frames), stop), frames
    for slide in np.arange(start, stop, coarse):  # all frames at once, dropping found ones
        found = clear(pending, np.full((len(pending), 1), slide))[:, 0]
        first[pending[found]] = slide
        pending = pending[~found]
        if not len(pending):
            break
    refine = first[:, None] - coarse + fine * np.arange(1, coarse / fine)
    found = clear(frames, refine)
    first = np.where(found.any(axis=1), refine[frames, np.argmax(found, axis=1)], first)
    pad = np.pad(first, _SMOOTH, mode="edge")
    peak = np.lib.stride_tricks.sliding_window_view(pad, 2 * _SMOOTH + 1).max(axis=1)
    pad = np.pad(peak, _SMOOTH, mode="edge")
    shift = np.lib.stride_tricks.sliding_window_view(pad, 2 * _SMOOTH + 1).mean(axis=1)
    pending = frames  # a smoothed slide can land in a pocket of the search: slide on
    while len(pending):
        pending = pending[~clear(pending, shift[pending, None])[:, 0] & (shift[pending] < stop)]
        shift[pending] += fine
    return shift


def _interacting(
    rng: np.random.Generator,
    spec: Interaction,
    n_frames: int,
    shape_a: HandShape,
    shape_p: HandShape,
) -> np.ndarray:
    """(T, 2, 21, 3) mm: [active right hand, passive left hand] in the active's local frame."""
    pose_a = pose_track(rng, n_frames, spec.active, noise=8.0)
    pose_p = pose_track(rng, n_frames, spec.passive, noise=8.0)
    fingers, palm = np.array(spec.fingers, float), np.array(spec.palm, float)
    twist = np.radians(rng.uniform(*spec.twist)) * np.array(spec.axis, float)
    base = rotation_matrix(twist) @ np.stack([np.cross(fingers, palm), fingers, palm], axis=1)
    jitter = _wander(rng, n_frames, np.radians(5.0), 4.0, 150.0)
    rot = base @ rotation_matrix(jitter[:, :3])
    anchor = _MIRROR @ np.array(spec.anchor) * shape_p.scale  # the passive is a left hand
    offset = np.array(spec.target) * shape_a.scale - rot @ anchor + jitter[:, 3:]
    joints_a = forward_kinematics(shape_a, pose_a, "right")
    joints_p = forward_kinematics(shape_p, pose_p, "left", offset, rot)
    push = np.array(spec.push, float)
    joints_p += _contact(joints_a, joints_p, shape_a, shape_p, push)[:, None, None] * push
    return np.stack([joints_a, joints_p], axis=1)


def sample_sequence(
    rng: np.random.Generator,
    kind: str,
    n_frames: int,
    shape_right: HandShape,
    shape_left: HandShape,
) -> Sequence:
    """A random sequence of ``n_frames`` frames of one subject; ``kind`` is "right", "left" or
    "interacting".

    One hand runs through a single-hand motion (:data:`SINGLE_MOTIONS`), or two meet as in
    :data:`INTERACTIONS`, either hand taking the active part. The (active) hand starts as it is
    held in front of the body (:func:`held_rotation`, mirrored for a left hand), then turns
    and drifts smoothly: the mean of the palm centres stays within 60 mm of the origin along
    each axis.
    """
    if kind not in ("right", "left", "interacting"):
        raise ValueError(f"kind must be 'right', 'left' or 'interacting', got {kind!r}")
    present = np.array([kind != "left", kind != "right"])
    if kind == "interacting":
        motion = list(INTERACTIONS)[rng.integers(len(INTERACTIONS))]
        left_acts = bool(rng.random() < 0.5)
        # A left-handed scene is the mirror image of a right-handed one with the roles swapped.
        shapes = (shape_left, shape_right) if left_acts else (shape_right, shape_left)
        local = _interacting(rng, INTERACTIONS[motion], n_frames, *shapes)
    else:
        motion = list(SINGLE_MOTIONS)[rng.integers(len(SINGLE_MOTIONS))]
        poses = pose_track(rng, n_frames, SINGLE_MOTIONS[motion])
        shape = shape_right if kind == "right" else shape_left
        local = forward_kinematics(shape, poses, kind)[:, None]
        left_acts = False
    palm_centres = (local[..., 20, :] + local[..., 11, :]) / 2  # (T, H, 3)
    path = _wander(rng, n_frames, 0.25, 30.0, 200.0)
    rot = held_rotation(rng) @ rotation_matrix(path[:, :3])
    if kind == "left":  # a left hand's local frame is mirrored, and so is its arm
        rot = _MIRROR @ rot @ _MIRROR
    centred = local - palm_centres.mean(axis=1)[:, None, None]
    world = np.einsum("tij,thkj->thki", rot, centred) + path[:, None, None, 3:]
    if left_acts:
        world = world[:, ::-1] @ _MIRROR
    joint_world = np.full((n_frames, 2, 21, 3), PLACEHOLDER)
    joint_world[:, present] = world
    return Sequence(joint_world.reshape(n_frames, 42, 3), present, kind, motion)
