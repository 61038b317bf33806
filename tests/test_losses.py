from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from minternet import InterHandDataset, collate
from minternet.codec import HeatmapCodec
from minternet.losses import (
    dense_heatmap_loss,
    hand_type_loss,
    heatmap_loss,
    internet_loss,
    root_loss,
)
from minternet.skeleton import ROOTS

TINY = HeatmapCodec(input_size=64, heatmap_size=16, depth_bins=16)


def random_keypoints(codec: HeatmapCodec, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, 42, 3) keypoints reaching past every face of the grid, wrists at z = 0, a few
    integer centres; (B, 42) validity with some zeros.
    """
    rng = np.random.default_rng(seed)
    size, bound = codec.input_size, codec.depth_bound
    keypoints = rng.uniform([-0.2 * size] * 2 + [-0.7 * bound], [1.2 * size] * 2 + [0.7 * bound],
                            (batch, 42, 3))
    keypoints[:, list(ROOTS), 2] = 0
    keypoints[:, :5, :2] = np.round(keypoints[:, :5, :2] / 4) * 4
    valid = (rng.random((batch, 42)) > 0.2).astype(np.float32)
    return keypoints.astype(np.float32), valid


def dense_targets(codec: HeatmapCodec, keypoints: np.ndarray, valid: np.ndarray):
    pairs = [codec.encode(k, v) for k, v in zip(keypoints, valid, strict=True)]
    return (torch.from_numpy(np.stack([t for t, _ in pairs])),
            torch.from_numpy(np.stack([w for _, w in pairs])))


def assert_same_loss_and_gradient(codec: HeatmapCodec, batch: int, seed: int) -> None:
    keypoints, valid = random_keypoints(codec, batch, seed)
    target, weights = dense_targets(codec, keypoints, valid)
    torch.manual_seed(seed)
    pred = (torch.randn(batch, 42, *codec.shape) * 40 + 20).requires_grad_()
    dense = dense_heatmap_loss(pred, target, weights)
    (dense_grad,) = torch.autograd.grad(dense, pred)
    device = heatmap_loss(pred, torch.from_numpy(keypoints), torch.from_numpy(valid), codec)
    (device_grad,) = torch.autograd.grad(device, pred)
    assert device.dtype == torch.float32 and device.shape == ()
    assert abs(device.item() / dense.item() - 1) <= 1e-6
    scale = dense_grad.abs().max()
    assert (device_grad - dense_grad).abs().max() <= 1e-6 * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_loss_equals_dense_loss_small(seed: int) -> None:
    assert_same_loss_and_gradient(TINY, batch=2, seed=seed)


def test_device_loss_equals_dense_loss_full_target() -> None:
    assert_same_loss_and_gradient(HeatmapCodec(64, 16, 16, target="full"), batch=2, seed=4)


def test_device_loss_equals_dense_loss_full_size() -> None:
    assert_same_loss_and_gradient(HeatmapCodec(), batch=1, seed=5)


def test_heatmap_loss_by_hand() -> None:
    # One weighted joint out of B * 42: its squared error divided by all B 42 D H W elements.
    keypoints, _ = random_keypoints(TINY, 2, 6)
    valid = np.zeros((2, 42), np.float32)
    valid[1, 7] = 1
    keypoints[1, 7] = [30.5, 21.3, 12.0]
    target, _ = TINY.encode(keypoints[1], valid[1])
    pred = torch.randn(2, 42, 16, 16, 16, dtype=torch.float64)
    expected = ((pred[1, 7].numpy() - target[7].astype(np.float64)) ** 2).sum() / (2 * 42 * 16**3)
    loss = heatmap_loss(pred, torch.from_numpy(keypoints), torch.from_numpy(valid), TINY)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # No weight at all: zero loss, whatever the prediction.
    zero = heatmap_loss(pred, torch.from_numpy(keypoints), torch.zeros(2, 42), TINY)
    assert zero.item() == 0


def test_joint_beyond_depth_range_has_no_loss() -> None:
    keypoints = np.zeros((1, 42, 3), np.float32)
    keypoints[..., :2] = 30
    keypoints[0, 3, 2] = 200.0  # mu_z = D: weight 0
    pred = torch.zeros(1, 42, *TINY.shape)
    valid = np.ones((1, 42), np.float32)
    target, weights = dense_targets(TINY, keypoints, valid)
    loss = heatmap_loss(pred, torch.from_numpy(keypoints), torch.from_numpy(valid), TINY)
    assert weights[0, 3] == 0
    expected = (target[0].double() ** 2).sum() - (target[0, 3].double() ** 2).sum()
    assert loss.item() == pytest.approx(expected.item() / pred.numel(), rel=1e-6)


def test_root_loss_by_hand() -> None:
    pred = torch.tensor([[10.0], [20.0], [5.0]])
    rho = torch.tensor([12.5, 50.0, 9.0])
    weight = torch.tensor([1.0, 0.0, 1.0])
    assert root_loss(pred, rho, weight).item() == pytest.approx((2.5 + 0 + 4) / 3)


def test_hand_type_loss_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    valid = torch.tensor([1.0, 0.0])

    def bce(logit: float, label: float) -> float:
        p = 1 / (1 + math.exp(-logit))
        return -(label * math.log(p) + (1 - label) * math.log(1 - p))

    expected = (bce(2.0, 1) + bce(-1.0, 0)) / 4  # the invalid sample still counts in 2B
    assert hand_type_loss(logits, target, valid).item() == pytest.approx(expected, rel=1e-6)


def test_losses_under_autocast() -> None:
    keypoints, valid = random_keypoints(TINY, 2, 8)
    pred = torch.randn(2, 42, *TINY.shape).to(torch.bfloat16)
    logits = torch.randn(2, 2).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = heatmap_loss(pred, torch.from_numpy(keypoints), torch.from_numpy(valid), TINY)
        types = hand_type_loss(logits, torch.ones(2, 2), torch.ones(2))
    assert loss.dtype == types.dtype == torch.float32
    reference = heatmap_loss(pred.float(), torch.from_numpy(keypoints), torch.from_numpy(valid),
                             TINY)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert types.item() == pytest.approx(hand_type_loss(logits.float(), torch.ones(2, 2),
                                                        torch.ones(2)).item(), rel=1e-6)


def test_internet_loss_on_real_frames(samples_dir: Path, tmp_path: Path) -> None:
    dataset = InterHandDataset(samples_dir, cache_dir=tmp_path, train=False)
    batch = collate([dataset[i] for i in range(2)])
    codec = HeatmapCodec()
    torch.manual_seed(9)
    heatmaps = torch.rand(2, 42, 64, 64, 64).requires_grad_()
    root = torch.tensor([[30.0], [40.0]], requires_grad=True)
    logits = torch.tensor([[1.0, -2.0], [0.0, 0.5]], requires_grad=True)
    losses = internet_loss(heatmaps, root, logits, batch, codec)
    assert set(losses) == {"loss", "loss_kpt", "loss_rel_root", "loss_hand_type"}
    assert losses["loss"].item() == pytest.approx(
        sum(losses[k].item() for k in ("loss_kpt", "loss_rel_root", "loss_hand_type")), rel=1e-6)
    delta = batch["rel_root_depth"].double()
    rho = (delta / 400 + 0.5) * 64
    w = batch["rel_root_valid"].double() * (rho >= 0) * (rho <= 64)
    expected_root = (w * (torch.tensor([30.0, 40.0]) - rho)).abs().mean()
    assert losses["loss_rel_root"].item() == pytest.approx(expected_root.item(), rel=1e-6)
    target, weights = dense_targets(codec, batch["keypoints"].numpy(), batch["joint_valid"].numpy())
    dense = dense_heatmap_loss(heatmaps, target, weights)
    assert losses["loss_kpt"].item() == pytest.approx(dense.item(), rel=1e-6)
    losses["loss"].backward()
    assert all(t.grad is not None for t in (heatmaps, root, logits))
