"""Is handedness in the synthetic pixels? A small CNN learns right vs left from single-hand
crops of some captures and is tested on crops of captures (subjects, cameras, studios) it
never saw, once with the previous look (one skin colour all round, one fixed light) and once
with the current one (two-sided skin, nails, creases, sleeves, studio variety).

A left hand is a mirrored right hand, so every training crop is mirrored at random with its
label flipped: nothing but the hand's chirality can separate the classes.

    python bench/handedness_probe.py [--train 4000] [--test 800] [--steps 2000] [--crops FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool

import cv2
import numpy as np
import torch
from torch import nn

from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import render
from minternet.synth.hand import hand_capsules
from minternet.synth.plan import (
    CaptureRig,
    PlannedSequence,
    SynthSpec,
    camera_studio,
    capture_rig,
    plan_split,
    render_view,
)

CROP = 96
"""px: side of the square crops the CNN sees."""


def previous_look(rig: CaptureRig, planned: PlannedSequence, frame: int, cam: int) -> np.ndarray:
    """(H, W, 3) uint8: the view as the generator drew it before the two-sided skin: every
    capsule the subject's one skin colour, the default light, a fixed blur, no sleeve."""
    camera = rig.cameras[cam]
    hand = int(np.flatnonzero(planned.motion.present)[0])
    joints = planned.motion.joint_world[
        frame, hand * JOINTS_PER_HAND : (hand + 1) * JOINTS_PER_HAND
    ]
    seg, rad = hand_capsules(joints, rig.shapes[hand])
    size = (camera.width, camera.height)
    backdrop = camera_studio(rig.studio_seed, cam, size)[0]  # the same backdrop as now
    return render.render_capsules(
        camera.camera.world_to_camera(seg), rad, np.ones(len(rad), int), rig.skin,
        camera.camera.focal, camera.camera.princpt, size, backdrop,
    ).image  # fmt: skip


def crop(image: np.ndarray, bbox: list[float]) -> np.ndarray:
    """(CROP, CROP, 3) crop of the labels' box, squared and enlarged 1.25 times."""
    x, y, w, h = bbox
    side = 1.25 * max(w, h)
    scale = CROP / side
    affine = np.array([[scale, 0, CROP / 2 - scale * (x + w / 2)],
                       [0, scale, CROP / 2 - scale * (y + h / 2)]])  # fmt: skip
    return cv2.warpAffine(image, affine, (CROP, CROP), flags=cv2.INTER_AREA)


