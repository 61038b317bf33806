"""Is handedness in the synthetic pixels? A small CNN learns right vs left from single-hand
crops of some captures and is tested on crops of captures (subjects, cameras, studios) it
never saw, once with the previous generator (one skin colour all round, one fixed light,
hands turned uniformly at random, cameras all round the scene) and once with the current
one (two-sided skin, nails, creases, sleeves, studio variety, hands held up in front of the
body, cameras in front and at the sides).

A left hand is a mirrored right hand, so every training crop is mirrored at random with its
label flipped: nothing but the hand's chirality can separate the classes. The crops are
rendered directly at their final size (the camera's focal length and principal point moved
onto the labels' box), so tens of thousands take minutes.

    python bench/handedness_probe.py [--train 20000] [--test 2000] [--steps 4000] [--crops FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from minternet.camera import Camera
from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import cameras, render, scene
from minternet.synth.cameras import CameraSpec
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
LOOKS = ("previous", "current")


def uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) rotation drawn uniformly (a normalised Gaussian quaternion): how the previous
    generator turned every scene."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


@contextlib.contextmanager
def previous_scenes() -> Iterator[None]:
    """Scenes as the previous generator drew them: hands turned uniformly at random, cameras
    all round. Worker processes forked inside inherit it."""
    held, arc = scene.held_rotation, cameras.FRONT_ARC
    scene.held_rotation, cameras.FRONT_ARC = uniform_rotation, 180.0
    try:
        yield
    finally:
        scene.held_rotation, cameras.FRONT_ARC = held, arc


def crop_camera(spec_cam: CameraSpec, bbox: list[float]) -> CameraSpec:
    """The camera whose CROP x CROP image is the labels' box, squared and enlarged 1.25 times
    about its centre, of ``spec_cam``'s image: the same pose, focal length and principal
    point scaled and shifted onto the box."""
    x, y, w, h = bbox
    side = 1.25 * max(w, h)
    scale = CROP / side
    corner = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2])
    cam = spec_cam.camera
    moved = Camera(cam.campos, cam.camrot, cam.focal * scale, (cam.princpt - corner) * scale)
    return CameraSpec(spec_cam.name, moved, CROP, CROP, spec_cam.grey)


def previous_look(rig: CaptureRig, planned: PlannedSequence, frame: int, cam: int) -> np.ndarray:
    """(H, W, 3) uint8: the view as the previous generator drew it: every capsule the
    subject's one skin colour, the default light, a fixed blur, no sleeve."""
    camera = rig.cameras[cam]
    hand = int(np.flatnonzero(planned.motion.present)[0])
    joints = planned.motion.joint_world[
        frame, hand * JOINTS_PER_HAND : (hand + 1) * JOINTS_PER_HAND
    ]
    seg, rad = hand_capsules(joints, rig.shapes[hand])
    size = (camera.width, camera.height)
    backdrop = camera_studio(rig.studio_seed, cam, size)[0]  # the same backdrops as now
    return render.render_capsules(
        camera.camera.world_to_camera(seg), rad, np.ones(len(rad), int), rig.skin,
        camera.camera.focal, camera.camera.princpt, size, backdrop,
    ).image  # fmt: skip


def _render_sequence(job: tuple) -> list[tuple[np.ndarray, int]]:
    """(crop, 1 right / 0 left) for each view of one single-hand sequence."""
    spec, split, planned, look = job
    rig = capture_rig(spec, split, planned.capture)
    out = []
    for frame, cam, labels in planned.views:
        in_crop = list(rig.cameras)
        in_crop[cam] = crop_camera(rig.cameras[cam], labels["bbox"])
        cropped = dataclasses.replace(rig, cameras=in_crop)
        if look == "previous":
            image = previous_look(cropped, planned, frame, cam)
        else:
            image = render_view(spec, cropped, planned.motion, frame, cam).image
        if in_crop[cam].grey:  # as the writer stores those cameras' frames
            image = render.to_grey(image)
        out.append((image, int(planned.kind == "right")))
    return out


