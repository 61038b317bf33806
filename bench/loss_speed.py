"""Heatmap loss and train step, time and peak memory: minternet's loss, which builds the target
from its separable factors on the device, against the dense-target loss, whose
(B, 42, 64, 64, 64) float32 target is stacked from ``HeatmapCodec().encode`` per sample, as
mmpose's loader builds it.

    python bench/loss_speed.py [--data data_samples] [--batch-size 8] [--loss-repeats 10]
                               [--step-repeats 3]

Each variant runs in its own subprocess (this script with ``--variant``), so its peak RSS
(``ru_maxrss``) is its own; the figure reported is that peak minus the peak after imports,
the batch and the prediction (loss) or the model and optimiser (train step). Times are the
mean of ``time.perf_counter`` over the repeats after one warm-up. The batch is the first
``--batch-size`` samples of the train split with training augmentation, collated and
normalised as in training.

* loss: forward and backward of the heatmap loss with respect to a (B, 42, 64, 64, 64)
  prediction; the baseline's time is shown with and without building the dense target.
* train step: forward, backward and Adam step of ``InterNet()`` (ResNet-50, 256 x 256 input,
  64^3 heatmaps) with ``internet_loss`` (ours) or the same three losses with the dense
  heatmap loss (baseline); the baseline's target is built before the timed step, as a loader
  would, but stays resident, so its bytes count in the baseline's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping

import torch

from minternet import HeatmapCodec, InterHandDataset, InterNet, collate, normalize
from minternet.engine import timed_steps
from minternet.losses import (
    dense_heatmap_loss,
    heatmap_loss,
    internet_loss,
)

VARIANTS = ("loss-ours", "loss-dense", "step-ours", "step-dense")
MB = 2**20


def peak_rss() -> int:
    """This process's peak resident set so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_batch(data: str, batch_size: int) -> dict[str, torch.Tensor]:
    """The first ``batch_size`` augmented train samples, collated."""
    dataset = InterHandDataset(data, split="train", train=True)
    return collate([dataset[i] for i in range(batch_size)])


def dense_target(
    batch: Mapping[str, torch.Tensor], codec: HeatmapCodec
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 42, D, H, W) float32 target and (B, 42) weights, as mmpose's loader would build
    them (``codec.encode``)."""
    target, weights = codec.encode(batch["keypoints"].numpy(), batch["joint_valid"].numpy())
    return torch.from_numpy(target), torch.from_numpy(weights)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Mean seconds of ``fn`` over ``repeats`` calls after one warm-up call (on the CPU)."""
    return timed_steps(fn, torch.device("cpu"), warmup=1, steps=repeats)["seconds"]


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Measure one variant in this process; returns seconds and bytes."""
    torch.manual_seed(0)
    codec = HeatmapCodec()
    batch = load_batch(args.data, args.batch_size)
    result: dict[str, float] = {}
    if variant.startswith("loss"):
        shape = (args.batch_size, 42, *codec.shape)
        pred = (torch.randn(shape) * 0.01).requires_grad_()
        before = peak_rss()

        def ours() -> None:
            pred.grad = None
            heatmap_loss(pred, batch["keypoints"], batch["joint_valid"], codec).backward()

        def dense() -> None:
            pred.grad = None
            dense_heatmap_loss(pred, *dense_target(batch, codec)).backward()

        if variant == "loss-ours":
            result["time"] = timed(ours, args.loss_repeats)
        else:
            result["time"] = timed(dense, args.loss_repeats)
            target, weights = dense_target(batch, codec)
            result["target_bytes"] = target.nbytes
            result["build"] = timed(lambda: dense_target(batch, codec), args.loss_repeats)

            def loss_only() -> None:
                pred.grad = None
                dense_heatmap_loss(pred, target, weights).backward()

            result["loss_only"] = timed(loss_only, args.loss_repeats)
        result["peak"] = peak_rss() - before
        return result

    model = InterNet()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = normalize(batch["image"])
    before = peak_rss()
    if variant == "step-ours":

        def loss_fn(out: object) -> torch.Tensor:
            return internet_loss(*out, batch, codec)["loss"]
    else:
        target, weights = dense_target(batch, codec)
        result["target_bytes"] = target.nbytes

        def loss_fn(out: object) -> torch.Tensor:
            return internet_loss(*out, batch, codec, dense_target=(target, weights))["loss"]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images)).backward()
        optimizer.step()

    result["time"] = timed(step, args.step_repeats)
    result["peak"] = peak_rss() - before
    return result


def spawn(variant: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one variant in a fresh interpreter and return its measurements."""
    command = [sys.executable, os.path.abspath(__file__), "--variant", variant,
               "--data", args.data, "--batch-size", str(args.batch_size),
               "--loss-repeats", str(args.loss_repeats),
               "--step-repeats", str(args.step_repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--loss-repeats", type=int, default=10)
    parser.add_argument("--step-repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return

    results = {variant: spawn(variant, args) for variant in VARIANTS}
    ours, dense = results["loss-ours"], results["loss-dense"]
    step_ours, step_dense = results["step-ours"], results["step-dense"]
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"dense target: {dense['target_bytes']:,.0f} bytes "
          f"({dense['target_bytes'] / args.batch_size:,.0f} per sample)")
    print(f"{'':<38} {'ours':>10} {'baseline':>10} {'ratio':>7}")
    rows = [
        ("loss fwd+bwd incl. target build, ms", ours["time"] * 1e3, dense["time"] * 1e3),
        ("loss fwd+bwd, prebuilt target, ms", ours["time"] * 1e3, dense["loss_only"] * 1e3),
        ("loss peak memory, MB", ours["peak"] / MB, dense["peak"] / MB),
        ("train step, s", step_ours["time"], step_dense["time"]),
        ("train step peak memory, MB", step_ours["peak"] / MB, step_dense["peak"] / MB),
    ]
    for name, a, b in rows:
        ratio = f"{b / a:6.1f}x" if a > 0 else "     -"
        print(f"{name:<38} {a:>10.1f} {b:>10.1f} {ratio:>7}")
    print(f"baseline target build (B x encode): {dense['build'] * 1e3:.1f} ms, outside the "
          "timed train step")
    print("ratio = baseline / ours (higher favours ours)")


if __name__ == "__main__":
    main()
