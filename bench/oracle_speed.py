"""The oracle's decode: ``HeatmapCodec.decode_target`` (the factors multiplied over each
joint's support window) against decoding the dense (42, 64, 64, 64) target per crop, on the
same keypoints; both give the same voxels (tests/test_codec.py checks it).

    python bench/oracle_speed.py [--data data_samples] [--split test]
"""

from __future__ import annotations

import argparse
import time

import torch

from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.loader import make_loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    codec = HeatmapCodec()
    dataset = InterHandDataset(args.data, args.split, train=False)
    keypoints = [b["keypoints"] for b in make_loader(dataset, 32, shuffle=False)]

    started = time.perf_counter()
    for batch in keypoints:
        for crop in batch:
            fz, fy, fx = codec.factors(crop)
            dense = (
                codec.max_value * fz[:, :, None, None] * fy[:, None, :, None] * fx[:, None, None]
            )
            codec.decode(dense)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    for batch in keypoints:
        codec.decode_target(batch)
    ours = time.perf_counter() - started

    n = len(dataset)
    print(f"{n} crops of {args.data}/{args.split}, {torch.get_num_threads()} threads")
    print(f"dense target, then decode : {baseline:7.3f} s  {1e3 * baseline / n:7.2f} ms/crop")
    print(f"decode_target (windows)   : {ours:7.3f} s  {1e3 * ours / n:7.2f} ms/crop")
    print(f"ratio                     : {baseline / ours:7.1f}x")
    print(
        f"InterHand2.6M test (849,160 crops): {849_160 * baseline / n / 3600:.1f} h vs "
        f"{849_160 * ours / n / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
