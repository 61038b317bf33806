"""The camera dome that films the synthetic hands, in InterHand2.6M's conventions (appendix A).

Up to 1000 cameras spread over the front and sides of a dome around the scene centre
(elevations -20..75 deg, within :data:`FRONT_ARC` of straight ahead of the subject, who sits
on the -z side facing +z; 600-1200 mm away) and aim at it, upright (image down close to
world down, +y). Focal lengths lie in 1200-1600 px and principal points within 7 px of the
image centre; about a quarter of the cameras are portrait (334 x 512 instead of 512 x 334)
and a quarter grey.
As in the real dataset, colour cameras are named 400xxx and grey ones 410xxx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minternet.camera import Camera

FRONT_ARC = 110.0
"""deg: cameras sit at most this far round from the +z axis, the subject's line of sight:
the subject's own body hides the hands from the cameras behind them."""


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class CameraSpec:
    """One camera of the dome: ``name`` 400xxx (colour) or 410xxx (grey), image size in px."""

    name: str
    camera: Camera
    width: int
    height: int
    grey: bool


def _look_at(position: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """(3, 3) world -> camera rotation, OpenCV axes: z towards ``target``, y as close to world
    down (+y) as z allows, then turned by ``roll`` rad about z."""
    z = (target - position) / np.linalg.norm(target - position)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([np.cos(roll) * x + np.sin(roll) * y, np.cos(roll) * y - np.sin(roll) * x, z])


def sample_cameras(
    rng: np.random.Generator, n_cameras: int, centre: np.ndarray
) -> list[CameraSpec]:
    """A dome of ``n_cameras`` (at most 1000) looking at ``centre`` (3,) mm, world.

    Directions spread evenly (golden-ratio steps round the arc, jittered) over elevations
    -20..75 deg and azimuths within :data:`FRONT_ARC` of +z, so the dome covers the top, the
    front and the sides; 600-1200 mm away (1000 mm on average), focal
    1200-1600 px, so 334 px span 125-330 mm at the centre. About a quarter are grey
    (410xxx) and a quarter portrait (334 x 512, image up still world up as in the real
    portrait views). Each aims within 4 mm of the centre, rolled by at most 4 deg, principal
    point within 7 px of the image centre per axis: the centre lands within ~30 px of it.
    """
    if not 1 <= n_cameras <= 1000:
        raise ValueError(f"n_cameras must be in 1..1000, got {n_cameras}")
    centre = np.asarray(centre, dtype=np.float64)
    lo, hi = np.sin(np.radians([-20.0, 75.0]))
    sin_elev = (
        lo + (hi - lo) * (np.arange(n_cameras) + rng.uniform(0.2, 0.8, n_cameras)) / n_cameras
    )
    arc = (rng.uniform() + (np.sqrt(5) - 1) / 2 * np.arange(n_cameras)) % 1.0  # even spread
    azimuth = np.pi / 2 + np.radians(FRONT_ARC) * (2.0 * arc - 1.0)  # +z at pi / 2
    azimuth += np.clip(rng.normal(0.0, 0.05, n_cameras), -0.05, 0.05)
    cos_elev = np.sqrt(1 - sin_elev**2)
    directions = np.stack([cos_elev * np.cos(azimuth), -sin_elev, cos_elev * np.sin(azimuth)], 1)
    # Mostly far, like the real ~1 m dome, so that the close ones' narrow views are rare.
    distance = 1200.0 - 600.0 * rng.uniform(0.0, 1.0, n_cameras) ** 2
    focal = rng.uniform(1204.0, 1596.0, n_cameras)  # fx, fy differ by <= 0.4 % about it
    numbers = rng.choice(1000, n_cameras, replace=False)
    grey = rng.permutation(n_cameras) < round(n_cameras / 4)
    portrait = rng.permutation(n_cameras) < round(n_cameras / 4)
    cameras = []
    for k in range(n_cameras):
        width, height = (334, 512) if portrait[k] else (512, 334)
        position = centre + distance[k] * directions[k]
        target = centre + rng.uniform(-4.0, 4.0, 3)
        rotation = _look_at(position, target, np.radians(rng.uniform(-4.0, 4.0)))
        fxy = focal[k] * (1.0 + np.array([1.0, -1.0]) * rng.uniform(-0.002, 0.002))
        princpt = np.array([width, height]) / 2 + rng.uniform(-7.0, 7.0, 2)
        camera = Camera(position, rotation, fxy, princpt)
        name = f"{410 if grey[k] else 400}{numbers[k]:03d}"
        cameras.append(CameraSpec(name, camera, width, height, bool(grey[k])))
    return cameras