def single_hand_views(
    spec: SynthSpec, split: str, count: int, workers: int, look: str
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` single-hand crops of a split drawn by the ``look`` generator: (N, CROP, CROP,
    3) uint8 and right (N,) int."""
    with previous_scenes() if look == "previous" else contextlib.nullcontext():
        jobs = [(spec, split, p, look) for p in plan_split(spec, split) if p.kind != "interacting"]
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            views = [v for seq in pool.imap(_render_sequence, jobs) for v in seq][:count]
    if len(views) < count:
        raise SystemExit(f"{split}: only {len(views)} single-hand views, {count} asked for")
    crops, right = zip(*views, strict=True)
    return np.stack(crops), np.array(right)


def small_cnn() -> nn.Module:
    """Six conv blocks, four of stride 2 (CROP -> CROP / 16 px), so that a unit of the last
    one sees the whole crop (the thumb's side, the palm's colour and the arm's direction
    together), then a hidden layer on the flattened map, which keeps where features lie."""
    layers, width = [], 3
    for out, stride in ((16, 2), (32, 2), (64, 2), (64, 1), (128, 2), (128, 1)):
        layers += [nn.Conv2d(width, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    hidden = nn.Linear(width * (CROP // 16) ** 2, 128)
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Dropout(0.3), hidden, nn.ReLU(), nn.Linear(128, 1)
    )


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
    scores = []
    with torch.no_grad():
        for start in range(0, len(test[1]), 500):
            x = to_tensor(test[0][start : start + 500])
            y = torch.from_numpy(test[1][start : start + 500]).float()
            scores.append(((model(x)[:, 0] > 0).float() == y).float())
            scores.append(((model(x.flip(-1))[:, 0] > 0).float() == 1 - y).float())
    return float(np.mean(hits[-max(1, steps // 4) :])), float(torch.cat(scores).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20000, help="training crops")
    parser.add_argument("--test", type=int, default=2000, help="held-out crops")
    parser.add_argument("--steps", type=int, default=4000, help="training steps of 64 crops")
    parser.add_argument("--captures", type=int, default=24, help="training captures")
    parser.add_argument("--frames", type=int, default=2, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--crops", help="an .npz file: crops read from it, or saved to it")
    args = parser.parse_args()
    torch.set_num_threads(1)  # two threads ran this small network's backward 4x slower
    # Half the sequences show one hand; cameras see a view or not, and some views fall
    # outside their image and are skipped.
    views_per_sequence = args.frames * 2
    sequences = -(-max(args.train, args.test) * 8 // (2 * args.captures * views_per_sequence))
    capacity = args.captures * sequences * views_per_sequence
    spec = SynthSpec(
        seed=args.seed, images={"train": capacity, "test": capacity}, captures=args.captures,
        sequences=sequences, frames=args.frames, cameras=24, views=2,
    )  # fmt: skip
    start = time.perf_counter()
    cached = bool(args.crops) and os.path.exists(args.crops)
    if cached:
        saved = np.load(args.crops)
        crops = {k: saved[k] for k in saved.files}
    else:
        crops = {}
        for look in LOOKS:
            for split, count in (("train", args.train), ("test", args.test)):
                image, right = single_hand_views(spec, split, count, args.workers, look)
                crops[f"{look}_{split}_crops"], crops[f"{look}_{split}_right"] = image, right
        if args.crops:
            np.savez(args.crops, **crops)
    seconds = time.perf_counter() - start
    source = f"read from {args.crops}" if cached else f"rendered in {seconds:.0f} s"
    print(f"{args.train} training crops from {args.captures} captures, {args.test} held-out "
          f"crops from unseen captures, {CROP} px, {args.frames} frames per sequence, "
          f"{source}")  # fmt: skip
    print(f"{'generator':<12}{'right share':>12}{'train accuracy':>16}{'held-out accuracy':>19}"
          f"{'train s':>9}")  # fmt: skip
    for look in LOOKS:
        train = crops[f"{look}_train_crops"], crops[f"{look}_train_right"]
        test = crops[f"{look}_test_crops"], crops[f"{look}_test_right"]
        start = time.perf_counter()
        fitted, held_out = probe(train, test, args.steps, 64, args.seed)
        print(f"{look:<12}{train[1].mean():>12.2f}{fitted:>16.3f}{held_out:>19.3f}"
              f"{time.perf_counter() - start:>9.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
