"""InterHand2.6M metrics on constructed cases whose values follow by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minternet.metrics import (
    METRIC_KEYS,
    interhand_metrics,
    joint_errors,
    per_finger_mpjpe,
    per_joint_mpjpe,
)

RIGHT, LEFT, BOTH = (1, 0), (0, 1), (1, 1)
FOCAL = np.array([1500.0, 1400.0])
PRINCPT = np.array([170.0, 250.0])
R_WRIST, L_WRIST = 20, 41
NON_WRIST = [k for k in range(42) if k not in (R_WRIST, L_WRIST)]


def make_gt(hand_types: list[tuple[int, int]], seed: int = 0) -> dict[str, np.ndarray]:
    """GT for one sample per hand type: both hands placed about 1 m away, joints within
    8 cm of their wrist, the joints of an absent hand invalid and at the [1, 1, 1]
    placeholder, as the data files store them.
    """
    rng = np.random.default_rng(seed)
    n = len(hand_types)
    wrists = rng.uniform([-150, -150, 800], [150, 150, 1200], size=(n, 2, 3))
    joints = np.repeat(wrists, 21, axis=1) + rng.uniform(-80, 80, size=(n, 42, 3))
    joints[:, [R_WRIST, L_WRIST]] = wrists
    bits = np.array(hand_types, dtype=np.uint8)
    valid = np.repeat(bits, 21, axis=1)
    joints[valid == 0] = 1.0
    return {
        "gt_joint_cam": joints.astype(np.float32),
        "joint_valid": valid,
        "gt_hand_type": bits,
        "hand_type_valid": np.ones(n, dtype=np.uint8),
        "abs_depth": joints[:, [R_WRIST, L_WRIST], 2].astype(np.float32),
        "focal": np.tile(FOCAL, (n, 1)),
        "princpt": np.tile(PRINCPT, (n, 1)),
    }


def project(joints: np.ndarray) -> np.ndarray:
    """Camera mm (N, 42, 3) -> (u, v) px by u = f X / Z + c, plus z = Z - Z of the wrist."""
    uv = FOCAL * joints[..., :2] / joints[..., 2:] + PRINCPT
    wrist_z = np.repeat(joints[:, [R_WRIST, L_WRIST], 2], 21, axis=1)
    return np.concatenate([uv, (joints[..., 2] - wrist_z)[..., None]], axis=-1)


def perfect(gt: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Predictions equal to the GT: projected joints, GT hand type, GT left - right depth."""
    joints = gt["gt_joint_cam"].astype(np.float64)
    return {
        "pred_keypoints": project(joints),
        "pred_hand_type": gt["gt_hand_type"].astype(bool),
        "pred_rel_root_depth": joints[:, L_WRIST, 2] - joints[:, R_WRIST, 2],
    }


def translated(gt: dict[str, np.ndarray], shifts: np.ndarray, joints: list[int]) -> np.ndarray:
    """Predicted keypoints of the GT with ``joints`` moved by shifts (N, 3) mm in 3D."""
    moved = gt["gt_joint_cam"].astype(np.float64).copy()
    moved[:, joints] += shifts[:, None]
    return project(moved)


def metrics(gt: dict, pred: dict, protocol: str = "mmpose") -> dict[str, float]:
    return interhand_metrics(**pred, **gt, protocol=protocol)


def test_perfect_prediction_scores_zero_and_full_handedness() -> None:
    gt = make_gt([RIGHT, LEFT, BOTH, BOTH])
    result = metrics(gt, perfect(gt))
    assert list(result) == list(METRIC_KEYS)
    for key in ("MPJPE_single", "MPJPE_interacting", "MPJPE_all", "MRRPE"):
        assert result[key] == pytest.approx(0.0, abs=1e-3)
    assert result["APh"] == 1.0


