"""Training loader throughput and bytes per sample: minternet's loader, which ships the crop and
a few hundred bytes of labels, against a baseline that also renders mmpose's dense 3D heatmap
target per sample in the loader (42 x 64 x 64 x 64 float32, as mmpose's Hand3DHeatmap does).

    python bench/loader_speed.py [--data data_samples] [--batches 12] [--batch-size 16]

The baseline target is :meth:`minternet.codec.HeatmapCodec.encode`'s, mmpose's: a 16-voxel
support per axis at round-half-to-even(mu + i - 7.5) clipped to [0, 63], value
255 exp(-d^2 / (2 sigma^2)) with sigma 2.5, zero elsewhere.
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np
import torch

from minternet import HeatmapCodec, InterHandDataset
from minternet.loader import make_loader


def dense_target(sample: dict[str, Any]) -> np.ndarray:
    """(42 * 64, 64, 64) float32 target of one crop, built as mmpose's loader builds it."""
    codec = HeatmapCodec(input_size=sample["image"].shape[0])
    target, _ = codec.encode(sample["keypoints"], sample["joint_valid"])
    return target.reshape(-1, *target.shape[-2:])


class WithDenseTarget(torch.utils.data.Dataset):
    """The same samples plus the dense target, as a loader that builds targets would ship."""

    def __init__(self, dataset: InterHandDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self.dataset[i]
        sample["target"] = dense_target(sample)
        return sample


def measure(dataset: torch.utils.data.Dataset, workers: int, batches: int,
            batch_size: int) -> tuple[float, float]:
    """(samples per second, bytes per sample) over ``batches`` batches after one warm-up."""
    loader = make_loader(dataset, batch_size, shuffle=True, num_workers=workers, seed=0)
    stream = iter(loader)
    first = next(stream)  # worker start-up is not throughput
    per_sample = sum(v.nbytes for v in first.values() if torch.is_tensor(v)) / batch_size
    start = time.perf_counter()
    count = sum(len(batch["image"]) for batch in itertools.islice(stream, batches))
    return count / (time.perf_counter() - start), per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the loader's cost, not intra-op threading
    ours = InterHandDataset(args.data, split="train", train=True, input_size=256)
    baseline = WithDenseTarget(ours)
    print(f"{'workers':>8} {'ours samples/s':>15} {'baseline samples/s':>19} {'ratio':>6}")
    sizes = None
    for workers in (0, 1, 2):
        rate, size = measure(ours, workers, args.batches, args.batch_size)
        base_rate, base_size = measure(baseline, workers, args.batches, args.batch_size)
        sizes = size, base_size
        print(f"{workers:>8} {rate:>15.1f} {base_rate:>19.1f} {rate / base_rate:>5.1f}x")
    print(f"bytes per sample: ours {sizes[0]:,.0f} (image {256 * 256 * 3:,}), baseline "
          f"{sizes[1]:,.0f}: {sizes[1] / sizes[0]:.0f}x more")
    labels = sizes[0] - 256 * 256 * 3
    print(f"labels alone: ours {labels:,.0f} bytes, baseline {sizes[1] - 256 * 256 * 3:,.0f}")


if __name__ == "__main__":
    main()
