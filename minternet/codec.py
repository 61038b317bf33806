"""The 2.5D heatmap codec: crop keypoints <-> per-joint voxel heatmaps (book chapters 4, 5).

A joint at crop pixel (x, y) and per-hand depth z (mm from its wrist) becomes a Gaussian
around the voxel centre mu = (x W / S, y H / S, (z / bound + 1/2) D) in a (D, H, W) volume.
mmpose's target writes the Gaussian only on a 16-voxel window per axis whose coordinates are
rounded half-to-even and clipped to the grid, so it is zero elsewhere and, for an integer
mu, every other plane of the window is empty (the "comb"); the original InterNet renders the
full, untruncated Gaussian. Either target is separable: its value is 255 times the outer
product of one factor per axis, which is how :mod:`minternet.losses` builds it on the device.

Decoding takes the hard argmax of each joint's volume, as both implementations do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:  # the codec only reads a model's sizes; it never runs one
    from minternet.model import InterNetConfig

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _wide(values: Array) -> Array:
    """``values`` in float64, as numpy or as a tensor on its device (float32 on MPS, which
    has no float64), so the voxel rounding and the depth test do not depend on the dtype
    the caller happens to hold.
    """
    if isinstance(values, torch.Tensor):
        return values.to(torch.float32 if values.device.type == "mps" else torch.float64)
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class HeatmapCodec:
    """Encoder and decoder of InterNet's targets, sized by its parameters.

    ``input_size`` px (square crop S), ``heatmap_size`` (H = W), ``depth_bins`` (D) over
    ``depth_bound`` mm of joint depth centred on the wrist, ``root_bins`` over ``root_bound``
    mm of right-to-left root depth, ``sigma`` voxels, ``max_value`` the target's peak scale;
    ``target`` is ``"mmpose"`` (truncated, rounded window) or ``"full"`` (original InterNet).
    The defaults are the paper's InterNet on InterHand2.6M, the codec of
    ``HeatmapCodec.for_model(InterNetConfig())``.
    """

    input_size: int = 256
    heatmap_size: int = 64
    depth_bins: int = 64
    depth_bound: float = 400.0
    root_bins: int = 64
    root_bound: float = 400.0
    sigma: float = 2.5
    max_value: float = 255.0
    target: Literal["mmpose", "full"] = "mmpose"

    def __post_init__(self) -> None:
        if self.target not in ("mmpose", "full"):
            raise ValueError(f"target must be 'mmpose' or 'full', not {self.target!r}")

    @classmethod
    def for_model(cls, config: InterNetConfig) -> HeatmapCodec:
        """The codec that matches a model's input size, heatmap grid and root bins
        (``config`` is an :class:`~minternet.model.InterNetConfig`, e.g. ``model.config``)."""
        return cls(
            input_size=config.input_size,
            heatmap_size=config.heatmap_size,
            depth_bins=config.depth_bins,
            root_bins=config.root_bins,
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """One joint's volume (D, H, W)."""
        return self.depth_bins, self.heatmap_size, self.heatmap_size

    def centres(self, keypoints: Array) -> Array:
        """Gaussian centres mu (..., 42, 3) in voxel units, (x, y, z) order, from keypoints
        (..., 42, 3): crop px x, y and per-hand z mm. Same array type and dtype as the input.
        """
        xy_scale = self.heatmap_size / self.input_size
        mu_z = (keypoints[..., 2:] / self.depth_bound + 0.5) * self.depth_bins
        parts = (keypoints[..., :2] * xy_scale, mu_z)
        if isinstance(keypoints, torch.Tensor):
            return torch.cat(parts, dim=-1)
        return np.concatenate(parts, axis=-1)

    def weights(self, keypoints: Array, joint_valid: Array) -> Array:
        """Joint weights (..., 42) = ``joint_valid`` * [0 <= mu_z < D]; there is no test on
        x or y, so a joint outside the crop keeps its weight.
        """
        mu_z = self.centres(_wide(keypoints))[..., 2]
        return joint_valid * ((mu_z >= 0) & (mu_z < self.depth_bins))

    def _axes(self, keypoints: torch.Tensor | np.ndarray) -> list[tuple[torch.Tensor, ...]]:
        """Per axis in (z, y, x) order: (support mask (..., 42, n) bool, squared distance
        (..., 42, n) voxels^2 from mu to each integer coordinate), float64 where possible.
        """
        mu = self.centres(torch.as_tensor(_wide(keypoints)))
        out = []
        for axis, size in zip((2, 1, 0), self.shape, strict=True):
            centre = mu[..., axis, None]
            grid = torch.arange(size, dtype=mu.dtype, device=mu.device)
            if self.target == "full":
                mask = torch.ones((*centre.shape[:-1], size), dtype=torch.bool, device=mu.device)
            else:
                # Offsets -3 sigma, -3 sigma + 1, ... (16 of them for sigma 2.5); torch.round
                # is half-to-even like numpy's, which makes the comb for an integer mu.
                radius = 3 * self.sigma
                offsets = torch.arange(math.ceil(2 * radius + 1), dtype=mu.dtype, device=mu.device)
                # mu + (i - radius), as the reference writes it: the offsets are exact, and
                # adding them in one step keeps a mu just off an integer on its side of a tie.
                picked = torch.round(centre + (offsets - radius)).clamp(0, size - 1)
                # Duplicate candidates (ties, clipping) mark their coordinate once.
                mask = (picked[..., :, None] == grid).any(dim=-2)
            out.append((mask, (grid - centre) ** 2))
        return out

    def factors(
        self, keypoints: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Separable target factors of keypoints (..., 42, 3) on their device: float32
        (fz (..., 42, D), fy (..., 42, H), fx (..., 42, W)), each exp(-d^2 / 2 sigma^2) on the
        axis' support and 0 off it, so ``max_value * fz[z] * fy[y] * fx[x]`` is the target.
        """
        two_var = 2 * self.sigma**2
        fz, fy, fx = (
            torch.where(mask, torch.exp(-sq / two_var), 0.0).float()
            for mask, sq in self._axes(keypoints)
        )
        return fz, fy, fx

    def encode(
        self, keypoints: np.ndarray, joint_valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense target, as mmpose's data pipeline builds it (one sample or a batch).

        keypoints (..., 42, 3) crop px x, y and z mm; joint_valid (..., 42). Returns the
        target (..., 42, D, H, W) float32 on the 0-``max_value`` scale (reshape one sample to
        (42 D, H, W) for mmpose's layout, channel k D + z) and the weights (..., 42) float32.
        The value at a support voxel is exp of the summed squared distances, then scaled in
        float32.
        """
        keypoints = np.asarray(keypoints)
        axes = [
            (mask.reshape(-1, size), sq.reshape(-1, size))
            for (mask, sq), size in zip(self._axes(keypoints), self.shape, strict=True)
        ]
        (mz, dz), (my, dy), (mx, dx) = axes
        volumes = torch.zeros((len(mz), *self.shape), dtype=torch.float32)
        for k in range(len(mz)):
            support = mz[k, :, None, None] & my[k, None, :, None] & mx[k, None, None, :]
            # Summed x + y + z as the reference does, so the rounding of the sum agrees too.
            sq = dx[k, None, None, :] + dy[k, None, :, None] + dz[k, :, None, None]
            gauss = torch.exp(-sq / (2 * self.sigma**2))
            volumes[k] = torch.where(support, gauss, 0.0).float() * self.max_value
        weights = self.weights(keypoints, np.asarray(joint_valid))
        target = volumes.numpy().reshape(*keypoints.shape[:-1], *self.shape)
        return target, weights.astype(np.float32)

    def encode_root(self, rel_root_depth: Array, rel_root_valid: Array) -> tuple[Array, Array]:
        """Root target: rho (...) bins = (Delta / bound + 1/2) bins from Delta (...) mm
        (Z_left root - Z_right root), and its weight = valid * [0 <= rho <= bins]; the upper
        bound is inclusive here, unlike the joints'.
        """
        rho = (rel_root_depth / self.root_bound + 0.5) * self.root_bins
        return rho, rel_root_valid * ((rho >= 0) & (rho <= self.root_bins))

    def decode_root(self, rho: Array) -> Array:
        """Relative root depth (...) mm from rho (...) bins (the soft-argmax output)."""
        return (rho / self.root_bins - 0.5) * self.root_bound

    @staticmethod
    def decode_hand_type(logits: Array) -> Array:
        """Hand presence (..., 2) bool [right, left] from logits (..., 2): logit > 0."""
        return logits > 0

    def decode(self, heatmaps: Array) -> tuple[Array, Array]:
        """Keypoints from heatmaps (..., 42, D, H, W) by hard argmax per joint.

        Returns keypoints (..., 42, 3) float32: crop px x, y (the voxel index times S / W, no
        sub-voxel refinement) and root-relative z mm = (z index / D - 1/2) bound; and scores
        (..., 42), each joint's maximum. Ties go to the first voxel in (z, y, x) C order; a
        joint whose maximum is <= 0 gets indices -1 before the mapping to px and mm.
        Same array type as the input (numpy or torch on its device).
        """
        volumes = torch.as_tensor(heatmaps)
        _, height, width = self.shape
        index, scores = self._first_maximum(volumes)
        voxel = torch.stack([index % width, index // width % height, index // (width * height)], -1)
        keypoints = self._to_keypoints(voxel, scores)
        if isinstance(heatmaps, np.ndarray):
            return keypoints.numpy(), scores.numpy()
        return keypoints, scores

    def decode_target(self, keypoints: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, ...]:
        """What :meth:`decode` gives on this codec's own target of ``keypoints`` (..., 42, 3),
        without making the (..., 42, D, H, W) volume: the oracle, the floor the codec allows.

        The target is zero off its support, which lies in a window of ``ceil(6 sigma + 1)``
        voxels per axis (all of the axis for ``target="full"``). Multiplying the factors over
        those windows in the same order as the dense product gives the same values, so the
        same maximum and the same first maximal voxel, at a fraction of the cost. Returns
        torch tensors, as :meth:`decode` does for a tensor.
        """
        starts, parts = [], []
        for factor in self.factors(keypoints):
            size = factor.shape[-1]
            span = size if self.target == "full" else min(size, math.ceil(6 * self.sigma + 1))
            nonzero = factor > 0
            first = torch.where(nonzero.any(-1), nonzero.byte().argmax(-1), 0)
            start = first.clamp(max=size - span)
            window = start[..., None] + torch.arange(span, device=factor.device)
            starts.append(start)
            parts.append(factor.gather(-1, window))
        fz, fy, fx = parts
        # The dense target's order of operations: ((max_value fz) fy) fx.
        box = (
            self.max_value
            * fz[..., :, None, None]
            * fy[..., None, :, None]
            * fx[..., None, None, :]
        )
        index, scores = self._first_maximum(box)
        _, span_y, span_x = box.shape[-3:]
        local = torch.stack(
            [index % span_x, index // span_x % span_y, index // (span_x * span_y)], -1
        )
        voxel = local + torch.stack(starts[::-1], -1)
        return self._to_keypoints(voxel, scores), scores

    @staticmethod
    def _first_maximum(volumes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat C-order index (...) of each volume's first maximum and that maximum (...)."""
        flat = volumes.reshape(*volumes.shape[:-3], -1)
        # argmax breaks ties at the first index, in torch as in numpy.
        index = flat.argmax(dim=-1)
        return index, flat.gather(-1, index[..., None])[..., 0]

    def _to_keypoints(self, voxel: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Voxel indices (..., 3) (x, y, z) -> keypoints (..., 3) crop px and mm; -1 indices
        where the score is <= 0."""
        voxel = torch.where(scores[..., None] > 0, voxel, -1).float()
        xy = voxel[..., :2] * (self.input_size / self.heatmap_size)
        z = (voxel[..., 2:] / self.depth_bins - 0.5) * self.depth_bound
        return torch.cat([xy, z], dim=-1)