def test_depth_offset_gives_the_perspective_error() -> None:
    # z += d keeps (u, v), so X and Y grow with Z: the error is (X d / Z, Y d / Z, d).
    gt = make_gt([BOTH, BOTH, RIGHT])
    pred, d = perfect(gt), 20.0
    pred["pred_keypoints"][:, NON_WRIST, 2] += d
    cam = gt["gt_joint_cam"].astype(np.float64)
    by_hand = d * np.sqrt(1 + (cam[..., 0] ** 2 + cam[..., 1] ** 2) / cam[..., 2] ** 2)
    by_hand[:, [R_WRIST, L_WRIST]] = 0.0
    valid = gt["joint_valid"] > 0
    result = metrics(gt, pred)
    assert result["MPJPE_all"] == pytest.approx(by_hand[valid].mean(), rel=1e-4)
    assert result["MPJPE_single"] == pytest.approx(by_hand[2, :21].mean(), rel=1e-4)


def test_translation_of_non_root_joints_costs_its_length() -> None:
    # Back-projecting a projected point with its true depth recovers it, so each moved
    # joint is off by exactly |t| = 13 mm; the wrists stay at 0 and count: 20 of 21 joints.
    gt = make_gt([BOTH, BOTH])
    pred = perfect(gt)
    pred["pred_keypoints"] = translated(gt, np.array([[3.0, 4.0, 12.0]] * 2), NON_WRIST)
    result = metrics(gt, pred)
    assert result["MPJPE_all"] == pytest.approx(13 * 20 / 21, rel=1e-5)
    errors, mask = joint_errors(pred["pred_keypoints"], *(gt[k] for k in _GEOMETRY))
    assert mask.all() and errors[:, [R_WRIST, L_WRIST]] == pytest.approx(0.0, abs=1e-3)
    assert errors[:, NON_WRIST] == pytest.approx(13.0, rel=1e-5)


_GEOMETRY = ("gt_joint_cam", "joint_valid", "abs_depth", "focal", "princpt")


def test_invalid_joints_and_placeholder_hands_are_excluded() -> None:
    gt = make_gt([RIGHT, LEFT, BOTH])
    gt["joint_valid"][2, 5] = 0  # one annotated joint marked invalid
    pred = perfect(gt)
    pred["pred_keypoints"] = translated(gt, np.array([[0.0, 0.0, 10.0]] * 3), NON_WRIST)
    before = metrics(gt, pred)
    invalid = gt["joint_valid"] == 0
    pred["pred_keypoints"][invalid] += 1e4
    gt["gt_joint_cam"][invalid] = -5e3
    assert metrics(gt, pred) == pytest.approx(before, rel=1e-6)
    # 20 moved of 21 per valid hand, minus the dropped joint: (20 + 20 + 39) * 10 / 83.
    assert before["MPJPE_all"] == pytest.approx(79 * 10 / 83, rel=1e-5)


def test_single_and_interacting_follow_the_gt_hand_type_bits() -> None:
    # The last frame is labelled interacting but has only its right hand annotated: it is
    # still an interacting frame, so its 5 mm errors must not leak into "single".
    gt = make_gt([RIGHT, LEFT, BOTH, BOTH])
    gt["joint_valid"][3, 21:] = 0
    gt["gt_hand_type"][3] = BOTH
    shifts = np.array([[3.0, 4.0, 12.0], [3.0, 4.0, 12.0], [0.0, 0.0, 5.0], [0.0, 3.0, 4.0]])
    pred = perfect(gt)
    pred["pred_keypoints"] = translated(gt, shifts, NON_WRIST)
    result = metrics(gt, pred)
    assert result["MPJPE_single"] == pytest.approx(13 * 20 / 21, rel=1e-5)
    assert result["MPJPE_interacting"] == pytest.approx(5 * 20 / 21, rel=1e-5)
    assert result["MPJPE_all"] == pytest.approx((40 * 13 + 60 * 5) / (42 + 63), rel=1e-5)


def test_mrrpe_uses_the_right_depth_for_both_roots() -> None:
    gt = make_gt([BOTH, BOTH, BOTH])
    pred = perfect(gt)
    assert metrics(gt, pred)["MRRPE"] == pytest.approx(0.0, abs=1e-3)
    gt["abs_depth"][:, 1] += 300.0  # A_L: moves the left hand for MPJPE, never MRRPE
    result = metrics(gt, pred)
    assert result["MRRPE"] == pytest.approx(0.0, abs=1e-3)
    assert result["MPJPE_interacting"] > 1.0


