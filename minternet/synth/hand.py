"""An articulated hand in InterHand2.6M's 21-joint order, with a capsule volume (appendix A).

Hand-local frame (mm, wrist at the origin) of a RIGHT hand, right-handed::

    x  towards the thumb (radial side)     y  wrist -> middle MCP     z  out of the palm

A LEFT hand is its mirror image: its local coordinates are the right hand's with x negated,
so the same pose gives ``left_local = right_local * (-1, 1, 1)``. World joints are
``wrist_rotation @ local + wrist_position`` for either side, hence mirroring a whole right
hand through the world plane x = 0 gives the left hand with the same pose, the wrist at
``M @ position`` and rotation ``M @ rotation @ M`` (M = diag(-1, 1, 1), still a rotation).

Pose: :data:`POSE_NAMES`, degrees. Flexion turns a finger from +y towards +z (palmar).
Bone lengths are constant per subject (:class:`HandShape`); only the pose moves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BONE_LENGTHS = np.array([
    27.7, 31.2, 37.0, 38.2,  # thumb4..thumb1: ending at tip, IP, MCP, CMC (from the wrist)
    21.9, 24.7, 41.2, 85.9,  # index
    22.3, 29.0, 42.7, 84.4,  # middle
    21.5, 26.9, 39.0, 80.4,  # ring
    18.8, 19.5, 29.9, 77.3,  # pinky
])  # fmt: skip
"""(20,) mm, length of the bone ending at local joint k (its parent is skeleton.PARENTS[k]).
Means of the six fully annotated hands of the four real sample frames, both sides pooled."""

_MCP_DIRECTIONS = np.array([
    [0.571, 0.593, 0.568],  # thumb1 (CMC): radial and well palmar of the wrist
    [0.276, 0.958, 0.074],
    [0.0, 1.0, 0.0],  # the middle MCP defines +y
    [-0.269, 0.963, 0.017],
    [-0.517, 0.852, 0.082],
])  # fmt: skip
_MCP_DIRECTIONS = _MCP_DIRECTIONS / np.linalg.norm(_MCP_DIRECTIONS, axis=1, keepdims=True)
"""(5, 3) unit directions wrist -> joint 1 per finger: the mean over the same six real hands
(rounded, then made unit length again)."""

_REST_YAW = np.array([3.0, 1.0, -2.0, -8.0])
"""deg, towards +x, of index..pinky at zero pose: the nearly parallel fingers of a flat
real hand (0266_dh_pray). Abduction spreads from here (sign per finger in _SPREAD_SIGN)."""
_SPREAD_SIGN = np.array([1.0, 1.0, -1.0, -1.0])

JOINT_RADII = np.array([
    9.0, 10.0, 11.0, 14.0,  # thumb: thicker than the fingers, a fleshy base (thenar)
    7.5, 8.5, 9.5, 11.0,
    7.5, 8.5, 9.5, 11.0,
    7.0, 8.0, 9.0, 10.5,
    6.5, 7.5, 8.0, 10.0,
    18.0,  # wrist: with the MCP radii, palm capsules of ~14 mm, a ~28 mm thick palm
])  # fmt: skip
"""(21,) mm, half thickness of the hand at each joint for a scale-1 subject."""
FOREARM_LENGTH = 120.0
"""mm at scale 1: a forearm stub behind the wrist, so renders are not floating hands."""

POSE_LIMITS: dict[str, tuple[float, float]] = {
    "index_mcp_flex": (-15.0, 90.0),
    "index_mcp_abd": (-10.0, 20.0),  # + spreads away from the middle finger
    "index_pip": (0.0, 110.0),
    "index_dip": (0.0, 90.0),
    "middle_mcp_flex": (-15.0, 90.0),
    "middle_mcp_abd": (-10.0, 10.0),  # + towards the thumb
    "middle_pip": (0.0, 110.0),
    "middle_dip": (0.0, 90.0),
    "ring_mcp_flex": (-15.0, 90.0),
    "ring_mcp_abd": (-10.0, 20.0),
    "ring_pip": (0.0, 110.0),
    "ring_dip": (0.0, 90.0),
    "pinky_mcp_flex": (-15.0, 90.0),
    "pinky_mcp_abd": (-10.0, 25.0),
    "pinky_pip": (0.0, 110.0),
    "pinky_dip": (0.0, 90.0),
    "thumb_cmc_flex": (-20.0, 50.0),  # + sweeps the metacarpal across the palm
    "thumb_cmc_abd": (-10.0, 70.0),  # + lifts it palmar, out of the palm plane
    "thumb_cmc_rot": (-30.0, 50.0),  # + rolls it about its axis, pad from the index to the front
    "thumb_mcp": (-10.0, 70.0),
    "thumb_ip": (-20.0, 85.0),
}
"""Anatomical range of every pose parameter, degrees, in pose-vector order."""
POSE_NAMES = tuple(POSE_LIMITS)
LIMITS = np.array(list(POSE_LIMITS.values()))
"""(P, 2) deg, [low, high] per parameter; P = 21."""


_GESTURE_TABLE = {  # index..pinky (mcp_flex, mcp_abd, pip, dip), then the thumb's five
    "relaxed": ((15, 3, 20, 10), (20, 0, 25, 12), (25, 3, 30, 15), (30, 5, 35, 15),
                (5, 25, 10, 10, 10)),
    "open":    ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0),
                (0, 5, 0, 0, 0)),
    "spread":  ((-5, 18, 0, 0), (-5, 0, 0, 0), (-5, 15, 0, 0), (-5, 22, 0, 0),
                (-15, 35, 0, -5, -5)),
    "fist":    ((80, 0, 100, 45), (85, 0, 100, 45), (85, 0, 100, 45), (85, 0, 100, 45),
                (0, 40, 15, 50, 60)),
    "point":   ((0, 0, 0, 0), (85, 0, 100, 45), (85, 0, 100, 45), (85, 0, 100, 45),
                (0, 40, 15, 45, 55)),
    "pinch":   ((45, 0, 45, 20), (30, 0, 35, 15), (30, 3, 35, 15), (30, 5, 35, 15),
                (27, 27, 25, 12, 15)),
    "thumbup": ((80, 0, 100, 45), (85, 0, 100, 45), (85, 0, 100, 45), (85, 0, 100, 45),
                (0, 20, 0, 0, 0)),
    "grip":    ((55, 0, 65, 35), (60, 0, 70, 35), (60, 2, 70, 35), (60, 4, 70, 35),
                (5, 40, 15, 30, 30)),
    "hook":    ((55, 0, 65, 35), (60, 0, 70, 35), (60, 2, 70, 35), (60, 4, 70, 35),
                (0, 5, 0, 10, 10)),
    "lace":    ((30, 20, 40, 20), (30, 0, 40, 20), (30, 18, 40, 20), (30, 25, 40, 20),
                (5, 30, 10, 10, 10)),
    "claw":    ((35, 12, 60, 40), (35, 0, 60, 40), (35, 10, 60, 40), (35, 15, 60, 40),
                (5, 40, 15, 20, 20)),
}  # fmt: skip
GESTURES: dict[str, np.ndarray] = {
    name: np.concatenate(rows).astype(np.float64) for name, rows in _GESTURE_TABLE.items()
}
"""Named poses (deg) that sequences are built around; all inside :data:`LIMITS`."""


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class HandShape:
    """One subject's hand, fixed through its sequences.

    lengths: (20,) mm, the bone ending at local joint k. radii: (21,) mm, half the hand's
    thickness at each joint. scale: overall size relative to the mean real hand.
    """

    lengths: np.ndarray
    radii: np.ndarray
    scale: float


def mean_shape() -> HandShape:
    """The mean real hand: scale 1, no jitter."""
    return HandShape(BONE_LENGTHS.copy(), JOINT_RADII.copy(), 1.0)


def sample_shape(rng: np.random.Generator, scale: float | None = None) -> HandShape:
    """A random subject: scale in [0.85, 1.15] (or ``scale``; one person's two hands should
    share it), every bone within 6 % of scale x mean (sd 2.5 %), thickness within 8 %."""
    scale = float(rng.uniform(0.85, 1.15)) if scale is None else float(scale)
    jitter = np.clip(rng.normal(0.0, 0.025, 20), -0.06, 0.06)
    thickness = rng.uniform(0.92, 1.08)
    return HandShape(BONE_LENGTHS * scale * (1 + jitter), JOINT_RADII * scale * thickness, scale)


def rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis times angle (rad) -> (..., 3, 3) rotation (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec, axis=-1)[..., None, None]
    axis = rotvec / np.maximum(angle[..., 0], 1e-12)
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    cross = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*x.shape, 3, 3)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * (cross @ cross)


def _axis_rot(axis: int | np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(...,) rad about a coordinate axis (0, 1, 2) or a unit vector -> (..., 3, 3)."""
    unit = np.eye(3)[axis] if isinstance(axis, int) else axis
    return rotation_matrix(np.asarray(angle)[..., None] * unit)


