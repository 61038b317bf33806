"""Pictures of the 42-joint skeleton: 2D overlays (matplotlib) and 3D scenes (plotly);
and a run's training curves.

Pixel centres sit at integer (u, v), as in OpenCV and mmpose, so a W x H image spans
[-0.5, W - 0.5] x [-0.5, H - 0.5]: matplotlib's ``imshow`` extent, and the corners that
camera frustums pass through. Nothing here shows a figure or changes a global setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minternet.camera import Camera
from minternet.skeleton import (
    BONES,
    FINGER_COLORS,
    FINGER_OF_JOINT,
    FINGERS,
    HAND_OF_JOINT,
    HANDS,
    JOINT_NAMES,
    NUM_JOINTS,
    ROOTS,
    joint_color,
)

DEFAULT_IMAGE_SIZE = (512, 334)
"""(width, height) px of a landscape InterHand2.6M image."""

# Line style per hand [right, left]: colour already means the finger, and in the grey
# images of the monochrome cameras the dash pattern is what tells the hands apart.
_MPL_STYLE = ("-", "--")
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


def _checked(points: np.ndarray, dim: int) -> np.ndarray:
    """``points`` as (42, dim) float64, or ValueError."""
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (NUM_JOINTS, dim):
        raise ValueError(f"expected shape ({NUM_JOINTS}, {dim}), got {array.shape}")
    return array


def _validity(joint_valid: np.ndarray | None) -> np.ndarray:
    """(42,) 0/1, (42, 1) as in the JSON, or None (= all valid) -> (42,) bool."""
    if joint_valid is None:
        return np.ones(NUM_JOINTS, dtype=bool)
    valid = np.asarray(joint_valid).reshape(-1) > 0
    if valid.shape != (NUM_JOINTS,):
        raise ValueError(f"joint_valid needs {NUM_JOINTS} entries, got {valid.shape[0]}")
    return valid


def drawable_bones(valid: np.ndarray) -> list[tuple[int, int]]:
    """(parent, child) pairs of ``BONES`` with both ends valid ((42,) bool), in order."""
    return [(p, c) for p, c in BONES if valid[p] and valid[c]]


def draw_skeleton(
    ax: Axes,
    uv: np.ndarray,
    joint_valid: np.ndarray | None = None,
    *,
    linewidth: float = 2.0,
    markersize: float = 12,
    label_hands: bool = False,
) -> None:
    """Draw both hands on ``ax``: one ``Line2D`` per drawable bone, then one joint scatter.

    uv: (42, 2) float, px. joint_valid: (42,) 0/1, None = all valid; invalid joints and
    bones touching them are skipped. Bones take their finger's colour and are solid for
    the right hand, dashed for the left. markersize is the scatter area in points^2.
    label_hands writes "R" / "L" by each valid wrist.
    """
    uv, valid = _checked(uv, 2), _validity(joint_valid)
    for parent, child in drawable_bones(valid):
        ax.plot(
            uv[[parent, child], 0],
            uv[[parent, child], 1],
            color=joint_color(child),
            linestyle=_MPL_STYLE[HAND_OF_JOINT[child]],
            linewidth=linewidth,
        )
    shown = np.flatnonzero(valid)
    # The white rim keeps dark finger colours visible on dark skin and grey images.
    ax.scatter(
        *uv[shown].T,
        s=markersize,
        c=[joint_color(k) for k in shown],
        edgecolors="white",
        linewidths=0.5,
        zorder=3,
    )
    for hand, root in enumerate(ROOTS):
        if label_hands and valid[root]:
            ax.annotate(
                HANDS[hand][0].upper(),
                uv[root],
                xytext=(6, 6),
                textcoords="offset points",
                color="white",
                weight="bold",
                bbox={"boxstyle": "round", "fc": "black", "alpha": 0.6},
            )


def show_skeleton(
    image: np.ndarray,
    uv: np.ndarray,
    joint_valid: np.ndarray | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Show an (H, W, 3) uint8 RGB image with the skeleton (hands labelled R / L) on it.

    uv: (42, 2) float, px, in ``image``; joint_valid as in ``draw_skeleton``. ax None makes
    a new figure. The Axes limits stay at the image extent even when joints lie outside it,
    the axis is off, and ``legend`` adds finger colours and hand line styles.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(image.shape[1] / 80, image.shape[0] / 80))
    shown = ax.imshow(image)
    draw_skeleton(ax, uv, joint_valid, label_hands=True)
    # Plotting grows the limits to any joint outside the image: pin them back to its extent.
    left, right, bottom, top = shown.get_extent()
    ax.set(xlim=(left, right), ylim=(bottom, top), title=title)
    ax.set_axis_off()
    if legend:
        handles = [Line2D([], [], color=FINGER_COLORS[f], label=f) for f in FINGERS] + [
            Line2D([], [], color="black", linestyle=style, label=hand)
            for hand, style in zip(HANDS, _MPL_STYLE, strict=True)
        ]
        ax.legend(handles=handles, loc="best", fontsize="x-small", framealpha=0.7)
    return ax


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
    joints, valid = _checked(joints, 3), _validity(joint_valid)
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


def history_figure(history: list[dict[str, Any]]) -> Figure:
    """Train loss (log axis, plain numbers) and val MPJPE_all per epoch of ``history``
    (metrics.jsonl's records); a bare Figure, so a notebook keeps its pyplot backend."""
    fig = Figure(figsize=(10, 3.4))
    ax_loss, ax_val = fig.subplots(1, 2)
    trained = [h for h in history if "train" in h]
    losses = [h["train"]["loss"] for h in trained]
    ax_loss.plot([h["epoch"] for h in trained], losses, "o-")
    ax_loss.set(title="Training loss", xlabel="epoch", ylabel="loss (log scale)", yscale="log")
    # Over more than a decade, label only 1, 2 and 5 x 10^k, or the labels run together.
    skip = "346789" if losses and max(losses) > 10 * min(losses) else ""
    plain = ticker.FuncFormatter(lambda v, _: "" if f"{v:.0e}"[0] in skip else f"{v:g}")
    ax_loss.yaxis.set(major_formatter=plain, minor_formatter=plain)
    val = [h for h in history if h.get("val", {}).get("MPJPE_all") is not None]
    ax_val.plot([h["epoch"] for h in val], [h["val"]["MPJPE_all"] for h in val], "o-")
    ax_val.set(title="Validation MPJPE_all (epoch 0: untrained)", xlabel="epoch", ylabel="mm")
    for ax in (ax_loss, ax_val):
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig

