"""Synthetic sequences: InterHand's conventions, physics, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minternet.skeleton import BONES
from minternet.synth.cameras import sample_cameras
from minternet.synth.hand import hand_capsules, palm_normal, sample_shape
from minternet.synth.scene import (
    CLEARANCE,
    INTERACTIONS,
    PLACEHOLDER,
    SINGLE_MOTIONS,
    capsule_gaps,
    sample_sequence,
    segment_distance,
)

FRAMES = 40
LOCAL_BONES = np.array(BONES[:20])


def subject(seed: int):
    rng = np.random.default_rng(seed)
    return rng, sample_shape(rng), sample_shape(rng)


def sequence(seed: int, kind: str, frames: int = FRAMES):
    rng, right, left = subject(seed)
    return sample_sequence(rng, kind, frames, right, left)


def hands(joint_world: np.ndarray) -> np.ndarray:
    """(T, 42, 3) -> (T, 2, 21, 3), [right, left]."""
    return joint_world.reshape(len(joint_world), 2, 21, 3)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(
        joints[..., LOCAL_BONES[:, 1], :] - joints[..., LOCAL_BONES[:, 0], :], axis=-1
    )


@pytest.fixture(scope="module")
def interacting() -> list:
    """Interacting sequences, enough seeds that every kind of interaction occurs."""
    out = []
    for seed in range(30):
        rng, right, left = subject(seed)
        out.append((sample_sequence(rng, "interacting", FRAMES, right, left), right, left))
    return out


def brute_force_distance(p0, p1, q0, q1, steps: int = 400) -> float:
    s = np.linspace(0, 1, steps + 1)[:, None]
    p, q = p0 + s * (p1 - p0), q0 + s * (q1 - q0)
    return float(np.linalg.norm(p[:, None] - q[None], axis=-1).min())


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(st.floats(-50, 50), min_size=12, max_size=12),
    degenerate=st.sampled_from(["none", "parallel", "point", "both points", "collinear"]),
)
def test_segment_distance_matches_brute_force(points: list[float], degenerate: str) -> None:
    p0, p1, q0, q1 = np.array(points).reshape(4, 3)
    if degenerate == "parallel":
        q1 = q0 + 0.7 * (p1 - p0)
    elif degenerate == "point":
        q1 = q0.copy()
    elif degenerate == "both points":
        p1, q1 = p0.copy(), q0.copy()
    elif degenerate == "collinear":
        q0, q1 = p0 + 1.3 * (p1 - p0), p0 - 0.4 * (p1 - p0)
    exact = float(segment_distance(p0, p1, q0, q1))
    sampled = brute_force_distance(p0, p1, q0, q1)
    longest = max(np.linalg.norm(p1 - p0), np.linalg.norm(q1 - q0))
    assert exact <= sampled + 1e-9  # never above a distance that is actually attained
    assert sampled - exact <= longest / 400 + 1e-9  # and no further below than the sampling
    assert float(segment_distance(q0, q1, p0, p1)) == pytest.approx(exact, abs=1e-9)


def test_segment_distance_known_cases_and_broadcasting() -> None:
    o, x, y = np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    z = np.array([0, 0, 1.0])
    assert segment_distance(o, x, 2 * z, 2 * z + y) == pytest.approx(2.0)  # skew, crossing
    assert segment_distance(o, x, 3 * x + y, 4 * x + y) == pytest.approx(np.sqrt(5))  # parallel
    assert segment_distance(o, x, -y + 0.5 * x, y + 0.5 * x) == pytest.approx(0.0)  # touching
    many = segment_distance(np.zeros((4, 1, 3)), np.ones((4, 1, 3)), np.zeros((1, 5, 3)) + z, z)
    assert many.shape == (4, 5)


def test_single_hand_sequences_fill_the_absent_hand_with_the_placeholder() -> None:
    for seed in range(12):
        rng, right, left = subject(seed)
        for kind, present in (("right", 0), ("left", 1)):
            seq = sample_sequence(rng, kind, FRAMES, right, left)
            assert seq.joint_world.shape == (FRAMES, 42, 3)
            assert seq.joint_world.dtype == np.float64
            assert seq.present.tolist() == [kind == "right", kind == "left"]
            assert seq.kind == kind and seq.motion in SINGLE_MOTIONS
            joints = hands(seq.joint_world)
            assert (joints[:, 1 - present] == PLACEHOLDER).all()
            assert not (joints[:, present] == PLACEHOLDER).all(axis=-1).any()
            shape = right if kind == "right" else left
            np.testing.assert_allclose(
                bone_lengths(joints[:, present]), np.broadcast_to(shape.lengths, (FRAMES, 20))
            )


def test_interacting_sequences_have_both_hands_with_constant_bones(interacting) -> None:
    for seq, right, left in interacting:
        assert seq.present.tolist() == [True, True] and seq.kind == "interacting"
        joints = hands(seq.joint_world)
        assert not (joints == PLACEHOLDER).all(axis=-1).any()
        for hand, shape in ((0, right), (1, left)):
            np.testing.assert_allclose(
                bone_lengths(joints[:, hand]), np.broadcast_to(shape.lengths, (FRAMES, 20))
            )
    assert {seq.motion for seq, _, _ in interacting} == set(INTERACTIONS)


def test_interacting_hands_touch_but_do_not_interpenetrate(interacting) -> None:
    close_frames = []
    for seq, right, left in interacting:
        joints = hands(seq.joint_world)
        seg_r, rad_r = hand_capsules(joints[:, 0], right)
        seg_l, rad_l = hand_capsules(joints[:, 1], left)
        ratio, gap = capsule_gaps(seg_r, rad_r, seg_l, rad_l)
        assert ratio.min() >= CLEARANCE - 1e-9, seq.motion
        close_frames.append(gap.min(axis=(1, 2)) < 20.0)
    assert np.mean(close_frames) > 0.9


def test_sequences_move_smoothly_around_the_origin(interacting) -> None:
    sequences = [seq for seq, _, _ in interacting]
    for seed in range(10):
        sequences.append(sequence(100 + seed, ("right", "left")[seed % 2]))
    for seq in sequences:
        joints = hands(seq.joint_world)[:, seq.present]
        palm_centres = (joints[..., 20, :] + joints[..., 11, :]) / 2
        assert np.abs(palm_centres.mean(axis=1)).max() <= 60.0 + 1e-6
        assert np.abs(joints).max() < 400.0
        assert np.linalg.norm(np.diff(joints, axis=0), axis=-1).max() < 25.0, seq.motion


def test_hands_are_held_in_front_of_the_body_on_their_own_side() -> None:
    """The forearm (middle MCP -> wrist, on to the elbow) runs back towards the subject (-z)
    and down, out to the hand's own side (+x right, -x left); the fingers rarely point at the
    floor; palms face every way, as the forearm turns."""
    for kind, side in (("right", 1.0), ("left", -1.0)):
        elbow, palm = [], []
        for seed in range(300):
            seq = sequence(seed, kind, 2)
            joints = hands(seq.joint_world)[0, 0 if kind == "right" else 1]
            forearm = joints[20] - joints[11]
            elbow.append(forearm / np.linalg.norm(forearm))
            palm.append(palm_normal(joints, kind))
        elbow, palm = np.array(elbow), np.array(palm)
        # A uniformly turned hand would give 0.5 for each of the first three.
        assert np.mean(elbow[:, 2] < 0) > 0.8  # back towards the body
        assert np.mean(elbow[:, 1] > 0) > 0.65  # and down
        assert np.mean(side * elbow[:, 0] > 0) > 0.6  # on the hand's own side
        assert np.mean(elbow[:, 1] < -0.7) < 0.05  # fingers seldom straight down
        assert (palm[:, 1] > 0.7).any() and (palm[:, 1] < -0.7).any()  # palm down, palm up
        assert np.mean(side * palm[:, 0] < 0) > 0.55  # most often towards the midline


def test_sequences_are_deterministic() -> None:
    for kind in ("right", "left", "interacting"):
        first, again = sequence(3, kind, 20), sequence(3, kind, 20)
        assert first.joint_world.tobytes() == again.joint_world.tobytes()
        assert first.motion == again.motion
        other = sequence(4, kind, 20)
        assert not np.array_equal(first.joint_world, other.joint_world)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        sequence(0, "both", 5)


def test_every_camera_sees_the_hands_in_front_of_it(interacting) -> None:
    cameras = sample_cameras(np.random.default_rng(9), 40, np.zeros(3))
    for seq, _, _ in interacting[:10]:
        for spec in cameras:
            depth = spec.camera.world_to_camera(seq.joint_world)[..., 2]
            assert depth.min() > 200.0
