"""Training configurations: the paper's recipe and a CPU-sized one (book chapter 8).

A :class:`TrainConfig` is everything a run depends on. ``PAPER`` is mmpose's
``internet_res50_4xb16-20e_interhand3d-256x256`` (16 samples per process; run it on 4 GPUs for
the published batch of 64); ``TINY`` learns on ``data_samples/`` on a CPU in minutes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FIELDS = (
    "backbone_depth",
    "heatmap_size",
    "depth_bins",
    "root_bins",
    "deconv_channels",
    "deconv_layers",
)
"""The fields that are :class:`minternet.model.InterNet`'s arguments."""
MODEL_RANGES = {
    "backbone_depth": (18, 50),
    "heatmap_size": (1, 256),
    "depth_bins": (1, 256),
    "root_bins": (1, 1024),
    "deconv_channels": (1, 4096),
    "deconv_layers": (0, 5),
}
"""Sane bounds of each model setting read from a file (a checkpoint's meta, a config.json):
beyond them a model would not fit in memory, or could not be InterNet."""
INT_RANGES = {
    "batch_size": (1, 1 << 16),
    "workers": (0, 256),
    "val_samples": (0, 1 << 40),
    "epochs": (0, 1 << 20),
    "checkpoint_steps": (0, 1 << 40),
    "seed": (0, (1 << 63) - 1),
}
"""Bounds of the other integer settings (0: off, for val_samples and checkpoint_steps)."""
CHOICES = {
    "augmentation": ("mmpose", "original", "none"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "batch_norm": ("batch", "frozen"),
    "missing_images": ("raise", "drop"),
}


def check_model_settings(values: Mapping[str, Any], source: str) -> dict[str, int]:
    """``values`` as InterNet arguments (:data:`MODEL_FIELDS`), each an int in
    :data:`MODEL_RANGES` (``backbone_depth`` 18, 34 or 50).

    Raises:
        ValueError: naming ``source`` (a file, or "settings") and the field.
    """
    if not isinstance(values, Mapping) or set(values) != set(MODEL_FIELDS):
        keys = sorted(values) if isinstance(values, Mapping) else type(values).__name__
        raise ValueError(f"{source}: model settings must be {', '.join(MODEL_FIELDS)}, got {keys}")
    for name in MODEL_FIELDS:
        low, high = MODEL_RANGES[name]
        value = values[name]
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"{source}: {name}={value!r} is not an integer in {low}..{high}")
    if values["backbone_depth"] not in (18, 34, 50):
        raise ValueError(f"{source}: backbone_depth={values['backbone_depth']} is not 18, 34, 50")
    return dict(values)


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings; the defaults are ``PAPER``.

    Model: ``backbone_depth`` ... ``deconv_layers`` are :class:`~minternet.model.InterNet`'s
    arguments; ``pretrained`` starts the backbone from torchvision's ImageNet weights: "auto"
    falls back to random weights with a warning when they cannot be fetched, True stops the
    run instead, False never tries.

    Data: ``train_split``; ``val_split`` ("" for none); ``augmentation`` ("mmpose",
    "original" or "none"); ``batch_size`` and ``workers`` per process; ``val_samples`` (0:
    the whole split, else that many evenly spaced); ``val_at_start`` (also validate the
    untrained model, recorded as epoch 0); ``missing_images`` ("raise": stop before training
    when an image file is absent; "drop": leave those samples out, for a tree unpacked from
    some of the image archives). An image that exists but cannot be decoded is skipped during
    training with a warning, and counted in the epoch's record.

    Schedule: Adam at ``lr`` (betas 0.9, 0.999, no weight decay) for ``epochs`` epochs,
    times ``gamma`` from each epoch in ``milestones``.

    Engine: ``amp`` ("auto": bf16 on CUDA where supported, else fp16 with a gradient scaler,
    and float32 on the CPU; or "bf16", "fp16", "off"); ``channels_last``; ``compile``
    (``torch.compile`` the model and the heatmap loss on CUDA, where it is checked to work
    before the run; ignored on the CPU, where compiling costs more than it saves); ``batch_norm``
    ("batch": each process's own batch statistics, averaged across processes at each epoch's
    end, as mmpose; "frozen": running statistics only, for small batches);
    ``checkpoint_steps`` (also save every that many steps; 0: at epoch ends only); ``seed``.
    """

    backbone_depth: int = 50
    pretrained: bool | str = "auto"
    heatmap_size: int = 64
    depth_bins: int = 64
    root_bins: int = 64
    deconv_channels: int = 256
    deconv_layers: int = 3
    train_split: str = "train"
    val_split: str = "val"
    augmentation: str = "mmpose"
    batch_size: int = 16
    workers: int = 1
    val_samples: int = 0
    val_at_start: bool = False
    missing_images: str = "raise"
    epochs: int = 20
    lr: float = 2e-4
    milestones: tuple[int, ...] = (15, 17)
    gamma: float = 0.1
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = True
    batch_norm: str = "batch"
    checkpoint_steps: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}"
                )
        if self.pretrained not in (True, False, "auto"):
            raise ValueError(f"pretrained must be true, false or auto, not {self.pretrained!r}")
        check_model_settings(self.model_kwargs(), "settings")
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        for name, high in (("lr", 1.0), ("gamma", 1.0)):
            value = getattr(self, name)
            if type(value) not in (int, float) or not (math.isfinite(value) and 0 < value <= high):
                raise ValueError(f"{name} must be a number in (0, {high:g}], not {value!r}")
        for name in ("train_split", "val_split"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a split name, not {getattr(self, name)!r}")
        for name in ("val_at_start", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        steps = self.milestones
        if not all(type(m) is int and 0 < m <= INT_RANGES["epochs"][1] for m in steps) or list(
            steps
        ) != sorted(set(steps)):
            raise ValueError(f"milestones must be increasing epochs (>= 1), not {steps!r}")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """The configuration a run saved as ``config.json``.

        Raises:
            ValueError: naming the file, when it is not a configuration of this version.
        """
        text = Path(path).read_text()
        try:
            values = json.loads(text)
            return cls(**{**values, "milestones": tuple(values.get("milestones", ()))})
        except (TypeError, ValueError, AttributeError, RecursionError) as err:
            raise ValueError(
                f"{os.fspath(path)}: not a valid training configuration ({err})"
            ) from None

    def model_kwargs(self) -> dict[str, int]:
        """The InterNet arguments (see :data:`MODEL_FIELDS`)."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def replace(self, overrides: dict[str, str]) -> TrainConfig:
        """A copy with fields set from strings, as a command line gives them: ints, floats,
        "true"/"false", and comma-separated ints for ``milestones``.

        Raises:
            ValueError: naming the field, for an unknown field or a value of the wrong type.
        """
        known = {f.name for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for name, text in overrides.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            default = getattr(self, name)
            try:
                if name == "pretrained" and text.lower() == "auto":
                    values[name] = "auto"
                elif isinstance(default, bool) or name == "pretrained":
                    if text.lower() not in ("true", "false", "1", "0"):
                        raise ValueError("expected true or false")
                    values[name] = text.lower() in ("true", "1")
                elif isinstance(default, tuple):
                    values[name] = tuple(int(v) for v in text.split(",") if v.strip())
                else:
                    values[name] = type(default)(text)
            except ValueError as err:
                raise ValueError(f"{name}={text!r}: {err}") from None
        return dataclasses.replace(self, **values)


PAPER = TrainConfig()
TINY = TrainConfig(
    backbone_depth=18,
    pretrained=False,
    heatmap_size=16,
    depth_bins=16,
    root_bins=16,
    deconv_channels=32,
    deconv_layers=2,
    workers=0,
    val_at_start=True,
    epochs=6,
    lr=1e-3,
    milestones=(5,),
    checkpoint_steps=0,
)
"""ResNet-18 at 128 x 128 with 16^3 heatmaps, Adam at 1e-3 for 6 epochs: a CPU run."""
CONFIGS = {"paper": PAPER, "tiny": TINY}
