from __future__ import annotations

import cv2
import numpy as np
import pytest

from minternet.synth import render, studio
from minternet.synth.render import Lighting, Render

FOCAL = np.array([1200.0, 1200.0])
PRINCPT = np.array([256.0, 167.0])
SIZE = (512, 334)
SKIN = np.array([0.8, 0.6, 0.5])


def draw(segments, radii, owner, **kwargs) -> Render:
    """Render on black at the test camera, without the final blur unless asked."""
    kwargs.setdefault("soften", 0.0)
    return render.render_capsules(
        np.asarray(segments, float), radii, owner, SKIN, FOCAL, PRINCPT, SIZE, **kwargs
    )


def horizontal(z: float, half: float = 40.0) -> list:
    return [[-half, 0.0, z], [half, 0.0, z]]


def vertical(z: float, half: float = 100.0) -> list:
    return [[0.0, -half, z], [0.0, half, z]]


def test_capsule_lands_where_the_projection_says():
    z, r = 500.0, 10.0
    out = draw([horizontal(z)], [r], [1])
    assert out.image.shape == (334, 512, 3) and out.image.dtype == np.uint8
    assert out.owner.shape == out.depth.shape == (334, 512)
    assert out.owner[167, 256] == 1  # the axis mid-point projects onto the principal point
    assert out.owner[0, 0] == out.owner[333, 511] == out.owner[167, 40] == 0
    assert abs(out.owner[:, 256].sum() - 2 * r * FOCAL[1] / z) <= 2
    # Along the axis: the segment plus a radius at each end.
    assert abs(out.owner[167].sum() - (80 + 2 * r) * FOCAL[0] / z) <= 3
    assert out.depth[167, 256] == pytest.approx(z - r, abs=0.01)
    assert np.isinf(out.depth[out.owner == 0]).all()
    assert np.isfinite(out.depth[out.owner > 0]).all()


def test_sphere_is_round():
    z, r = 600.0, 15.0
    for centre in ([0.0, 0.0, z], [60.0, -40.0, z]):
        out = draw([[centre, centre]], [r], [2])
        assert set(np.unique(out.owner)) == {0, 2}
        assert (out.owner > 0).sum() == pytest.approx(np.pi * (r * FOCAL[0] / z) ** 2, rel=0.05)
        rows, cols = np.nonzero(out.owner)
        assert abs(np.ptp(rows) - np.ptp(cols)) <= 1


@pytest.mark.parametrize(("near", "far"), [(1, 2), (2, 1)])
def test_nearer_capsule_wins_the_overlap(near: int, far: int):
    depth_of = {near: 500.0, far: 600.0}
    out = draw([horizontal(depth_of[1]), vertical(depth_of[2])], [10.0, 10.0], [1, 2])
    assert out.owner[167, 256] == near
    assert out.depth[167, 256] == pytest.approx(depth_of[near] - 10.0, abs=0.01)
    assert out.owner[167 + 100, 256] == 2  # below the crossing: only the vertical one
    assert out.owner[167, 256 + 60] == 1  # beside it: only the horizontal one


def test_capsule_through_the_camera_plane_is_clipped():
    out = draw([[[30.0, 0.0, -200.0], [30.0, 0.0, 400.0]]], [10.0], [1])
    owned = out.owner > 0
    assert owned.any()
    assert (out.depth[owned] > render.NEAR).all() and np.isfinite(out.depth[owned]).all()
    # The ray through column u enters the cylinder on its inner side, X = 30 - r.
    assert out.owner[167, 400] == 1
    assert out.depth[167, 400] == pytest.approx(20.0 * FOCAL[0] / (400 - PRINCPT[0]), abs=0.01)
    assert not owned[:, :300].any() and not owned[0].any() and not owned[-1].any()
    behind = draw([[[0.0, 0.0, -300.0], [0.0, 0.0, -50.0]]], [10.0], [1])
    assert not behind.owner.any()
    around = draw([[[0.0, 0.0, -100.0], [0.0, 0.0, 100.0]]], [10.0], [1])  # camera inside
    assert np.isfinite(around.depth[around.owner > 0]).all()


