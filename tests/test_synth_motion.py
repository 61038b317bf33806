"""Hand motion: gestures and sampled poses inside the limits, smooth deterministic tracks."""

from __future__ import annotations

import numpy as np
import pytest

from minternet.synth.hand import LIMITS, POSE_NAMES, forward_kinematics, sample_shape
from minternet.synth.motion import GESTURES, MAX_STEP, pose_track, sample_pose


def test_sampled_poses_and_gestures_respect_the_limits() -> None:
    rng = np.random.default_rng(2)
    poses = np.stack([sample_pose(rng) for _ in range(2000)] + list(GESTURES.values()))
    assert poses.shape[1] == len(POSE_NAMES) == len(LIMITS) == 21
    assert (poses >= LIMITS[:, 0]).all() and (poses <= LIMITS[:, 1]).all()
    assert (LIMITS[:, 0] < LIMITS[:, 1]).all()
    # Sampling explores the range rather than sitting on one gesture.
    assert (poses.max(axis=0) - poses.min(axis=0) > 0.5 * (LIMITS[:, 1] - LIMITS[:, 0])).all()


@pytest.mark.parametrize("gestures", [None, ("fist", "spread"), ("pinch", "relaxed", "open")])
def test_pose_track_is_smooth_and_inside_the_limits(gestures: tuple[str, ...] | None) -> None:
    for seed in range(8):
        rng = np.random.default_rng(seed)
        shape = sample_shape(rng, scale=1.15)  # the biggest subjects move the furthest
        track = pose_track(rng, 150, gestures)
        assert track.shape == (150, len(POSE_NAMES))
        assert (track >= LIMITS[:, 0] - 1e-9).all() and (track <= LIMITS[:, 1] + 1e-9).all()
        joints = forward_kinematics(shape, track, "right")
        step = np.linalg.norm(np.diff(joints, axis=0), axis=-1)
        assert step.max() <= MAX_STEP < 15.0
        assert np.ptp(track, axis=0).max() > 20.0  # it does move


def test_pose_track_is_deterministic() -> None:
    first = pose_track(np.random.default_rng(11), 60, ("fist", "open"))
    np.testing.assert_array_equal(
        first, pose_track(np.random.default_rng(11), 60, ("fist", "open"))
    )
    assert not np.array_equal(first, pose_track(np.random.default_rng(12), 60, ("fist", "open")))
