"""The 42-joint InterHand2.6M skeleton (book chapter 1).

Joints 0-20 are the right hand and 21-41 the left hand, in the same order
inside each hand (offset 0 or 21)::

    local 0-3   thumb4, thumb3, thumb2, thumb1     (4 = fingertip, 1 = nearest the palm)
    local 4-7   index4..1
    local 8-11  middle4..1
    local 12-15 ring4..1
    local 16-19 pinky4..1
    local 20    wrist                              (the root of its hand)

This is InterHand2.6M's ``skeleton.txt`` order, not MANO's (wrist first, tip last).
"""

from __future__ import annotations

JOINTS_PER_HAND = 21
NUM_JOINTS = 2 * JOINTS_PER_HAND
HANDS = ("right", "left")
"""Hand order everywhere: joint blocks and hand-type vectors are [right, left]."""

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_LOCAL_NAMES = [f"{finger}{k}" for finger in FINGERS for k in (4, 3, 2, 1)] + ["wrist"]

JOINT_NAMES: tuple[str, ...] = tuple(
    f"{side}_{name}" for side in ("r", "l") for name in _LOCAL_NAMES
)
"""42 names, ``r_thumb4`` ... ``r_wrist``, ``l_thumb4`` ... ``l_wrist``."""

ROOTS = (20, 41)
"""Right wrist, left wrist: the root joint of each hand."""


def _local_parent(local: int) -> int:
    """Parent of a local joint index: tip -> ... -> joint 1 -> wrist; the wrist has none."""
    if local == JOINTS_PER_HAND - 1:
        return -1
    return JOINTS_PER_HAND - 1 if local % 4 == 3 else local + 1


PARENTS: tuple[int, ...] = tuple(
    -1
    if _local_parent(k % JOINTS_PER_HAND) < 0
    else _local_parent(k % JOINTS_PER_HAND) + (k // JOINTS_PER_HAND) * JOINTS_PER_HAND
    for k in range(NUM_JOINTS)
)
"""Parent joint of each of the 42 joints; -1 for the two wrists."""

BONES: tuple[tuple[int, int], ...] = tuple(
    (parent, child) for child, parent in enumerate(PARENTS) if parent >= 0
)
"""The 40 links as (parent, child), wrist -> finger1 -> finger2 -> finger3 -> finger4."""

FLIP_INDEX: tuple[int, ...] = tuple((k + JOINTS_PER_HAND) % NUM_JOINTS for k in range(NUM_JOINTS))
"""Horizontal flip swaps the hands: joint i <-> joint i + 21."""

HAND_OF_JOINT: tuple[int, ...] = tuple(k // JOINTS_PER_HAND for k in range(NUM_JOINTS))
"""0 for right-hand joints, 1 for left-hand joints."""

FINGER_OF_JOINT: tuple[str, ...] = tuple(
    "wrist" if k % JOINTS_PER_HAND == JOINTS_PER_HAND - 1 else FINGERS[(k % JOINTS_PER_HAND) // 4]
    for k in range(NUM_JOINTS)
)
"""The finger each joint belongs to (``"wrist"`` for the roots)."""

FINGER_COLORS: dict[str, str] = {
    "thumb": "#e6194b",
    "index": "#f58231",
    "middle": "#3cb44b",
    "ring": "#4363d8",
    "pinky": "#911eb4",
    "wrist": "#404040",
}
"""One colour per finger, shared by both hands; the hand is told apart by line style."""


def joint_color(k: int) -> str:
    """Colour of joint ``k`` (and of the bone that ends at it)."""
    return FINGER_COLORS[FINGER_OF_JOINT[k]]
