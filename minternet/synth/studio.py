"""The capture studio around the hands: backdrop, lights and the camera's noise (appendix
A); the camera's blur is the renderer's ``soften``.

Everything is drawn from a ``numpy.random.Generator``, so equal seeds give equal images.
"""

from __future__ import annotations

import cv2
import numpy as np

from minternet.synth.render import Lighting


def lighting(rng: np.random.Generator) -> Lighting:
    """A random studio light in camera space: a key light from the camera's side of the
    hands (up to about 70 deg off the viewing axis), a weaker fill from anywhere in front."""
    key = rng.normal(size=3)
    key[2] = -rng.uniform(0.35, 1.0) * np.linalg.norm(key[:2]) - rng.uniform(0.1, 0.5)
    fill = rng.normal(size=3)
    fill[2] = -abs(fill[2])
    return Lighting(
        directions=(tuple(key.tolist()), tuple(fill.tolist())),
        intensities=(float(rng.uniform(0.55, 0.9)), float(rng.uniform(0.1, 0.4))),
        ambient=float(rng.uniform(0.15, 0.3)),
        specular=float(rng.uniform(0.05, 0.2)),
    )


def sensor(
    image: np.ndarray,
    rng: np.random.Generator,
    noise: float,
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """(H, W, 3) uint8 -> a copy with read-out noise of standard deviation ``noise`` grey
    levels added inside ``region`` (rows, columns; None: everywhere). The backdrop carries
    its own noise, so a frame only needs fresh noise where its hands are."""
    out = image.copy()
    rows, cols = region if region is not None else (slice(None), slice(None))
    patch = out[rows, cols]
    grain = rng.standard_normal(patch.shape[:2], dtype=np.float32) * np.float32(noise)
    grain = np.rint(grain).astype(np.int16)[..., None]  # whole grey levels, added in int16
    out[rows, cols] = np.clip(patch + grain, 0, 255).astype(np.uint8)
    return out


def _smooth_field(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """(H, W) float32 smooth random field in about [-1, 1] with ``cells`` bumps across."""
    coarse = rng.uniform(-1, 1, (max(2, cells * size[1] // size[0]), cells)).astype(np.float32)
    return cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB studio backdrop for a view of ``size`` (width, height) px.

    Near-black with a faint gradient; usually the capture dome's rotated grid of bright
    point lights with halo and glare; often a person's clothing (a large soft-edged shape,
    plain, striped or checked, with folds) in front of it; sensor noise. Everything comes
    from ``rng``, so equal seeds give equal images.
    """
    width, height = size
    # Channels first and float32 throughout: (3, H, W) broadcasts run on long rows, and a
    # float64 draw would promote every full-size array.
    f32 = np.float32

    def rgb(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, (3, 1, 1)).astype(f32)

    wall = _smooth_field(rng, size, 2) * f32(4 + 20 * rng.uniform() ** 2)
    image = wall * rgb(0.5, 1) + rgb(0, 12)
    if rng.uniform() < 0.85:  # the dome's lights: a slightly jittered, rotated, thinned grid
        step, turn = rng.uniform(40, 90), rng.uniform(0, np.pi)
        n = int(1.5 * max(size) / step) + 1
        grid = np.stack(np.mgrid[-n:n, -n:n], -1).reshape(-1, 2) * step
        grid = grid @ np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]])
        grid = np.rint(grid + np.array(size) / 2 + rng.normal(0, 0.04 * step, grid.shape))
        keep = (rng.uniform(size=len(grid)) < rng.uniform(0.5, 1)) & (grid > -9).all(axis=1)
        keep &= (grid[:, 0] < width + 9) & (grid[:, 1] < height + 9)
        glow, radius = np.zeros((height, width), np.float32), int(rng.integers(2, 4))
        levels = rng.uniform(80, 255, len(grid))
        for (u, v), level in zip(grid[keep].astype(int).tolist(), levels[keep], strict=True):
            cv2.circle(glow, (u, v), radius, float(level), -1, cv2.LINE_AA)
        glare = (cv2.blur(glow, (15, 1)) + cv2.blur(glow, (1, 15))) * f32(rng.uniform(0.5, 2))
        halo = cv2.GaussianBlur(glow, (0, 0), rng.uniform(2, 4)) * f32(2)
        image += (glow + glare + halo) * rgb(0.85, 1)
    if rng.uniform() < 0.75:  # clothing: a big soft ellipse rising from the bottom edge
        mask = np.zeros((height, width), np.float32)
        centre = (int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.6, 1.4) * height))
        axes = (int(rng.uniform(0.25, 0.7) * width), int(rng.uniform(0.5, 1) * height))
        cv2.ellipse(mask, centre, axes, rng.uniform(-25, 25), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(2, 8))
        grey = rng.uniform(15, 160)
        cloth = grey + f32(rng.uniform(0, 0.8)) * (rgb(15, 160) - f32(grey))
        tilt, period = rng.uniform(-0.3, 0.3) + rng.integers(2) * np.pi / 2, rng.uniform(6, 40)
        cos, sin = f32(np.cos(tilt) * 2 * np.pi / period), f32(np.sin(tilt) * 2 * np.pi / period)
        x, y = np.arange(width, dtype=f32)[None, :], np.arange(height, dtype=f32)[:, None]
        pattern = np.zeros((height, width), bool)
        for _ in range(rng.integers(3)):  # none: plain; one set of stripes; two: checks
            pattern |= np.sin(cos * x + sin * y) > 0.6
            cos, sin = -sin * f32(0.9), cos * f32(0.9)
        fabric = np.where(pattern, cloth * rgb(0.3, 1.5), cloth)
        fabric *= 1 + f32(0.3) * _smooth_field(rng, size, 6)  # folds
        image += mask * (fabric - image)
    image += rng.standard_normal((height, width), dtype=f32) * f32(rng.uniform(1, 3))  # sensor
    return cv2.merge(list(np.clip(np.rint(image), 0, 255).astype(np.uint8)))
