"""ResNet feature extractor: torchvision's ResNet without its classifier (book chapter 3).

``ResNetBackbone(depth)`` keeps torchvision's submodule names (``conv1``, ``bn1``, ``relu``,
``maxpool``, ``layer1`` .. ``layer4``), so its state-dict keys are torchvision's minus ``fc.*``,
and the ``backbone.*`` weights of an mmpose InterNet checkpoint load into it once that prefix
is removed. For a 256 x 256 input, ResNet-50 returns a (B, 2048, 8, 8) map: stride 32.

Weights: ``pretrained=True`` asks torchvision for its ImageNet weights (``IMAGENET1K_V1``, the
file mmpose's ``torchvision://resnet50`` names) and, when they cannot be had (no network, no
cached copy), logs one warning line and keeps torchvision's random initialisation;
``pretrained=False`` never tries; a path loads a torchvision-format state dict from disk.
The input is expected RGB, normalised with the ImageNet mean and std.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import Any

import torch
from torch import nn
from torchvision import models

from minternet.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

_ARCHS: dict[int, tuple[Any, Any, int]] = {
    18: (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, 512),
    34: (models.resnet34, models.ResNet34_Weights.IMAGENET1K_V1, 512),
    50: (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1, 2048),
}
"""depth -> (torchvision builder, ImageNet weights entry, channels of layer4's output)."""
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
"""Names of the backbone's stages, input to output (see :meth:`ResNetBackbone.stages`)."""


class ResNetBackbone(nn.Module):
    """torchvision ResNet-18/34/50 up to ``layer4``: (B, 3, H, W) -> (B, C, H/32, W/32).

    Attributes:
        depth: 18, 34 or 50.
        out_channels: C of the output, 512 for depths 18 and 34, 2048 for 50.
        stride: 32, input pixels per output cell.
        pretrained_loaded: True when weights were loaded (ImageNet or a file), False when the
            parameters are torchvision's random initialisation.
        weights_source: ``"imagenet:IMAGENET1K_V1"``, ``"file:<path>"`` or ``"random"``.
    """

    stride = 32

    def __init__(self, depth: int = 50, pretrained: bool | str | os.PathLike[str] = True) -> None:
        super().__init__()
        if depth not in _ARCHS:
            raise ValueError(f"depth must be one of {sorted(_ARCHS)}, got {depth}")
        builder, weights, channels = _ARCHS[depth]
        net = builder(weights=None)  # torchvision's own initialisation (Kaiming, BN 1/0)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.depth, self.out_channels = depth, channels
        self.pretrained_loaded, self.weights_source = False, "random"
        if pretrained is True:
            self._load_imagenet(weights)
        elif isinstance(pretrained, str | os.PathLike):
            self.load_torchvision_state_dict(read_checkpoint(pretrained))
            self.pretrained_loaded, self.weights_source = True, f"file:{os.fspath(pretrained)}"
        elif pretrained is not False:
            raise TypeError(f"pretrained must be a bool or a path, got {pretrained!r}")

    def _load_imagenet(self, weights: Any) -> None:
        """Load torchvision's ImageNet weights, or warn in one line and keep random ones."""
        try:
            # torch.hub prints "Downloading: ..." even when it then fails; keep it quiet.
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # no network, proxy, bad cache file: all mean "unavailable"
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            log.warning(
                "minternet.backbone: ImageNet weights for resnet%d unavailable (%s); "
                "using random initialisation",
                self.depth,
                reason,
            )
            return
        self.load_torchvision_state_dict(state)
        log.info(
            "minternet.backbone: loaded ImageNet weights %s for resnet%d", weights.name, self.depth
        )
        self.pretrained_loaded = True
        self.weights_source = f"imagenet:{weights.name}"

    def load_torchvision_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ResNet state dict: ``fc.*`` is dropped, and missing
        ``num_batches_tracked`` buffers (older files) are tolerated; any other missing or
        unexpected key raises ``KeyError``."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise KeyError(
                f"not a torchvision resnet{self.depth} state dict: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def stages(self) -> dict[str, nn.Module]:
        """The five stages in order: ``stem`` (conv1, bn1, relu, maxpool), then ``layer1`` to
        ``layer4``; the modules are this backbone's own, not copies."""
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        modules = (stem, self.layer1, self.layer2, self.layer3, self.layer4)
        return dict(zip(STAGES, modules, strict=True))

    def stage_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output for ``x`` (B, 3, H, W): ``stem`` (B, 64, H/4, W/4) to
        ``layer4`` (B, C, H/32, W/32), sizes rounded up at each stride-2 step."""
        out = {}
        for name, stage in self.stages().items():
            x = out[name] = stage(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float, ImageNet-normalised RGB -> (B, out_channels, H/32, W/32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements in ``module`` (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _stage_stride(name: str, stage: nn.Module) -> int:
    """The factor by which ``stage`` shrinks its input: 4 for the stem, 1 or 2 for a layer."""
    if name == "stem":
        conv, pool = stage[0], stage[3]
        return conv.stride[0] * pool.stride
    stride = 1
    for block in stage:  # torchvision's BasicBlock and Bottleneck both keep their stride
        stride *= block.stride
    return stride


def stage_summary(model: ResNetBackbone, input_size: int | tuple[int, int] = 256) -> list[dict]:
    """One dict per stage (stem, layer1 .. layer4) for a (1, 3, H, W) input.

    Keys: ``stage`` (name), ``shape`` (C, H, W) of its output, ``stride`` (input pixels per
    output cell, cumulative), ``parameters`` (of that stage alone). Runs one forward pass on
    zeros with gradients off and the model in eval mode, so BN statistics stay unchanged;
    the model's train/eval mode is restored afterwards.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, h, w, dtype=param.dtype, device=param.device)
            outs = model.stage_outputs(x)
    finally:
        model.train(was_training)
    rows, stride = [], 1
    for name, stage in model.stages().items():
        stride *= _stage_stride(name, stage)
        rows.append(
            {
                "stage": name,
                "shape": tuple(outs[name].shape[1:]),
                "stride": stride,
                "parameters": count_parameters(stage),
            }
        )
    return rows
