"""minternet.viz on the real InterHand2.6M sample frames (2D overlays and 3D figures)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from minternet.camera import Camera
from minternet.skeleton import BONES, JOINT_NAMES, NUM_JOINTS, joint_color
from minternet.viz import draw_skeleton, drawable_bones, history_figure, show_skeleton
from minternet.viz3d import camera_frustum, hands_3d_figure

matplotlib.use("Agg")

SAMPLES = Path(__file__).parents[2] / "shared" / "samples" / "interhand2.6m_mmpose_tests"
INTERACTING, LEFT_ONLY, RIGHT_ONLY = 326750, 680801, 471953
PLACEHOLDER = np.array([1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    size: tuple[int, int]  # (width, height) px
    camera: Camera
    camera_name: str
    world: np.ndarray  # (42, 3) mm, world space
    uv: np.ndarray  # (42, 2) px
    valid: np.ndarray  # (42,) 0/1, from the data json


@functools.cache
def _load(image_id: int) -> Sample:
    data = json.loads((SAMPLES / "test_interhand2.6m_data.json").read_text())
    cams = json.loads((SAMPLES / "test_interhand2.6m_camera.json").read_text())
    joints = json.loads((SAMPLES / "test_interhand2.6m_joint_3d.json").read_text())
    info = next(im for im in data["images"] if im["id"] == image_id)
    ann = next(a for a in data["annotations"] if a["image_id"] == image_id)
    capture, name = str(info["capture"]), info["camera"]
    camera = Camera(**{key: cams[capture][key][name] for key in Camera.__dataclass_fields__})
    world = np.array(joints[capture][str(info["frame_idx"])]["world_coord"])
    image = cv2.imread(str(SAMPLES / info["file_name"]))[..., ::-1]
    return Sample(
        image=np.ascontiguousarray(image),
        size=(info["width"], info["height"]),
        camera=camera,
        camera_name=name,
        world=world,
        uv=camera.world_to_pixel(world),
        valid=np.array(ann["joint_valid"]).reshape(-1),
    )


@pytest.fixture
def sample(request: pytest.FixtureRequest) -> Sample:
    if not SAMPLES.is_dir():
        pytest.skip(f"sample frames not found at {SAMPLES}")
    return _load(request.param)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image_corners(size: tuple[int, int]) -> np.ndarray:
    """Outer pixel corners, the convention of minternet.viz (pixel centres at integers)."""
    w, h = size
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


def _points(trace) -> np.ndarray:
    """(n, 3) points of a plotly 3D trace, None separators dropped."""
    xyz = [(x, y, z) for x, y, z in zip(trace.x, trace.y, trace.z, strict=True) if x is not None]
    return np.array(xyz, dtype=float).reshape(-1, 3)


def _segments(trace) -> int:
    """Number of 2-point segments in a None-separated plotly line trace."""
    return sum(1 for x in trace.x if x is None)


# ---------------------------------------------------------------- 2D


@pytest.mark.parametrize(
    ("sample", "bones", "styles"),
    [(INTERACTING, 40, {"-", "--"}), (RIGHT_ONLY, 20, {"-"}), (LEFT_ONLY, 20, {"--"})],
    indirect=["sample"],
)
def test_draw_skeleton_one_line_per_valid_bone(sample: Sample, bones: int, styles: set) -> None:
    _, ax = plt.subplots()
    draw_skeleton(ax, sample.uv, sample.valid)
    assert len(ax.lines) == bones
    assert {line.get_linestyle() for line in ax.lines} == styles
    (scatter,) = ax.collections
    np.testing.assert_allclose(scatter.get_offsets(), sample.uv[sample.valid > 0])


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_draw_skeleton_lines_are_the_bones(sample: Sample) -> None:
    _, ax = plt.subplots()
    draw_skeleton(ax, sample.uv, sample.valid)
    for line, (parent, child) in zip(ax.lines, BONES, strict=True):
        np.testing.assert_allclose(line.get_xydata(), sample.uv[[parent, child]])
        assert line.get_linestyle() == ("-" if child < NUM_JOINTS // 2 else "--")
        assert line.get_color() == joint_color(child)


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_draw_skeleton_skips_one_invalid_joint_and_its_bones(sample: Sample) -> None:
    valid = np.ones(NUM_JOINTS)
    valid[9] = 0  # right middle3: ends bones 9-8 and 10-9
    _, ax = plt.subplots()
    draw_skeleton(ax, sample.uv, valid[:, None])  # the JSON's 42 x [v] layout works too
    assert len(ax.lines) == 38
    assert not any(np.isclose(line.get_xydata(), sample.uv[9]).all(1).any() for line in ax.lines)
    assert len(ax.collections[0].get_offsets()) == 41


@pytest.mark.parametrize(
    ("sample", "labels"), [(INTERACTING, ["R", "L"]), (LEFT_ONLY, ["L"])], indirect=["sample"]
)
def test_draw_skeleton_labels_valid_hands_only(sample: Sample, labels: list[str]) -> None:
    _, ax = plt.subplots()
    draw_skeleton(ax, sample.uv, sample.valid)
    assert len(ax.texts) == 0
    draw_skeleton(ax, sample.uv, sample.valid, label_hands=True)
    assert [text.get_text() for text in ax.texts] == labels


def test_draw_skeleton_rejects_wrong_shapes() -> None:
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="shape"):
        draw_skeleton(ax, np.zeros((21, 2)))
    with pytest.raises(ValueError, match="joint_valid"):
        draw_skeleton(ax, np.zeros((42, 2)), np.ones(21))


@pytest.mark.parametrize("sample", [INTERACTING, RIGHT_ONLY], indirect=True)  # portrait, landscape
def test_show_skeleton_keeps_the_image_frame(sample: Sample) -> None:
    uv = sample.uv.copy()
    uv[0] = (-400.0, 3000.0)  # far outside: must not widen the view
    ax = show_skeleton(sample.image, uv, sample.valid, title="frame")
    width, height = sample.size
    assert ax.get_xlim() == (-0.5, width - 0.5)
    assert ax.get_ylim() == (height - 0.5, -0.5)  # y down: row 0 at the top
    assert not ax.axison
    assert ax.get_title() == "frame"
    np.testing.assert_array_equal(ax.images[0].get_array(), sample.image)
    assert len(ax.get_legend().get_texts()) == 7  # five fingers, two hands


def test_show_skeleton_rejects_grey_image() -> None:
    with pytest.raises(ValueError, match="RGB"):
        show_skeleton(np.zeros((10, 10), dtype=np.uint8), np.zeros((42, 2)))


# ---------------------------------------------------------------- 3D


@pytest.mark.parametrize("sample", [LEFT_ONLY, RIGHT_ONLY], indirect=True)
def test_3d_leaves_out_invalid_hand(sample: Sample) -> None:
    assert np.isclose(sample.world, PLACEHOLDER).all(1).sum() >= 20  # the data has them
    fig = hands_3d_figure(sample.world, sample.valid)
    points = np.concatenate([_points(trace) for trace in fig.data])
    assert not np.isclose(points, PLACEHOLDER).all(1).any()
    markers = np.concatenate([_points(t) for t in fig.data if t.mode == "markers"])
    np.testing.assert_allclose(markers, sample.world[sample.valid > 0])
    assert sum(_segments(t) for t in fig.data if t.mode == "lines") == 20


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_3d_bones_and_joint_hover(sample: Sample) -> None:
    fig = hands_3d_figure(sample.world, sample.valid)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 10  # five fingers per hand
    assert sum(_segments(t) for t in lines) == len(drawable_bones(sample.valid)) == 40
    assert {t.line.dash for t in lines if t.name.startswith("right")} == {"solid"}
    assert {t.line.dash for t in lines if t.name.startswith("left")} == {"dash"}
    texts = [text for t in fig.data if t.mode == "markers" for text in t.text]
    assert texts == [f"{name} ({k})" for k, name in enumerate(JOINT_NAMES)]
    assert all("mm" in t.hovertemplate for t in fig.data)
    assert fig.layout.scene.aspectmode == "data"


@pytest.mark.parametrize("sample", [INTERACTING, RIGHT_ONLY], indirect=True)
def test_frustum_world_space(sample: Sample) -> None:
    apex, corners = camera_frustum(sample.camera, sample.size, 300.0)
    np.testing.assert_allclose(apex, sample.camera.campos)
    np.testing.assert_allclose(sample.camera.world_to_camera(corners)[:, 2], 300.0)
    # camrot is stored in float32, so R R^T = I only to ~6e-8: the round trip drifts ~1e-5 px.
    pixels = sample.camera.world_to_pixel(corners)
    np.testing.assert_allclose(pixels, _image_corners(sample.size), atol=1e-3)

    fig = hands_3d_figure(
        sample.world,
        sample.valid,
        cameras=[(sample.camera_name, sample.camera)],
        image_sizes=[sample.size],
        frustum_depth=300.0,
    )
    (frustum,) = [t for t in fig.data if t.name == f"camera {sample.camera_name}"]
    points = _points(frustum)
    np.testing.assert_allclose(points[0], sample.camera.campos)
    assert frustum.text[0] == sample.camera_name
    for corner in corners:
        assert np.isclose(points, corner).all(1).any()
    # The view is upright for this camera: screen-up is its -y axis, the eye is behind it.
    scene_camera = fig.layout.scene.camera
    up = sample.camera.camrot @ [scene_camera.up.x, scene_camera.up.y, scene_camera.up.z]
    eye = sample.camera.camrot @ [scene_camera.eye.x, scene_camera.eye.y, scene_camera.eye.z]
    np.testing.assert_allclose(up, [0.0, -1.0, 0.0], atol=1e-6)
    assert eye[2] < 0


@pytest.mark.parametrize("sample", [RIGHT_ONLY], indirect=True)
def test_frustum_camera_space(sample: Sample) -> None:
    joints_cam = sample.camera.world_to_camera(sample.world)
    fig = hands_3d_figure(
        joints_cam, sample.valid, cameras=[sample.camera], space="camera", image_sizes=[sample.size]
    )
    (frustum,) = [t for t in fig.data if t.name == "camera 0"]
    points = _points(frustum)
    np.testing.assert_array_equal(points[0], 0.0)
    corners = points[np.isclose(points[:, 2], 200.0)]
    assert len(corners) >= 4
    projected = sample.camera.camera_to_pixel(corners)
    for expected in _image_corners(sample.size):
        assert np.isclose(projected, expected).all(1).any()
    assert set(frustum.text) == {""}  # unnamed camera: no label
    up = fig.layout.scene.camera.up
    assert (up.x, up.y, up.z) == (0.0, -1.0, 0.0)


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_3d_view_stands_back_far_enough_to_show_the_axes(sample: Sample) -> None:
    # Plotly's own default eye, (1.25, 1.25, 1.25), is 2.17 scene half-sizes away; closer
    # than that, the axes and their labels are cut off at the figure's edges.
    eye = hands_3d_figure(sample.world, cameras=[sample.camera]).layout.scene.camera.eye
    assert np.linalg.norm([eye.x, eye.y, eye.z]) >= 2.17


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_a_camera_dome_has_one_legend_entry_and_names_cameras_on_hover(sample: Sample) -> None:
    names = [f"cam{k}" for k in range(12)]
    fig = hands_3d_figure(sample.world, cameras=[(n, sample.camera) for n in names])
    frustums = [t for t in fig.data if t.legendgroup == "cameras"]
    assert len(frustums) == 12
    assert [t.showlegend for t in frustums] == [True] + [False] * 11
    assert frustums[0].name == "12 cameras"
    assert all(t.mode == "lines" for t in frustums), "no labels to pile up"
    for name, trace in zip(names, frustums, strict=True):
        assert f"camera {name}<" in trace.hovertemplate
    # Eight cameras or fewer keep a legend entry and a label each.
    few = hands_3d_figure(sample.world, cameras=[(n, sample.camera) for n in names[:8]])
    assert [t.name for t in few.data if t.name.startswith("camera")] == [
        f"camera {n}" for n in names[:8]]


@pytest.mark.parametrize("sample", [INTERACTING], indirect=True)
def test_3d_rejects_bad_arguments(sample: Sample) -> None:
    with pytest.raises(ValueError, match="at most one camera"):
        hands_3d_figure(sample.world, cameras=[sample.camera, sample.camera], space="camera")
    with pytest.raises(ValueError, match="image sizes"):
        hands_3d_figure(sample.world, cameras=[sample.camera], image_sizes=[(512, 334)] * 2)
    with pytest.raises(ValueError, match="space"):
        hands_3d_figure(sample.world, space="pixel")


def test_history_figure_has_titles_and_plain_log_labels() -> None:
    history = [{"epoch": 0, "val": {"MPJPE_all": 159.0}}] + [
        {"epoch": e, "train": {"loss": 1000.0 / 3**e}, "val": {"MPJPE_all": 110.0 - e}}
        for e in range(1, 7)
    ]
    fig = history_figure(history)
    loss_ax, val_ax = fig.axes
    assert loss_ax.get_title() == "Training loss" and "MPJPE_all" in val_ax.get_title()
    assert loss_ax.get_yscale() == "log"
    assert [line.get_xdata().tolist() for line in val_ax.lines] == [list(range(7))]
    fig.canvas.draw()
    labels = [t.get_text() for t in loss_ax.get_yticklabels(which="both") if t.get_text()]
    # Over three decades: plain numbers, and only the 1, 2 and 5 of each decade.
    assert labels and all("$" not in text and text[0] in "125" for text in labels)
    assert {"1", "10", "100"} <= set(labels)
