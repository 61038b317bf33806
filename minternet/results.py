"""An evaluation's report: a split opened as test crops, a checkpoint (or the codec's oracle)
scored on it, and the Markdown results table (book chapters 7 and 9; the ``eval`` verb).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minternet import hub
from minternet.camera import project
from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.evaluate import Predictions, oracle_predictions, predict, score_predictions
from minternet.metrics import METRIC_KEYS, ROOT_OF_JOINT, Protocol, json_metrics
from minternet.model import InterNet

TABLE_COLUMNS = ("Set", "Arch", "Input Size", *(key.replace("_", "-") for key in METRIC_KEYS))
"""Set, Arch, Input Size, MPJPE-single, MPJPE-interacting, MPJPE-all, MRRPE, APh."""


def open_split(
    root: str | os.PathLike[str],
    split: str | None,
    input_size: int,
    missing_images: str = "raise",
    bad_images: str = "raise",
) -> tuple[InterHandDataset, str | None]:
    """Test crops of ``input_size`` px from a v1.0 tree (``split``, default "test") or a flat
    folder (no split); returns the dataset and the split used. ``missing_images`` as in
    :meth:`~minternet.dataset.InterHandDataset.check_images`; ``bad_images`` is the dataset's
    ``on_bad_image`` ("skip": an undecodable image is skipped, counted, and scored nowhere).
    """
    root = Path(root)
    tree = (root / "annotations").is_dir()
    if split is not None and root.is_dir() and not tree:
        raise ValueError(f"{root}: a flat folder has no splits, so split={split!r} means nothing")
    if split is None and tree:
        split = "test"
    dataset = InterHandDataset(
        root, split, train=False, input_size=input_size, on_bad_image=bad_images
    )
    return dataset.check_images(missing_images), split


def arch_name(model: InterNet) -> str:
    """A short description of the architecture for result tables."""
    config = model.config
    grid = f"{config.depth_bins}x{config.heatmap_size}x{config.heatmap_size}"
    return f"InterNet ResNet-{config.backbone_depth} ({grid})"


@dataclasses.dataclass(frozen=True)
class Report:
    """One evaluation: what ran on what, and the metrics (mm and a fraction)."""

    set: str
    arch: str
    input_size: int
    split: str | None
    samples: int
    checkpoint: str | None
    protocol: str
    metrics: dict[str, float]
    skipped_images: int = 0
    """Undecodable images skipped (``bad_images="skip"``), counted in no metric."""

    def to_json(self) -> dict[str, Any]:
        """Plain values, with a NaN metric as None (JSON has no NaN)."""
        return {**dataclasses.asdict(self), "metrics": json_metrics(self.metrics)}


def evaluate(
    root: str | os.PathLike[str],
    split: str | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    protocol: Protocol = "mmpose",
    missing_images: str = "raise",
    bad_images: str = "raise",
) -> Report:
    """Score ``checkpoint`` (or, when None, the oracle of mmpose's default codec) on the
    split of ``root`` that :func:`open_split` opens (``missing_images`` and ``bad_images``
    are passed to it).
    """
    if checkpoint is None:
        codec = HeatmapCodec()
        dataset, split = open_split(root, split, codec.input_size, missing_images, bad_images)
        predictions, arch = oracle_predictions(dataset, codec), "oracle"
    else:
        model = hub.load_model(checkpoint, device)
        if next(model.parameters()).is_cuda:  # predict() runs in bf16 with channels_last there
            model.to(memory_format=torch.channels_last)
        dataset, split = open_split(root, split, model.input_size, missing_images, bad_images)
        predictions = predict(model, dataset, batch_size=batch_size, num_workers=num_workers)
        codec, arch = HeatmapCodec.for_model(model.config), arch_name(model)
    name = Path(root).resolve().name
    return Report(
        set=f"{name}/{split}" if split else name,
        arch=arch,
        input_size=codec.input_size,
        split=split,
        samples=len(dataset),
        checkpoint=None if checkpoint is None else os.fspath(checkpoint),
        protocol=protocol,
        metrics=score_predictions(predictions, dataset, protocol=protocol),
        skipped_images=dataset.skipped,
    )


def prediction_records(
    predictions: Predictions, dataset: InterHandDataset, frames: int = 64
) -> list[dict[str, Any]]:
    """``frames`` evenly spaced predicted frames with their ground truth, as plain JSON
    values, so that a run's predictions can be drawn where its images are not.

    Each record: ``image`` (the path under the dataset root); ``keypoints`` and
    ``gt_keypoints`` (42 x [u px, v px, z mm relative to the joint's own wrist], original
    image); ``joint_valid`` (42 x 0/1); ``hand_type`` and ``gt_hand_type`` ([right, left]
    0/1); ``rel_root_depth`` and ``gt_rel_root_depth`` (mm, left wrist minus right).
    """
    rows = predictions["index"]
    picks = np.unique(np.linspace(0, len(rows) - 1, min(frames, len(rows))).round().astype(int))
    index = dataset.index
    records = []
    for p in picks:
        row = int(rows[p])
        joint_cam = index["joint_cam"][row].astype(np.float64)  # (42, 3) mm
        wrists = joint_cam[list(ROOT_OF_JOINT), 2]  # each joint's own wrist depth
        gt = np.concatenate([project(joint_cam, index["focal"][row], index["princpt"][row]),
                             (joint_cam[:, 2] - wrists)[:, None]], axis=1)  # fmt: skip
        records.append({
            "image": index["image_path"][row].decode(),
            "keypoints": np.round(predictions["keypoints"][p], 2).tolist(),
            "gt_keypoints": np.round(gt, 2).tolist(),
            "joint_valid": index["joint_valid"][row].astype(int).tolist(),
            "hand_type": np.asarray(predictions["hand_type"][p]).astype(int).tolist(),
            "gt_hand_type": index["hand_type"][row].astype(int).tolist(),
            "rel_root_depth": round(float(predictions["rel_root_depth"][p]), 2),
            "gt_rel_root_depth": round(float(index["rel_root_depth"][row]), 2),
        })  # fmt: skip
    return records


def results_table(rows: Iterable[Report]) -> str:
    """A Markdown table of :data:`TABLE_COLUMNS`, one row per report: MPJPE and MRRPE in mm
    and APh as a fraction, 2 decimals; "n/a" for a NaN.
    """
    lines = [
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * 3 + "---:|" * len(METRIC_KEYS),
    ]
    for row in rows:
        values = [
            "n/a" if math.isnan(row.metrics[k]) else f"{row.metrics[k]:.2f}" for k in METRIC_KEYS
        ]
        cells = [row.set, row.arch, f"{row.input_size}x{row.input_size}", *values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
