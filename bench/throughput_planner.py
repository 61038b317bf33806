"""How long will the paper's schedule take here? Measures the training step, variant by
variant, and the loader on whatever device is present, and prints the bottleneck and the
estimated wall time at the best variant.

    python bench/throughput_planner.py [--config paper|tiny] [--data data_samples]
        [--batch-sizes 32,64] [--precisions fp32,bf16,bf16+cl]
        [--modes previous,eager,compiled] [--variants 64:bf16+cl:previous,...]
        [--steps 8] [--warmup 2] [--device cuda] [--workers N | --no-loader]
        [--breakdown 64:bf16+cl:compiled] [--epoch 64:bf16+cl:compiled]
        [--budget SECONDS] [--json OUT]

* Train step, per batch size, precision and mode: ``Trainer.step`` (forward, the three
  losses with the target built on the device, backward, Adam) on one real batch already on
  the device, timed over ``--steps`` steps after ``--warmup`` untimed ones (where
  ``torch.compile`` compiles and cuDNN picks its kernels). Precisions: ``fp32``; ``bf16``
  (bfloat16 autocast, or float16 with a scaler where bfloat16 is missing); ``bf16+cl``, the
  same with ``channels_last``. Modes: ``previous``, the step as it was before the two
  hands' volumes stayed apart (one concatenated volume, a float32 copy of it for the loss,
  autograd through the loss's contractions, the finiteness check before the backward, Adam
  not fused), the baseline of the ratios; ``eager``, today's step without
  ``torch.compile``; ``compiled``, with it (CUDA only). Each row gives crops/s, ms per step,
  the peak device memory of the timed steps and the achieved TFLOP/s: the FLOPs of one
  forward and backward, counted once per batch size with ``FlopCounterMode``, per second,
  also as a fraction of the bfloat16 matrix-product peak measured at the start of the run.
* ``--breakdown VARIANT``: right after that variant, with its settings, the backbone's
  forward and backward alone and the whole model's with a trivial loss (both eager), and
  the full step as the variant runs it, so the heads' and the loss's shares follow by
  difference.
* ``--epoch VARIANT``: one epoch of ``Trainer.train_epoch`` in those settings with
  ``--workers`` loader processes: the loader, the copies to the device one batch ahead and
  the steps together; crops/s after the epoch's first step.
* Loader: crops per second of the training DataLoader (JPEG decoding, crop, augmentation,
  collation) with 0 workers and with ``--workers`` (default: every core this process may use).
* The estimate: the paper's 20 epochs of 1,361,062 crops at the slower of the best step
  and the best loader, for 1 device as measured and for 4 and 8 devices assuming each one
  runs at this speed with its own share of cores (an upper bound on the scaling).

``--budget`` skips a variant that would likely end after that many seconds from the start
(a compiled one is assumed to take 90 s, to compile, until one has been measured;
an eager one 15 s); what was measured is printed and written (the JSON after every
variant).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from minternet import distributed
from minternet import losses as loss_module
from minternet.config import CONFIGS, PAPER
from minternet.engine import loader_rate, synchronize, timed_steps
from minternet.train import Trainer
from minternet.transforms import normalize

TRAIN_SIZE = 1_361_062  # InterHand2.6M v1.0 train (H+M), 5 fps
PRECISIONS = ("fp32", "bf16", "bf16+cl")
MODES = ("previous", "eager", "compiled")
GIB = 2**30


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """TFLOP/s of a (size x size) @ (size x size) product in ``dtype``: the device's peak."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b
    synchronize(device)
    repeats, started = 0, time.perf_counter()
    while repeats < 3 or time.perf_counter() - started < 0.5:
        a @ b
        repeats += 1
        if repeats % 4 == 0:
            synchronize(device)
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def previous_heatmap_loss(
    pred: torch.Tensor,
    keypoints: torch.Tensor,
    joint_valid: torch.Tensor,
    codec: Any,
    **_: object,
) -> torch.Tensor:
    """The heatmap loss as it was: a float32 copy of the joined volume, autograd through the
    contractions (the baseline only)."""
    with torch.autocast(pred.device.type, enabled=False):
        pred = pred.to(torch.float32)
        w = codec.weights(keypoints, joint_valid.to(pred.device)).to(torch.float32)
        fz, fy, fx = codec.factors(keypoints)
        sum_p2 = pred.square().sum(dim=(-3, -2, -1))
        p_xy = torch.einsum("bkzy,bky->bkz", torch.einsum("bkzyx,bkx->bkzy", pred, fx), fy)
        sum_pt = codec.max_value * (p_xy * fz).sum(dim=-1)
        sum_t2 = codec.max_value**2 * (fz * fz).sum(-1) * (fy * fy).sum(-1) * (fx * fx).sum(-1)
        return (w * (sum_p2 - 2 * sum_pt + sum_t2)).sum() / pred.numel()