def _thumb_frame() -> tuple[np.ndarray, np.ndarray]:
    """Rest frame of the thumb metacarpal (columns x, y, z) and its palmar-abduction axis.

    y runs along the metacarpal of the flat real hand (42 deg radial of the middle finger,
    5 deg palmar); z, where the thumb's MCP and IP flex to, lies in the palm plane on the
    ulnar side: the thumb's pad faces the index finger, not forwards like the fingers' pads.
    """
    y = np.array([0.67, 0.74, 0.09]) / np.linalg.norm([0.67, 0.74, 0.09])
    z = np.cross([0.0, 0.0, 1.0], y)
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1), -z  # abducting about -z lifts y to +z


_THUMB_REST, _THUMB_ABD_AXIS = _thumb_frame()


def forward_kinematics(
    shape: HandShape,
    pose: np.ndarray,
    side: str,
    wrist_position: np.ndarray | None = None,
    wrist_rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Joints of one hand in InterHand's local order (tips first, wrist last).

    pose: (..., P) deg. side: "right" or "left". wrist_position: (..., 3) mm, world (default
    origin). wrist_rotation: (..., 3, 3), hand-local -> world (default identity).
    Returns (..., 21, 3) float64 mm, world space.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    angles = np.radians(np.asarray(pose, dtype=np.float64))
    lengths = shape.lengths
    joints = np.zeros((*angles.shape[:-1], 21, 3))
    for finger in range(5):
        base = 4 * finger  # local indices base..base+3 are tip, 3, 2, 1 of this finger
        joints[..., base + 3, :] = lengths[base + 3] * _MCP_DIRECTIONS[finger]
        if finger == 0:
            flex, abd, rot, mcp, ip = np.moveaxis(angles[..., 16:21], -1, 0)
            rotation = _axis_rot(2, flex) @ _axis_rot(_THUMB_ABD_AXIS, abd) @ _THUMB_REST
            rotation = rotation @ _axis_rot(1, rot)
            hinges = (mcp, ip)
        else:
            flex, abd, pip, dip = np.moveaxis(angles[..., 4 * finger - 4 : 4 * finger], -1, 0)
            yaw = np.radians(_REST_YAW[finger - 1]) + _SPREAD_SIGN[finger - 1] * abd
            rotation = _axis_rot(2, -yaw) @ _axis_rot(0, flex)
            hinges = (pip, dip)
        for k in range(3):  # bone k runs from joint (base + 3 - k) to joint (base + 2 - k)
            if k:
                rotation = rotation @ _axis_rot(0, hinges[k - 1])
            bone = lengths[base + 2 - k] * rotation[..., :, 1]
            joints[..., base + 2 - k, :] = joints[..., base + 3 - k, :] + bone
    if side == "left":
        joints[..., 0] *= -1
    if wrist_rotation is not None:
        joints = joints @ np.swapaxes(np.asarray(wrist_rotation), -1, -2)
    if wrist_position is not None:
        joints = joints + np.asarray(wrist_position)[..., None, :]
    return joints


def hand_capsules(joints: np.ndarray, shape: HandShape) -> tuple[np.ndarray, np.ndarray]:
    """The hand's volume as capsules, for the renderer and the collision checks.

    joints: (..., 21, 3) mm, one hand in local joint order (any frame). Returns segments
    (..., 25, 2, 3) mm in the same frame and radii (25,) mm:

    * 0-19: the bone ending at local joint k, radius the mean of its two joints' radii (so
      the wrist -> joint-1 bones are the thick palm and thenar); a fingertip capsule stops
      one radius short of the tip joint, so the rendered surface ends at the annotated tip;
    * 20-22: index-middle, middle-ring, ring-pinky MCPs, closing the palm between the bones;
    * 23: thumb CMC -> index MCP, the thenar web;
    * 24: the forearm stub, from the wrist away from the middle MCP.
    """
    joints = np.asarray(joints, dtype=np.float64)
    radii = shape.radii
    child = np.arange(20)
    parent = np.where(child % 4 == 3, 20, child + 1)
    starts, ends = joints[..., parent, :], joints[..., child, :].copy()
    tip_dir = ends[..., ::4, :] - starts[..., ::4, :]  # children 0, 4, .. are the tips
    tip_dir /= np.linalg.norm(tip_dir, axis=-1, keepdims=True)
    ends[..., ::4, :] -= radii[:20:4, None] * tip_dir
    pairs = np.array([(7, 11), (11, 15), (15, 19), (3, 7)])
    forearm = joints[..., 20, :] - joints[..., 11, :]
    forearm *= FOREARM_LENGTH * shape.scale / np.linalg.norm(forearm, axis=-1, keepdims=True)
    segments = np.concatenate(
        [
            np.stack([starts, ends], axis=-2),
            joints[..., pairs, :],
            np.stack([joints[..., 20, :], joints[..., 20, :] + forearm], axis=-2)[..., None, :, :],
        ],
        axis=-3,
    )
    bone_radii = (radii[parent] + radii[child]) / 2
    palm_radii = 0.9 * (radii[pairs[:, 0]] + radii[pairs[:, 1]]) / 2
    return segments, np.concatenate([bone_radii, palm_radii, [1.1 * radii[20]]])


def _clip(pose: np.ndarray) -> np.ndarray:
    return np.clip(pose, LIMITS[:, 0], LIMITS[:, 1])


def sample_pose(rng: np.random.Generator) -> np.ndarray:
    """(P,) deg, a random plausible pose inside :data:`LIMITS`.

    Half the time a named gesture with ~10 deg of noise; otherwise each finger curls by its
    own amount around a shared one (real fingers rarely move independently), the fingers
    share one spread, and DIP follows PIP at about 2/3 of its angle.
    """
    if rng.random() < 0.5:
        name = list(GESTURES)[rng.integers(len(GESTURES))]
        return _clip(GESTURES[name] + rng.normal(0.0, 10.0, len(POSE_NAMES)))
    curl = np.clip(rng.uniform() + rng.normal(0.0, 0.25, 4), 0.0, 1.0)
    spread = rng.uniform(-5.0, 18.0) * np.array([1.0, 0.0, 0.8, 1.2]) + rng.normal(0.0, 3.0, 4)
    pip = 105 * curl + rng.normal(0.0, 8.0, 4)
    fingers = np.stack(
        [-10 + 95 * curl + rng.normal(0.0, 8.0, 4), spread, pip, 0.65 * pip + rng.normal(0, 8, 4)],
        axis=1,
    )
    thumb = LIMITS[16:, 0] + (LIMITS[16:, 1] - LIMITS[16:, 0]) * rng.uniform(0.1, 0.9, 5)
    return _clip(np.concatenate([fingers.ravel(), thumb]))


_TIP_DISTANCE = np.cumsum(BONE_LENGTHS.reshape(5, 4)[:, :3], axis=1)
"""(5, 3) mm, scale 1: distance along each finger from joints 3, 2 and 1 to its tip."""
_LEVER = np.concatenate(
    [_TIP_DISTANCE[1:, [2, 2, 1, 0]].ravel(), _TIP_DISTANCE[0, [2, 2, 2, 1, 0]]]
)
"""(P,) mm: how far the joint each pose parameter turns is from its fingertip, so a change of
d rad moves no joint further than lever * d."""
MAX_STEP = 8.0
"""mm: bound on any joint's per-frame displacement in a :func:`pose_track` of a hand up to
1.25 times the mean size (largest subject scale times largest bone jitter)."""


def _travel_bound(delta: np.ndarray) -> float:
    """mm, bound on any joint's travel for a pose change ``delta`` (deg), scale 1."""
    move = np.abs(np.radians(delta)) * _LEVER
    return float(max(move[:16].reshape(4, 4).sum(axis=1).max(), move[16:].sum()))


def _ease(keys: np.ndarray, spans: np.ndarray, start: int, n_frames: int) -> np.ndarray:
    """Frames ``start .. start + n_frames - 1`` of a smoothstep path through keys (K, D).

    spans: (K - 1,) int frames between consecutive keys. Smoothstep stays inside the box of
    its two keys (so inside any box limits), has zero velocity at every key and a peak step
    of 1.5 x (key difference) / span.
    """
    times = np.concatenate([[0], np.cumsum(spans)])
    frames = np.arange(start, start + n_frames)
    seg = np.clip(np.searchsorted(times, frames, side="right") - 1, 0, len(spans) - 1)
    u = np.clip((frames - times[seg]) / spans[seg], 0.0, 1.0)[:, None]
    return keys[seg] + (3 * u**2 - 2 * u**3) * (keys[seg + 1] - keys[seg])


def keyframe_track(
    rng: np.random.Generator,
    n_frames: int,
    draw: Callable[[], np.ndarray],
    frames_needed: Callable[[np.ndarray], float],
) -> np.ndarray:
    """(n_frames, D) smooth path through random keyframes ``draw()`` (each (D,)).

    Keys are 10-20 frames apart, or ``frames_needed(key difference)`` when more, so callers
    bound the speed; the path starts at a random frame of its first span, not on a key.
    """
    keys, spans = [draw()], []
    while len(keys) < 2 or sum(spans) < n_frames + spans[0]:
        keys.append(draw())
        spans.append(
            max(int(rng.integers(10, 21)), int(np.ceil(frames_needed(keys[-1] - keys[-2]))))
        )
    return _ease(np.array(keys), np.array(spans), int(rng.integers(spans[0])), n_frames)


def pose_track(
    rng: np.random.Generator,
    n_frames: int,
    gestures: tuple[str, ...] | None = None,
    noise: float = 10.0,
) -> np.ndarray:
    """(n_frames, P) deg, smooth motion through random keyframes, always inside the limits.

    Keyframes cycle through ``gestures`` (from a random one, each with ``noise`` deg of
    Gaussian noise) or, when None, are :func:`sample_pose` draws. No joint of a hand up to
    1.25 times the mean size moves more than :data:`MAX_STEP` mm from one frame to the next.
    """
    order = itertools.count(int(rng.integers(len(gestures))) if gestures else 0)

    def draw() -> np.ndarray:
        if not gestures:
            return sample_pose(rng)
        name = gestures[next(order) % len(gestures)]
        return _clip(GESTURES[name] + rng.normal(0.0, noise, len(POSE_NAMES)))

    return keyframe_track(
        rng, n_frames, draw, lambda delta: 1.5 * 1.25 * _travel_bound(delta) / MAX_STEP
    )
