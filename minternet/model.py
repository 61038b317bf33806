"""InterNet: a ResNet backbone and four heads (book chapters 4-6).

The layout of submodules is chosen so that ``InterNet().state_dict()`` has exactly the keys,
order and shapes of an mmpose 1.x InterNet checkpoint's ``state_dict``: ``backbone.*`` (the
torchvision names), then ``head.right_hand_head``, ``head.left_hand_head``, ``head.root_head``
and ``head.hand_type_head``. A hand head is ``deconv_layers`` (ConvT, BN, ReLU per step, so the
parameterised indices are 0, 1, 3, 4, 6, 7) and ``final_layer`` (a 1 x 1 conv); the two small
heads are ``fc`` (Linear, ReLU, Linear: indices 0 and 2).

Shapes for the defaults (ResNet-50, 256 x 256 input, 64^3 heatmaps): layer4 is (B, 2048, 8, 8);
three stride-2 deconvolutions give (B, 256, 64, 64); the 1 x 1 conv gives (B, 21 * 64, 64, 64),
read as (B, 21, 64, 64, 64) with channel c = joint c // 64, depth bin c % 64.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from minternet.backbone import ResNetBackbone, count_parameters
from minternet.skeleton import FLIP_INDEX, JOINTS_PER_HAND

HIDDEN = 512
"""Width of the hidden Linear layer in the root and hand-type heads."""
PARTS = ("right_hand_head", "left_hand_head", "root_head", "hand_type_head")
"""The four heads, in state-dict order."""


@dataclass(frozen=True)
class InterNetConfig:
    """The six settings that fix InterNet's shapes; the defaults are the paper's.

    ``backbone_depth``: ResNet depth, 18, 34 or 50. ``heatmap_size``: H = W of the heatmaps,
    px. ``depth_bins``: D, depth bins of the 3D heatmaps. ``root_bins``: bins of the
    root-depth distribution. ``deconv_channels``: channels of every deconvolution.
    ``deconv_layers``: stride-2 deconvolutions in each hand head.

    Raises:
        ValueError: naming the field, for a value that is not an integer in :attr:`RANGES`,
            or a ``heatmap_size`` that is not a multiple of ``2**deconv_layers``.
    """

    backbone_depth: int = 50
    heatmap_size: int = 64
    depth_bins: int = 64
    root_bins: int = 64
    deconv_channels: int = 256
    deconv_layers: int = 3

    RANGES: ClassVar[dict[str, tuple[int, int]]] = {
        "backbone_depth": (18, 50),
        "heatmap_size": (1, 256),
        "depth_bins": (1, 256),
        "root_bins": (1, 1024),
        "deconv_channels": (1, 4096),
        "deconv_layers": (0, 5),
    }
    """Sane bounds of each setting: beyond them a model would not fit in memory, or could
    not be InterNet (settings are also read from files: a checkpoint's meta, a config.json)."""

    def __post_init__(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name}={value!r} is not an integer in {low}..{high}")
        if self.backbone_depth not in (18, 34, 50):
            raise ValueError(f"backbone_depth={self.backbone_depth} is not 18, 34 or 50")
        if self.heatmap_size % 2**self.deconv_layers:
            raise ValueError(
                f"heatmap_size {self.heatmap_size} is not the stride-32 feature map times "
                f"2**deconv_layers for deconv_layers={self.deconv_layers}: it must be a "
                f"multiple of {2**self.deconv_layers}"
            )

    @property
    def input_size(self) -> int:
        """Side S in px of the square input that gives ``heatmap_size`` heatmaps:
        ``heatmap_size * 32 / 2**deconv_layers``."""
        return self.heatmap_size * ResNetBackbone.stride // 2**self.deconv_layers

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "settings") -> InterNetConfig:
        """The configuration of ``values``, all six fields (as :func:`dataclasses.asdict`
        writes them), e.g. from a file.

        Raises:
            ValueError: naming ``source`` (a file, or "settings") and the field.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, Mapping) or set(values) != set(names):
            keys = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ValueError(f"{source}: model settings must be {', '.join(names)}, got {keys}")
        try:
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


SMALL_CONFIG = InterNetConfig(
    backbone_depth=18,
    heatmap_size=16,
    depth_bins=16,
    root_bins=16,
    deconv_channels=128,
    deconv_layers=2,
)
"""``InterNet(SMALL_CONFIG)``: about 14.4 M parameters, 128 x 128 input, 16^3 heatmaps;
small enough to train on a CPU. The heads keep 128 channels: the last 1 x 1 convolution
maps them to 42 x 16 depth slices, and with 32 (tried first) chapter 8's run learnt
little on the earlier data_samples/: 0.88x the average pose's error after 16 epochs, against
0.74x."""


class InterNetOutput(NamedTuple):
    """What :class:`InterNet` returns.

    Attributes:
        heatmaps: (B, 42, D, H, W) float, unnormalised 3D heatmap logits; axis 1 is the joint
            (0-20 right hand, 21-41 left), axis 2 the depth bin, axes 3-4 heatmap pixels.
            With ``join_hands=False`` the pair (right, left) of (B, 21, D, H, W) blocks.
        root_depth: (B, 1) float, soft-argmax of the root-depth distribution, in bins
            [0, root_bins - 1] (the left root's depth relative to the right's, after decoding).
        hand_logits: (B, 2) float, raw logits for [right present, left present].
    """

    heatmaps: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    root_depth: torch.Tensor
    hand_logits: torch.Tensor


class HandHead(nn.Module):
    """Deconvolutions and a 1 x 1 conv: (B, C_in, h, w) -> (B, 21, D, h * 2^n, w * 2^n)."""

    def __init__(self, in_channels: int, channels: int, layers: int, depth_bins: int) -> None:
        super().__init__()
        steps: list[nn.Module] = []
        for i in range(layers):
            # kernel 4, stride 2, padding 1 doubles the size exactly (no output padding);
            # no bias because the BN right after it has its own shift.
            conv_in = in_channels if i == 0 else channels
            steps += [
                nn.ConvTranspose2d(conv_in, channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        self.deconv_layers = nn.Sequential(*steps)
        last = channels if layers else in_channels
        self.final_layer = nn.Conv2d(last, JOINTS_PER_HAND * depth_bins, kernel_size=1)
        self.depth_bins = depth_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w) features -> (B, 21, D, H, W) heatmap logits."""
        y = self.final_layer(self.deconv_layers(x))
        b, _, h, w = y.shape
        # The channel index is joint-major: c = joint * D + depth.
        return y.reshape(b, JOINTS_PER_HAND, self.depth_bins, h, w)


