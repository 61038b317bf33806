"""InterNet's three losses, with the heatmap target built on the device (book chapters 4-6).

The dense heatmap target is 42 x 64^3 floats per sample (44 MB); it is never made. Its
loss, mean(w (P - T)^2), expands to [sum w P^2 - 2 sum w P T + sum w T^2] / N, and since
T = 255 fz (x) fy (x) fx (see :meth:`minternet.codec.HeatmapCodec.factors`), sum P T is three
contractions of P with the factors and sum T^2 a product of three per-axis sums. The
gradient of the dense loss, 2 w (P - T) / N, is written out directly from P and the factors,
in P's dtype (one fused pass under ``torch.compile``), rather than left to autograd through
the contractions, which would add three full-size volumes.

The prediction volume is by far the largest tensor of a training step (64 x 42 x 64^3
values at batch 64, 1.4 GB in bfloat16), so the loss reads it in the dtype the model wrote
it (no float32 copy of the whole volume), takes the two hands' volumes as they come out of
their heads (no concatenation), and accumulates in float32 with autocast off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from minternet.codec import HeatmapCodec

Heatmaps = torch.Tensor | Sequence[torch.Tensor]
"""(B, 42, D, H, W), or the hands' blocks along the joint axis, e.g. right and left
(B, 21, D, H, W) each, as ``InterNet(x, join_hands=False)`` gives them."""
_CHUNK_BYTES = 2**28  # float32 bytes of one chunk when a low-precision volume is upcast


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


def _contract(
    pred: torch.Tensor, fz: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum P^2, sum P fz fy fx) per joint, (B, k) float32 each, of a float32 block."""
    sum_p2 = pred.square().sum(dim=(-3, -2, -1))
    # Contract x, then y, then z: each step is one pass over what is left of P.
    p_x = torch.einsum("bkzyx,bkx->bkzy", pred, fx)
    p_xy = torch.einsum("bkzy,bky->bkz", p_x, fy)
    return sum_p2, (p_xy * fz).sum(dim=-1)


