"""The command line's dataset verbs: ``synth`` writes a synthetic InterHand2.6M tree,
``download`` fetches, checks and unpacks the real one (see :mod:`minternet.__main__`).

Each ``add_*`` adds its verb's parser, whose ``run`` default runs the verb; the heavy
modules are imported only when a verb runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from minternet.cli_types import folder, integer, seconds


def add_synth(sub: argparse._SubParsersAction) -> None:
    from minternet.synth.plan import SynthSpec

    p = sub.add_parser(
        "synth",
        help="write a synthetic dataset in InterHand2.6M's v1.0 layout",
        description="Write a synthetic dataset in InterHand2.6M's v1.0 layout: "
        "images/{split}/... and annotations/{split}/InterHand2.6M_{split}_*.json.",
    )
    p.add_argument(
        "--out", required=True, type=folder, help="dataset root to write (created if missing)"
    )
    # One option per SynthSpec field, its default and meaning from the class.
    defaults = SynthSpec()
    for spec_field in dataclasses.fields(SynthSpec):
        name, default = spec_field.name, getattr(defaults, spec_field.name)
        text = SynthSpec.HELP[name]
        if name == "images":
            for split, count in default.items():
                p.add_argument(f"--{split}", type=integer(0), default=count, metavar="N",
                               help=f"{text} {split} (default {count}; 0 skips it)")  # fmt: skip
        elif isinstance(default, bool):
            p.add_argument("--" + name.replace("_", "-"), action="store_true", help=text)
        else:
            p.add_argument("--" + name.replace("_", "-"), type=integer(0), default=default,
                           metavar="N", help=f"{text} (default {default})")  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from minternet.synth.plan import SynthSpec
    from minternet.synth.write import write_dataset

    splits = SynthSpec().images
    spec = SynthSpec(
        images={s: getattr(args, s) for s in splits if getattr(args, s) > 0},
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SynthSpec)
           if f.name != "images"},
    )  # fmt: skip
    start = time.perf_counter()
    counts = write_dataset(spec, args.out, workers=args.workers, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    total = sum(sum(c.values()) for c in counts.values())
    print(
        json.dumps(
            {
                "out": str(args.out),
                "spec": dataclasses.asdict(spec),
                "images": counts,
                "seconds": round(elapsed, 1),
                "images_per_second": round(total / elapsed, 1),
            },
            indent=1,
        )
    )
    return 0


def add_download(sub: argparse._SubParsersAction) -> None:
    from minternet.download import DEADLINE, OFFICIAL_URL

    p = sub.add_parser(
        "download",
        help="fetch, check and unpack the real InterHand2.6M v1.0 (5 fps)",
        description="Fetch InterHand2.6M v1.0 5 fps (44 image tar parts, about 81.7 GB, and "
        "an annotation archive), resume cut transfers, check every md5, unpack safely into "
        "images/ and annotations/, and verify the tree.",
    )
    p.add_argument(
        "--out", required=True, type=folder, help="dataset root to fill (created if missing)"
    )
    p.add_argument(
        "--parts",
        default="all",
        help="all, annotations, images, or part suffixes / ranges, comma-separated, e.g. "
        "annotations,aa-ad (image parts start at aa without gaps; default all)",
    )
    p.add_argument(
        "--annotations",
        metavar="FILE_OR_URL",
        help="annotation archive (zip, tar, tar.gz); the homepage shares it on Google Drive",
    )
    p.add_argument(
        "--base-url", default=OFFICIAL_URL, help="folder URL of the image parts and CHECKSUM"
    )
    p.add_argument(
        "--archives",
        type=folder,
        help="download folder (default: interhand2.6m_v1.0_5fps in the cache)",
    )
    p.add_argument("--keep-archives", action="store_true", help="keep archives after unpacking")
    p.add_argument("--splits", default="train,val,test", help="splits to verify")
    p.add_argument(
        "--retries", type=integer(0), default=5, help="resumed retries of a failed transfer"
    )
    p.add_argument(
        "--deadline",
        type=seconds,
        default=DEADLINE,
        metavar="SECONDS",
        help=f"time allowed for all transfers, however slow (default {DEADLINE:.0f}); a rerun "
        "resumes",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the files and disk needed; fetch nothing"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from minternet.download import fetch_interhand

    report = fetch_interhand(
        args.out,
        args.parts,
        annotations=args.annotations,
        base_url=args.base_url,
        archives=args.archives,
        splits=[s for s in args.splits.split(",") if s],
        keep_archives=args.keep_archives,
        dry_run=args.dry_run,
        retries=args.retries,
        deadline=args.deadline,
        progress=not args.quiet,
        log=(lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr)),
    )
    print(json.dumps(report, indent=1))
    return 0
