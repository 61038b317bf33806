"""Does the fast training step compute what the previous one did? Loss values and gradients
of the heatmap loss and of whole training steps, on whatever device is present.

    python bench/step_numerics.py [--config paper|tiny] [--data data_samples]
        [--batch-size 16] [--loss-batch 64] [--device cuda] [--json OUT]

Checks (each prints PASS or FAIL with the measured error and the tolerance; the exit status
is 1 when one fails):

* Heatmap loss on a bfloat16 prediction of the configuration's size (``--loss-batch``
  crops; half the joints near their target, where the loss's terms cancel): the loss of
  ``heatmap_loss`` (eager and, on CUDA, compiled) against the float32 loss of the same
  values upcast (the float32 path is the previous loss to the bit on a CPU, see
  tests/test_losses.py): relative error at most 1e-6 eager, 1e-5 compiled (another order
  of the float32 sums). The gradient is the float32 gradient rounded to bfloat16, within
  one bfloat16 ulp: |g - g32| <= 2^-7 |g32| + 1e-6 max |g32| at every element (rounding
  alone gives 2^-8; the compiled sums may round a value lying on a tie the other way).
* Whole step, float32: today's eager step against the previous step (joined volume, float32
  copy, autograd through the contractions) from the same weights and batch, cuDNN
  deterministic and without TF32: losses and every parameter's gradient (relative L2
  error) within 1e-5.
* Whole step, mixed precision (bfloat16 autocast, channels_last, compiled on CUDA) against
  the float32 step from the same weights: the heatmap loss and the total within 2e-2
  relative (the network's forward in bfloat16; the loss adds no error of its own, as the
  first check shows); the root and hand-type losses' errors are printed (at initialisation
  they are small numbers from bfloat16 heads). The relative L2 error of the whole gradient
  and the lowest per-tensor cosine are reported, not judged: at random initialisation the
  early layers' gradients are nearly cancelling sums, and bfloat16 rounding moves them as
  much as it moved the previous step's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput_planner import device_batch, previous_heatmap_loss

from minternet import distributed
from minternet import losses as loss_module
from minternet.config import CONFIGS
from minternet.train import Trainer
from minternet.transforms import normalize

LOSS_RTOL = {"eager": 1e-6, "compiled": 1e-5}
GRAD_RTOL, GRAD_ATOL = 2.0**-7, 1e-6  # one bfloat16 ulp; atol relative to max |g32|
STEP_FP32_RTOL = 1e-5
STEP_MIXED_RTOL = 2e-2


def check(results: dict, name: str, value: float, tolerance: float) -> None:
    ok = bool(value <= tolerance)
    results["checks"].append({"check": name, "value": value, "tolerance": tolerance, "ok": ok})
    print(f"{'PASS' if ok else 'FAIL'} {name}: {value:.3g} (tolerance {tolerance:.3g})", flush=True)


def loss_checks(results: dict, trainer: Trainer, batch_size: int) -> None:
    """bfloat16 prediction blocks: ``heatmap_loss`` against the float32 loss of the same
    values."""
    device, codec = trainer.ctx.device, trainer.codec
    generator = torch.Generator(device).manual_seed(0)
    batch = device_batch(trainer, batch_size)
    keypoints, valid = batch["keypoints"].float(), batch["joint_valid"].float()
    fz, fy, fx = codec.factors(keypoints)
    blocks = []
    for s in (slice(0, 21), slice(21, 42)):
        target = codec.max_value * fz[:, s, :, None, None] * fy[:, s, None, :, None]
        target = target * fx[:, s, None, None, :]
        noise = torch.randn(target.shape, generator=generator, device=device)
        near = torch.rand(target.shape[:2], generator=generator, device=device) < 0.5
        # In the layout a channels_last model writes (and the planner compiled the loss for).
        b, k, d, h, w = target.shape
        block = torch.empty((b, k * d, h, w), dtype=torch.bfloat16, device=device)
        block = block.contiguous(memory_format=torch.channels_last).view(b, k, d, h, w)
        block.copy_(torch.where(near[..., None, None, None], target + noise, 30 * noise))
        blocks.append(block)
        del target, noise
    reference = [b.float().requires_grad_() for b in blocks]
    loss32 = loss_module.heatmap_loss(reference, keypoints, valid, codec)
    grads32 = torch.autograd.grad(loss32, reference)
    del reference
    modes = ["eager", "compiled"] if device.type == "cuda" else ["eager"]
    for mode in modes:
        pred = [b.detach().requires_grad_() for b in blocks]
        loss = loss_module.heatmap_loss(pred, keypoints, valid, codec, compiled=mode == "compiled")
        grads = torch.autograd.grad(loss, pred)
        check(
            results,
            f"loss {mode}, bf16 vs float32 (relative)",
            abs(loss.item() / loss32.item() - 1),
            LOSS_RTOL[mode],
        )
        worst = 0.0
        for g, g32 in zip(grads, grads32, strict=True):
            bound = GRAD_RTOL * g32.abs() + GRAD_ATOL * g32.abs().max()
            worst = max(worst, ((g.float() - g32).abs() / bound).max().item())
            assert g.dtype == torch.bfloat16
        check(results, f"heatmap gradient {mode}: error / (2^-7 |g32| + 1e-6 max|g32|)", worst, 1.0)


def step_gradients(trainer: Trainer, batch: dict, previous: bool) -> tuple[dict, dict]:
    """Losses and parameter gradients of one step's forward and backward (no update)."""
    images = normalize(batch["image"]).contiguous(memory_format=trainer.memory)
    compiled = trainer.compiled and not previous
    with torch.autocast(
        trainer.ctx.device.type,
        dtype=trainer.dtype or torch.float32,
        enabled=trainer.dtype is not None,
    ):
        net = trainer.fast_net if compiled else trainer.net
        output = net(images, join_hands=previous)
    if previous:
        with mock.patch.object(loss_module, "heatmap_loss", previous_heatmap_loss):
            losses = loss_module.internet_loss(*output, batch, trainer.codec)
    else:
        losses = loss_module.internet_loss(*output, batch, trainer.codec, compiled=compiled)
    trainer.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grads = {n: p.grad.detach().float().clone() for n, p in trainer.model.named_parameters()}
    return {k: v.item() for k, v in losses.items()}, grads


