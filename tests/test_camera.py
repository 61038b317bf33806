from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import CAMERA_JSON, DATA_JSON, JOINT_JSON, load_json
from hypothesis import given, settings
from hypothesis import strategies as st

from minternet import Camera
from minternet.camera import back_project, project


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


angles = st.floats(-math.pi, math.pi)
coords = st.floats(-2000, 2000)
cameras = st.builds(
    lambda yaw, pitch, roll, c, f, p: Camera(c, rotation(yaw, pitch, roll), f, p),
    angles,
    angles,
    angles,
    st.tuples(coords, coords, coords).map(np.array),
    st.tuples(st.floats(200, 3000), st.floats(200, 3000)).map(np.array),
    st.tuples(st.floats(0, 600), st.floats(0, 600)).map(np.array),
)


@settings(max_examples=200, deadline=None)
@given(cameras, st.floats(-500, 500), st.floats(-500, 500), st.floats(50, 5000))
def test_pixel_to_camera_inverts_camera_to_pixel(cam: Camera, x: float, y: float, z: float):
    point = np.array([x, y, z])
    uv = cam.camera_to_pixel(point)
    assert np.allclose(cam.pixel_to_camera(uv, point[2]), point, rtol=1e-9, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(cameras, st.floats(-2000, 2000), st.floats(-2000, 2000), st.floats(50, 5000))
def test_camera_to_pixel_inverts_pixel_to_camera(cam: Camera, u: float, v: float, z: float):
    uv = np.array([u, v])
    assert np.allclose(cam.camera_to_pixel(cam.pixel_to_camera(uv, z)), uv, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(cameras, st.tuples(coords, coords, coords).map(np.array))
def test_world_and_camera_space_are_inverse_rigid_maps(cam: Camera, point: np.ndarray):
    cam_point = cam.world_to_camera(point)
    assert np.allclose(cam.camera_to_world(cam_point), point, atol=1e-6)
    # A rigid map keeps distances to the camera centre, which maps to the origin.
    assert np.isclose(np.linalg.norm(cam_point), np.linalg.norm(point - cam.campos), atol=1e-6)
    assert np.allclose(cam.world_to_camera(cam.campos), 0.0)


def test_convention_is_rotation_after_translation():
    # Camera 1 m behind the origin on world -x, looking along world +x: R maps x_w to z_c.
    rot = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    cam = Camera(np.array([-1000.0, 0, 0]), rot, np.array([1000.0, 1000]), np.array([256.0, 167]))
    assert np.allclose(cam.world_to_camera(np.array([0.0, 0, 0])), [0, 0, 1000])
    assert np.allclose(cam.world_to_camera(np.array([0.0, 100, 50])), [100, 50, 1000])
    assert np.allclose(cam.world_to_pixel(np.array([0.0, 100, 50])), [356, 217])
    assert np.allclose(cam.intrinsics @ [100, 50, 1000] / 1000, [356, 217, 1])


def test_torch_and_numpy_agree_and_keep_dtype_and_shape():
    rng = np.random.default_rng(0)
    cam = Camera(rng.normal(size=3) * 100, rotation(0.3, -0.2, 1.1), [1500, 1490], [170, 250])
    points = rng.normal(size=(5, 42, 3)) * 100 + [0, 0, 900]
    uv_np = cam.world_to_pixel(points)
    for dtype in (torch.float32, torch.float64):
        uv_t = cam.world_to_pixel(torch.as_tensor(points, dtype=dtype))
        assert uv_t.dtype == dtype and uv_t.shape == (5, 42, 2)
        assert np.allclose(uv_t.numpy(), uv_np, rtol=1e-5, atol=1e-3)
        back = cam.pixel_to_camera(uv_t, torch.as_tensor(cam.world_to_camera(points)[..., 2]))
        assert back.dtype == dtype and back.shape == (5, 42, 3)
    assert cam.pixel_to_camera(uv_np.astype(np.float32), 800.0).dtype == np.float32


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="camrot"):
        Camera(np.zeros(3), np.eye(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="focal"):
        Camera(np.zeros(3), np.eye(3), np.array([np.nan, 1.0]), np.ones(2))


def test_valid_joints_of_the_real_frames_project_inside_their_images(samples_dir):
    data = load_json(samples_dir / DATA_JSON)
    cams = load_json(samples_dir / CAMERA_JSON)
    joints = load_json(samples_dir / JOINT_JSON)
    for image, ann in zip(data["images"], data["annotations"], strict=True):
        c, cam_id = str(image["capture"]), image["camera"]
        cam = Camera(*(cams[c][k][cam_id] for k in ("campos", "camrot", "focal", "princpt")))
        assert np.allclose(cam.camrot @ cam.camrot.T, np.eye(3), atol=1e-5)
        world = np.array(joints[c][str(image["frame_idx"])]["world_coord"])
        valid = np.array(ann["joint_valid"]).reshape(42) > 0
        uv = cam.world_to_pixel(world)[valid]
        assert cam.world_to_camera(world)[valid, 2].min() > 300  # in front, about a metre away
        assert (uv >= 0).all() and (uv[:, 0] < image["width"]).all()
        assert (uv[:, 1] < image["height"]).all()
        # The annotated box covers the projected valid joints (within a few pixels).
        x, y, w, h = ann["bbox"]
        assert (uv[:, 0] > x - 5).all() and (uv[:, 0] < x + w + 5).all()
        assert (uv[:, 1] > y - 5).all() and (uv[:, 1] < y + h + 5).all()


def test_project_and_back_project_broadcast_over_images() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform([-300, -300, 500], [300, 300, 1500], size=(4, 42, 3))
    focal = rng.uniform(800, 1500, size=(4, 1, 2))
    princpt = rng.uniform(100, 400, size=(4, 1, 2))
    uv = project(points, focal, princpt)
    assert uv.shape == (4, 42, 2)
    # By hand, image by image: u = fx X / Z + cx.
    for n in range(4):
        by_hand = points[n, :, :2] / points[n, :, 2:] * focal[n, 0] + princpt[n, 0]
        assert np.allclose(uv[n], by_hand, rtol=1e-9)
    assert np.allclose(back_project(uv, points[..., 2], focal, princpt), points, atol=1e-9)
    back_t = back_project(torch.as_tensor(uv), torch.as_tensor(points[..., 2]), focal, princpt)
    assert back_t.dtype == torch.float64 and torch.allclose(back_t, torch.as_tensor(points))
    flat = back_project(uv[0].astype(np.float32), 700.0, focal[0], princpt[0])
    assert flat.dtype == np.float32 and np.all(flat[:, 2] == 700.0)
