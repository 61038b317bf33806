"""Pictures in 2D (matplotlib): the 42-joint skeleton over an image, and a run's training
curves. The 3D scenes are in :mod:`minternet.viz3d`.

Pixel centres sit at integer (u, v), as in OpenCV and mmpose, so a W x H image spans
[-0.5, W - 0.5] x [-0.5, H - 0.5]: matplotlib's ``imshow`` extent. Nothing here shows a
figure or changes a global setting.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minternet.skeleton import (
    BONES,
    FINGER_COLORS,
    FINGERS,
    HAND_OF_JOINT,
    HANDS,
    NUM_JOINTS,
    ROOTS,
    joint_color,
)

# Line style per hand [right, left]: colour already means the finger, and in the grey
# images of the monochrome cameras the dash pattern is what tells the hands apart.
_MPL_STYLE = ("-", "--")


def checked_joints(points: np.ndarray, dim: int) -> np.ndarray:
    """``points`` as (42, dim) float64, or ValueError."""
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (NUM_JOINTS, dim):
        raise ValueError(f"expected shape ({NUM_JOINTS}, {dim}), got {array.shape}")
    return array


def valid_mask(joint_valid: np.ndarray | None) -> np.ndarray:
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
    uv, valid = checked_joints(uv, 2), valid_mask(joint_valid)
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

