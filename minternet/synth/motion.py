"""How a hand moves: named gestures, random poses and smooth keyframed tracks (appendix A).

Poses are vectors of :data:`~minternet.synth.hand.POSE_NAMES` in degrees, always inside
:data:`~minternet.synth.hand.LIMITS`; joint travel is in millimetres and time in frames.
Every random choice is drawn from a caller's :class:`numpy.random.Generator`, so a seeded
generator gives the same motion, draw for draw.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from minternet.synth.hand import BONE_LENGTHS, LIMITS, POSE_NAMES

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
