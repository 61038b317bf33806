"""Synthetic InterHand2.6M generation speed: rendered images per second, one process vs two,
and labels-only annotations per second (the mode used for full-size scale tests).

    python bench/synth_speed.py [--images 240] [--annotations 20000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset


def rate(spec: SynthSpec, workers: int) -> float:
    """Items written per second by ``write_dataset`` for ``spec`` (train split only)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        counts = write_dataset(spec, out, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    return sum(counts["train"].values()) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--annotations", type=int, default=20000)
    args = parser.parse_args()
    rendered = SynthSpec(images={"train": args.images})
    one, two = rate(rendered, 1), rate(rendered, 2)
    labels = SynthSpec(images={"train": args.annotations}, captures=4,
                       sequences=args.annotations // 100, frames=10, cameras=40, views=10,
                       annotations_only=True)
    only = rate(labels, 1)
    print(f"machine: {os.cpu_count()} cores")
    print(f"rendered images/s, 1 process : {one:8.1f}")
    print(f"rendered images/s, 2 processes: {two:8.1f}  ({two / one:.2f}x the 1-process rate)")
    print(f"labels-only annotations/s     : {only:8.1f}  ({only / one:.0f}x the 1-process "
          f"rendered rate)")
    print(f"InterHand2.6M train size (1,361,062 annotations) labels-only: "
          f"{1_361_062 / only / 60:.1f} min")


if __name__ == "__main__":
    main()
