"""From a raw InterHand2.6M sample to a training sample: box, flip, crop (book chapter 2).

The order is mmpose's: box -> centre and square side -> flip -> random box -> one affine
warp. For rotation 0 and no flip a pixel (u, v) of the original image lands at::

    x = (u - c_x) size / s + size / 2,    y = (v - c_y) size / s + size / 2

in the ``size`` x ``size`` crop, with no half-pixel (UDP) shift. A flip mirrors the image
(u -> W - 1 - u) and is folded into the same matrix, so the image is interpolated once.
The random parts of the pipeline live in :mod:`minternet.augment`; this module applies
them. Everything here is numpy and OpenCV except :func:`normalize`, which runs on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch

from minternet.augment import IDENTITY, MMPOSE, Augmentation, AugParams
from minternet.camera import project
from minternet.skeleton import FLIP_INDEX, JOINTS_PER_HAND, ROOTS

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE",
    "PADDING",
    "apply_affine",
    "bbox_to_centre_scale",
    "compose_affine",
    "crop_matrix",
    "inverse_crop_matrix",
    "make_sample",
    "mirror_matrix",
    "normalize",
    "sample_matrix",
    "warp_image",
]

PADDING = 1.25
"""The annotated box is enlarged 1.25 times about its centre before cropping."""
INPUT_SIZE = 256
"""Side of the square network input, px."""
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
"""RGB statistics on the 0-255 scale, the normalisation of mmpose's InterNet weights."""


def _padded_box(bbox_xywh: np.ndarray, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre (2,) and padded size (w', h') (2,) of an [x, y, w, h] box, px."""
    x, y, w, h = np.asarray(bbox_xywh, dtype=np.float64)
    return np.array([x + w / 2, y + h / 2]), padding * np.array([w, h])


def bbox_to_centre_scale(
    bbox_xywh: np.ndarray, padding: float = PADDING
) -> tuple[np.ndarray, float]:
    """(4,) px box [x, y, w, h] -> centre (2,) px and square side s = padding * max(w, h) px.

    mmpose pads, then squares; the original squares, then pads: both give this side.
    """
    centre, size = _padded_box(bbox_xywh, padding)
    return centre, float(size.max())


def _rotation(theta: float) -> np.ndarray:
    """R(theta) = [[cos, -sin], [sin, cos]] acting on (x, y) image coordinates."""
    cos, sin = np.cos(theta), np.sin(theta)
    return np.array([[cos, -sin], [sin, cos]])


def crop_matrix(
    centre: np.ndarray, scale: float, rotation: float, input_size: int = INPUT_SIZE
) -> np.ndarray:
    """(2, 3) float64 affine, original-image px -> crop px.

    x = (size / s) R(-rotation) (u - c) + size / 2. ``rotation`` is in radians; the point
    c + R(rotation) (0, -s / 2) becomes the crop's top centre, as in mmpose.
    """
    linear = input_size / scale * _rotation(-rotation)
    offset = input_size / 2 - linear @ np.asarray(centre, dtype=np.float64)
    return np.column_stack([linear, offset])


def inverse_crop_matrix(
    centre: np.ndarray, scale: float, rotation: float, input_size: int = INPUT_SIZE
) -> np.ndarray:
    """(2, 3) float64 affine, crop px -> original-image px: the inverse of :func:`crop_matrix`.

    u = (s / size) R(rotation) (x - size / 2) + c; for rotation 0, u = x s / size + c_x - s / 2.
    """
    linear = scale / input_size * _rotation(rotation)
    offset = np.asarray(centre, dtype=np.float64) - linear @ np.full(2, input_size / 2)
    return np.column_stack([linear, offset])


def mirror_matrix(width: int) -> np.ndarray:
    """(2, 3) affine of the horizontal flip of a ``width`` px image, u -> W - 1 - u; its own
    inverse.
    """
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine applying ``inner`` first, then ``outer``."""
    return np.column_stack([outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2] + outer[:, 2]])