class FCHead(nn.Module):
    """Linear -> ReLU -> Linear on pooled features: (B, C_in) -> (B, out_features)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(in_features, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in) -> (B, out_features) raw outputs."""
        return self.fc(x)


class InterNetHead(nn.Module):
    """The four heads on layer4's features; no parameters of its own."""

    def __init__(
        self, in_channels: int, channels: int, layers: int, depth_bins: int, root_bins: int
    ) -> None:
        super().__init__()
        self.right_hand_head = HandHead(in_channels, channels, layers, depth_bins)
        self.left_hand_head = HandHead(in_channels, channels, layers, depth_bins)
        self.root_head = FCHead(in_channels, root_bins)
        self.hand_type_head = FCHead(in_channels, 2)

    def forward(self, features: torch.Tensor, join_hands: bool = True) -> InterNetOutput:
        """(B, C, h, w) layer4 features -> :class:`InterNetOutput` (see
        :meth:`InterNet.forward` for ``join_hands``)."""
        heatmaps = (self.right_hand_head(features), self.left_hand_head(features))
        if join_hands:
            heatmaps = torch.cat(heatmaps, 1)
        pooled = features.mean(dim=(2, 3))  # global average pooling: (B, C)
        probs = self.root_head(pooled).softmax(dim=1)
        bins = torch.arange(probs.shape[1], dtype=probs.dtype, device=probs.device)
        root = (probs * bins).sum(dim=1, keepdim=True)  # expectation over bins, differentiable
        return InterNetOutput(heatmaps, root, self.hand_type_head(pooled))


