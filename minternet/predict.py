"""InterNet on any image: a hand box in, both hands' 3D joints out (book chapter 10).

InterNet is top-down: it sees the square crop around a box that encloses both hands, padded
1.25 times as in training, and its outputs are decoded exactly as :mod:`minternet.evaluate`
decodes them (one hard argmax per joint, the crop mapped back to the image). A single image
fixes the hands only up to their distance from the camera, so the camera-space joints need a
focal length, a principal point and the depth of one wrist; defaults are stated in the result.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from minternet.camera import back_project
from minternet.codec import HeatmapCodec
from minternet.model import InterNet
from minternet.skeleton import HAND_OF_JOINT, HANDS
from minternet.transforms import (
    apply_affine,
    bbox_to_centre_scale,
    crop_matrix,
    inverse_crop_matrix,
    normalize,
    warp_image,
)

DEFAULT_ROOT_DEPTH = 1000.0
"""mm, the anchored wrist's camera depth when none is given (InterHand2.6M's are 0.6-1.2 m)."""
DEFAULT_FOCAL_PER_SIDE = 1.2
"""Default focal length in units of the image's longer side: a 45 degree field of view."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Both hands in one image, as :func:`predict` returns them.

    Attributes:
        keypoints_uvz: (42, 3) float32: u, v image px and z mm relative to the joint's own
            wrist, what the network predicts (right hand 0-20, left 21-41).
        hand_type: (2,) float32, probabilities [right, left] (sigmoid of the logits).
        hand_present: (2,) bool [right, left]: logit > 0, mmpose's decoding.
        rel_root_depth: mm, left wrist depth minus right wrist depth.
        joint_cam: (42, 3) float64 mm, camera space: ``keypoints_uvz`` back-projected with
            ``focal`` and ``princpt``, the anchor wrist at ``root_depth``.
        bbox: (4,) px [x, y, w, h], the box the crop was taken around.
        focal, princpt: (2,) px, the intrinsics used; ``defaults`` names those not given.
        root_depth: mm, camera depth of the ``anchor`` wrist ("right" unless only the left
            hand is present).
        flip_test: whether the outputs are averaged with those of the mirrored crop.
    """

    keypoints_uvz: np.ndarray
    hand_type: np.ndarray
    hand_present: np.ndarray
    rel_root_depth: float
    joint_cam: np.ndarray
    bbox: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    root_depth: float
    anchor: str
    flip_test: bool
    defaults: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain lists and numbers, with a note saying what was assumed."""
        values = {
            f.name: v.tolist() if isinstance(v := getattr(self, f.name), np.ndarray) else v
            for f in dataclasses.fields(self)
        }
        values["defaults"] = list(self.defaults)
        values["units"] = {
            "keypoints_uvz": "u, v image px; z mm relative to the joint's own wrist",
            "joint_cam": "mm, camera space (x right, y down, z forward)",
            "rel_root_depth": "mm, left wrist depth minus right wrist depth",
            "hand_type": "probability [right, left]",
        }
        values["note"] = (
            f"joint_cam puts the {self.anchor} wrist at {self.root_depth:g} mm from the camera: "
            "one image fixes the hands only up to that depth"
            + (f"; assumed, not given: {', '.join(self.defaults)}" if self.defaults else "")
        )
        return values


def check_bbox(bbox: Sequence[float], width: int, height: int, source: str = "image",
               name: str = "bbox") -> np.ndarray:
    """``bbox`` [x, y, w, h] px as a (4,) float64 array, checked against a ``width`` x
    ``height`` image.

    Raises:
        ValueError: "SOURCE: NAME x,y,w,h ..." when the box has not 4 finite numbers, a width
            or height <= 0, or does not overlap the image at all.
    """
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    text = ",".join(f"{v:g}" for v in box)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"{source}: {name} {text} is not four finite numbers x,y,w,h")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"{source}: {name} {text} has a width or height <= 0")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"{source}: {name} {text} lies outside the {width}x{height} image")
    return box


def _pair(value: Sequence[float] | None, name: str, source: str, positive: bool) -> np.ndarray:
    pair = np.asarray(value, dtype=np.float64).reshape(-1)
    if pair.shape != (2,) or not np.isfinite(pair).all() or (positive and (pair <= 0).any()):
        kind = "positive numbers" if positive else "numbers"
        raise ValueError(f"{source}: {name} {value} is not two finite {kind}")
    return pair


