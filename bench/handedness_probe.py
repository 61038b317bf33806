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

Two networks are trained per generator: one on the right/left label alone, and one that must
also place the hand's 21 joints in the crop and say whether the palm or the back faces the
camera, as InterNet's backbone is taught by its keypoint heatmaps. Either is tested on the
label alone, from pixels alone.

    python bench/handedness_probe.py [--train 20000] [--test 2000] [--steps 4000] [--crops FILE]
        [--looks previous current] [--networks "labels only" "with joints"]

The defaults take about half an hour on two cores. The run recorded in bench/RESULTS.md as
clearing 0.95 held out with the current generator (0.969) is ``--train 80000 --captures 96
--networks "with joints" --steps 8000``: 17 minutes of rendering, then 37 minutes of
training, one network per core, in about 6 GB of memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from minternet.camera import Camera
from minternet.skeleton import JOINTS_PER_HAND
from minternet.synth import cameras, render, scene
from minternet.synth.cameras import CameraSpec
from minternet.synth.hand import hand_capsules, palm_normal
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
FIELDS = ("crops", "right", "uv", "facing")
"""What is kept of each view (see :func:`single_hand_views`)."""


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


def _render_sequence(job: tuple) -> list[tuple[np.ndarray, int, np.ndarray, float]]:
    """(crop, 1 right / 0 left, (21, 2) joints in crop px, facing) for each view of one
    single-hand sequence; facing is the cosine between the palm's normal and the direction
    to the camera (+1: palm to the camera)."""
    spec, split, planned, look = job
    rig = capture_rig(spec, split, planned.capture)
    hand = int(np.flatnonzero(planned.motion.present)[0])
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
        joints = in_crop[cam].camera.world_to_camera(
            planned.motion.joint_world[frame, hand * JOINTS_PER_HAND : (hand + 1) * JOINTS_PER_HAND]
        )
        to_camera = -joints[20] / np.linalg.norm(joints[20])
        facing = palm_normal(joints, "right" if hand == 0 else "left") @ to_camera
        uv = in_crop[cam].camera.camera_to_pixel(joints).astype(np.float32)
        out.append((image, int(hand == 0), uv, float(facing)))
    return out


def single_hand_views(
    spec: SynthSpec, split: str, count: int, workers: int, look: str
) -> dict[str, np.ndarray]:
    """``count`` single-hand crops of a split drawn by the ``look`` generator: "crops" (N,
    CROP, CROP, 3) uint8, "right" (N,) int, "uv" (N, 21, 2) float32 crop px and "facing" (N,)
    float32 (see :func:`_render_sequence`)."""
    with previous_scenes() if look == "previous" else contextlib.nullcontext():
        jobs = ((spec, split, p, look) for p in plan_split(spec, split) if p.kind != "interacting")
        views: list = []
        # A chunk of sequences at a time, until there are enough views: the planned split
        # holds several times more (the captures take turns, so all of them are drawn).
        while len(views) < count and (chunk := list(itertools.islice(jobs, 64 * workers))):
            views += [v for seq in _map(_render_sequence, chunk, workers) for v in seq]
        views = views[:count]
    if len(views) < count:
        raise SystemExit(f"{split}: only {len(views)} single-hand views, {count} asked for")
    crops, right, uv, facing = zip(*views, strict=True)
    return {"crops": np.stack(crops), "right": np.array(right), "uv": np.stack(uv),
            "facing": np.array(facing, np.float32)}  # fmt: skip


