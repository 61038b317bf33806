"""InterNet's three losses, with the heatmap target built on the device (book chapters 4-6).

The dense heatmap target is 42 x 64^3 floats per sample (44 MB); it is never made. Its
loss, mean(w (P - T)^2), expands to [sum w P^2 - 2 sum w P T + sum w T^2] / N, and since
T = 255 fz (x) fy (x) fx (see :meth:`minternet.codec.HeatmapCodec.factors`), sum P T is three
contractions of P with the factors and sum T^2 a product of three per-axis sums. Autograd
through the contractions gives the dense loss's gradient, 2 w (P - T) / N.

All reductions run in float32 with autocast off, so mixed-precision predictions are fine.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from minternet.codec import HeatmapCodec


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32)


def dense_heatmap_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """mmpose's reduction with a materialised target: the mean over all B 42 D H W elements
    of w (P - T)^2, zero-weight joints included in the count.

    pred (B, 42, D, H, W); target of the same size (e.g. (B, 42 D, H, W) stacked from
    :meth:`HeatmapCodec.encode`), 0-255 scale; weights (B, 42). Returns a scalar.
    """
    with torch.autocast(pred.device.type, enabled=False):
        pred = _float32(pred)
        target = _float32(target).reshape(pred.shape)
        w = _float32(weights)[..., None, None, None]
        return (w * (pred - target) ** 2).mean()


def heatmap_loss(
    pred: torch.Tensor, keypoints: torch.Tensor, joint_valid: torch.Tensor, codec: HeatmapCodec
) -> torch.Tensor:
    """The same loss as :func:`dense_heatmap_loss` on ``codec``'s target, built from the
    separable factors on ``pred``'s device without a dense target.

    pred (B, 42, D, H, W) heatmaps; keypoints (B, 42, 3) crop px x, y and per-hand z mm;
    joint_valid (B, 42). Returns a float32 scalar.
    """
    with torch.autocast(pred.device.type, enabled=False):
        pred = _float32(pred)
        keypoints = keypoints.to(pred.device)
        w = _float32(codec.weights(keypoints, joint_valid.to(pred.device)))
        fz, fy, fx = codec.factors(keypoints)
        peak = codec.max_value
        sum_p2 = pred.square().sum(dim=(-3, -2, -1))
        # Contract x, then y, then z: each step is one pass over what is left of P.
        p_x = torch.einsum("bkzyx,bkx->bkzy", pred, fx)
        p_xy = torch.einsum("bkzy,bky->bkz", p_x, fy)
        sum_pt = peak * (p_xy * fz).sum(dim=-1)
        sum_t2 = peak**2 * fz.square().sum(-1) * fy.square().sum(-1) * fx.square().sum(-1)
        per_joint = sum_p2 - 2 * sum_pt + sum_t2
        return (w * per_joint).sum() / pred.numel()


def root_loss(root_pred: torch.Tensor, rho: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 on the relative root depth in bins: mean_b |w rho_hat - w rho|.

    root_pred (B, 1) or (B,) soft-argmax bins; rho (B,) target bins; weight (B,).
    """
    with torch.autocast(root_pred.device.type, enabled=False):
        w = _float32(weight).reshape(-1)
        pred = _float32(root_pred).reshape(-1)
        return (w * pred - w * _float32(rho).reshape(-1)).abs().mean()


def hand_type_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE with logits, weighted per sample: mean over b and the 2 outputs of h_b BCE.

    logits (B, 2) [right, left]; target (B, 2) in {0, 1}; valid (B,) h_b.
    """
    with torch.autocast(logits.device.type, enabled=False):
        bce = F.binary_cross_entropy_with_logits(
            _float32(logits), _float32(target), reduction="none"
        )
        return (_float32(valid).reshape(-1, 1) * bce).mean()


def internet_loss(
    heatmaps: torch.Tensor,
    root: torch.Tensor,
    hand_logits: torch.Tensor,
    batch: Mapping[str, torch.Tensor],
    codec: HeatmapCodec,
) -> dict[str, torch.Tensor]:
    """InterNet's losses for one batch, all with weight 1.

    heatmaps (B, 42, D, H, W), root (B, 1) bins and hand_logits (B, 2) are the model's
    outputs; ``batch`` is :func:`minternet.loader.collate`'s dict (``keypoints``,
    ``joint_valid``, ``rel_root_depth``, ``rel_root_valid``, ``hand_type``,
    ``hand_type_valid``), moved to the device as needed. Returns ``loss_kpt``,
    ``loss_rel_root``, ``loss_hand_type`` and their sum ``loss``, float32 scalars.
    """
    device = heatmaps.device
    rho, rho_weight = codec.encode_root(
        _float32(batch["rel_root_depth"].to(device)), _float32(batch["rel_root_valid"].to(device))
    )
    hand_type, hand_valid = codec.encode_hand_type(
        batch["hand_type"].to(device), batch["hand_type_valid"].to(device)
    )
    losses = {
        "loss_kpt": heatmap_loss(heatmaps, batch["keypoints"], batch["joint_valid"], codec),
        "loss_rel_root": root_loss(root, rho, rho_weight),
        "loss_hand_type": hand_type_loss(hand_logits, hand_type, hand_valid),
    }
    losses["loss"] = losses["loss_kpt"] + losses["loss_rel_root"] + losses["loss_hand_type"]
    return losses
