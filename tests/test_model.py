"""InterNet: parameter counts, state-dict layout against mmpose's, shapes, init, head plumbing.

Reference numbers are literals from the reference document (section 5.2) and the key list is
mmpose 1.3.2's, dumped from mmpose into ``data/mmpose_internet_state_dict.txt``; none comes
from our code. No test downloads weights (``pretrained=False`` throughout).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from minternet.codec import HeatmapCodec
from minternet.model import SMALL_CONFIG as SMALL
from minternet.model import InterNet, InterNetConfig, InterNetOutput, parameter_counts

MMPOSE_KEYS = Path(__file__).resolve().parent / "data" / "mmpose_internet_state_dict.txt"
REFERENCE_COUNTS = {
    "backbone": 23_508_032,
    "right_hand_head": 10_832_704,
    "left_hand_head": 10_832_704,
    "root_head": 1_081_920,
    "hand_type_head": 1_050_114,
    "total": 47_305_474,
}


@pytest.fixture(scope="module")
def full() -> InterNet:
    """The paper's model (ResNet-50, 64^3), random weights, eval mode; do not modify."""
    torch.manual_seed(0)
    return InterNet().eval()


@pytest.fixture
def small() -> InterNet:
    torch.manual_seed(0)
    return InterNet(SMALL).eval()


def test_parameter_counts_match_reference(full: InterNet) -> None:
    assert parameter_counts(full) == REFERENCE_COUNTS


def test_state_dict_is_mmpose_layout(full: InterNet) -> None:
    lines = MMPOSE_KEYS.read_text().splitlines()
    entries = [line.split() for line in lines if not line.startswith("#")]
    assert len(entries) == 366
    state = full.state_dict()
    assert list(state) == [name for name, *_ in entries]  # names and order
    for name, shape, dtype, _ in entries:
        tensor = state[name]
        expected = [] if shape == "-" else [int(n) for n in shape.split(",")]
        assert list(tensor.shape) == expected, name
        assert str(tensor.dtype).removeprefix("torch.") == dtype, name
    params = {name for name, _ in full.named_parameters()}
    assert params == {name for name, *_, kind in entries if kind == "parameter"}


def test_full_output_shapes(full: InterNet) -> None:
    assert full.input_size == 256
    with torch.no_grad():
        out = full(torch.randn(1, 3, 256, 256))
    assert isinstance(out, InterNetOutput)
    assert out.heatmaps.shape == (1, 42, 64, 64, 64)
    assert out.root_depth.shape == (1, 1)
    assert out.hand_logits.shape == (1, 2)


def test_head_init_statistics(full: InterNet) -> None:
    head = full.head
    for hand in (head.right_hand_head, head.left_hand_head):
        for i in (0, 3, 6):
            assert hand.deconv_layers[i].weight.std().item() == pytest.approx(0.001, rel=0.02)
            assert hand.deconv_layers[i].bias is None
        for i in (1, 4, 7):
            bn = hand.deconv_layers[i]
            assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
            assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
        assert hand.final_layer.weight.std().item() == pytest.approx(0.001, rel=0.02)
        assert torch.all(hand.final_layer.bias == 0)
    for fc in (head.root_head.fc, head.hand_type_head.fc):
        for i in (0, 2):
            # fc.2 of the hand-type head has only 1024 weights: a looser tolerance.
            assert fc[i].weight.std().item() == pytest.approx(0.01, rel=0.1)
            assert fc[i].weight.mean().abs().item() < 0.002
            assert torch.all(fc[i].bias == 0)


def test_backbone_keeps_torchvision_init(full: InterNet) -> None:
    # torchvision's Kaiming init gives conv1 a std far above the heads' 0.001.
    assert full.backbone.conv1.weight.std().item() > 0.01


def test_small_config_shapes_and_input_size(small: InterNet) -> None:
    assert small.input_size == 128
    out = small(torch.randn(2, 3, 128, 128))
    assert out.heatmaps.shape == (2, 42, 16, 16, 16)
    assert out.root_depth.shape == (2, 1) and out.hand_logits.shape == (2, 2)


def test_wrong_input_size_raises(small: InterNet) -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 3, 128, 128\).*heatmap_size"):
        small(torch.randn(1, 3, 256, 256))