def previous_step(trainer: Trainer, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``Trainer.step`` as it was (see ``previous`` in the module's docstring); returns the
    losses."""
    images = normalize(batch["image"]).contiguous(memory_format=trainer.memory)
    with torch.autocast(
        trainer.ctx.device.type,
        dtype=trainer.dtype or torch.float32,
        enabled=trainer.dtype is not None,
    ):
        output = trainer.net(images)
    with mock.patch.object(loss_module, "heatmap_loss", previous_heatmap_loss):
        losses = loss_module.internet_loss(*output, batch, trainer.codec)
    if not bool(torch.isfinite(losses["loss"])):
        raise RuntimeError("loss not finite")
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(losses["loss"]).backward()
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    return losses


def device_batch(trainer: Trainer, size: int) -> dict[str, torch.Tensor]:
    """``size`` training crops on the device (the split read again if it is smaller)."""
    chunks: list[dict[str, torch.Tensor]] = []
    while sum(len(c["image"]) for c in chunks) < size:
        chunks.extend(trainer.loader)
    return {k: torch.cat([c[k] for c in chunks])[:size].to(trainer.ctx.device) for k in chunks[0]}


def step_flops(trainer: Trainer, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward and backward of the model and the losses (eager)."""
    images = normalize(batch["image"]).contiguous(memory_format=trainer.memory)
    with FlopCounterMode(display=False) as counter:
        output = trainer.net(images, join_hands=False)
        loss_module.internet_loss(*output, batch, trainer.codec)["loss"].backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def breakdown(trainer: Trainer, batch: dict[str, torch.Tensor], warmup: int, steps: int) -> dict:
    """ms per step of the backbone's forward + backward and the model's with a trivial loss
    (eager), and of the trainer's whole step, in the trainer's precision."""
    images = normalize(batch["image"]).contiguous(memory_format=trainer.memory)
    device, dtype = trainer.ctx.device, trainer.dtype

    def backward_of(part: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                value = part()
            value.float().mean().backward()
            trainer.optimizer.zero_grad(set_to_none=True)

        return run

    def whole_model() -> torch.Tensor:
        out = trainer.net(images, join_hands=False)
        return sum(h.float().mean() for h in out.heatmaps) + out.root_depth.sum()

    parts = {
        "backbone fwd+bwd": backward_of(lambda: trainer.model.backbone(images)),
        "model fwd+bwd, trivial loss": backward_of(whole_model),
        "full step": lambda: trainer.step(batch),
    }
    return {
        name: 1e3 * timed_steps(run, device, warmup, steps)["seconds"]
        for name, run in parts.items()
    }


def epoch_rate(
    ctx: distributed.Context, base: Any, args: argparse.Namespace, tmp: str, started: float
) -> dict | None:
    """One epoch of ``Trainer.train_epoch`` over the split with ``--workers`` loader
    processes, in ``--epoch``'s settings: loader, copies to the device one batch ahead, the
    steps (the shorter last batch eagerly). Its speed excludes the first step."""
    batch_size, precision, mode = args.epoch
    if args.budget is not None and time.perf_counter() - started > args.budget:
        return None
    config = dataclasses.replace(
        base,
        pretrained=False,
        val_split="",
        batch_size=batch_size,
        workers=args.workers,
        checkpoint_steps=0,
        amp="off" if precision == "fp32" else "bf16",
        channels_last=precision.endswith("+cl"),
        compile=mode == "compiled",
    )
    if config.amp == "bf16" and ctx.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        config = dataclasses.replace(config, amp="fp16")
    gc.collect()
    trainer = Trainer(ctx, config, Path(args.data), Path(tmp) / "epoch", resume=False)
    record = trainer.train_epoch(progress=False)
    if mode == "compiled" and not trainer.compiled:
        mode = "eager (not compiled here)"
    print(
        f"  one epoch, batch {batch_size} {precision} {mode}, {args.workers} workers: "
        f"{record['samples_per_second']:.1f} crops/s after its first step "
        f"({record['seconds']:.1f} s in all)",
        flush=True,
    )
    return {
        "variant": f"batch {batch_size} {precision} {mode}",
        "workers": args.workers,
        "crops_per_second": record["samples_per_second"],
        "seconds": record["seconds"],
    }


def hours(crops: float, rate: float) -> float:
    return crops / rate / 3600


def _list(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {allowed}")
    return items


def _variant(text: str) -> tuple[int, str, str]:
    try:
        batch, precision, mode = text.split(":")
        if precision in PRECISIONS and mode in MODES:
            return int(batch), precision, mode
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text!r}: expected BATCH:PRECISION:MODE, e.g. 64:bf16+cl:eager"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--data", default="data_samples", help="a tree with a train split")
    parser.add_argument(
        "--batch-sizes",
        "--batch-size",
        type=lambda text: [int(v) for v in _list(text)],
        default=None,
        help="comma-separated (default: the config's)",
    )
    parser.add_argument("--precisions", type=lambda t: _list(t, PRECISIONS), default=PRECISIONS)
    parser.add_argument(
        "--modes",
        type=lambda t: _list(t, MODES),
        default=None,
        help="default: previous,eager and, on CUDA, compiled",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-loader", action="store_true", help="do not measure the loader")
    parser.add_argument(
        "--variants",
        type=lambda text: [_variant(v) for v in _list(text)],
        default=None,
        help="BATCH:PRECISION:MODE,... in this order, instead of the grid of the three above",
    )
    parser.add_argument(
        "--breakdown",
        type=_variant,
        default=None,
        metavar="BATCH:PREC:MODE",
        help="split the time of this variant's step",
    )
    parser.add_argument(
        "--epoch",
        type=_variant,
        default=None,
        metavar="BATCH:PREC:MODE",
        help="also time one training epoch in these settings",
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds; see the docstring")
    parser.add_argument(
        "--peak-size", type=int, default=None, help="side of the peak matmul (8192; CPU 1024)"
    )
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument(
        "--report",
        default=None,
        metavar="JSON",
        help="only print the tables of a --json file (e.g. of a run cut short)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.report:
        results = json.loads(Path(args.report).read_text())
        report(results)
        return results
    started = time.perf_counter()
    base = CONFIGS[args.config]
    ctx = distributed.setup(args.device)
    cuda = ctx.device.type == "cuda"
    modes = args.modes or (list(MODES) if cuda else ["previous", "eager"])
    mixed = "bf16" if (not cuda or torch.cuda.is_bf16_supported()) else "fp16"
    half = torch.bfloat16 if mixed == "bf16" else torch.float16
    name = torch.cuda.get_device_name(ctx.device) if cuda else f"{torch.get_num_threads()} threads"
    results: dict[str, Any] = {
        "device": str(ctx.device),
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "config": args.config,
        "rows": [],
        "skipped": [],
    }
    print(
        f"device {ctx.device} ({name}); torch {torch.__version__}, CUDA {torch.version.cuda}; "
        f"config {args.config}"
    )
    args.peak_size = args.peak_size or (8192 if cuda else 1024)
    peak = matmul_peak(ctx.device, half, args.peak_size)
    results["matmul_peak_tflops"] = peak
    print(f"{mixed} matmul {args.peak_size}^3: {peak:.1f} TFLOP/s (the peak of the fractions)")

    def write() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")

    variants = args.variants or [
        (batch_size, precision, mode)
        for batch_size in args.batch_sizes or [base.batch_size]
        for precision in args.precisions
        for mode in modes
    ]
    flops: dict[int, int] = {}
    cost = {"compiled": 90.0, "eager": 15.0, "previous": 15.0}  # seconds, until measured
    trainer = None
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size, precision, mode in variants:
            label = f"batch {batch_size} {precision} {mode}"
            elapsed = time.perf_counter() - started
            if args.budget is not None and elapsed + cost[mode] > args.budget:
                results["skipped"].append(f"{label} (budget)")
                continue
            # Speed does not depend on the weights' values: no ImageNet download.
            config = dataclasses.replace(
                base,
                pretrained=False,
                val_split="",
                batch_size=batch_size,
                amp="off" if precision == "fp32" else mixed,
                channels_last=precision.endswith("+cl"),
                compile=mode == "compiled",
            )
            trainer = batch = step = None  # free the previous variant's memory first
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            run = Path(tmp) / label.replace(" ", "-")
            began = time.perf_counter()
            trainer = Trainer(ctx, config, Path(args.data), run, resume=False)
            if mode == "compiled" and not trainer.compiled:
                results["skipped"].append(f"{label} (not compiled on {ctx.device.type})")
                continue
            if mode == "previous":  # the optimiser as it was: Adam's default, not fused
                trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), config.lr)
            batch = device_batch(trainer, batch_size)
            if batch_size not in flops:
                flops[batch_size] = step_flops(trainer, batch)
            step = (
                (lambda t=trainer, b=batch: previous_step(t, b))
                if mode == "previous"
                else (lambda t=trainer, b=batch: t.step(b))
            )
            warmup = max(args.warmup, 2 if mode == "compiled" else 1)
            measured = timed_steps(step, ctx.device, warmup, args.steps)
            cost[mode] = time.perf_counter() - began
            row = {
                "batch": batch_size,
                "precision": precision,
                "mode": mode,
                "crops_per_second": batch_size / measured["seconds"],
                "ms_per_step": 1e3 * measured["seconds"],
                "peak_gib": None
                if measured["peak_bytes"] is None
                else measured["peak_bytes"] / GIB,
                "warmup_seconds": measured["warmup_seconds"],
                "gflop_per_crop": flops[batch_size] / batch_size / 1e9,
                "tflops": flops[batch_size] / measured["seconds"] / 1e12,
            }
            row["fraction_of_peak"] = row["tflops"] / peak
            results["rows"].append(row)
            print(
                f"  measured {label}: {row['crops_per_second']:.2f} crops/s "
                f"(warm-up {measured['warmup_seconds']:.1f} s)",
                flush=True,
            )
            if args.breakdown == (batch_size, precision, mode):
                results["breakdown"] = {
                    "variant": label,
                    **breakdown(trainer, batch, args.warmup, args.steps),
                }
            write()
        if args.epoch is not None:
            trainer = batch = None
            results["epoch"] = epoch_rate(ctx, base, args, tmp, started)
            write()
        loaders = {}
        if trainer is not None and not args.no_loader:
            batch_size = trainer.config.batch_size
            batches = max(4, 64 // batch_size)
            loaders = {
                w: loader_rate(trainer.train_set, batch_size, w, batches)
                for w in sorted({0, args.workers})
            }
    results["loader"] = loaders
    report(results)
    write()
    return results


def report(results: dict) -> None:
    """Print the table, the breakdown, the loader and the estimate; adds them to results."""
    rows = results["rows"]
    if not rows:
        print("nothing measured")
        return
    baseline = {
        (r["batch"], r["precision"]): r["crops_per_second"] for r in rows if r["mode"] == "previous"
    }
    first = next((r for r in rows if r["mode"] == "previous"), None)
    print(
        f"\n{'batch':>5} {'precision':9} {'mode':9} {'crops/s':>9} {'ms/step':>8} "
        f"{'peak GiB':>8} {'TFLOP/s':>8} {'of peak':>7} {'vs previous':>11}"
    )
    for r in rows:
        same = baseline.get((r["batch"], r["precision"]))
        r["vs_previous"] = r["crops_per_second"] / same if same else None
        r["vs_first_previous"] = (
            r["crops_per_second"] / first["crops_per_second"] if first else None
        )
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        ratio = "-" if same is None else f"{r['vs_previous']:.2f}x"
        print(
            f"{r['batch']:5d} {r['precision']:9} {r['mode']:9} {r['crops_per_second']:9.1f} "
            f"{r['ms_per_step']:8.1f} {peak:>8} {r['tflops']:8.2f} "
            f"{r['fraction_of_peak']:7.1%} {ratio:>11}"
        )
    print(
        "FLOPs per crop (forward + backward, FlopCounterMode): "
        + ", ".join(
            f"batch {b}: {g:.1f} G"
            for b, g in sorted({r["batch"]: r["gflop_per_crop"] for r in rows}.items())
        )
    )
    if results["skipped"]:
        print("not measured (budget or no compiler):", "; ".join(results["skipped"]))
    if "breakdown" in results:
        print("\nwhere the time goes (eager, ms per step):")
        for part, ms in results["breakdown"].items():
            print(f"  {part:30s} {ms:>8}" if part == "variant" else f"  {part:30s} {ms:8.1f}")
    if results.get("epoch"):
        epoch = results["epoch"]
        print(
            f"\none epoch ({epoch['variant']}, {epoch['workers']} workers): "
            f"{epoch['crops_per_second']:.1f} crops/s after its first step"
        )
    loaders = results.get("loader", {})
    if loaders:
        print(f"\n{'loader':32s} {'crops/s':>10s}")
        for workers, rate in loaders.items():
            print(f"{f'{workers} worker(s)':32s} {rate:10.1f}")
    best = max(rows, key=lambda r: r["crops_per_second"])
    best_step = best["crops_per_second"]
    best_loader = max(loaders.values()) if loaders else float("inf")
    bottleneck = "train step" if best_step < best_loader else "loader"
    rate = min(best_step, best_loader)
    crops = PAPER.epochs * TRAIN_SIZE
    print(
        f"\nbest step: batch {best['batch']} {best['precision']} {best['mode']}, "
        f"{best_step:.1f} crops/s"
        + (
            ""
            if first is None
            else f", {best_step / first['crops_per_second']:.2f}x the first previous-step row"
        )
    )
    if loaders:
        print(
            f"bottleneck: the {bottleneck} ({best_step:.2f} crops/s at best; "
            f"loader {best_loader:.1f} crops/s)"
        )
    print(f"paper schedule: {PAPER.epochs} epochs x {TRAIN_SIZE:,} crops = {crops:,} crops")
    estimates = {}
    for devices in (1, 4, 8):
        estimates[devices] = hours(crops, devices * rate)
        print(
            f"  {devices} x this device: {estimates[devices]:10.1f} h "
            f"({estimates[devices] / 24:.1f} days)"
            + ("" if devices == 1 else ", linear scaling assumed")
        )
    if results["config"] != "paper":
        print("  (measured with the", results["config"], "model: not the paper's cost)")
    results.update(best=best, bottleneck=bottleneck, hours=estimates)


if __name__ == "__main__":
    main(sys.argv[1:])