def _conv(width: int, out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(width, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]


def small_cnn() -> nn.Module:
    """Six conv blocks, four of stride 2 (CROP -> CROP / 16 px), so that a unit of the last
    one sees the whole crop (the thumb's side, the palm's colour and the arm's direction
    together), then a hidden layer on the flattened map, which keeps where features lie."""
    layers, width = [], 3
    for out, stride in ((16, 2), (32, 2), (64, 2), (64, 1), (128, 2), (128, 1)):
        layers += _conv(width, out, stride)
        width = out
    hidden = nn.Linear(width * (CROP // 16) ** 2, 128)
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Dropout(0.3), hidden, nn.ReLU(), nn.Linear(128, 1)
    )


def _up(width: int, out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(width, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]


class JointCNN(nn.Module):
    """A CNN that must also find the joints and see which side of the hand faces the camera,
    as InterNet's shared backbone must: right vs left from the 21 joints' crop positions
    (soft-argmax of 24 x 24 heatmaps), a palm-or-back logit and the pooled features.

    As in InterNet, the heatmaps come from the deepest features (CROP / 16) brought back to
    CROP / 4 by two deconvolutions, here with the CROP / 4 features added: a cell near the
    centre sees 84 x 84 px, most of the hand, so it can tell the thumb's knuckle from the
    little finger's. Heatmaps read off the CROP / 4 features alone see 23 x 23 px, and
    placed the joints 14 px off on unseen subjects."""

    def __init__(self) -> None:
        super().__init__()
        self.low = nn.Sequential(*_conv(3, 16, 2), *_conv(16, 32, 2), *_conv(32, 64, 1))
        self.deep = nn.Sequential(*_conv(64, 128, 2), *_conv(128, 128, 2), *_conv(128, 128, 1))
        self.up = nn.Sequential(*_up(128, 64), *_up(64, 64))
        self.heatmaps = nn.Conv2d(64, JOINTS_PER_HAND, 1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.facing = nn.Linear(128, 1)
        self.hand = nn.Sequential(
            nn.Linear(2 * JOINTS_PER_HAND + 129, 128), nn.ReLU(), nn.Linear(128, 1)
        )
        centres = (torch.arange(CROP // 4) + 0.5) / (CROP // 4) * 2 - 1  # cells, in [-1, 1]
        self.register_buffer("grid", torch.stack(torch.meshgrid(centres, centres, indexing="xy")))

    def heatmap_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, CROP, CROP) -> heatmap logits (B, 21, CROP / 4, CROP / 4) and the deepest
        features (B, 128, CROP / 16, CROP / 16)."""
        low = self.low(x)
        deep = self.deep(low)
        return self.heatmaps(self.up(deep) + low), deep

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, CROP, CROP) -> right logit (B,), palm-to-camera logit (B,), joints (B, 21,
        2) in [-1, 1] crop coordinates."""
        heatmaps, deep = self.heatmap_logits(x)
        weights = heatmaps.flatten(2).softmax(-1)  # (B, 21, cells)
        joints = torch.einsum("bjc,kc->bjk", weights, self.grid.flatten(1))
        pooled = self.pool(deep)
        facing = self.facing(pooled)
        right = self.hand(torch.cat([joints.flatten(1), pooled, facing], 1))
        return right[:, 0], facing[:, 0], joints


NETWORKS = {"labels only": small_cnn, "with joints": JointCNN}
"""The probes: one trained on right vs left alone, one also on the joints and the facing."""


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).sub(0.5)


def crop_coordinates(uv: np.ndarray) -> np.ndarray:
    """Crop px (pixel centres at integers) -> [-1, 1] across the crop's CROP pixels, so that
    mirroring the crop (u -> CROP - 1 - u) negates x."""
    return (uv + 0.5) / CROP * 2 - 1


def _right_logit(out: torch.Tensor | tuple) -> torch.Tensor:
    """The right-hand logit (B,) of either network's output."""
    return out[0] if isinstance(out, tuple) else out[:, 0]


def probe(
    train: dict, test: dict, network: str, steps: int, batch: int, seed: int
) -> tuple[float, float]:
    """Training accuracy (over the last quarter of the steps) and held-out accuracy of a
    :data:`NETWORKS` CNN trained ``steps`` steps on ``train`` (:func:`single_hand_views`'s
    dict); each test crop is scored as it is and mirrored (with its label flipped)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # uint8 until a batch is drawn: 80,000 crops as float32 would take 8.8 GB per process.
    images, right = train["crops"], torch.from_numpy(train["right"]).float()
    joints = torch.from_numpy(crop_coordinates(train["uv"])).float()
    facing = torch.from_numpy(train["facing"])
    model = NETWORKS[network]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    model.train()
    hits = []
    for _ in range(steps):
        index = rng.integers(0, len(images), batch)
        x, y, target = to_tensor(images[index]), right[index], joints[index].clone()
        mirror = torch.from_numpy(rng.random(batch) < 0.5)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        y = torch.where(mirror, 1 - y, y)
        target[mirror, :, 0] *= -1  # the joints mirror too; which joint is which does not
        out = model(x)
        logits = _right_logit(out)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y)
        if isinstance(out, tuple):  # edge-on hands (|facing| < 0.2) teach no side
            seen = facing[index]
            loss = loss + nn.functional.binary_cross_entropy_with_logits(
                out[1], (seen > 0).float(), weight=(seen.abs() > 0.2).float()
            ) + 5.0 * (out[2] - target).abs().mean()  # fmt: skip
        hits.append(((logits > 0).float() == y).float().mean().item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    scores = []
    with torch.no_grad():
        for start in range(0, len(test["right"]), 500):
            x = to_tensor(test["crops"][start : start + 500])
            y = torch.from_numpy(test["right"][start : start + 500]).float()
            scores.append(((_right_logit(model(x)) > 0).float() == y).float())
            scores.append(((_right_logit(model(x.flip(-1))) > 0).float() == 1 - y).float())
    return float(np.mean(hits[-max(1, steps // 4) :])), float(torch.cat(scores).mean())


_CROPS: dict[str, np.ndarray] = {}
"""All views, set before the training processes fork, so that they share it unpickled."""


def _probe_job(job: tuple) -> tuple[str, str, float, float, float]:
    look, network, steps, seed = job
    torch.set_num_threads(1)  # two threads ran these small networks' backward 4x slower
    split = {s: {k: _CROPS[f"{look}_{s}_{k}"] for k in FIELDS} for s in ("train", "test")}
    start = time.perf_counter()
    fitted, held_out = probe(split["train"], split["test"], network, steps, 64, seed)
    return look, network, fitted, held_out, time.perf_counter() - start


def _map(function: Callable, jobs: list, workers: int) -> list:
    """``[function(job) for job in jobs]``, in ``workers`` forked processes when more than one
    (whose fork inherits :func:`previous_scenes`)."""
    if workers <= 1:
        return [function(job) for job in jobs]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(function, jobs, chunksize=1)


def main(argv: list[str] | None = None) -> list[tuple[str, str, float, float, float]]:
    """Runs the probe; returns its rows: (generator, network, train accuracy, held-out
    accuracy, training seconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20000, help="training crops")
    parser.add_argument("--test", type=int, default=2000, help="held-out crops")
    parser.add_argument("--steps", type=int, default=4000, help="training steps of 64 crops")
    parser.add_argument("--captures", type=int, default=24, help="training captures")
    parser.add_argument("--frames", type=int, default=2, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--crops", help="an .npz file: crops read from it, or saved to it")
    parser.add_argument(
        "--looks",
        nargs="+",
        choices=LOOKS,
        default=LOOKS,
        help="the generators to train on (all are rendered)",
    )
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    args = parser.parse_args(argv)
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
                views = single_hand_views(spec, split, count, args.workers, look)
                crops.update({f"{look}_{split}_{k}": v for k, v in views.items()})
        if args.crops:
            np.savez(args.crops, **crops)
    seconds = time.perf_counter() - start
    source = f"read from {args.crops}" if cached else f"rendered in {seconds:.0f} s"
    print(f"{args.train} training crops from {args.captures} captures, {args.test} held-out "
          f"crops from unseen captures, {CROP} px, {args.frames} frames per sequence, "
          f"{source}")  # fmt: skip
    missing = [f"{look}_{k}" for look in LOOKS for k in FIELDS if f"{look}_train_{k}" not in crops]
    if missing:
        raise SystemExit(f"{args.crops}: no {missing[0]} (an older file); render again")
    # Network by network, so that two processes share the work evenly.
    jobs = [(look, net, args.steps, args.seed) for net in args.networks for look in args.looks]
    _CROPS.update(crops)
    results = _map(_probe_job, jobs, args.workers)
    print(f"{'generator':<12}{'network':<13}{'right share':>12}{'train accuracy':>16}"
          f"{'held-out accuracy':>19}{'train s':>9}")  # fmt: skip
    results.sort(key=lambda row: args.looks.index(row[0]))  # stable: networks stay in order
    for look, network, fitted, held_out, seconds in results:
        share = crops[f"{look}_train_right"].mean()
        print(f"{look:<12}{network:<13}{share:>12.2f}{fitted:>16.3f}{held_out:>19.3f}"
              f"{seconds:>9.0f}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
