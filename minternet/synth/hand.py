"""An articulated hand in InterHand2.6M's 21-joint order, with a capsule volume (appendix A).

Hand-local frame (mm, wrist at the origin) of a RIGHT hand, right-handed::

    x  towards the thumb (radial side)     y  wrist -> middle MCP     z  out of the palm

A LEFT hand is its mirror image: its local coordinates are the right hand's with x negated,
so the same pose gives ``left_local = right_local * (-1, 1, 1)``. World joints are
``wrist_rotation @ local + wrist_position`` for either side, hence mirroring a whole right
hand through the world plane x = 0 gives the left hand with the same pose, the wrist at
``M @ position`` and rotation ``M @ rotation @ M`` (M = diag(-1, 1, 1), still a rotation).

Pose: :data:`POSE_NAMES`, degrees. Flexion turns a finger from +y towards +z (palmar).
Bone lengths are constant per subject (:class:`HandShape`); only the pose moves, as
:mod:`minternet.synth.motion` drives it.
"""

from __future__ import annotations

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


SLEEVE_LENGTH = 200.0
"""mm at scale 1: the sleeve that carries the forearm on out of the picture, towards the body."""


def sleeve_capsule(segments: np.ndarray, shape: HandShape) -> tuple[np.ndarray, np.ndarray]:
    """The sleeve beyond the forearm stub, drawn but not part of the collision volume.

    segments: (..., 25, 2, 3) mm from :func:`hand_capsules`. Returns (..., 1, 2, 3) mm and
    (1,) mm: from the stub's end on along its axis, a little wider than the forearm.
    """
    start, end = segments[..., 24, 0, :], segments[..., 24, 1, :]
    step = end - start
    step *= SLEEVE_LENGTH * shape.scale / np.linalg.norm(step, axis=-1, keepdims=True)
    return np.stack([end, end + step], axis=-2)[..., None, :, :], np.array([1.4 * shape.radii[20]])


def palm_normal(joints: np.ndarray, side: str) -> np.ndarray:
    """(..., 3) unit normal out of the palm, from the wrist and the index and pinky MCPs of
    ``joints`` ((..., 21, 3), local joint order, any frame); its sign comes from ``side``
    ("right" or "left"), since a left hand is a mirror image."""
    joints = np.asarray(joints, dtype=np.float64)
    wrist = joints[..., 20, :]
    normal = np.cross(joints[..., 7, :] - wrist, joints[..., 19, :] - wrist)
    normal *= 1.0 if side == "right" else -1.0
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


def palmar_directions(joints: np.ndarray, side: str) -> np.ndarray:
    """(..., 26, 3) unit vectors: the way the palm side of each rendered capsule faces.

    joints: (..., 21, 3) mm, one hand in local joint order; side: "right" or "left".
    Capsules as :func:`hand_capsules` plus :func:`sleeve_capsule`. The palm's capsules face
    along :func:`palm_normal`; each finger bone carries it on by the smallest rotation that
    turns the previous bone onto it, which for a hinge is exactly its flexion.
    """
    joints = np.asarray(joints, dtype=np.float64)
    wrist = joints[..., 20, :]
    normal = palm_normal(joints, side)
    out = np.repeat(normal[..., None, :], 26, axis=-2)
    for base in range(0, 20, 4):  # joints base+3 (MCP) .. base (tip); bone k ends at joint k
        previous = joints[..., base + 3, :] - wrist
        previous /= np.linalg.norm(previous, axis=-1, keepdims=True)
        facing = normal - np.sum(normal * previous, axis=-1, keepdims=True) * previous
        out[..., base + 3, :] = facing
        for child in (base + 2, base + 1, base):
            bone = joints[..., child, :] - joints[..., child + 1, :]
            bone /= np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-9)
            # The rotation taking unit a onto unit b maps v (v . a = 0) to
            # v - (v . b) / (1 + a . b) (a + b).
            cos = np.sum(previous * bone, axis=-1, keepdims=True)
            along = np.sum(facing * bone, axis=-1, keepdims=True)
            facing = facing - along / np.maximum(1.0 + cos, 1e-6) * (previous + bone)
            out[..., child, :] = facing
            previous = bone
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-9)


def dressed_hand(
    joints: np.ndarray, shape: HandShape, side: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Everything a hand is drawn with, in the frame of ``joints`` ((21, 3) mm, local joint
    order): capsules (26, 2, 3) mm, :func:`hand_capsules` then :func:`sleeve_capsule`; radii
    (26,) mm; and each capsule's palm-side direction (26, 3) (:func:`palmar_directions`)."""
    segments, radii = hand_capsules(joints, shape)
    sleeve, sleeve_radius = sleeve_capsule(segments, shape)
    return (
        np.concatenate([segments, sleeve], axis=-3),
        np.concatenate([radii, sleeve_radius]),
        palmar_directions(joints, side),
    )
