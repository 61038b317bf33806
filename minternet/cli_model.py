"""The command line's model verbs: ``train`` trains InterNet, ``eval`` scores a checkpoint
(or the codec's oracle), ``predict`` runs a trained InterNet on images (see
:mod:`minternet.__main__`).

Each ``add_*`` adds its verb's parser, whose ``run`` default runs the verb; the heavy
modules are imported only when a verb runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from minternet.cli_types import device, folder, integer, numbers, output_file


def add_train(sub: argparse._SubParsersAction) -> None:
    from minternet.config import CONFIGS, TrainConfig

    p = sub.add_parser(
        "train",
        help="train InterNet (also under torchrun --nproc_per_node=N -m minternet train)",
        description="Train InterNet on an InterHand2.6M tree into a run folder; every "
        "setting of the chosen configuration can be overridden, e.g. --epochs 2 --lr 1e-4.",
    )
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="base settings")
    p.add_argument("--data", required=True, help="dataset root (v1.0 layout)")
    p.add_argument(
        "--out", required=True, type=folder, help="run folder (checkpoints, metrics.jsonl)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument(
        "--device", type=device, default=None, help="e.g. cpu or cuda:0 (default: CUDA if any)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, default in TrainConfig().settings().items():
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"set_{name}",
            metavar="N,N" if name == "milestones" else type(default).__name__.upper(),
            help="epochs at which lr is multiplied by gamma" if name == "milestones" else None,
        )
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from minternet.config import CONFIGS, TrainConfig
    from minternet.train import train
    from minternet.train_loop import NonFiniteLossError

    overrides = {
        k[len("set_") :]: v for k, v in vars(args).items() if k.startswith("set_") and v is not None
    }
    saved = os.path.join(args.out, "config.json")
    try:
        if args.resume and os.path.exists(saved):
            # A resumed run keeps its own settings; overrides (e.g. more epochs) still apply.
            base = TrainConfig.load(saved)
        else:
            base = CONFIGS[args.config]
        config = base.replace(overrides)
        history = train(
            config,
            args.data,
            args.out,
            resume=args.resume,
            progress=not args.quiet,
            device=args.device,
        )
    except NonFiniteLossError as err:
        print(f"minternet train: {err}", file=sys.stderr)
        return 3
    if history and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(history[-1]))
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a checkpoint (or the codec's oracle) with InterHand2.6M's test metrics",
        description="Print a Markdown table of MPJPE (single, interacting, all), MRRPE and "
        "APh on an InterHand2.6M split, with GT boxes and GT root depths as mmpose evaluates.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="mmpose 1.x / 0.x file or a minternet checkpoint")
    source.add_argument(
        "--oracle",
        action="store_true",
        help="score each crop's perfect target instead of a model: the codec's error floor",
    )
    p.add_argument("--data", required=True, help="v1.0 tree, or a flat folder of frames")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="split of a v1.0 tree (default test); none for a flat folder",
    )
    p.add_argument(
        "--json",
        metavar="OUT.json",
        type=output_file,
        help="also write the metrics and run details",
    )
    p.add_argument("--batch-size", type=integer(1), default=32)
    p.add_argument(
        "--device", type=device, default=None, help="e.g. cpu or cuda:0 (default: CUDA if any)"
    )
    p.add_argument("--workers", type=integer(0), default=0, help="DataLoader worker processes")
    p.add_argument(
        "--missing-images",
        choices=("raise", "drop"),
        default="raise",
        help="samples whose image file is absent: stop (default) or leave them out",
    )
    p.add_argument(
        "--bad-images",
        choices=("raise", "skip"),
        default="raise",
        help="images that exist but cannot be decoded: stop (default), or skip and count them",
    )
    p.add_argument(
        "--protocol",
        choices=("mmpose", "original"),
        default="mmpose",
        help="MPJPE averaging: over all valid joints (mmpose) or of per-joint means (original)",
    )
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from minternet.results import evaluate, results_table

    report = evaluate(
        args.data,
        args.split,
        checkpoint=args.checkpoint,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.workers,
        protocol=args.protocol,
        missing_images=args.missing_images,
        bad_images=args.bad_images,
    )
    print(results_table([report]))
    if report.skipped_images:
        print(
            f"minternet eval: {report.skipped_images} undecodable images skipped, counted in "
            "no metric",
            file=sys.stderr,
        )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=1)
    return 0


def add_predict(sub: argparse._SubParsersAction) -> None:
    from minternet.hub import CHECKPOINTS

    p = sub.add_parser(
        "predict",
        help="both hands' 2D and 3D joints in images, with a trained InterNet",
        description="Run InterNet on each image around the box enclosing both hands and write "
        "NAME.json (keypoints, hand types, relative root depth, camera-space joints), NAME.png "
        "(2D skeletons over the image) and NAME.html (interactive 3D view) per image.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=f"a published checkpoint ({', '.join(CHECKPOINTS)}), an OpenMMLab URL, or a file",
    )
    p.add_argument(
        "--bbox",
        action="append",
        type=numbers(4, "x,y,w,h"),
        metavar="X,Y,W,H",
        help="px box enclosing both hands; once for all images or once per image "
        "(default: the whole image, with a warning)",
    )
    p.add_argument("--focal", type=numbers(2, "fx,fy", positive=True), metavar="FX,FY",
                   help="focal length, px (default: 1.2 x the longer image side)")
    p.add_argument("--princpt", type=numbers(2, "cx,cy"), metavar="CX,CY",
                   help="principal point, px (default: the image centre)")
    p.add_argument("--root-depth", type=numbers(1, "(mm)", positive=True), metavar="MM",
                   help="camera depth of the right wrist, mm (default 1000)")
    p.add_argument("--flip-test", action="store_true",
                   help="average with the outputs of the mirrored crop")
    p.add_argument("--out", type=folder, default="predictions", help="folder for the outputs")
    p.add_argument("--device", type=device, default=None,
                   help="e.g. cpu or cuda:0 (default: CUDA if any)")
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from minternet.hub import load_model
    from minternet.predict import check_bbox, load_image, predict, write_outputs

    boxes = args.bbox or [None]
    if len(boxes) not in (1, len(args.images)):
        print(f"minternet predict: {len(boxes)} --bbox for {len(args.images)} images: give one "
              "for all or one per image", file=sys.stderr)
        return 2
    boxes = boxes * len(args.images) if len(boxes) == 1 else boxes
    try:
        images = {path: load_image(path) for path in args.images}
        for (path, image), box in zip(images.items(), boxes, strict=True):
            if box is None:
                print(f"minternet predict: {path}: no --bbox, so the whole image is taken as the "
                      "box around the hands", file=sys.stderr)
            else:
                check_bbox(box, image.shape[1], image.shape[0], path, "--bbox")
        model = load_model(args.checkpoint, args.device)
    except (OSError, ValueError) as err:
        print(f"minternet predict: {err}", file=sys.stderr)
        return 2
    for (path, image), box in zip(images.items(), boxes, strict=True):
        result = predict(model, image, box, focal=args.focal, princpt=args.princpt,
                         root_depth=args.root_depth[0] if args.root_depth else None,
                         flip_test=args.flip_test, source=path)
        written = write_outputs(result, image, args.out, Path(path).stem)
        print(json.dumps({"image": path, **{k: str(v) for k, v in written.items()},
                          "hand_present": result.hand_present.tolist()}))
    return 0