def compare(results: dict, name: str, a: tuple, b: tuple, rtol: float, judge_grads: bool):
    """Judge (or report) a step's losses and gradients ``a`` against the reference ``b``."""
    (losses_a, grads_a), (losses_b, grads_b) = a, b
    errors = {k: abs(losses_a[k] / losses_b[k] - 1) for k in losses_b if losses_b[k]}
    judged = errors if judge_grads else {k: errors[k] for k in ("loss", "loss_kpt")}
    check(results, f"{name}: {', '.join(judged)} (relative)", max(judged.values()), rtol)
    print("     losses' relative errors: " + ", ".join(f"{k} {v:.3g}" for k, v in errors.items()))
    errors = {
        n: ((grads_a[n] - g).norm() / g.norm()).item() for n, g in grads_b.items() if g.norm() > 0
    }
    flat_a = torch.cat([g.flatten() for g in grads_a.values()])
    flat_b = torch.cat([g.flatten() for g in grads_b.values()])
    whole = ((flat_a - flat_b).norm() / flat_b.norm()).item()
    cosines = {
        n: torch.nn.functional.cosine_similarity(grads_a[n].flatten(), g.flatten(), 0).item()
        for n, g in grads_b.items()
        if g.norm() > 0
    }
    if judge_grads:
        check(
            results, f"{name}: worst parameter gradient (relative L2)", max(errors.values()), rtol
        )
    else:
        lowest = min(cosines, key=cosines.get)
        print(
            f"     {name}: whole gradient relative L2 error {whole:.3g}; lowest cosine "
            f"{cosines[lowest]:.4f} ({lowest}); head final layers' relative errors "
            + ", ".join(f"{errors[n]:.3g}" for n in errors if "final_layer.weight" in n)
        )
    results.setdefault("gradients", {})[name] = {
        "whole_relative_l2": whole,
        "worst_relative_l2": max(errors.values()),
        "lowest_cosine": min(cosines.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--batch-size", type=int, default=16, help="whole-step checks")
    parser.add_argument("--loss-batch", type=int, default=64, help="heatmap-loss check")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    ctx = distributed.setup(args.device)
    cuda = ctx.device.type == "cuda"
    base = dataclasses.replace(
        CONFIGS[args.config], pretrained=False, val_split="", batch_size=args.batch_size
    )
    results: dict = {"device": str(ctx.device), "config": args.config, "checks": []}
    print(
        f"numerics on {ctx.device}"
        + (f" ({torch.cuda.get_device_name(ctx.device)})" if cuda else "")
    )

    def trainer(tmp: str, name: str, exact: bool, **changes: object) -> Trainer:
        config = dataclasses.replace(base, **changes)
        made = Trainer(ctx, config, Path(args.data), Path(tmp) / name, resume=False)
        # exact: the same kernels in both runs of a comparison, and no TF32 (10-bit
        # mantissas) in float32; otherwise the settings of a training run, whose compiled
        # kernels the planner has left in the cache.
        torch.backends.cudnn.benchmark = not exact
        torch.backends.cudnn.deterministic = exact
        torch.backends.cudnn.allow_tf32 = not exact
        return made

    def same_start(make: Callable[[], Trainer], state: dict) -> Trainer:
        made = make()
        made.model.load_state_dict(state)
        return made

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = trainer(tmp, "fp32", True, amp="off", channels_last=False, compile=False)
        loss_checks(results, fp32, args.loss_batch)
        state = {k: v.clone() for k, v in fp32.model.state_dict().items()}
        batch = device_batch(fp32, args.batch_size)
        reference = step_gradients(fp32, batch, previous=False)
        fp32.model.load_state_dict(state)
        previous = step_gradients(fp32, batch, previous=True)
        compare(results, "float32 step vs previous", reference, previous, STEP_FP32_RTOL, True)
        del fp32
        mixed = same_start(
            lambda: trainer(tmp, "mixed", False, amp="bf16", channels_last=True, compile=cuda),
            state,
        )
        name = "bf16 channels_last " + ("compiled " if mixed.compiled else "") + "step"
        compare(
            results,
            f"{name} vs float32",
            step_gradients(mixed, batch, False),
            reference,
            STEP_MIXED_RTOL,
            False,
        )
    results["ok"] = all(c["ok"] for c in results["checks"])
    print("all checks passed" if results["ok"] else "SOME CHECKS FAILED")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:])["ok"] else 1)