def _gaps(points: np.ndarray, seg: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(..., M) signed distance of points (..., 3) to capsules (M, 2, 3), radii (M,)."""
    gaps = []
    for (a_end, b_end), radius in zip(seg, radii, strict=True):
        rel, axis = points - a_end, b_end - a_end
        along = np.clip(rel @ axis / max(axis @ axis, 1e-12), 0, 1)
        gaps.append(np.linalg.norm(rel - along[..., None] * axis, axis=-1) - radius)
    return np.stack(gaps, axis=-1)


def test_random_scenes_match_a_ray_march():
    """Every hit lies on the right owner's surface with free space in front of it, and
    every background ray stays outside all capsules (ray-marched in 0.5 mm steps)."""
    focal, princpt, size = np.array([60.0, 60.0]), np.array([23.5, 15.5]), (48, 32)
    ys, xs = np.mgrid[0:32, 0:48]
    rays = np.stack([(xs - princpt[0]) / focal[0], (ys - princpt[1]) / focal[1], 1 + 0 * xs], -1)
    steps = np.arange(130.0, 350.0, 0.5)  # every capsule lies within 135 < Z < 345
    for seed in range(3):
        rng = np.random.default_rng(seed)
        seg = rng.uniform([-60, -45, 150], [60, 45, 330], (6, 2, 3))
        radii, owner = rng.uniform(5, 15, 6), rng.integers(1, 3, 6)
        out = render.render_capsules(seg, radii, owner, SKIN, focal, princpt, size, soften=0)
        hit = out.owner > 0
        gap = _gaps(rays[hit] * out.depth[hit, None].astype(float), seg, radii)
        assert np.abs(gap.min(-1)).max() < 1e-3
        assert (owner[gap.argmin(-1)] == out.owner[hit]).all()
        marched = _gaps(rays[..., None, :] * steps[:, None], seg, radii).min(-1)
        assert (marched[steps < out.depth[..., None] - 0.5] > -0.05).all()
        assert hit.sum() > 100 and (~hit).sum() > 100


def test_shading_is_brighter_facing_the_light():
    light = Lighting(directions=((1.0, 0.0, -1.0),), intensities=(1.0,), specular=0.0, rim=0.0)
    ball = [[0.0, 0.0, 500.0]] * 2
    out = draw([ball], [40.0], [1], lighting=light)
    grey = out.image.astype(float).sum(-1)
    assert grey[167, 256 + 70] > grey[167, 256] > grey[167, 256 - 70] > 0
    # The single albedo sets the hue: red above green above blue everywhere on the ball.
    lit = out.image[out.owner > 0].astype(int)
    assert (lit[:, 0] >= lit[:, 1]).all() and (lit[:, 1] >= lit[:, 2]).all()


def test_per_owner_colours_and_background():
    colors = {1: np.array([0.9, 0.1, 0.1]), 2: np.array([0.1, 0.1, 0.9])}
    backdrop = np.full((334, 512, 3), 7, np.uint8)
    out = render.render_capsules(
        np.array([horizontal(500.0), vertical(600.0)]),
        [10.0, 10.0],
        [1, 2],
        colors,
        FOCAL,
        PRINCPT,
        SIZE,
        backdrop,
        soften=0,
    )
    assert out.image[167, 256, 0] > out.image[167, 256, 2]
    assert out.image[167 + 100, 256, 2] > out.image[167 + 100, 256, 0]
    assert (out.image[out.owner == 0] == 7).all()
    with pytest.raises(ValueError, match="background"):  # (width, height) swapped
        draw([horizontal(500.0)], [10.0], [1], background=backdrop.transpose(1, 0, 2))


def test_render_is_deterministic():
    scene = ([horizontal(500.0), vertical(450.0)], [10.0, 8.0], [1, 2])
    first, second = draw(*scene, soften=0.6), draw(*scene, soften=0.6)
    assert first.image.tobytes() == second.image.tobytes()
    assert render.encode_jpeg(first.image, 85) == render.encode_jpeg(second.image, 85)


def test_joint_visible():
    out = draw([horizontal(500.0), vertical(600.0)], [10.0, 10.0], [1, 2])
    joints = np.array(
        [
            [0.0, 0.0, 500.0],  # on the near capsule's axis
            [0.0, 0.0, 600.0],  # the far capsule, right behind the near one
            [0.0, 60.0, 600.0],  # the far capsule where nothing covers it
            [0.0, 0.0, 700.0],  # owner 1, but behind its own hand's surface
            [500.0, 0.0, 500.0],  # outside the image
            [0.0, 0.0, -500.0],  # behind the camera
        ]
    )
    seen = render.joint_visible(out, joints, [1, 2, 2, 1, 1, 1], np.full(6, 10.0), FOCAL, PRINCPT)
    assert seen.tolist() == [True, False, True, False, False, False]


def test_grey_and_jpeg():
    image = studio.background(np.random.default_rng(0), SIZE)
    grey = render.to_grey(image)
    assert grey.shape == image.shape and grey.dtype == np.uint8
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    green = render.to_grey(np.array([[[0, 255, 0]]], np.uint8))
    assert abs(int(green[0, 0, 0]) - 150) <= 1  # BT.601: 0.587 * 255
    data = render.encode_jpeg(image, 90)
    assert data[:2] == b"\xff\xd8" and data == render.encode_jpeg(image.copy(), 90)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(decoded.astype(int) - image).mean() < 4  # RGB order survives the round trip
