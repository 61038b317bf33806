from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from minternet import InterHandDataset, collate
from minternet import losses as losses_module
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
    target, weights = codec.encode(keypoints, valid)
    # The batch is the stack of its samples' targets.
    first, first_weights = codec.encode(keypoints[0], valid[0])
    assert np.array_equal(target[0], first) and np.array_equal(weights[0], first_weights)
    return torch.from_numpy(target), torch.from_numpy(weights)


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


def blocks_and_joined(dtype: torch.dtype, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The two hands' (2, 21, 16, 16, 16) prediction blocks in ``dtype``, half the joints near
    their target (where the loss's terms cancel), and the same values joined in float32."""
    keypoints, _ = random_keypoints(TINY, 2, seed)
    target, _ = dense_targets(TINY, keypoints, np.ones((2, 42), np.float32))
    torch.manual_seed(seed)
    near = (torch.rand(2, 42) < 0.5)[..., None, None, None]
    noise = torch.randn(target.shape)
    joined = torch.where(near, target + noise, 30 * noise).to(dtype)
    return [joined[:, :21].clone(), joined[:, 21:].clone()], joined.float()


def loss_and_grads(pred, keypoints, valid, **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    pred = [p.detach().requires_grad_() for p in pred]
    loss = heatmap_loss(pred, keypoints, valid, TINY, **kwargs)
    return loss, list(torch.autograd.grad(loss, pred))


def test_hands_apart_equal_the_joined_volume() -> None:
    keypoints, valid = map(torch.from_numpy, random_keypoints(TINY, 2, 10))
    blocks, joined = blocks_and_joined(torch.float32, 10)
    loss, grads = loss_and_grads(blocks, keypoints, valid)
    joined_loss, (joined_grad,) = loss_and_grads([joined], keypoints, valid)
    assert loss.item() == joined_loss.item()
    assert torch.equal(torch.cat(grads, 1), joined_grad)


@pytest.mark.parametrize("chunk_bytes", [2**28, 3 * 4 * 2 * 16**3])  # one chunk; 3 joints
def test_bfloat16_prediction_loses_nothing_in_the_loss(monkeypatch, chunk_bytes: int) -> None:
    # The loss of a bfloat16 prediction is the float32 loss of the same values, and its
    # gradient that float32 gradient rounded to bfloat16: within 2^-8 of it (half an ulp).
    monkeypatch.setattr(losses_module, "_CHUNK_BYTES", chunk_bytes)
    keypoints, valid = map(torch.from_numpy, random_keypoints(TINY, 2, 11))
    blocks, joined = blocks_and_joined(torch.bfloat16, 11)
    loss, grads = loss_and_grads(blocks, keypoints, valid)
    loss32, (grad32,) = loss_and_grads([joined], keypoints, valid)
    assert loss.dtype == torch.float32
    assert abs(loss.item() / loss32.item() - 1) <= 1e-6
    grad = torch.cat(grads, 1)
    assert grad.dtype == torch.bfloat16
    error = (grad.float() - grad32).abs()
    assert (error <= 2**-8 * grad32.abs() + 1e-6 * grad32.abs().max()).all()
    assert error.max() > 0  # the gradient really is in bfloat16


def test_bfloat16_loss_makes_no_float32_copy_of_the_volume(monkeypatch) -> None:
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestFloat32(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else [out]:
                if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                    self.largest = max(self.largest, t.numel())
            return out

    monkeypatch.setattr(losses_module, "_CHUNK_BYTES", 4 * 4 * 2 * 16**3)  # 4 joints a chunk
    keypoints, valid = map(torch.from_numpy, random_keypoints(TINY, 2, 12))
    blocks, _ = blocks_and_joined(torch.bfloat16, 12)
    with LargestFloat32() as mode:
        loss_and_grads(blocks, keypoints, valid)
    assert 0 < mode.largest <= 4 * 2 * 16**3  # one chunk at most, not 42 joints' worth


def test_compiled_loss_matches_eager() -> None:
    # What CUDA runs (torch.compile of the pass over P), here compiled for the CPU.
    keypoints, valid = map(torch.from_numpy, random_keypoints(TINY, 2, 13))
    blocks, _ = blocks_and_joined(torch.bfloat16, 13)
    loss, grads = loss_and_grads(blocks, keypoints, valid)
    fused, fused_grads = loss_and_grads(blocks, keypoints, valid, compiled=True)
    assert abs(fused.item() / loss.item() - 1) <= 1e-5
    for got, want in zip(fused_grads, grads, strict=True):
        assert got.dtype == torch.bfloat16
        # Both round a float32 gradient to bfloat16; the float32 sums differ in order only.
        bound = 2**-7 * want.float().abs() + 1e-6 * want.float().abs().max()
        assert ((got.float() - want.float()).abs() <= bound).all()
