"""Synthetic InterHand2.6M generation speed: rendered images per second, one process vs two,
and labels-only annotations per second (the mode used for full-size scale tests).

    python bench/synth_speed.py [--images 240] [--annotations 20000] [--baseline SRC]

``--baseline SRC`` also times another checkout of the package (e.g. a ``git worktree`` of an
earlier commit) at the same spec, alternating with this one, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
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


def rate_of(source: str, images: int, workers: int) -> float:
    """:func:`rate` of the default spec's first ``images`` train images, with the package
    imported from ``source`` (a checkout's root), in a fresh process."""
    bench = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path[:0] = [{bench!r}, {source!r}]\n"
        "from synth_speed import rate\nfrom minternet.synth.plan import SynthSpec\n"
        f"print(rate(SynthSpec(images={{'train': {images}}}), {workers}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def compare(baseline: str, images: int, rounds: int = 2) -> None:
    """Two-process rendering rate of this checkout and of ``baseline``, alternating."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ours, theirs = [], []
    for _ in range(rounds):
        theirs.append(rate_of(baseline, images, 2))
        ours.append(rate_of(here, images, 2))
    print(
        f"rendered images/s, 2 processes, baseline {baseline}: "
        + ", ".join(f"{r:.1f}" for r in theirs)
    )
    print("rendered images/s, 2 processes, this checkout: " + ", ".join(f"{r:.1f}" for r in ours))
    print(f"this checkout / baseline: {sum(ours) / sum(theirs):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--annotations", type=int, default=20000)
    parser.add_argument("--baseline", help="another checkout's root, to time alongside")
    args = parser.parse_args()
    if args.baseline:
        compare(args.baseline, args.images)
        return
    rendered = SynthSpec(images={"train": args.images})
    one, two = rate(rendered, 1), rate(rendered, 2)
    labels = SynthSpec(
        images={"train": args.annotations},
        captures=4,
        sequences=args.annotations // 100,
        frames=10,
        cameras=40,
        views=10,
        annotations_only=True,
    )
    only = rate(labels, 1)
    print(f"machine: {os.cpu_count()} cores")
    print(f"rendered images/s, 1 process : {one:8.1f}")
    print(f"rendered images/s, 2 processes: {two:8.1f}  ({two / one:.2f}x the 1-process rate)")
    print(
        f"labels-only annotations/s     : {only:8.1f}  ({only / one:.0f}x the 1-process "
        f"rendered rate)"
    )
    print(
        f"InterHand2.6M train size (1,361,062 annotations) labels-only: "
        f"{1_361_062 / only / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
