"""InterHand2.6M's test metrics: MPJPE, MRRPE and handedness accuracy (APh).

Every function takes numpy arrays over N samples and the GT camera of each sample. The
geometry is the same for both protocols (mmpose's ``InterHandMetric`` and the original
``evaluate()``), with GT wrist depths:

* a predicted joint (u, v, z), original-image px and mm relative to its wrist, gets its
  hand's GT wrist depth, Z = z + A_R (joints 0-20) or z + A_L (21-41), and is back-projected
  with the GT intrinsics, X = (u - c_x) Z / f_x, Y = (v - c_y) Z / f_y;
* prediction and GT are each aligned at the wrist of the joint's own hand, and the error is
  the Euclidean distance in mm. The wrists are always 0 and are averaged in like any joint.

The protocols differ only in how MPJPE averages (see :func:`interhand_metrics`). A category
with nothing to average (no interacting frame, no valid hand type, ...) is NaN, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from minternet.camera import back_project
from minternet.skeleton import (
    FINGER_OF_JOINT,
    FINGERS,
    HAND_OF_JOINT,
    HANDS,
    NUM_JOINTS,
    ROOTS,
)

Protocol = Literal["mmpose", "original"]
METRIC_KEYS = ("MPJPE_single", "MPJPE_interacting", "MPJPE_all", "MRRPE", "APh")
"""The keys of :func:`interhand_metrics`, in table order."""
CATEGORIES = ("single", "interacting", "all")
"""MPJPE subsets: by the GT hand type bits, [1, 1] is interacting, anything else single."""

ROOT_OF_JOINT = tuple(ROOTS[hand] for hand in HAND_OF_JOINT)
"""The wrist each of the 42 joints is aligned at."""

# Per-sample shape (after N) of every argument the metrics take.
_SHAPES: dict[str, tuple[int, ...]] = {
    "pred_keypoints": (NUM_JOINTS, 3),
    "pred_hand_type": (2,),
    "pred_rel_root_depth": (),
    "gt_joint_cam": (NUM_JOINTS, 3),
    "joint_valid": (NUM_JOINTS,),
    "gt_hand_type": (2,),
    "hand_type_valid": (),
    "abs_depth": (2,),
    "focal": (2,),
    "princpt": (2,),
    "errors": (NUM_JOINTS,),
    "mask": (NUM_JOINTS,),
}


def _validated(**arrays: ArrayLike) -> list[np.ndarray]:
    """The arguments as arrays, in order, after checking each is (N, *its shape) with N the
    first one's length.

    Raises:
        ValueError: naming the first argument of the wrong shape and the shape expected.
    """
    first = np.asarray(next(iter(arrays.values())))
    n = len(first) if first.ndim else -1
    out = []
    for name, value in arrays.items():
        array, shape = np.asarray(value), _SHAPES[name]
        if array.shape != (n, *shape):
            dims = ", ".join(["N", *map(str, shape)]) + ("," if not shape else "")
            raise ValueError(f"{name} must have shape ({dims}) with N = {n}, got {array.shape}")
        if name.endswith("hand_type") and not np.isin(array, (0, 1)).all():
            # Catches logits or probabilities passed where decoded bits belong.
            raise ValueError(f"{name} must hold 0/1 or bool values")
        out.append(array)
    return out


def joint_errors(
    pred_keypoints: ArrayLike,
    gt_joint_cam: ArrayLike,
    joint_valid: ArrayLike,
    abs_depth: ArrayLike,
    focal: ArrayLike,
    princpt: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Wrist-aligned 3D error of every joint: the per-joint quantity behind every MPJPE.

    Args:
        pred_keypoints: (N, 42, 3) original-image px u, v and z mm relative to its wrist.
        gt_joint_cam: (N, 42, 3) GT camera coordinates, mm.
        joint_valid: (N, 42) root-gated validity, 0/1.
        abs_depth: (N, 2) GT wrist depths [A_R, A_L], mm.
        focal, princpt: (N, 2) GT intrinsics, px.

    Returns:
        errors (N, 42) float32 mm, NaN where the joint is invalid (a placeholder hand has
        no meaningful error), and mask (N, 42) bool, the valid joints.
    """
    pred, gt, valid, depth, focal, princpt = (
        np.asarray(a, dtype=np.float64)
        for a in _validated(
            pred_keypoints=pred_keypoints,
            gt_joint_cam=gt_joint_cam,
            joint_valid=joint_valid,
            abs_depth=abs_depth,
            focal=focal,
            princpt=princpt,
        )
    )
    # GT wrist depth of each joint's own hand turns relative z into camera Z.
    points = back_project(
        pred[..., :2], pred[..., 2] + depth[:, HAND_OF_JOINT], focal[:, None], princpt[:, None]
    )
    roots = list(ROOT_OF_JOINT)
    diff = (points - points[:, roots]) - (gt - gt[:, roots])
    mask = valid > 0
    errors = np.where(mask, np.linalg.norm(diff, axis=-1), np.nan).astype(np.float32)
    return errors, mask