def on_axis_left_wrist(n: int) -> dict[str, np.ndarray]:
    """Interacting frames whose left wrist is on the optical axis (X = Y = 0), so its
    back-projection is (0, 0, depth) whatever the depth.
    """
    gt = make_gt([BOTH] * n)
    gt["gt_joint_cam"][:, L_WRIST, :2] = 0.0
    return gt


def test_mrrpe_of_a_root_depth_error_on_the_optical_axis() -> None:
    gt = on_axis_left_wrist(2)
    pred = perfect(gt)
    pred["pred_rel_root_depth"] = pred["pred_rel_root_depth"] + np.array([7.0, -3.0])
    assert metrics(gt, pred)["MRRPE"] == pytest.approx(5.0, rel=1e-4)
    # The decoded left wrist depth z_41 adds to the root depth.
    pred = perfect(gt)
    pred["pred_keypoints"][:, L_WRIST, 2] = 6.25
    assert metrics(gt, pred)["MRRPE"] == pytest.approx(6.25, rel=1e-4)


def test_mrrpe_needs_interacting_gt_and_both_wrists_but_not_hand_type_valid() -> None:
    gt = make_gt([RIGHT, LEFT, BOTH, BOTH, BOTH])
    gt["gt_joint_cam"][:, L_WRIST, :2] = 0.0
    gt["joint_valid"][3, L_WRIST] = 0  # root-gated: the whole left hand goes
    gt["joint_valid"][3, 21:] = 0
    gt["hand_type_valid"][4] = 0
    pred = perfect(gt)
    pred["pred_rel_root_depth"] = pred["pred_rel_root_depth"] + [100, 100, 4, 100, 8]
    assert metrics(gt, pred)["MRRPE"] == pytest.approx((4 + 8) / 2, rel=1e-4)
    gt["gt_hand_type"][2:] = RIGHT
    assert math.isnan(metrics(gt, pred)["MRRPE"])


def test_handedness_needs_both_bits_over_valid_hand_types() -> None:
    gt = make_gt([RIGHT, LEFT, BOTH, BOTH, RIGHT])
    gt["hand_type_valid"][4] = 0
    pred = perfect(gt)
    pred["pred_hand_type"] = np.array([[1, 0], [1, 1], [1, 1], [0, 1], [0, 1]])
    assert metrics(gt, pred)["APh"] == pytest.approx(2 / 4)
    gt["hand_type_valid"][:] = 0
    assert math.isnan(metrics(gt, pred)["APh"])


def test_original_protocol_averages_per_joint_means() -> None:
    # Right-only frame: 20 joints off by 13 mm. Interacting frame: 40 joints off by 5 mm.
    gt = make_gt([RIGHT, BOTH])
    pred = perfect(gt)
    shifts = np.array([[3.0, 4.0, 12.0], [0.0, 3.0, 4.0]])
    pred["pred_keypoints"] = translated(gt, shifts, NON_WRIST)
    mmpose, original = metrics(gt, pred), metrics(gt, pred, "original")
    assert mmpose["MPJPE_all"] == pytest.approx((20 * 13 + 40 * 5) / 63, rel=1e-5)
    # Per joint: right fingers (13 + 5) / 2, left fingers 5, both wrists 0, over 42 joints.
    assert original["MPJPE_all"] == pytest.approx((20 * 9 + 20 * 5) / 42, rel=1e-5)
    assert original["MPJPE_single"] == pytest.approx(13 * 20 / 21, rel=1e-5)
    assert original["MPJPE_interacting"] == pytest.approx(5 * 20 / 21, rel=1e-5)
    assert original["MRRPE"] == mmpose["MRRPE"] and original["APh"] == mmpose["APh"]