def predict(
    model: InterNet,
    image: np.ndarray,
    bbox: Sequence[float] | None = None,
    *,
    focal: Sequence[float] | None = None,
    princpt: Sequence[float] | None = None,
    root_depth: float | None = None,
    flip_test: bool = False,
    source: str = "image",
) -> Prediction:
    """Run ``model`` on one (H, W, 3) uint8 RGB ``image`` around ``bbox`` [x, y, w, h] px
    (default: the whole image), on the model's device, in eval mode.

    ``focal`` (fx, fy) px, ``princpt`` (cx, cy) px and ``root_depth`` mm default to
    :data:`DEFAULT_FOCAL_PER_SIDE` times the longer side, the image centre and
    :data:`DEFAULT_ROOT_DEPTH`; the result says which were assumed. ``source`` names the
    image in error messages.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{source}: expected an (H, W, 3) uint8 RGB image, got "
                         f"{image.dtype} {image.shape}")
    height, width = image.shape[:2]
    defaults = tuple(name for name, value in (("bbox", bbox), ("focal", focal),
                     ("princpt", princpt), ("root_depth", root_depth)) if value is None)
    box = check_bbox([0, 0, width, height] if bbox is None else bbox, width, height, source)
    focal = _pair([DEFAULT_FOCAL_PER_SIDE * max(width, height)] * 2 if focal is None else focal,
                  "focal", source, positive=True)
    princpt = _pair([(width - 1) / 2, (height - 1) / 2] if princpt is None else princpt,
                    "princpt", source, positive=False)
    root_depth = DEFAULT_ROOT_DEPTH if root_depth is None else float(root_depth)
    if not np.isfinite(root_depth) or root_depth <= 0:
        raise ValueError(f"{source}: root depth {root_depth} mm is not a positive number")

    codec = HeatmapCodec.for_model(model.config)
    centre, scale = bbox_to_centre_scale(box)
    crop = warp_image(image, crop_matrix(centre, scale, 0.0, codec.input_size), codec.input_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = normalize(torch.from_numpy(crop).permute(2, 0, 1)[None].to(device))
            out = model.flip_test(x) if flip_test else model(x)
    finally:
        model.train(was_training)
    keypoints, _ = codec.decode(out.heatmaps.float())
    uvz = keypoints[0].cpu().numpy().astype(np.float64)
    # Back to the image through the box as a training sample stores it (float32, as mmpose),
    # so the result is exactly what evaluation computes for the same box.
    inverse = inverse_crop_matrix(centre.astype(np.float32), float(np.float32(scale)), 0.0,
                                  codec.input_size)
    uvz[:, :2] = apply_affine(inverse, uvz[:, :2])
    logits = out.hand_logits[0].float()
    present = codec.decode_hand_type(logits).cpu().numpy()
    rel_root = float(codec.decode_root(out.root_depth[0, 0].float()).cpu())

    # Wrist depths: the anchor at root_depth, the other hand's Delta away.
    anchor = "left" if present[1] and not present[0] else "right"
    right = root_depth - (rel_root if anchor == "left" else 0.0)
    wrists = np.array([right, right + rel_root])
    joint_cam = back_project(uvz[:, :2], uvz[:, 2] + wrists[list(HAND_OF_JOINT)], focal, princpt)
    return Prediction(
        keypoints_uvz=uvz.astype(np.float32),
        hand_type=torch.sigmoid(logits).cpu().numpy().astype(np.float32),
        hand_present=present,
        rel_root_depth=rel_root,
        joint_cam=joint_cam,
        bbox=box,
        focal=focal,
        princpt=princpt,
        root_depth=root_depth,
        anchor=anchor,
        flip_test=flip_test,
        defaults=defaults,
    )


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The image file at ``path`` as (H, W, 3) uint8 RGB (grey ones get 3 channels).

    Raises:
        FileNotFoundError / ValueError: naming the file, when it is missing or not an image.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{os.fspath(path)}: no such image file")
    bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{os.fspath(path)}: cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_outputs(prediction: Prediction, image: np.ndarray, out: str | os.PathLike[str],
                  name: str) -> dict[str, Path]:
    """``NAME.json`` (:meth:`Prediction.to_json`), ``NAME.png`` (2D skeletons of the hands
    judged present, or of both if neither is, over the image) and ``NAME.html`` (their
    interactive 3D view, camera space; plotly.js written once beside it) in ``out``."""
    # Drawing needs matplotlib and plotly: imported here, so `import minternet` stays light.
    import matplotlib.pyplot as plt

    from minternet import viz, viz3d

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / f"{name}.{kind}" for kind in ("json", "png", "html")}
    paths["json"].write_text(json.dumps(prediction.to_json(), indent=1))
    # The hands judged present; both when neither is (a picture of nothing explains nothing).
    present = prediction.hand_present if prediction.hand_present.any() else np.ones(2, bool)
    shown = present[list(HAND_OF_JOINT)]
    title = ", ".join(f"{hand} {p:.2f}" for hand, p in zip(HANDS, prediction.hand_type,
                                                            strict=True))
    ax = viz.show_skeleton(image, prediction.keypoints_uvz[:, :2], shown,
                           title=f"{name}: P(hand) {title}")
    x, y, w, h = prediction.bbox
    ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, color="white", linestyle=":"))
    ax.figure.savefig(paths["png"], dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    figure = viz3d.hands_3d_figure(prediction.joint_cam, shown, space="camera",
                                   title=f"{name}: camera space, mm ({prediction.anchor} wrist "
                                         f"at {prediction.root_depth:g} mm)")
    figure.write_html(paths["html"], include_plotlyjs="directory")
    return paths