def root_errors(
    pred_keypoints: ArrayLike,
    pred_rel_root_depth: ArrayLike,
    gt_joint_cam: ArrayLike,
    joint_valid: ArrayLike,
    gt_hand_type: ArrayLike,
    abs_depth: ArrayLike,
    focal: ArrayLike,
    princpt: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Error of the right-to-left wrist vector, the per-sample quantity behind MRRPE.

    Both predicted wrists are back-projected from the *right* GT depth, A_R + z_20 and
    A_R + z_41 + pred_rel_root_depth (z_20, z_41 the decoded wrist depths, ideally 0), as
    both reference implementations do: A_L is never used. Shapes as :func:`joint_errors`;
    pred_rel_root_depth (N,) mm is Z_41 - Z_20; gt_hand_type (N, 2) [right, left] 0/1.

    Returns:
        errors (N,) float32 mm, NaN outside the mask, and mask (N,) bool: GT type [1, 1]
        with both wrists valid (hand_type_valid is not consulted).
    """
    pred, delta, gt, valid, hand_type, depth, focal, princpt = (
        np.asarray(a, dtype=np.float64)
        for a in _validated(
            pred_keypoints=pred_keypoints,
            pred_rel_root_depth=pred_rel_root_depth,
            gt_joint_cam=gt_joint_cam,
            joint_valid=joint_valid,
            gt_hand_type=gt_hand_type,
            abs_depth=abs_depth,
            focal=focal,
            princpt=princpt,
        )
    )
    right, left = ROOTS
    # The quirk: the left wrist is placed at A_R + delta, not at its own A_L.
    base = np.stack([depth[:, 0], depth[:, 0] + delta], axis=1)
    wrists = back_project(
        pred[:, ROOTS, :2], base + pred[:, ROOTS, 2], focal[:, None], princpt[:, None]
    )
    diff = (wrists[:, 1] - wrists[:, 0]) - (gt[:, left] - gt[:, right])
    mask = hand_type.all(axis=1) & (valid[:, right] > 0) & (valid[:, left] > 0)
    errors = np.where(mask, np.linalg.norm(diff, axis=-1), np.nan).astype(np.float32)
    return errors, mask


def handedness(
    pred_hand_type: ArrayLike, gt_hand_type: ArrayLike, hand_type_valid: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample hand-type correctness, the quantity behind APh.

    pred_hand_type, gt_hand_type (N, 2) [right, left] 0/1 or bool; hand_type_valid (N,).
    Returns correct (N,) bool, both bits equal (right (1, 0), left (0, 1), interacting
    (1, 1)), and mask (N,) bool, hand_type_valid > 0.
    """
    pred, gt, valid = _validated(
        pred_hand_type=pred_hand_type, gt_hand_type=gt_hand_type, hand_type_valid=hand_type_valid
    )
    return (pred.astype(bool) == gt.astype(bool)).all(axis=1), valid > 0


def category_masks(gt_hand_type: ArrayLike) -> dict[str, np.ndarray]:
    """Samples (N,) bool of each of :data:`CATEGORIES`, from gt_hand_type (N, 2).

    The split is by the GT hand type bits alone, not by how many hands are valid: an
    "interacting" frame with one hand unannotated is still interacting.
    """
    (hand_type,) = _validated(gt_hand_type=gt_hand_type)
    interacting = hand_type.all(axis=1)
    return {"single": ~interacting, "interacting": interacting, "all": np.ones_like(interacting)}


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Flat mean of ``values[mask]`` in the values' float32, or NaN for an empty mask."""
    return float(values[mask].mean()) if mask.any() else float("nan")


def per_joint_mpjpe(errors: ArrayLike, mask: ArrayLike) -> np.ndarray:
    """Mean error (42,) float64 mm of each joint over the samples where it is valid, NaN
    for a joint valid nowhere. ``errors``, ``mask`` (N, 42) as :func:`joint_errors` returns.
    """
    errors, mask = _validated(errors=errors, mask=mask)
    mask = mask.astype(bool)
    sums = np.where(mask, errors, 0.0).sum(axis=0, dtype=np.float64)
    counts = mask.sum(axis=0)
    with np.errstate(invalid="ignore"):  # 0 / 0 is the documented NaN
        return sums / counts


def per_finger_mpjpe(
    errors: ArrayLike, mask: ArrayLike, *, per_hand: bool = False
) -> dict[str, float]:
    """Flat mean error, mm, over the valid joints of each finger (thumb ... pinky) and of the
    wrists (always 0 with wrist alignment, kept to show that), NaN where none is valid.

    ``errors``, ``mask`` (N, 42) as :func:`joint_errors` returns. With ``per_hand`` the keys
    are ``right_thumb`` ... ``left_wrist``, else both hands are pooled under ``thumb`` ...
    """
    errors, mask = _validated(errors=errors, mask=mask)
    hands = (
        [(f"{name}_", (hand,)) for hand, name in enumerate(HANDS)] if per_hand else [("", (0, 1))]
    )
    out = {}
    for prefix, members in hands:
        for part in (*FINGERS, "wrist"):
            joints = [
                k
                for k in range(NUM_JOINTS)
                if FINGER_OF_JOINT[k] == part and HAND_OF_JOINT[k] in members
            ]
            out[prefix + part] = _masked_mean(errors[:, joints], mask[:, joints].astype(bool))
    return out


def _mean_of_joint_means(errors: np.ndarray, mask: np.ndarray) -> float:
    """The original's aggregation: each joint's mean over its valid samples, then the mean
    over the joints that have one (the original would crash on a joint with none).
    """
    means = per_joint_mpjpe(errors, mask)
    present = ~np.isnan(means)
    return float(means[present].mean()) if present.any() else float("nan")


def interhand_metrics(
    pred_keypoints: ArrayLike,
    pred_hand_type: ArrayLike,
    pred_rel_root_depth: ArrayLike,
    gt_joint_cam: ArrayLike,
    joint_valid: ArrayLike,
    gt_hand_type: ArrayLike,
    hand_type_valid: ArrayLike,
    abs_depth: ArrayLike,
    focal: ArrayLike,
    princpt: ArrayLike,
    *,
    protocol: Protocol = "mmpose",
) -> dict[str, float]:
    """InterHand2.6M's five test numbers for N predictions, with GT root depths and boxes.

    Args:
        pred_keypoints: (N, 42, 3) original-image px u, v and z mm relative to its wrist.
        pred_hand_type: (N, 2) [right, left] 0/1 or bool (logit > 0).
        pred_rel_root_depth: (N,) mm, predicted Z_41 - Z_20.
        gt_joint_cam: (N, 42, 3) mm; joint_valid (N, 42) root-gated 0/1.
        gt_hand_type: (N, 2) 0/1; hand_type_valid (N,) 0/1.
        abs_depth: (N, 2) GT wrist depths [A_R, A_L] mm; focal, princpt (N, 2) px.
        protocol: ``"mmpose"``: each MPJPE is the flat mean over the valid (sample, joint)
            pairs of its samples (float32). ``"original"``: the mean over joints of each
            joint's mean over its valid samples; single and interacting each use their own
            per-joint means, "all" pools both per joint.

    Returns:
        ``MPJPE_single``, ``MPJPE_interacting``, ``MPJPE_all`` and ``MRRPE`` in mm (see
        :func:`joint_errors`, :func:`root_errors`), ``APh`` a fraction (see
        :func:`handedness`); NaN for a category without a valid sample.

    Raises:
        ValueError: an argument has the wrong shape (named, with the shape expected), a
            hand type is not 0/1, or the protocol is unknown.
    """
    if protocol not in ("mmpose", "original"):
        raise ValueError(f"protocol must be 'mmpose' or 'original', not {protocol!r}")
    errors, mask = joint_errors(
        pred_keypoints, gt_joint_cam, joint_valid, abs_depth, focal, princpt
    )
    average = _masked_mean if protocol == "mmpose" else _mean_of_joint_means
    metrics = {
        f"MPJPE_{name}": average(errors, mask & samples[:, None])
        for name, samples in category_masks(gt_hand_type).items()
    }
    root_err, root_mask = root_errors(
        pred_keypoints,
        pred_rel_root_depth,
        gt_joint_cam,
        joint_valid,
        gt_hand_type,
        abs_depth,
        focal,
        princpt,
    )
    metrics["MRRPE"] = _masked_mean(root_err, root_mask)
    correct, type_mask = handedness(pred_hand_type, gt_hand_type, hand_type_valid)
    metrics["APh"] = _masked_mean(correct.astype(np.float32), type_mask)
    return {key: metrics[key] for key in METRIC_KEYS}


def json_metrics(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """Metrics as plain floats, a NaN one (an empty category) as None: JSON has no NaN."""
    return {k: None if math.isnan(v) else float(v) for k, v in metrics.items()}
