"""Checkpoint key layouts: mmpose 1.x and 0.x files as :class:`~minternet.model.InterNet`s.

mmpose 1.x stores ``{"state_dict": {...}, "meta": {...}}`` whose keys are exactly those of
:class:`~minternet.model.InterNet` (``backbone.*``, ``head.*``), so loading needs no renaming.
mmpose 0.x used the same sub-module names (``right_hand_head.deconv_layers``, ``final_layer``,
``root_head.fc``, ``hand_type_head.fc``) under ``keypoint_head.`` instead of ``head.``.
Every load here is strict: each key of the file is used and each tensor of the model filled,
otherwise :class:`CheckpointMismatchError` names the offending keys.

Files are read and written by :mod:`minternet.checkpoint` (``weights_only=True``), which
refuses arbitrary pickled objects; this module only translates their keys.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import torch

from minternet.backbone import ResNetBackbone
from minternet.checkpoint import read_checkpoint
from minternet.model import InterNet, InterNetConfig
from minternet.skeleton import JOINTS_PER_HAND

MMPOSE_0X_PREFIX, MMPOSE_PREFIX = "keypoint_head.", "head."
_SHOWN = 20  # names listed per kind of mismatch; the rest are counted


class CheckpointMismatchError(ValueError):
    """A state dict that does not fit the model: missing, unexpected or wrongly shaped keys."""


def _names(keys: list[str]) -> str:
    """Up to `_SHOWN` names, comma-separated, then how many more there are."""
    more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``; every key must match by name and shape.

    Raises:
        CheckpointMismatchError: listing missing, unexpected and wrongly shaped keys by name,
            before any tensor of the model is changed.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} [{_names(keys)}]"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape", shapes),
            )
            if keys
        ]
        raise CheckpointMismatchError(
            f"state dict does not fit {type(model).__name__}: " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


def _config_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """InterNet settings that reproduce the shapes in an mmpose-layout ``state``.

    A setting whose tensor is absent keeps :class:`InterNetConfig`'s default, so a broken
    file still reaches :func:`load_strict`, which names what is wrong. The heatmap size is
    not stored in the weights; it is taken as mmpose's, for the default input size.
    """
    if "backbone.layer1.0.conv3.weight" in state:
        depth = 50  # bottleneck blocks; 101 and 152 are not offered by the backbone
    else:
        blocks = {k.split(".")[2] for k in state if k.startswith("backbone.layer3.")}
        depth = {2: 18, 6: 34}.get(len(blocks), 50)
    hand = "head.right_hand_head."
    layers = sum(
        1 for k, v in state.items() if k.startswith(hand + "deconv_layers.") and v.ndim == 4
    )
    found = {"backbone_depth": depth, "deconv_layers": layers}
    # (setting, tensor, axis whose length it is, divided by)
    shapes = (
        ("depth_bins", hand + "final_layer.weight", 0, JOINTS_PER_HAND),
        ("root_bins", "head.root_head.fc.2.weight", 0, 1),
        ("deconv_channels", hand + "deconv_layers.0.weight", 1, 1),
    )
    for name, key, axis, per in shapes:
        if key in state:
            found[name] = state[key].shape[axis] // per
    default = InterNetConfig()
    found["heatmap_size"] = default.input_size * 2**layers // ResNetBackbone.stride
    return {**dataclasses.asdict(default), **found}


def load_mmpose_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu", heatmap_size: int | None = None
) -> InterNet:
    """An :class:`InterNet` with the weights of an mmpose checkpoint, in eval mode.

    Accepts ``{"state_dict": ...}`` (mmpose 1.x and 0.x files) or a bare state dict, with
    ``head.*`` (1.x) or ``keypoint_head.*`` (0.x) keys. The model's configuration comes from
    ``meta["minternet"]`` when the file was written by :func:`~minternet.checkpoint.save_model`,
    else from
    the tensor shapes. The heatmap size is not in the weights: ``heatmap_size`` sets it for
    files without that meta (default: mmpose's, 8 * 2**deconv_layers for a 256 x 256 input).
    0.x's hand-type head applied a sigmoid; the weights are the same, and
    here the logits come out raw, as in 1.x.

    Raises:
        CheckpointMismatchError: the keys or shapes do not fit (names listed).
        ValueError: naming the file, when it is no readable checkpoint of tensors, or its
            model settings are not InterNet's (the field named); see also
            :func:`~minternet.checkpoint.read_checkpoint`.
    """
    ckpt = read_checkpoint(path, map_location)
    state, meta = (ckpt.get("state_dict", ckpt), ckpt.get("meta") or {}) if isinstance(
        ckpt, Mapping
    ) else (None, None)
    if not isinstance(state, Mapping) or not isinstance(meta, Mapping):
        raise ValueError(f"{os.fspath(path)}: not a model checkpoint (no state dict of tensors)")
    state = {
        MMPOSE_PREFIX + k[len(MMPOSE_0X_PREFIX) :] if k.startswith(MMPOSE_0X_PREFIX) else k: v
        for k, v in state.items()
    }
    values = meta.get("minternet") or _config_from_state(state)
    if heatmap_size is not None and isinstance(values, Mapping):
        values = {**values, "heatmap_size": heatmap_size}
    # Sizes from a file are untrusted: a meta asking for 10^6 heatmap px would fill memory.
    model = InterNet(InterNetConfig.from_dict(values, os.fspath(path)))
    load_strict(model, state)
    return model.eval()