def test_original_protocol_weights_joints_not_pairs() -> None:
    # Frame 0: every right joint valid, fingers off by 13. Frame 1: only thumb4 (joint 0)
    # and the wrist valid, thumb4 off by 5. mmpose: 265 mm over 23 pairs; the original:
    # thumb4 averages (13 + 5) / 2 = 9, then 21 joint means (19 at 13, the wrist 0).
    gt = make_gt([RIGHT, RIGHT])
    gt["joint_valid"][1, 1:20] = 0
    pred = perfect(gt)
    pred["pred_keypoints"] = translated(gt, np.array([[3.0, 4.0, 12.0], [0, 3.0, 4.0]]), NON_WRIST)
    assert metrics(gt, pred)["MPJPE_single"] == pytest.approx(265 / 23, rel=1e-5)
    assert metrics(gt, pred, "original")["MPJPE_single"] == pytest.approx(
        (9 + 19 * 13) / 21, rel=1e-5
    )


def test_an_empty_category_is_nan_in_both_protocols() -> None:
    gt = make_gt([RIGHT, LEFT])
    for protocol in ("mmpose", "original"):
        result = metrics(gt, perfect(gt), protocol)
        assert math.isnan(result["MPJPE_interacting"]) and math.isnan(result["MRRPE"])
        assert result["MPJPE_single"] == pytest.approx(0.0, abs=1e-3)


def test_per_joint_and_per_finger_breakdowns() -> None:
    gt = make_gt([BOTH, BOTH, RIGHT])
    pred = perfect(gt)
    right_index = [4, 5, 6, 7]
    pred["pred_keypoints"] = translated(gt, np.array([[3.0, 4.0, 12.0]] * 3), right_index)
    errors, mask = joint_errors(pred["pred_keypoints"], *(gt[k] for k in _GEOMETRY))
    assert np.array_equal(mask, gt["joint_valid"] > 0)
    assert np.isnan(errors[2, 21:]).all()  # the absent left hand of the right-only frame

    per_joint = per_joint_mpjpe(errors, mask)
    expected = np.zeros(42)
    expected[right_index] = 13.0
    assert per_joint.shape == (42,) and per_joint == pytest.approx(expected, abs=1e-3)

    # Pooled over hands: 12 right index pairs at 13 mm and 8 left ones at 0.
    pooled = per_finger_mpjpe(errors, mask)
    assert list(pooled) == ["thumb", "index", "middle", "ring", "pinky", "wrist"]
    assert pooled["index"] == pytest.approx(12 * 13 / 20, rel=1e-5)
    assert pooled["thumb"] == pytest.approx(0.0, abs=1e-3) and pooled["wrist"] == 0.0
    by_hand = per_finger_mpjpe(errors, mask, per_hand=True)
    assert by_hand["right_index"] == pytest.approx(13.0, rel=1e-5)
    assert by_hand["left_index"] == pytest.approx(0.0, abs=1e-3)
    assert len(by_hand) == 12


def test_a_joint_valid_nowhere_has_a_nan_mean() -> None:
    gt = make_gt([RIGHT, RIGHT])
    errors, mask = joint_errors(perfect(gt)["pred_keypoints"], *(gt[k] for k in _GEOMETRY))
    per_joint = per_joint_mpjpe(errors, mask)
    assert np.isnan(per_joint[21:]).all() and not np.isnan(per_joint[:21]).any()


@pytest.mark.parametrize(
    ("name", "bad", "expected"),
    [
        ("joint_valid", np.ones((3, 21)), r"joint_valid must have shape \(N, 42\) with N = 3"),
        ("pred_rel_root_depth", np.zeros((3, 1)), r"pred_rel_root_depth .*\(N,\)"),
        ("abs_depth", np.zeros((2, 2)), r"abs_depth .*\(N, 2\) with N = 3, got \(2, 2\)"),
        ("gt_joint_cam", np.zeros((3, 42, 2)), r"gt_joint_cam .*\(N, 42, 3\)"),
        ("pred_hand_type", np.full((3, 2), 0.7), r"pred_hand_type must hold 0/1"),
    ],
)
def test_bad_arguments_are_named(name: str, bad: np.ndarray, expected: str) -> None:
    gt = make_gt([RIGHT, LEFT, BOTH])
    arguments = {**perfect(gt), **gt, name: bad}
    with pytest.raises(ValueError, match=expected):
        interhand_metrics(**arguments)


def test_unknown_protocol_is_refused() -> None:
    gt = make_gt([BOTH])
    with pytest.raises(ValueError, match="protocol"):
        metrics(gt, perfect(gt), "macro")
