"""How long will the paper's schedule take here? Measures the training step and the loader
on whatever device is present and prints the bottleneck and the estimated wall time.

    python bench/throughput_planner.py [--config paper|tiny] [--data data_samples]
        [--batch-size 16] [--steps 3] [--device cuda] [--workers N] [--json OUT]

* Train step: ``Trainer.step`` (forward, the three losses with the target built on the
  device, backward, Adam) of the configuration's model on one real batch, in float32 and in
  mixed precision (bfloat16 autocast, or float16 with a scaler where bfloat16 is missing),
  each with ``channels_last`` off and on: crops per second, the mean over ``--steps`` steps
  after one warm-up step.
* Loader: crops per second of the training DataLoader (JPEG decoding, crop, augmentation,
  collation) with 0 workers and with ``--workers`` (default: every core this process may use).
* The estimate: the paper's 20 epochs of 1,361,062 crops at the slower of the best step
  and the best loader, for 1 device as measured and for 4 and 8 devices assuming each one
  runs at this speed with its own share of cores (an upper bound on the scaling).

The baseline of the comparison is float32 without channels_last, the engine's slowest setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from minternet import distributed
from minternet.config import CONFIGS, PAPER
from minternet.loader import make_loader
from minternet.train import Trainer

TRAIN_SIZE = 1_361_062  # InterHand2.6M v1.0 train (H+M), 5 fps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(trainer: Trainer, batch: dict[str, torch.Tensor], steps: int) -> float:
    """Crops per second of ``trainer.step`` on ``batch``, after one warm-up step."""
    trainer.step(batch)
    _sync(trainer.ctx.device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step(batch)
    _sync(trainer.ctx.device)
    return steps * len(batch["image"]) / (time.perf_counter() - started)


def loader_rate(trainer: Trainer, batch_size: int, workers: int, batches: int) -> float:
    """Crops per second of a training loader with ``workers`` processes (after start-up)."""
    loader = make_loader(trainer.train_set, batch_size, shuffle=True, num_workers=workers)

    def endless() -> Iterator[dict[str, torch.Tensor]]:
        while True:  # a small split is read several times over
            yield from loader

    it = endless()
    next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - started)


def hours(crops: float, rate: float) -> float:
    return crops / rate / 3600


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--data", default="data_samples", help="a tree with a train split")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    base = CONFIGS[args.config]
    batch_size = args.batch_size or base.batch_size
    # No download of ImageNet weights: speed does not depend on the weights' values.
    base = dataclasses.replace(base, pretrained=False, val_split="", batch_size=batch_size)
    ctx = distributed.setup(args.device)
    cuda = ctx.device.type == "cuda"
    mixed = "bf16" if (not cuda or torch.cuda.is_bf16_supported()) else "fp16"
    print(
        f"device {ctx.device}"
        + (
            f" ({torch.cuda.get_device_name(ctx.device)})"
            if cuda
            else f", {torch.get_num_threads()} threads"
        )
        + f"; config {args.config}, batch {batch_size}"
    )

    results: dict = {"device": str(ctx.device), "config": args.config, "batch": batch_size}
    steps: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for amp in ("off", mixed):
            for channels_last in (False, True):
                config = dataclasses.replace(base, amp=amp, channels_last=channels_last)
                run = Path(tmp) / f"{amp}-{channels_last}"
                trainer = Trainer(ctx, config, Path(args.data), run, resume=False)
                batch = next(iter(trainer.loader))
                layout = "on" if channels_last else "off"
                name = f"{'fp32' if amp == 'off' else amp} channels_last={layout}"
                steps[name] = step_rate(trainer, batch, args.steps)
        batches = max(4, 64 // batch_size)
        loaders = {
            w: loader_rate(trainer, batch_size, w, batches) for w in sorted({0, args.workers})
        }

    baseline = steps["fp32 channels_last=off"]
    print(f"\n{'train step':32s} {'crops/s':>10s} {'vs fp32':>8s}")
    for name, rate in steps.items():
        print(f"{name:32s} {rate:10.2f} {rate / baseline:7.2f}x")
    print(f"\n{'loader':32s} {'crops/s':>10s}")
    for workers, rate in loaders.items():
        print(f"{f'{workers} worker(s)':32s} {rate:10.1f}")

    best_step_name = max(steps, key=steps.get)
    best_step, best_loader = steps[best_step_name], max(loaders.values())
    bottleneck = "train step" if best_step < best_loader else "loader"
    rate = min(best_step, best_loader)
    crops = PAPER.epochs * TRAIN_SIZE
    print(
        f"\nbottleneck: the {bottleneck} ({best_step:.2f} crops/s at best, {best_step_name}; "
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
    if args.config != "paper":
        print("  (measured with the", args.config, "model: not the paper's cost)")
    results.update(steps=steps, loader=loaders, bottleneck=bottleneck, hours=estimates)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