def apply_affine(matrix: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(2, 3) affine applied to (..., 2) px points -> (..., 2) px, float64."""
    uv = np.asarray(uv, dtype=np.float64)
    return uv @ matrix[:, :2].T + matrix[:, 2]


def warp_image(
    image: np.ndarray,
    matrix: np.ndarray,
    input_size: int = INPUT_SIZE,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """(H, W, C) or (H, W) uint8 -> (size, size, C) or (size, size) uint8 through ``matrix``.

    Crop pixel (x, y) takes the image value at matrix^-1 (x, y), bilinear by default (pass
    ``cv2.INTER_NEAREST`` for label masks); outside the image is 0.
    """
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (input_size, input_size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def sample_matrix(sample: Mapping[str, Any], inverse: bool = False) -> np.ndarray:
    """(2, 3) affine, original-image px -> crop px of a sample made by :func:`make_sample`
    (crop -> original when ``inverse``), the flip included.

    The recorded ``centre`` is in the mirrored image's pixels when ``flipped``, as in mmpose.
    """
    size = int(sample["image"].shape[0])
    crop = (sample["centre"], float(sample["scale"]), float(sample["rotation"]), size)
    if not sample["flipped"]:
        return inverse_crop_matrix(*crop) if inverse else crop_matrix(*crop)
    mirror = mirror_matrix(int(sample["image_width"]))
    if inverse:
        return compose_affine(mirror, inverse_crop_matrix(*crop))
    return compose_affine(crop_matrix(*crop), mirror)


def _flip_joints(values: np.ndarray) -> np.ndarray:
    """Re-index per-joint values (42, ...) for a mirrored image: joint i <-> joint i + 21."""
    return values[list(FLIP_INDEX)]


def make_sample(
    raw: Mapping[str, Any],
    input_size: int = INPUT_SIZE,
    params: AugParams | None = None,
    aug: Augmentation = MMPOSE,
) -> dict[str, np.ndarray]:
    """A training sample from a raw one (``InterHandDataset(train=None)[i]``).

    ``params`` (default: none), as :func:`sample_augmentation` draws them for ``aug``, are
    applied; ``aug`` also says what a shift is relative to and whether joints leaving the
    crop are dropped (ORIGINAL) or kept (MMPOSE), which holds without augmentation too.

    Returns numpy arrays:

    * ``image`` (size, size, 3) uint8 RGB crop;
    * ``keypoints`` (42, 3) float32: crop px x, y and z = Z_k - Z of its hand's wrist, mm;
    * ``joint_valid`` (42,) float32 (root-gated as the raw sample); ``rel_root_depth`` ()
      float32 mm, Z_41 - Z_20; ``rel_root_valid`` (); ``hand_type`` (2,) [right, left] and
      ``hand_type_valid`` (), all float32 and all flipped with the image;
    * meta for going back: ``centre`` (2,) px and ``scale`` () px of the square crop (in the
      mirrored image when ``flipped``), ``rotation`` () rad, ``flipped`` () bool,
      ``focal`` (2,) px, ``princpt`` (2,) px, ``abs_depth`` (2,) mm [A_R, A_L] (not flipped,
      as mmpose), ``image_width`` () int32 px. See :func:`sample_matrix`.
    """
    params = params or IDENTITY
    width = int(raw["width"])
    centre, box = _padded_box(raw["bbox"], PADDING)
    scale = float(box.max())
    if params.flip:
        centre[0] = width - 1 - centre[0]
    # The original shifts its square box; mmpose shifts relative to the padded, unsquared one.
    reference = box if aug.shift_reference == "box" else np.full(2, scale)
    centre = centre + np.asarray(params.shift) * reference
    scale *= params.scale
    matrix = crop_matrix(centre, scale, params.rotation, input_size)
    if params.flip:
        matrix = compose_affine(matrix, mirror_matrix(width))

    image = warp_image(raw["image"], matrix, input_size)
    if params.colour != IDENTITY.colour:
        # Per-channel gains commute with the (linear) warp; the crop is smaller to scale.
        image = np.clip(np.rint(image * np.float32(params.colour)), 0, 255).astype(np.uint8)

    joint_cam = np.asarray(raw["joint_cam"], dtype=np.float64)
    # Intrinsics only: joint_cam is already in camera space.
    xy = apply_affine(matrix, project(joint_cam, raw["focal"], raw["princpt"]))
    wrist_depth = np.repeat(joint_cam[list(ROOTS), 2], JOINTS_PER_HAND)
    keypoints = np.column_stack([xy, joint_cam[:, 2] - wrist_depth])
    joint_valid = np.asarray(raw["joint_valid"], dtype=np.float32)
    rel_root_depth = float(raw["rel_root_depth"])
    hand_type = np.asarray(raw["hand_type"], dtype=np.float32)
    if params.flip:
        # A mirrored right hand is a left hand: swap the blocks, the order of the two
        # wrists' depths and the hand-type bits. z is per hand, so it moves unchanged.
        keypoints, joint_valid = _flip_joints(keypoints), _flip_joints(joint_valid)
        rel_root_depth, hand_type = -rel_root_depth, hand_type[::-1].copy()
    if aug.drop_outside:
        inside = ((keypoints[:, :2] >= 0) & (keypoints[:, :2] < input_size)).all(axis=1)
        joint_valid = joint_valid * inside
    return {
        "image": image,
        "keypoints": keypoints.astype(np.float32),
        "joint_valid": joint_valid.astype(np.float32),
        "rel_root_depth": np.float32(rel_root_depth),
        "rel_root_valid": np.float32(raw["rel_root_valid"]),
        "hand_type": hand_type,
        "hand_type_valid": np.float32(raw["hand_type_valid"]),
        "centre": centre.astype(np.float32),
        "scale": np.float32(scale),
        "rotation": np.float32(params.rotation),
        "flipped": np.bool_(params.flip),
        "focal": np.asarray(raw["focal"], dtype=np.float32),
        "princpt": np.asarray(raw["princpt"], dtype=np.float32),
        "abs_depth": np.asarray(raw["abs_depth"], dtype=np.float32),
        "image_width": np.int32(width),
    }


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 3, H, W) RGB 0-255 (uint8 from the loader) -> (B, 3, H, W) ``dtype``,
    (p - mean) / std with the ImageNet statistics, on ``images``' device.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=dtype, device=images.device).view(1, 3, 1, 1)
    return (images.to(dtype) - mean) / std
