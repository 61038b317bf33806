"""The InterHand2.6M pinhole camera (book chapter 1).

OpenCV axes (x right, y down, z forward), millimetres, no distortion::

    X_cam = R (X_world - C)            R = camrot (world -> camera), C = campos (centre, world mm)
    u = fx X / Z + cx,  v = fy Y / Z + cy
    X = (u - cx) Z / fx,  Y = (v - cy) Z / fy

Every method takes numpy arrays or torch tensors of any leading shape and returns the
same kind, dtype and device it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

PROJECTION_EPS = 1e-8
"""Added to Z before dividing, as mmpose does, so a point on the camera plane stays finite."""


def _like(value: np.ndarray, ref: Array) -> Array:
    """``value`` as the same kind, dtype and device as ``ref``."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    return value.astype(ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float64)


def _stack(parts: list[Array]) -> Array:
    if isinstance(parts[0], torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def back_project(
    uv: np.ndarray, depth: np.ndarray, focal: np.ndarray, princpt: np.ndarray
) -> np.ndarray:
    """Pixels (..., 2) and camera depth Z (...) mm -> camera points (..., 3) mm, float64:
    X = (u - cx) Z / fx, Y = (v - cy) Z / fy. ``focal`` and ``princpt`` (..., 2) px
    broadcast against ``uv`` (give per-image ones as (N, 1, 2) for (N, K, 2) points).
    """
    uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    xy = (uv - np.asarray(princpt, dtype=np.float64)) / np.asarray(focal, dtype=np.float64)
    return np.concatenate([xy * depth[..., None], depth[..., None]], axis=-1)


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
        rot, centre = _like(self.camrot, joint_world), _like(self.campos, joint_world)
        return (joint_world - centre) @ rot.T

    def camera_to_world(self, joint_cam: Array) -> Array:
        """(..., 3) mm, camera space -> (..., 3) mm, world space: R^T X + C."""
        rot, centre = _like(self.camrot, joint_cam), _like(self.campos, joint_cam)
        return joint_cam @ rot + centre

    def camera_to_pixel(self, joint_cam: Array) -> Array:
        """(..., 3) mm, camera space -> (..., 2) px, (u, v) in the original image."""
        focal, princpt = _like(self.focal, joint_cam), _like(self.princpt, joint_cam)
        depth = joint_cam[..., 2] + PROJECTION_EPS
        return _stack([joint_cam[..., i] / depth * focal[i] + princpt[i] for i in (0, 1)])

    def pixel_to_camera(self, uv: Array, depth: Array) -> Array:
        """(..., 2) px and (...) mm camera depth Z -> (..., 3) mm, camera space."""
        focal, princpt = _like(self.focal, uv), _like(self.princpt, uv)
        if isinstance(uv, torch.Tensor):
            depth = torch.as_tensor(depth, dtype=uv.dtype, device=uv.device).expand(uv.shape[:-1])
        else:
            depth = np.broadcast_to(np.asarray(depth, dtype=uv.dtype), uv.shape[:-1])
        return _stack([*((uv[..., i] - princpt[i]) / focal[i] * depth for i in (0, 1)), depth])

    def world_to_pixel(self, joint_world: Array) -> Array:
        """(..., 3) mm, world space -> (..., 2) px: the two steps above in one call."""
        return self.camera_to_pixel(self.world_to_camera(joint_world))
