"""ResNet backbone: shapes, parameter counts, key names, weight loading, offline fallback.

Nothing here touches the network: ImageNet downloads are either never asked for
(``pretrained=False``) or made to fail on purpose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torchvision import models

from minternet.backbone import ResNetBackbone, count_parameters, stage_summary

RESNET50_BACKBONE_PARAMS = 23_508_032
"""ResNet-50 without fc, from the reference document (section 5.2), not from our code."""


@pytest.fixture(scope="module")
def random_net() -> Callable[[int], ResNetBackbone]:
    """Randomly initialised backbones in eval mode, built once per depth; do not modify."""
    cache: dict[int, ResNetBackbone] = {}

    def get(depth: int) -> ResNetBackbone:
        if depth not in cache:
            cache[depth] = ResNetBackbone(depth, pretrained=False).eval()
        return cache[depth]

    return get


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any weights download loudly instead of reaching for the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", refuse)


@pytest.mark.parametrize(("depth", "channels"), [(18, 512), (34, 512), (50, 2048)])
@pytest.mark.parametrize(("size", "cells"), [(256, 8), (128, 4)])
def test_output_shape(
    random_net: Callable[[int], ResNetBackbone], depth: int, channels: int, size: int, cells: int
) -> None:
    net = random_net(depth)
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert net.out_channels == channels
    assert out.shape == (2, channels, cells, cells)


def test_non_square_input(random_net: Callable[[int], ResNetBackbone]) -> None:
    with torch.no_grad():
        assert random_net(18)(torch.randn(1, 3, 256, 192)).shape == (1, 512, 8, 6)


def test_resnet50_parameter_count_matches_reference() -> None:
    net = ResNetBackbone(50, pretrained=False)
    assert count_parameters(net) == RESNET50_BACKBONE_PARAMS
    assert count_parameters(net, trainable_only=True) == RESNET50_BACKBONE_PARAMS
    net.layer1.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) < RESNET50_BACKBONE_PARAMS


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_state_dict_keys_are_torchvision_minus_fc(depth: int) -> None:
    reference = getattr(models, f"resnet{depth}")(weights=None).state_dict()
    expected = [k for k in reference if not k.startswith("fc.")]
    ours = ResNetBackbone(depth, pretrained=False).state_dict()
    assert list(ours) == expected
    assert all(ours[k].shape == reference[k].shape for k in expected)
    assert "layer1.0.conv1.weight" in ours and "layer4.0.downsample.1.running_var" in ours


def test_loading_a_torchvision_file_reproduces_torchvision(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = models.resnet50(weights=None)
    for m in reference.modules():  # non-trivial BN statistics, so eval mode really uses them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    state = reference.state_dict()
    for k in [k for k in state if k.endswith("num_batches_tracked")][::2]:
        del state[k]  # older torchvision files have none
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)

    net = ResNetBackbone(50, pretrained=str(path)).eval()
    reference.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(reference.children())[:-2])  # without avgpool, fc
        assert torch.equal(net(x), trunk(x))
    assert net.pretrained_loaded and net.weights_source == f"file:{path}"


def test_loading_rejects_other_architectures(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(KeyError, match="missing"):  # resnet34 has more blocks per layer
        ResNetBackbone(34, pretrained=path)
    with pytest.raises(RuntimeError, match="size mismatch"):  # basic vs bottleneck blocks
        ResNetBackbone(50, pretrained=path)
    bad = {"conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match="missing"):
        ResNetBackbone(18, pretrained=False).load_torchvision_state_dict(bad)


def test_offline_fallback_is_one_warning_line(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def offline(self, *args, **kwargs):
        print('Downloading: "https://download.pytorch.org/models/resnet50-0676ba61.pth"')
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(models.ResNet50_Weights, "get_state_dict", offline)
    with caplog.at_level(logging.WARNING, logger="minternet.backbone"):
        net = ResNetBackbone(50, pretrained=True)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "\n" not in message
    assert message.startswith("minternet.backbone: ImageNet weights for resnet50 unavailable")
    assert "Name or service not known" in message and "random initialisation" in message
    assert not net.pretrained_loaded and net.weights_source == "random"
    assert capsys.readouterr() == ("", "")  # torch.hub's own chatter is swallowed


def test_pretrained_true_loads_imagenet_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    source = models.resnet18(weights=None).state_dict()
    asked = []

    def cached(self, *args, **kwargs):
        asked.append(self)
        return source

    monkeypatch.setattr(models.ResNet18_Weights, "get_state_dict", cached)
    net = ResNetBackbone(18, pretrained=True)
    assert asked == [models.ResNet18_Weights.IMAGENET1K_V1]
    assert net.pretrained_loaded and net.weights_source == "imagenet:IMAGENET1K_V1"
    assert torch.equal(net.layer3[1].conv2.weight, source["layer3.1.conv2.weight"])


def test_pretrained_false_never_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(self, *args, **kwargs):
        raise AssertionError("pretrained=False must not ask for weights")

    monkeypatch.setattr(models.ResNet50_Weights, "get_state_dict", never)
    net = ResNetBackbone(50, pretrained=False)
    assert not net.pretrained_loaded


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        ResNetBackbone(101, pretrained=False)
    with pytest.raises(TypeError, match="pretrained"):
        ResNetBackbone(18, pretrained=1)  # type: ignore[arg-type]


def test_stage_summary_resnet50() -> None:
    net = ResNetBackbone(50, pretrained=False).train()
    running = net.bn1.running_mean.clone()
    rows = stage_summary(net, 256)
    assert [r["stage"] for r in rows] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert [r["stride"] for r in rows] == [4, 4, 8, 16, 32]
    assert [r["shape"][0] for r in rows] == [64, 256, 512, 1024, 2048]
    assert [r["shape"][1:] for r in rows] == [(64, 64), (64, 64), (32, 32), (16, 16), (8, 8)]
    assert sum(r["parameters"] for r in rows) == RESNET50_BACKBONE_PARAMS
    assert rows[0]["parameters"] == 3 * 64 * 7 * 7 + 2 * 64
    assert net.training and torch.equal(net.bn1.running_mean, running)  # mode and stats kept


def test_stage_summary_other_sizes(random_net: Callable[[int], ResNetBackbone]) -> None:
    rows = stage_summary(random_net(18), (320, 200))
    assert [r["stride"] for r in rows] == [4, 4, 8, 16, 32]
    assert rows[-1]["shape"] == (512, 10, 7)  # 200 -> 100 -> 50 -> 50 -> 25 -> 13 -> 7


def test_stage_outputs_end_with_forward(random_net: Callable[[int], ResNetBackbone]) -> None:
    net = random_net(34)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = net.stage_outputs(x)
        assert torch.equal(outs["layer4"], net(x))
    assert list(outs) == ["stem", "layer1", "layer2", "layer3", "layer4"]