def _joint_chunks(pred: torch.Tensor) -> list[slice]:
    """Joint ranges to upcast at a time: all of them when ``pred`` is float32 already (no
    copy is made), else chunks of at most :data:`_CHUNK_BYTES` float32 bytes."""
    joints = pred.shape[1]
    per_joint = 4 * pred[:, :1].numel()
    step = joints if pred.dtype == torch.float32 else max(1, _CHUNK_BYTES // per_joint)
    return [slice(j, min(j + step, joints)) for j in range(0, joints, step)]


class _SeparableSums(torch.autograd.Function):
    """(sum P^2, sum P T1) per joint with T1 = fz (x) fy (x) fx, in float32, for a block P
    of any floating dtype; the backward writes 2 g2 P + g1 T1 in P's dtype, one chunk of
    joints at a time."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        pred: torch.Tensor,
        fz: torch.Tensor,
        fy: torch.Tensor,
        fx: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(pred, fz, fy, fx)
        sums = [
            _contract(_float32(pred[:, s]), fz[:, s], fy[:, s], fx[:, s])
            for s in _joint_chunks(pred)
        ]
        return torch.cat([p2 for p2, _ in sums], 1), torch.cat([pt for _, pt in sums], 1)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_p2: torch.Tensor, grad_pt: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        pred, fz, fy, fx = ctx.saved_tensors

        def block(s: slice) -> torch.Tensor:
            # (g1 fz) (x) fy over (z, y), then times fx by broadcasting: the same products,
            # in the same order, as autograd through the contractions (bit for bit in float32).
            zy = (grad_pt[:, s, None] * fz[:, s])[..., :, None] * fy[:, s, None, :]
            part = _float32(pred[:, s]) * (2 * grad_p2[:, s])[..., None, None, None]
            return part + zy[..., None] * fx[:, s, None, None, :]

        chunks = _joint_chunks(pred)
        if len(chunks) == 1:
            return block(chunks[0]).to(pred.dtype), None, None, None
        grad = torch.empty_like(pred)
        for s in chunks:
            grad[:, s] = block(s)
        return grad, None, None, None


def _fused_sums(
    pred: torch.Tensor, fz: torch.Tensor, fy: torch.Tensor, fx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`_SeparableSums` as plain tensor code: under ``torch.compile`` the forward is
    one reduction over P and the backward one elementwise pass, the target made on the fly.
    """
    p = pred.float()
    target = fz[..., :, None, None] * fy[..., None, :, None] * fx[..., None, None, :]
    return p.square().sum(dim=(-3, -2, -1)), (p * target).sum(dim=(-3, -2, -1))


@functools.cache
def _compiled_sums() -> Callable:
    return torch.compile(_fused_sums, dynamic=False)


def heatmap_loss(
    pred: Heatmaps,
    keypoints: torch.Tensor,
    joint_valid: torch.Tensor,
    codec: HeatmapCodec,
    *,
    compiled: bool = False,
) -> torch.Tensor:
    """The same loss as :func:`dense_heatmap_loss` on ``codec``'s target, built from the
    separable factors on ``pred``'s device without a dense target.

    pred (B, 42, D, H, W) heatmaps of any floating dtype, or its blocks along the joint
    axis (see :data:`Heatmaps`); keypoints (B, 42, 3) crop px x, y and per-hand z mm;
    joint_valid (B, 42). ``compiled`` runs the pass over P through ``torch.compile`` (for
    CUDA; the result is the same to float32 rounding). Returns a float32 scalar.
    """
    blocks = [pred] if isinstance(pred, torch.Tensor) else list(pred)
    device = blocks[0].device
    sums = _compiled_sums() if compiled else _SeparableSums.apply
    with torch.autocast(device.type, enabled=False):
        keypoints = keypoints.to(device)
        w = _float32(codec.weights(keypoints, joint_valid.to(device)))
        fz, fy, fx = codec.factors(keypoints)
        parts, start = [], 0
        for block in blocks:
            s = slice(start, start + block.shape[1])
            parts.append(sums(block, fz[:, s], fy[:, s], fx[:, s]))
            start = s.stop
        sum_p2 = torch.cat([p2 for p2, _ in parts], 1)
        sum_pt = codec.max_value * torch.cat([pt for _, pt in parts], 1)
        peak = codec.max_value
        sum_t2 = peak**2 * fz.square().sum(-1) * fy.square().sum(-1) * fx.square().sum(-1)
        per_joint = sum_p2 - 2 * sum_pt + sum_t2
        return (w * per_joint).sum() / sum(block.numel() for block in blocks)


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
    heatmaps: Heatmaps,
    root: torch.Tensor,
    hand_logits: torch.Tensor,
    batch: Mapping[str, torch.Tensor],
    codec: HeatmapCodec,
    *,
    compiled: bool = False,
    dense_target: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """InterNet's losses for one batch, all with weight 1.

    heatmaps (B, 42, D, H, W) or the hands' blocks (see :data:`Heatmaps`), root (B, 1)
    bins and hand_logits (B, 2) are the model's outputs; ``batch`` is
    :func:`minternet.loader.collate`'s dict (``keypoints``, ``joint_valid``,
    ``rel_root_depth``, ``rel_root_valid``, ``hand_type``, ``hand_type_valid``), moved
    to the device as needed. Returns ``loss_kpt``, ``loss_rel_root``, ``loss_hand_type``
    and their sum ``loss``, float32 scalars.
    ``compiled`` is :func:`heatmap_loss`'s. ``dense_target``: a (B, 42, D, H, W) target and
    its (B, 42) weights built beforehand, as mmpose's loader does
    (:meth:`~minternet.codec.HeatmapCodec.encode`), for :func:`dense_heatmap_loss` instead of
    the target built on the device (the same value, at far more memory).
    """
    device = root.device
    rho, rho_weight = codec.encode_root(
        _float32(batch["rel_root_depth"].to(device)), _float32(batch["rel_root_valid"].to(device))
    )
    # The hand-type target is the label itself.
    hand_type, hand_valid = batch["hand_type"].to(device), batch["hand_type_valid"].to(device)
    losses = {
        "loss_kpt": heatmap_loss(
            heatmaps, batch["keypoints"], batch["joint_valid"], codec, compiled=compiled
        )
        if dense_target is None
        else dense_heatmap_loss(heatmaps, *dense_target),
        "loss_rel_root": root_loss(root, rho, rho_weight),
        "loss_hand_type": hand_type_loss(hand_logits, hand_type, hand_valid),
    }
    losses["loss"] = losses["loss_kpt"] + losses["loss_rel_root"] + losses["loss_hand_type"]
    return losses