@pytest.mark.parametrize(
    ("size", "layers", "field"),
    [(20, 3, "heatmap_size"), (0, 2, "heatmap_size"), (16, -1, "deconv_layers")],
)
def test_inconsistent_heatmap_size_raises(size: int, layers: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        InterNetConfig(18, heatmap_size=size, deconv_layers=layers)


def test_config_derives_the_input_size_and_checks_every_field() -> None:
    assert InterNetConfig().input_size == 256 and SMALL.input_size == 128
    assert HeatmapCodec() == HeatmapCodec.for_model(InterNetConfig())
    assert InterNetConfig.from_dict(dataclasses.asdict(SMALL)) == SMALL
    for field, value in (("backbone_depth", 101), ("depth_bins", 1.5), ("root_bins", True)):
        with pytest.raises(ValueError, match=rf"model\.pth: {field}="):
            InterNetConfig.from_dict({**dataclasses.asdict(SMALL), field: value}, "model.pth")
    with pytest.raises(ValueError, match="model settings must be"):
        InterNetConfig.from_dict({"heatmap_size": 16})
    with pytest.raises(TypeError, match="InterNetConfig"):
        InterNet({"backbone_depth": 18})  # type: ignore[arg-type]


def test_root_is_soft_argmax_by_hand(small: InterNet) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        fc = small.head.root_head.fc
        fc[2].weight.normal_(std=1.0)  # a peaked distribution, not the near-uniform init
        x = torch.randn(3, 3, 128, 128)
        out = small(x)
        pooled = small.backbone(x).mean(dim=(2, 3))
        logits = fc[2](torch.relu(fc[0](pooled)))
    p = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    p = p / p.sum(dim=1, keepdim=True)
    by_hand = (p * torch.arange(16.0)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(out.root_depth, by_hand)
    assert torch.all(out.root_depth >= 0) and torch.all(out.root_depth <= 15)


def test_hand_heads_fill_their_joint_blocks(small: InterNet) -> None:
    with torch.no_grad():
        small.head.left_hand_head.final_layer.weight.zero_()
        small.head.left_hand_head.final_layer.bias.fill_(0.5)
        out = small(torch.randn(2, 3, 128, 128))
    assert torch.all(out.heatmaps[:, 21:] == 0.5)  # left block: the zeroed head only
    assert out.heatmaps[:, :21].std() > 0  # right block: the live head


def test_channel_to_joint_and_depth(small: InterNet) -> None:
    # Bias alone sets channel c; it must land at joint c // D, depth c % D.
    depth = SMALL.depth_bins
    final = small.head.right_hand_head.final_layer
    with torch.no_grad():
        final.weight.zero_()
        final.bias.copy_(torch.arange(final.bias.numel(), dtype=torch.float32))
        heat = small(torch.randn(1, 3, 128, 128)).heatmaps[0, :21, :, 0, 0]
    joint, bin_ = torch.meshgrid(torch.arange(21), torch.arange(depth), indexing="ij")
    assert torch.equal(heat, (joint * depth + bin_).float())


def test_small_config_trains_one_step(small: InterNet) -> None:
    small.train()
    opt = torch.optim.Adam(small.parameters(), lr=1e-3)
    before = small.head.root_head.fc[0].weight.detach().clone()
    out = small(torch.randn(2, 3, 128, 128))
    loss = (
        out.heatmaps.square().mean()
        + out.root_depth.mean()
        + torch.nn.functional.binary_cross_entropy_with_logits(out.hand_logits, torch.ones(2, 2))
    )
    loss.backward()
    assert all(p.grad is not None for p in small.parameters())
    opt.step()
    assert not torch.equal(before, small.head.root_head.fc[0].weight)
    assert small.head.right_hand_head.deconv_layers[1].num_batches_tracked.item() == 1


def test_hands_apart_are_the_blocks_of_the_joined_heatmaps(small: InterNet) -> None:
    x = torch.randn(2, 3, 128, 128)
    joined = small(x)
    right, left = small(x, join_hands=False).heatmaps
    assert right.shape == left.shape == (2, 21, 16, 16, 16)
    assert torch.equal(torch.cat([right, left], 1), joined.heatmaps)
