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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minternet.codec import HeatmapCodec
from minternet.model import SMALL_CONFIG, InterNetConfig

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


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings; the defaults are ``PAPER``.

    Model: ``model``, the network's :class:`~minternet.model.InterNetConfig`;
    ``pretrained`` starts the backbone from torchvision's ImageNet weights: "auto"
    falls back to random weights with a warning when they cannot be fetched, True stops the
    run instead, False never tries.

    Data: ``train_split``; ``val_split`` ("" for none); ``augmentation`` ("mmpose",
    "original" or "none"); ``batch_size`` and ``workers`` per process; ``val_samples`` (0:
    the whole split, else that many evenly spaced); ``val_at_start`` (also validate the
    untrained model, recorded as epoch 0); ``missing_images`` ("raise": stop before training
    when an image file is absent; "drop": leave those samples out, for a tree unpacked from
    some of the image archives). An image that exists but cannot be decoded is skipped during
    training with a warning, and counted in the epoch's record.

    Target: ``heatmap_peak``, the value of each joint's target Gaussian at its centre
    (mmpose's 255). Decoding takes an argmax, so the scale does not change what a trained
    model predicts, only how fast training gets there: Adam moves each weight by about
    ``lr`` per step, and the heads must grow from outputs near 0 to the peak (chapter 8).

    Schedule: Adam at ``lr`` (betas 0.9, 0.999, no weight decay) for ``epochs`` epochs,
    times ``gamma`` from each epoch in ``milestones``; the root-depth head's weights at
    ``lr * root_lr_scale``. From random weights, a root head at the full ``lr`` learns the
    median depth within a few hundred steps, before the backbone's features tell crops apart,
    and its softmax saturates on that one bin, where almost no gradient passes (chapter 8).

    Engine: ``amp`` ("auto": bf16 on CUDA where supported, else fp16 with a gradient scaler,
    and float32 on the CPU; or "bf16", "fp16", "off"); ``channels_last``; ``compile``
    (``torch.compile`` the model and the heatmap loss on CUDA, where it is checked to work
    before the run; ignored on the CPU, where compiling costs more than it saves); ``batch_norm``
    ("batch": each process's own batch statistics, averaged across processes at each epoch's
    end, as mmpose; "frozen": running statistics only, for small batches);
    ``checkpoint_steps`` (also save every that many steps; 0: at epoch ends only); ``seed``.
    """

    model: InterNetConfig = field(default_factory=InterNetConfig)
    pretrained: bool | str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    augmentation: str = "mmpose"
    batch_size: int = 16
    workers: int = 1
    val_samples: int = 0
    val_at_start: bool = False
    missing_images: str = "raise"
    heatmap_peak: float = 255.0
    epochs: int = 20
    lr: float = 2e-4
    root_lr_scale: float = 1.0
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
        if not isinstance(self.model, InterNetConfig):
            raise ValueError(f"model must be an InterNetConfig, not {type(self.model).__name__}")
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        for name, high in (
            ("lr", 1.0),
            ("root_lr_scale", 1.0),
            ("gamma", 1.0),
            ("heatmap_peak", 1e4),
        ):
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
    def from_dict(cls, values: dict[str, Any], source: str = "settings") -> TrainConfig:
        """The configuration :func:`dataclasses.asdict` wrote as ``values``; the model's
        settings nested under ``"model"``, or (files of earlier versions) beside the others.

        Raises:
            ValueError: naming ``source`` and the field, for values that are no configuration.
        """
        if not isinstance(values, dict):
            raise ValueError(f"{source}: not a training configuration (an object of settings)")
        values = dict(values)
        model_names = [f.name for f in dataclasses.fields(InterNetConfig)]
        flat = {name: values.pop(name) for name in model_names if name in values}
        model = InterNetConfig.from_dict(values.pop("model", flat), source)
        try:
            milestones = tuple(values.pop("milestones", ()))
            return cls(**values, model=model, milestones=milestones)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: not a valid training configuration ({err})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """The configuration a run saved as ``config.json``.

        Raises:
            ValueError: naming the file, when it is not a configuration of this version.
        """
        try:
            values = json.loads(Path(path).read_text())
        except (ValueError, RecursionError) as err:
            raise ValueError(
                f"{os.fspath(path)}: not a valid training configuration ({err})"
            ) from None
        return cls.from_dict(values, os.fspath(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the configuration as ``config.json`` (model settings under ``"model"``)."""
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n")

    def codec(self) -> HeatmapCodec:
        """The codec the run's targets are encoded with: the model's grid
        (:meth:`HeatmapCodec.for_model`), with Gaussians peaking at ``heatmap_peak``."""
        return dataclasses.replace(HeatmapCodec.for_model(self.model), max_value=self.heatmap_peak)

    def settings(self) -> dict[str, Any]:
        """Every setting by the name :meth:`replace` and the command line give it, in field
        order, the model's six in place of ``model``; as JSON values (lists, not tuples)."""
        values: dict[str, Any] = {}
        for name, value in dataclasses.asdict(self).items():
            if name == "model":
                values.update(value)
            else:
                values[name] = list(value) if isinstance(value, tuple) else value
        return values

    def replace(self, overrides: dict[str, str]) -> TrainConfig:
        """A copy with fields set from strings, as a command line gives them: ints, floats,
        "true"/"false", and comma-separated ints for ``milestones``. The model's settings
        (``heatmap_size``, ...) are named as they are, without ``model.``.

        Raises:
            ValueError: naming the field, for an unknown field or a value of the wrong type.
        """
        model = dataclasses.asdict(self.model)
        known = set(self.settings())
        values: dict[str, Any] = {}
        for name, text in overrides.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")
            default = model[name] if name in model else getattr(self, name)
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
        changes = {k: v for k, v in values.items() if k not in model}
        model_changes = {k: v for k, v in values.items() if k in model}
        if model_changes:
            changes["model"] = dataclasses.replace(self.model, **model_changes)
        return dataclasses.replace(self, **changes)


PAPER = TrainConfig()
TINY = TrainConfig(
    model=SMALL_CONFIG,
    pretrained=False,
    workers=0,
    val_at_start=True,
    heatmap_peak=16.0,
    epochs=16,
    lr=1e-3,
    root_lr_scale=0.1,
    milestones=(14,),
    checkpoint_steps=0,
)
"""ResNet-18 at 128 x 128 with 16^3 heatmaps, Adam at 1e-3 for 16 epochs: a CPU run of
about 5 minutes. Targets peak at 16, not 255: at lr 1e-3 a head that must grow from ~0 to
255 spends the whole run getting there. The root head learns at a tenth of lr: at 1e-3 its
softmax saturates on the median bin within 200 steps, before the random backbone's features
carry depth, and never leaves it (chapter 8)."""
SYNTHETIC = TrainConfig(batch_size=64, workers=12, val_samples=2000)
"""The paper's model (ResNet-50, ImageNet weights when they can be downloaded, 256 x 256,
64^3) and schedule on one GPU with the published global batch of 64 at its learning rate,
for a synthetic set of 50,000 training images (``book/tools/synthetic_gpu_run.sh``)."""
CONFIGS = {"paper": PAPER, "tiny": TINY, "synthetic": SYNTHETIC}
