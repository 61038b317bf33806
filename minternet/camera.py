"""The InterHand2.6M pinhole camera (book chapter 1).

OpenCV axes (x right, y down, z forward), millimetres, no distortion::

    X_cam = R (X_world - C)            R = camrot (world -> camera), C = campos (centre, world mm)
    u = fx X / Z + cx,  v = fy Y / Z + cy
    X = (u - cx) Z / fx,  Y = (v - cy) Z / fy

:func:`project` and :func:`back_project` are the pinhole formula, for any intrinsics;
:class:`Camera` adds the extrinsics. Every function and method takes numpy arrays or torch
tensors of any leading shape and returns the same kind, dtype and device it was given
(float64 for integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

PROJECTION_EPS = 1e-8
"""Added to Z before dividing, as mmpose does, so a point on the camera plane stays finite."""


def _floating(values: Array | np.ndarray) -> Array:
    """``values`` as an array or tensor of floats (float64 unless already floating)."""
    if isinstance(values, torch.Tensor):
        return values if values.is_floating_point() else values.double()
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def _like(value: np.ndarray | torch.Tensor, ref: Array) -> Array:
    """``value`` as the same kind, dtype and device as ``ref`` (a floating array)."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    return np.asarray(value, dtype=ref.dtype)


def project(points: Array, focal: Array, princpt: Array) -> Array:
    """Camera points (..., 3) mm -> pixels (..., 2): u = fx X / Z + cx, v = fy Y / Z + cy
    (Z + :data:`PROJECTION_EPS`, in fact). ``focal`` and ``princpt`` (..., 2) px broadcast
    against the points' leading dimensions (per-image ones as (N, 1, 2) for (N, K, 3)
    points). Numpy or torch, as ``points`` (floats), in its dtype and on its device.
    """
    points = _floating(points)
    focal, princpt = _like(focal, points), _like(princpt, points)
    return points[..., :2] / (points[..., 2:] + PROJECTION_EPS) * focal + princpt


def back_project(uv: Array, depth: Array, focal: Array, princpt: Array) -> Array:
    """Pixels (..., 2) and camera depth Z (...) mm -> camera points (..., 3) mm:
    X = (u - cx) Z / fx, Y = (v - cy) Z / fy. ``depth`` broadcasts against ``uv``'s leading
    dimensions (a scalar for all points), ``focal`` and ``princpt`` (..., 2) px as in
    :func:`project`. Numpy or torch, as ``uv`` (floats), in its dtype and on its device.
    """
    uv = _floating(uv)
    depth = _like(depth, uv)
    focal, princpt = _like(focal, uv), _like(princpt, uv)
    if isinstance(uv, torch.Tensor):
        z = depth.expand(uv.shape[:-1])[..., None]
        return torch.cat([(uv - princpt) / focal * z, z], dim=-1)
    z = np.broadcast_to(depth, uv.shape[:-1])[..., None]
    return np.concatenate([(uv - princpt) / focal * z, z], axis=-1)


@dataclass(frozen=True)
class Camera:
    """One calibrated InterHand2.6M camera.

    Attributes:
        campos: (3,) float64, mm, camera centre C in world space.
        camrot: (3, 3) float64, world -> camera rotation R.
        focal: (2,) float64, px, (fx, fy) in the released (downsampled) images.
        princpt: (2,) float64, px, principal point (cx, cy).
    """

    campos: np.ndarray
    camrot: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray

    def __post_init__(self) -> None:
        shapes = {"campos": (3,), "camrot": (3, 3), "focal": (2,), "princpt": (2,)}
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Camera.{name} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"Camera.{name} has non-finite values: {value.tolist()}")
            object.__setattr__(self, name, value)

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) float64, the matrix K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."""
        (fx, fy), (cx, cy) = self.focal, self.princpt
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def world_to_camera(self, joint_world: Array) -> Array:
        """(..., 3) mm, world space -> (..., 3) mm, camera space: R (X - C)."""
        joint_world = _floating(joint_world)
        rot, centre = _like(self.camrot, joint_world), _like(self.campos, joint_world)
        return (joint_world - centre) @ rot.T

    def camera_to_world(self, joint_cam: Array) -> Array:
        """(..., 3) mm, camera space -> (..., 3) mm, world space: R^T X + C."""
        joint_cam = _floating(joint_cam)
        rot, centre = _like(self.camrot, joint_cam), _like(self.campos, joint_cam)
        return joint_cam @ rot + centre

    def camera_to_pixel(self, joint_cam: Array) -> Array:
        """(..., 3) mm, camera space -> (..., 2) px, (u, v) in the original image
        (:func:`project`)."""
        return project(joint_cam, self.focal, self.princpt)

    def pixel_to_camera(self, uv: Array, depth: Array) -> Array:
        """(..., 2) px and (...) mm camera depth Z -> (..., 3) mm, camera space
        (:func:`back_project`)."""
        return back_project(uv, depth, self.focal, self.princpt)

    def world_to_pixel(self, joint_world: Array) -> Array:
        """(..., 3) mm, world space -> (..., 2) px: the two steps above in one call."""
        return self.camera_to_pixel(self.world_to_camera(joint_world))