class InterNet(nn.Module):
    """InterNet: (B, 3, S, S) normalised RGB -> :class:`InterNetOutput`.

    Args:
        config: the shapes (default: the paper's, :class:`InterNetConfig`).
        pretrained: passed to :class:`~minternet.backbone.ResNetBackbone`: ``True`` for
            torchvision's ImageNet weights, ``False`` for random, or a torchvision file.

    Attributes:
        config: the :class:`InterNetConfig` (saved with checkpoints).
        input_size: side S in px of the square input (``config.input_size``).
    """

    def __init__(
        self,
        config: InterNetConfig | None = None,
        pretrained: bool | str | os.PathLike[str] = False,
    ) -> None:
        super().__init__()
        config = InterNetConfig() if config is None else config
        if not isinstance(config, InterNetConfig):
            raise TypeError(f"config must be an InterNetConfig, not {type(config).__name__}")
        self.config = config
        self.backbone = ResNetBackbone(config.backbone_depth, pretrained=pretrained)
        self.head = InterNetHead(
            self.backbone.out_channels,
            config.deconv_channels,
            config.deconv_layers,
            config.depth_bins,
            config.root_bins,
        )
        self.init_head_weights()

    @property
    def input_size(self) -> int:
        """Side S in px of the square input (see :attr:`InterNetConfig.input_size`)."""
        return self.config.input_size

    def init_head_weights(self) -> None:
        """Initialise the heads as the paper and mmpose do; the backbone is left as it is.

        Conv / ConvT weights N(0, 0.001^2), conv biases 0; BN gamma 1, beta 0; Linear weights
        N(0, 0.01^2), biases 0. The small conv std makes the first heatmaps nearly flat.
        """
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
            if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, join_hands: bool = True) -> InterNetOutput:
        """(B, 3, S, S) float, ImageNet-normalised RGB -> :class:`InterNetOutput`.

        ``join_hands=False`` returns the heatmaps as the two hands' blocks, which
        :func:`~minternet.losses.internet_loss` takes as they are: training then never
        copies the largest tensor of the step into one (B, 42, D, H, W) volume.

        Raises:
            ValueError: when the input is not S x S with S = :attr:`input_size`, since the
                heatmaps would then not be ``heatmap_size`` pixels on a side.
        """
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            layers, size = self.config.deconv_layers, self.config.heatmap_size
            raise ValueError(
                f"input of shape {tuple(x.shape)}: expected (B, 3, {self.input_size}, "
                f"{self.input_size}), because {self.input_size} / 32 * 2**{layers} = {size} "
                "(heatmap_size); resize the crops or build the model with another heatmap_size"
            )
        return self.head(self.backbone(x), join_hands)

    def flip_test(self, x: torch.Tensor) -> InterNetOutput:
        """The mean of the outputs for ``x`` and, mapped back by :func:`flip_output`, for
        ``x`` mirrored left to right: test-time flip augmentation. (B, 3, S, S) ->
        :class:`InterNetOutput` of the same shapes as :meth:`forward`.

        mmpose's evaluation does not use it (its flip branch is broken); it is here for
        error analysis and as a check that a model treats mirrored hands alike.
        """
        mirrored = flip_output(self(x.flip(-1)), self.config.root_bins)
        return InterNetOutput(*((a + b) / 2 for a, b in zip(self(x), mirrored, strict=True)))


def flip_output(output: InterNetOutput, root_bins: int) -> InterNetOutput:
    """Outputs for a left-right mirrored crop, mapped to the unmirrored crop.

    A mirrored right hand is a left hand, so the joint blocks 0-20 and 21-41 swap and the
    heatmaps' x axis reverses; the hand-type logits swap; the relative root depth
    Delta = Z_L - Z_R changes sign, which in bins (Delta = (rho / R - 1/2) bound) is
    rho -> R - rho. Its own inverse. Mirroring the image moves a crop keypoint from x to
    S - x (the box centre flips as c_x -> W_img - 1 - c_x and the crop has no half-pixel
    shift; book chapter 2), a heatmap centre from mu to W - mu, while reversing the heatmap
    axis maps voxel i to W - 1 - i; so a mapped-back keypoint lies within one heatmap voxel
    of where the unmirrored crop puts it (mmpose's "shift_heatmap" question).
    """
    return InterNetOutput(
        heatmaps=output.heatmaps[:, list(FLIP_INDEX)].flip(-1),
        root_depth=root_bins - output.root_depth,
        hand_logits=output.hand_logits.flip(-1),
    )


def parameter_counts(model: InterNet) -> dict[str, int]:
    """Parameter elements per part: ``backbone``, the four heads (see :data:`PARTS`), ``total``."""
    counts = {"backbone": count_parameters(model.backbone)}
    counts.update({name: count_parameters(getattr(model.head, name)) for name in PARTS})
    counts["total"] = count_parameters(model)
    return counts
