"""The articulated synthetic hand: bone lengths, limits, mirror symmetry, real proportions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minternet import InterHandDataset
from minternet.skeleton import BONES, HAND_OF_JOINT
from minternet.synth.hand import (
    BONE_LENGTHS,
    LIMITS,
    POSE_NAMES,
    forward_kinematics,
    hand_capsules,
    mean_shape,
    rotation_matrix,
    sample_shape,
)
from minternet.synth.motion import GESTURES, sample_pose

LOCAL_BONES = np.array(BONES[:20])  # (parent, child) of one hand, child k = bone k
MIRROR = np.diag([-1.0, 1.0, 1.0])
SEEDS = st.integers(0, 2**32 - 1)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (..., 20) mm, indexed by the bone's child joint."""
    return np.linalg.norm(
        joints[..., LOCAL_BONES[:, 1], :] - joints[..., LOCAL_BONES[:, 0], :], axis=-1
    )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    return rotation_matrix(rng.normal(size=3))


def real_hands(samples_dir: Path) -> list[tuple[str, str, np.ndarray]]:
    """(sequence, side, (21, 3) mm) for every fully annotated hand of the real frames."""
    index = InterHandDataset(samples_dir).index
    hands = []
    rows = zip(index["seq_name"], index["joint_world"], index["joint_valid"], strict=True)
    for seq, joints, valid in rows:
        for hand, side in enumerate(("right", "left")):
            joint = np.asarray(HAND_OF_JOINT) == hand
            if valid[joint].all():
                hands.append((seq.decode(), side, joints[joint].astype(np.float64)))
    return hands


def curl_handedness(joints: np.ndarray) -> float:
    """Sign of a curled hand's chirality: + for a right hand, - for a left one.

    The normal (index MCP - pinky MCP) x (middle MCP - wrist) points out of the palm of a
    right hand and out of the back of a left hand; curled fingertips lie on the palm side.
    """
    normal = np.cross(joints[7] - joints[19], joints[11] - joints[20])
    tips, mcps = joints[[4, 8, 12, 16]].mean(axis=0), joints[[7, 11, 15, 19]].mean(axis=0)
    return float(np.sign(normal @ (tips - mcps)))


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS, side=st.sampled_from(["right", "left"]))
def test_bone_lengths_are_the_shapes_for_any_pose(seed: int, side: str) -> None:
    rng = np.random.default_rng(seed)
    shape = sample_shape(rng)
    pose = rng.uniform(LIMITS[:, 0], LIMITS[:, 1], (8, len(POSE_NAMES)))  # not just plausible
    joints = forward_kinematics(shape, pose, side, rng.normal(0, 300, 3), random_rotation(rng))
    np.testing.assert_allclose(
        bone_lengths(joints), np.broadcast_to(shape.lengths, (8, 20)), rtol=1e-12
    )


def test_batched_kinematics_equals_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    shape, poses = sample_shape(rng), np.stack([sample_pose(rng) for _ in range(5)])
    positions, rotations = (
        rng.normal(0, 100, (5, 3)),
        np.stack([random_rotation(rng) for _ in range(5)]),
    )
    batched = forward_kinematics(shape, poses, "left", positions, rotations)
    for k in range(5):
        single = forward_kinematics(shape, poses[k], "left", positions[k], rotations[k])
        np.testing.assert_allclose(batched[k], single, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS)
