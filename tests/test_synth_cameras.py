"""The synthetic camera dome: InterHand's conventions, a mix of views, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from minternet.synth.cameras import FRONT_ARC, sample_cameras


@pytest.mark.parametrize("n_cameras", [1, 16, 80])
def test_camera_dome_follows_interhand_conventions(n_cameras: int) -> None:
    centre = np.array([20.0, -30.0, 10.0])
    cameras = sample_cameras(np.random.default_rng(n_cameras), n_cameras, centre)
    assert len(cameras) == n_cameras
    names = [c.name for c in cameras]
    assert len(set(names)) == n_cameras
    for spec in cameras:
        cam = spec.camera
        assert len(spec.name) == 6 and spec.name.isdigit()
        assert spec.name.startswith("410" if spec.grey else "400")
        assert (spec.width, spec.height) in ((512, 334), (334, 512))
        np.testing.assert_allclose(cam.camrot @ cam.camrot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(cam.camrot) == pytest.approx(1.0, abs=1e-12)
        assert 600.0 <= np.linalg.norm(cam.campos - centre) <= 1200.0
        assert 1200.0 <= cam.focal.min() and cam.focal.max() <= 1600.0
        assert abs(cam.focal[0] / cam.focal[1] - 1) < 0.005
        image_centre = np.array([spec.width, spec.height]) / 2
        assert np.abs(cam.princpt - image_centre).max() <= 10.0
        uv = cam.world_to_pixel(centre)
        assert np.linalg.norm(uv - image_centre) < 40.0
        assert cam.world_to_camera(centre)[2] > 0  # in front, not behind
        # Upright like the real dome: the image's down direction has a world-down (+y) part,
        # and no camera sits far below the hands.
        assert cam.camrot[1, 1] > 0.2
        offset = cam.campos - centre
        elevation = np.degrees(np.arcsin(-offset[1] / np.linalg.norm(offset)))
        assert -21.0 <= elevation <= 76.0


def test_camera_dome_mixes_grey_portrait_and_directions() -> None:
    cameras = sample_cameras(np.random.default_rng(0), 80, np.zeros(3))
    assert sum(c.grey for c in cameras) == 20
    assert sum(c.height > c.width for c in cameras) == 20
    directions = np.array([c.camera.campos / np.linalg.norm(c.camera.campos) for c in cameras])
    # Spread round the front and sides: every horizontal quadrant holds cameras, some look
    # from above, and none from behind the subject (on the -z side, facing +z).
    quadrant = (np.arctan2(directions[:, 2], directions[:, 0]) // (np.pi / 2)).astype(int)
    assert set(quadrant.tolist()) == {-2, -1, 0, 1}
    assert (directions[:, 1] < -0.8).any()
    round_from_front = np.degrees(np.abs(np.arctan2(directions[:, 0], directions[:, 2])))
    assert round_from_front.max() <= FRONT_ARC + 3.0
    assert round_from_front.max() > FRONT_ARC - 15.0  # the sides are covered
    assert (round_from_front < 15.0).any()


def test_cameras_are_deterministic() -> None:
    first = sample_cameras(np.random.default_rng(5), 30, np.zeros(3))
    again = sample_cameras(np.random.default_rng(5), 30, np.zeros(3))
    for a, b in zip(first, again, strict=True):
        assert (a.name, a.width, a.height, a.grey) == (b.name, b.width, b.height, b.grey)
        for key in ("campos", "camrot", "focal", "princpt"):
            assert getattr(a.camera, key).tobytes() == getattr(b.camera, key).tobytes()
    with pytest.raises(ValueError, match="n_cameras"):
        sample_cameras(np.random.default_rng(0), 1001, np.zeros(3))
