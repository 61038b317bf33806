"""Evaluation speed: ``predict`` in bfloat16 autocast with channels_last against float32, in
one run, on whatever device is present.

    python bench/eval_speed.py [--config paper|tiny] [--data data_samples] [--split test]
        [--batch-size 64] [--crops 1024] [--steps 10] [--workers N] [--device cuda]
        [--json OUT]

* Device part: :func:`minternet.evaluate.infer` (forward, argmax decoding on the device) on
  one batch of crops already on the device: crops/s and peak device memory, float32 against
  mixed (bfloat16 autocast + channels_last), timed over ``--steps`` batches after two.
* End to end: :func:`minternet.evaluate.predict` over ``--crops`` test crops (the split's
  rows repeated) with ``--workers`` loader processes, both ways, and the five metrics of
  each: with the untrained model of this benchmark (no weights are downloaded) the argmax
  of a nearly flat volume can move between voxels of almost equal value, so the fraction
  of joints whose keypoints agree exactly is printed with the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from minternet import InterHandDataset, InterNet
from minternet.codec import HeatmapCodec
from minternet.config import CONFIGS
from minternet.engine import timed_steps
from minternet.evaluate import infer, predict, score_predictions
from minternet.loader import collate

GIB = 2**30


def device_rate(model: InterNet, images: torch.Tensor, mixed: bool, steps: int) -> dict:
    """Crops/s and peak GiB of :func:`infer` on ``images`` (already on the device)."""
    device, codec = images.device, HeatmapCodec.for_model(model.config)
    model.to(memory_format=torch.channels_last if mixed else torch.contiguous_format)
    with torch.no_grad():
        timed = timed_steps(lambda: infer(model, images, codec, mixed), device, 2, steps)
    peak = timed["peak_bytes"] / GIB if timed["peak_bytes"] is not None else None
    return {"crops_per_second": len(images) / timed["seconds"], "peak_gib": peak}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--crops", type=int, default=1024, help="end-to-end crops")
    parser.add_argument("--steps", type=int, default=10, help="timed device batches")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = InterNet(CONFIGS[args.config].model).to(device).eval()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dataset = InterHandDataset(args.data, args.split, train=False, input_size=model.input_size)
    rows = np.arange(args.batch_size) % len(dataset)
    images = collate([dataset[int(i)] for i in rows])["image"].to(device)
    results: dict = {"device": str(device), "config": args.config, "batch": args.batch_size}
    print(
        f"evaluation on {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    for name, mixed in (("fp32", False), ("bf16+cl", True)):
        results[name] = device_rate(model, images, mixed, args.steps)
    repeated = dataset.select(np.arange(args.crops) % len(dataset))
    predictions = {}
    for name, mixed in (("fp32", False), ("bf16+cl", True)):
        model.to(memory_format=torch.channels_last if mixed else torch.contiguous_format)
        started = time.perf_counter()
        predictions[name] = predict(
            model, repeated, batch_size=args.batch_size, num_workers=args.workers, mixed=mixed
        )
        seconds = time.perf_counter() - started
        results[name].update(
            predict_crops_per_second=args.crops / seconds,
            metrics=score_predictions(predictions[name], repeated),
        )
    same = predictions["fp32"]["keypoints"] == predictions["bf16+cl"]["keypoints"]
    results["joints_agreeing"] = float(same.all(-1).mean())
    fp32, mixed = results["fp32"], results["bf16+cl"]
    print(f"{'':32s} {'fp32':>10s} {'bf16+cl':>10s} {'ratio':>7s}")
    lines = [
        ("infer on the device, crops/s", fp32["crops_per_second"], mixed["crops_per_second"]),
        (
            "predict end to end, crops/s",
            fp32["predict_crops_per_second"],
            mixed["predict_crops_per_second"],
        ),
    ]
    for label, a, b in lines:
        print(f"{label:32s} {a:10.1f} {b:10.1f} {b / a:6.2f}x")
    if fp32["peak_gib"] is not None:
        print(f"{'infer peak memory, GiB':32s} {fp32['peak_gib']:10.2f} {mixed['peak_gib']:10.2f}")
    for key, value in fp32["metrics"].items():
        print(f"{key:32s} {value:10.3f} {mixed['metrics'][key]:10.3f}")
    print(
        f"joints with the same keypoint in both: {results['joints_agreeing']:.1%} "
        f"({args.crops} crops, batch {args.batch_size}, {args.workers} workers)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