def test_left_hand_is_the_mirror_image_of_the_right(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape, pose = sample_shape(rng), sample_pose(rng)
    position, rotation = rng.normal(0, 300, 3), random_rotation(rng)
    right = forward_kinematics(shape, pose, "right", position, rotation)
    left = forward_kinematics(shape, pose, "left", MIRROR @ position, MIRROR @ rotation @ MIRROR)
    np.testing.assert_allclose(left, right @ MIRROR, atol=1e-9)
    # In the hand's own frame the mirror is a plain x flip.
    np.testing.assert_allclose(
        forward_kinematics(shape, pose, "left"), forward_kinematics(shape, pose, "right") @ MIRROR
    )
    assert np.linalg.det(MIRROR @ rotation @ MIRROR) == pytest.approx(1.0)


def test_chirality_matches_the_real_hands(samples_dir: Path) -> None:
    shape = mean_shape()
    for side, sign in (("right", 1.0), ("left", -1.0)):
        for name in ("fist", "grip", "relaxed", "thumbup"):
            assert curl_handedness(forward_kinematics(shape, GESTURES[name], side)) == sign
    # The real right hand of 0007_thumbup_normal and left hand of 0115_rocker_backside are curled.
    curled = {
        side: curl_handedness(joints)
        for seq, side, joints in real_hands(samples_dir)
        if seq in ("0007_thumbup_normal", "0115_rocker_backside")
    }
    assert curled == {"left": -1.0, "right": 1.0}


def test_right_thumb_is_on_the_index_side() -> None:
    joints = forward_kinematics(mean_shape(), GESTURES["open"], "right")
    assert joints[0, 0] > joints[4, 0] > joints[8, 0] > joints[12, 0] > joints[16, 0]
    assert joints[20] == pytest.approx(np.zeros(3))


def test_bone_constants_are_within_15_percent_of_the_real_hands(samples_dir: Path) -> None:
    hands = real_hands(samples_dir)
    assert len(hands) == 6
    real = np.mean([bone_lengths(joints) for _, _, joints in hands], axis=0)
    np.testing.assert_allclose(BONE_LENGTHS, real, rtol=0.15)
    np.testing.assert_allclose(mean_shape().lengths, real, rtol=0.15)


def test_shapes_vary_within_bounds_and_are_deterministic() -> None:
    shapes = [sample_shape(np.random.default_rng(s)) for s in range(300)]
    scales = np.array([s.scale for s in shapes])
    assert 0.85 <= scales.min() < 0.9 and 1.1 < scales.max() <= 1.15
    for shape in shapes:
        ratio = shape.lengths / (BONE_LENGTHS * shape.scale)
        assert (np.abs(ratio - 1) <= 0.06 + 1e-12).all()
    again = sample_shape(np.random.default_rng(7))
    np.testing.assert_array_equal(again.lengths, shapes[7].lengths)
    assert sample_shape(np.random.default_rng(3), scale=1.0).scale == 1.0


def test_fist_is_more_compact_than_an_open_hand() -> None:
    shape = mean_shape()

    def reach(name: str) -> np.ndarray:
        joints = forward_kinematics(shape, GESTURES[name], "right")
        return np.linalg.norm(joints[[0, 4, 8, 12, 16]] - joints[20], axis=1)

    fist, open_hand = reach("fist"), reach("open")
    assert (fist[1:] < 0.65 * open_hand[1:]).all()  # every finger curls in
    assert fist.mean() < 0.7 * open_hand.mean()
    pointing = reach("point")
    assert (
        pointing[1] == pytest.approx(open_hand[1]) and (pointing[2:] < 0.65 * open_hand[2:]).all()
    )


def test_pinch_brings_thumb_and_index_tips_together() -> None:
    joints = forward_kinematics(mean_shape(), GESTURES["pinch"], "right")
    assert np.linalg.norm(joints[0] - joints[4]) < 15.0
    open_hand = forward_kinematics(mean_shape(), GESTURES["open"], "right")
    assert np.linalg.norm(open_hand[0] - open_hand[4]) > 60.0


def test_capsules_cover_every_bone_and_close_the_palm() -> None:
    rng = np.random.default_rng(5)
    shape = sample_shape(rng)
    joints = forward_kinematics(
        shape, GESTURES["relaxed"], "right", rng.normal(0, 50, 3), random_rotation(rng)
    )
    segments, radii = hand_capsules(joints, shape)
    assert segments.shape == (25, 2, 3) and radii.shape == (25,)
    np.testing.assert_allclose(segments[:20, 0], joints[LOCAL_BONES[:, 0]])
    inner = np.arange(20) % 4 != 0
    np.testing.assert_allclose(segments[:20][inner, 1], joints[LOCAL_BONES[inner, 1]])
    # A fingertip capsule's end ball reaches exactly to the annotated tip.
    tips = np.arange(0, 20, 4)
    reach = np.linalg.norm(segments[tips, 1] - joints[tips], axis=1)
    np.testing.assert_allclose(reach, shape.radii[tips])
    scale = shape.radii[20] / mean_shape().radii[20]
    finger_radii = radii[4:20].reshape(4, 4)[:, :3] / scale  # index..pinky phalanges
    assert 6.0 <= finger_radii.min() and finger_radii.max() <= 10.5
    assert radii[:3].mean() > finger_radii.mean()  # thumb thicker than the fingers
    assert radii[[3, 7, 11, 15, 19]].min() > finger_radii.max()  # palm thicker still
    batched, _ = hand_capsules(np.stack([joints, joints]), shape)
    np.testing.assert_allclose(batched[1], segments)