def _render_sequence(job: tuple) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(previous crop, current crop, 1 right / 0 left) for each view of one sequence."""
    spec, split, planned = job
    rig = capture_rig(spec, split, planned.capture)
    out = []
    for frame, cam, labels in planned.views:
        old = previous_look(rig, planned, frame, cam)
        new = render_view(spec, rig, planned.motion, frame, cam).image
        if rig.cameras[cam].grey:  # as the writer stores those cameras' frames
            old, new = render.to_grey(old), render.to_grey(new)
        old, new = crop(old, labels["bbox"]), crop(new, labels["bbox"])
        out.append((old, new, int(planned.kind == "right")))
    return out


def single_hand_views(spec: SynthSpec, split: str, count: int, workers: int) -> tuple:
    """Crops of ``count`` single-hand views of a split: (old (N, CROP, CROP, 3) uint8,
    new (N, CROP, CROP, 3) uint8, right (N,) int)."""
    jobs = [(spec, split, p) for p in plan_split(spec, split) if p.kind != "interacting"]
    with Pool(workers) as pool:
        views = [v for seq in pool.imap(_render_sequence, jobs) for v in seq][:count]
    if len(views) < count:
        raise SystemExit(f"{split}: only {len(views)} single-hand views, {count} asked for")
    old, new, right = zip(*views, strict=True)
    return np.stack(old), np.stack(new), np.array(right)


def small_cnn() -> nn.Module:
    """Four stride-2 conv blocks (CROP -> CROP / 16 px), then a linear layer on the flattened
    map, so that where a feature lies stays known (the thumb's side is part of the cue)."""
    layers, width = [], 3
    for out in (16, 32, 64, 96):
        layers += [nn.Conv2d(width, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    head = nn.Linear(width * (CROP // 16) ** 2, 1)
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.3), head)


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).sub(0.5)


def probe(train: tuple, test: tuple, steps: int, batch: int, seed: int) -> tuple[float, float]:
    """Training accuracy (over the last quarter of the steps) and held-out accuracy of a CNN
    trained ``steps`` steps on (crops, right) ``train``; each test crop is scored as it is
    and mirrored (with its label flipped)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, right = to_tensor(train[0]), torch.from_numpy(train[1]).float()
    model = small_cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    model.train()
    hits = []
    for _ in range(steps):
        index = torch.from_numpy(rng.integers(0, len(images), batch))
        x, y = images[index], right[index]
        mirror = torch.from_numpy(rng.random(batch) < 0.5)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        y = torch.where(mirror, 1 - y, y)
        logits = model(x)[:, 0]
        hits.append(((logits > 0).float() == y).float().mean().item())
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    x, y = to_tensor(test[0]), torch.from_numpy(test[1]).float()
    with torch.no_grad():
        plain = ((model(x)[:, 0] > 0).float() == y).float()
        mirrored = ((model(x.flip(-1))[:, 0] > 0).float() == 1 - y).float()
    return float(np.mean(hits[-max(1, steps // 4) :])), float(torch.cat([plain, mirrored]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=4000, help="training crops")
    parser.add_argument("--test", type=int, default=800, help="held-out crops")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of 64 crops")
    parser.add_argument("--captures", type=int, default=12, help="training captures")
    parser.add_argument("--frames", type=int, default=10, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--crops", help="an .npz file: crops read from it, or saved to it")
    args = parser.parse_args()
    torch.set_num_threads(1)  # two threads ran this small network's backward 4x slower
    # Half the sequences show one hand; a few views fall outside their image and are skipped.
    views_per_sequence = args.frames * 2
    sequences = -(-max(args.train, args.test) * 5 // (2 * args.captures * views_per_sequence))
    capacity = args.captures * sequences * views_per_sequence
    spec = SynthSpec(
        seed=args.seed, images={"train": capacity, "test": capacity}, captures=args.captures,
        sequences=sequences, frames=args.frames, cameras=24, views=2,
    )  # fmt: skip
    start = time.perf_counter()
    cached = bool(args.crops) and os.path.exists(args.crops)
    if cached:
        saved = np.load(args.crops)
        train, test = (tuple(saved[f"{split}_{k}"] for k in ("old", "new", "right"))
                       for split in ("train", "test"))  # fmt: skip
    else:
        train = single_hand_views(spec, "train", args.train, args.workers)
        test = single_hand_views(spec, "test", args.test, args.workers)
        if args.crops:
            np.savez(
                args.crops,
                **{
                    f"{split}_{k}": v
                    for split, views in (("train", train), ("test", test))
                    for k, v in zip(("old", "new", "right"), views, strict=True)
                },
            )
    seconds = time.perf_counter() - start
    source = f"read from {args.crops}" if cached else f"rendered in {seconds:.0f} s"
    print(f"{len(train[2])} training crops from {args.captures} captures, {len(test[2])} "
          f"held-out crops from unseen captures, {CROP} px, {source}")  # fmt: skip
    print(f"right-hand share: train {train[2].mean():.2f}, test {test[2].mean():.2f}")
    print(f"{'look':<36}{'train accuracy':>15}{'held-out accuracy':>18}{'train s':>9}")
    for name, column in (("previous: one colour, one light", 0), ("current: two-sided skin", 1)):
        start = time.perf_counter()
        fitted, held_out = probe((train[column], train[2]), (test[column], test[2]),
                                 args.steps, 64, args.seed)  # fmt: skip
        print(f"{name:<36}{fitted:>15.3f}{held_out:>18.3f}{time.perf_counter() - start:>9.0f}")


if __name__ == "__main__":
    main()
