"""Command line: ``python -m minternet VERB ...`` (or the ``minternet`` script).

Verbs: ``synth`` writes a synthetic InterHand2.6M tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence


def _add_synth(sub: argparse._SubParsersAction) -> None:
    from minternet.synth.plan import SynthSpec

    defaults = SynthSpec()
    p = sub.add_parser(
        "synth",
        help="write a synthetic dataset in InterHand2.6M's v1.0 layout",
        description="Write a synthetic dataset in InterHand2.6M's v1.0 layout: "
        "images/{split}/... and annotations/{split}/InterHand2.6M_{split}_*.json.",
    )
    p.add_argument("--out", required=True, help="dataset root to write (created if missing)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="same seed, same bytes")
    for split, count in defaults.images.items():
        p.add_argument(
            f"--{split}",
            type=int,
            default=count,
            metavar="N",
            help=f"images in the {split} split (default {count}; 0 skips it)",
        )
    p.add_argument(
        "--captures",
        type=int,
        default=defaults.captures,
        help="captures (subjects with their own camera dome) per split",
    )
    p.add_argument(
        "--sequences", type=int, default=defaults.sequences, help="sequences per capture, at most"
    )
    p.add_argument("--frames", type=int, default=defaults.frames, help="frames per sequence")
    p.add_argument(
        "--cameras", type=int, default=defaults.cameras, help="cameras in each capture's dome"
    )
    p.add_argument(
        "--views",
        type=int,
        default=defaults.views,
        help="cameras, drawn from the dome, that see each frame",
    )
    p.add_argument("--jpeg-quality", type=int, default=defaults.jpeg_quality)
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes"
    )
    p.add_argument(
        "--annotations-only",
        action="store_true",
        help="write only the JSON files (no rendering), e.g. for scale tests",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from minternet.synth.plan import SynthSpec
    from minternet.synth.write import write_dataset

    images = {s: getattr(args, s) for s in ("train", "val", "test") if getattr(args, s) > 0}
    try:
        spec = SynthSpec(
            seed=args.seed,
            images=images,
            captures=args.captures,
            sequences=args.sequences,
            frames=args.frames,
            cameras=args.cameras,
            views=args.views,
            jpeg_quality=args.jpeg_quality,
            annotations_only=args.annotations_only,
        )
    except ValueError as err:
        print(f"minternet synth: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    counts = write_dataset(spec, args.out, workers=args.workers, progress=not args.quiet)
    seconds = time.perf_counter() - start
    total = sum(sum(c.values()) for c in counts.values())
    print(
        json.dumps(
            {
                "out": str(args.out),
                "spec": dataclasses.asdict(spec),
                "images": counts,
                "seconds": round(seconds, 1),
                "images_per_second": round(total / seconds, 1),
            },
            indent=1,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minternet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    _add_synth(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
