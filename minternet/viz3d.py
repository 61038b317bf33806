"""Interactive 3D scenes (plotly) of the 42-joint skeleton and the cameras that see it.

A frustum's far corners are the image's outer pixel corners: pixel centres sit at integer
(u, v), as in OpenCV and mmpose, so a W x H image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]
(the extent :mod:`minternet.viz` draws 2D overlays in). Nothing here shows a figure or
changes a global setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from minternet.camera import Camera
from minternet.skeleton import (
    FINGER_COLORS,
    FINGER_OF_JOINT,
    FINGERS,
    HAND_OF_JOINT,
    HANDS,
    JOINT_NAMES,
    joint_color,
)
from minternet.viz import checked_joints, drawable_bones, valid_mask

DEFAULT_IMAGE_SIZE = (512, 334)
"""(width, height) px of a landscape InterHand2.6M image."""

# Dash per hand [right, left], as the 2D overlays' line styles: colour already means the finger.
_PLOTLY_DASH = ("solid", "dash")

# Plotly eye in the viewing camera's axes (x right, y down, z forward): behind it, a little
# up and right, so depth shows while the hands stay upright as in the image. Its length is
# the distance from the scene's centre in units of the scene's half-size: 2.4, a bit more
# than plotly's default (2.2), keeps the axes and their labels inside the figure.
_EYE_IN_CAMERA = np.array([0.4, -0.5, -1.6]) * 2.4 / np.linalg.norm([0.4, -0.5, -1.6])
# Above this many cameras (a capture dome) they share one legend entry and lose their
# labels, which would cover each other; hovering a frustum still names its camera.
_MAX_LABELLED_CAMERAS = 8
_HOVER_MM = "x %{x:.1f} mm<br>y %{y:.1f} mm<br>z %{z:.1f} mm<extra>%{fullData.name}</extra>"


def _check_space(space: str) -> None:
    """ValueError unless ``space`` is "world" or "camera"."""
    if space not in ("world", "camera"):
        raise ValueError(f"space must be 'world' or 'camera', got {space!r}")


def camera_frustum(
    camera: Camera,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    depth: float = 200.0,
    *,
    space: str = "world",
) -> tuple[np.ndarray, np.ndarray]:
    """Apex (3,) and far corners (4, 3) of what ``camera`` sees out to ``depth`` mm of Z.

    image_size is (width, height) px. The apex is the camera centre (``campos`` in "world"
    space, zeros in "camera" space); the corners are the image's outer pixel corners
    (-0.5, -0.5), (W - 0.5, -0.5), (W - 0.5, H - 0.5), (-0.5, H - 0.5) back-projected to Z =
    ``depth``. Both are float64 mm in ``space``.
    """
    _check_space(space)
    (left, top), (right, bottom) = (-0.5, -0.5), np.subtract(image_size, 0.5)
    pixels = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
    apex, corners = np.zeros(3), camera.pixel_to_camera(pixels, depth)
    if space == "camera":
        return apex, corners
    return camera.camera_to_world(apex), camera.camera_to_world(corners)


def _polyline_xyz(polylines: list[np.ndarray]) -> dict[str, list[float | None]]:
    """(n_i, 3) polylines -> plotly x, y, z lists, a None gap between polylines."""
    xyz: dict[str, list[float | None]] = {"x": [], "y": [], "z": []}
    for line in polylines:
        for axis, values in enumerate(xyz.values()):
            values.extend([*line[:, axis].tolist(), None])
    return xyz


def hands_3d_figure(
    joints: np.ndarray,
    joint_valid: np.ndarray | None = None,
    *,
    cameras: Sequence[Camera | tuple[str, Camera]] = (),
    space: str = "world",
    image_sizes: Sequence[tuple[int, int]] | None = None,
    frustum_depth: float = 200.0,
    title: str | None = None,
) -> go.Figure:
    """Interactive 3D view of both hands and, as frustums, the cameras looking at them.

    joints: (42, 3) float, mm, in ``space`` ("world" or "camera"; camera space allows at
    most one camera, at the origin). joint_valid: (42,) 0/1, None = all valid; invalid
    joints and their bones are left out, so InterHand's [1, 1, 1] placeholders never show.
    cameras: Camera or (name, Camera), the name labelling the apex. image_sizes: (width,
    height) px per camera, None = ``DEFAULT_IMAGE_SIZE``. frustum_depth: mm of camera Z.
    The scene keeps mm isotropic and looks from behind the first camera (in world space
    without cameras: along +Z, -Y up, which suits InterHand's y-down world), so the hands
    come out upright as in that camera's image. Hover gives joint names and mm. More than
    eight cameras share one legend entry, unlabelled; hovering one names it.
    """
    joints, valid = checked_joints(joints, 3), valid_mask(joint_valid)
    _check_space(space)
    named = [(None, cam) if isinstance(cam, Camera) else cam for cam in cameras]
    if space == "camera" and len(named) > 1:
        raise ValueError(f"space='camera' takes at most one camera, got {len(named)}")
    sizes = [DEFAULT_IMAGE_SIZE] * len(named) if image_sizes is None else list(image_sizes)
    if len(sizes) != len(named):
        raise ValueError(f"{len(sizes)} image sizes for {len(named)} cameras")

    fig, bones = go.Figure(), drawable_bones(valid)
    for hand, hand_name in enumerate(HANDS):
        for finger in FINGERS:
            segments = [
                joints[[p, c]]
                for p, c in bones
                if HAND_OF_JOINT[c] == hand and FINGER_OF_JOINT[c] == finger
            ]
            if segments:
                fig.add_scatter3d(
                    **_polyline_xyz(segments),
                    mode="lines",
                    name=f"{hand_name} {finger}",
                    legendgroup=hand_name,
                    hovertemplate=_HOVER_MM,
                    line={"color": FINGER_COLORS[finger], "width": 5, "dash": _PLOTLY_DASH[hand]},
                )
        shown = [k for k in np.flatnonzero(valid) if HAND_OF_JOINT[k] == hand]
        if shown:
            fig.add_scatter3d(
                **dict(zip("xyz", joints[shown].T, strict=True)),
                mode="markers",
                name=f"{hand_name} joints",
                legendgroup=hand_name,
                marker={"size": 4, "color": [joint_color(k) for k in shown]},
                text=[f"{JOINT_NAMES[k]} ({k})" for k in shown],
                hovertemplate="%{text}<br>" + _HOVER_MM,
            )

    dome = len(named) > _MAX_LABELLED_CAMERAS
    for index, ((name, cam), size) in enumerate(zip(named, sizes, strict=True)):
        apex, corners = camera_frustum(cam, size, frustum_depth, space=space)
        lines = [*(np.stack([apex, corner]) for corner in corners), corners[[0, 1, 2, 3, 0]]]
        xyz, label = _polyline_xyz(lines), "" if name is None else str(name)
        trace_name = f"camera {label or index}"
        if dome:
            fig.add_scatter3d(
                **xyz,
                mode="lines",
                name=f"{len(named)} cameras",
                legendgroup="cameras",
                showlegend=index == 0,
                line={"color": "grey", "width": 2},
                hovertemplate=_HOVER_MM.replace("%{fullData.name}", trace_name),
            )
            continue
        # Only the first point (the apex) carries the name, so the label sits at the camera.
        fig.add_scatter3d(
            **xyz,
            mode="lines+text",
            name=trace_name,
            text=[label, *[""] * (len(xyz["x"]) - 1)],
            line={"color": "grey", "width": 2},
            hovertemplate=_HOVER_MM,
        )

    # Identity = "the joints are in the viewing camera's space": its y-down is screen-down.
    rotation = named[0][1].camrot if space == "world" and named else np.eye(3)
    eye, up = _EYE_IN_CAMERA @ rotation, np.array([0.0, -1.0, 0.0]) @ rotation
    fig.update_layout(
        title=title,
        margin={"l": 0, "r": 0, "b": 0, "t": 40 if title else 0},
        scene={
            "aspectmode": "data",
            **{f"{axis}axis_title": f"{axis} (mm)" for axis in "xyz"},
            "camera": {
                "eye": dict(zip("xyz", eye.tolist(), strict=True)),
                "up": dict(zip("xyz", up.tolist(), strict=True)),
            },
        },
    )
    return fig
