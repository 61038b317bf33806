"""The synthetic tree: the real files and semantics, deterministic, and true to its pixels."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from minternet import InterHandDataset
from minternet.__main__ import main
from minternet.skeleton import BONES, NUM_JOINTS
from minternet.synth import scene
from minternet.synth.hand import hand_capsules
from minternet.synth.plan import SynthSpec, capture_rig, plan_split, render_view
from minternet.synth.write import write_dataset

SPEC = SynthSpec(seed=7, images={"train": 48, "test": 16}, captures=2, sequences=4, frames=4,
                 cameras=8, views=3)
CODES = {"rh": [1, 0], "lh": [0, 1], "dh": [1, 1]}


def tree_digest(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob(pattern))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(SPEC, root, workers=1, progress=False)
    return root


def test_layout_is_the_v1_tree_and_opens_with_the_reader(tree):
    for split, count in SPEC.images.items():
        prefix = tree / "annotations" / split / f"InterHand2.6M_{split}"
        assert all(Path(f"{prefix}_{kind}.json").is_file()
                   for kind in ("data", "camera", "joint_3d"))
        dataset = InterHandDataset(tree, split=split)
        assert len(dataset) == count
        for i in (0, count - 1):
            sample = dataset[i]
            assert sample["image"].shape == (sample["height"], sample["width"], 3)
            path = Path(sample["image_path"]).relative_to(tree / "images" / split)
            capture, seq, cam, name = path.parts
            assert capture == f"Capture{sample['capture']}" and seq == sample["seq_name"]
            assert cam == f"cam{sample['camera']}" and name == f"image{sample['frame_idx']}.jpg"


def test_same_seed_same_bytes_and_workers_do_not_matter(tree, tmp_path):
    again = tmp_path / "again"
    write_dataset(SPEC, again, workers=2, progress=False)
    assert tree_digest(again, "*.json") == tree_digest(tree, "*.json")
    assert tree_digest(again, "*.jpg") == tree_digest(tree, "*.jpg")
    labels_only = tmp_path / "labels"
    write_dataset(SynthSpec(**{**SPEC.__dict__, "annotations_only": True}), labels_only,
                  progress=False)
    assert tree_digest(labels_only, "*.json") == tree_digest(tree, "*.json")
    assert not (labels_only / "images").exists()
    other = tmp_path / "other"
    write_dataset(SynthSpec(**{**SPEC.__dict__, "seed": 8, "annotations_only": True}), other,
                  progress=False)
    assert tree_digest(other, "*.json") != tree_digest(tree, "*.json")


def test_labels_follow_the_real_files_semantics(tree):
    dataset = InterHandDataset(tree, split="train")
    index = dataset.index
    raw = json.loads((tree / "annotations/train/InterHand2.6M_train_data.json").read_text())
    for i, ann in enumerate(raw["annotations"]):
        code = index["seq_name"][i].decode().split("_")[1]
        assert index["hand_type"][i].tolist() == CODES[code]
        # Validity: the hand is present and the joint projects inside the image.
        cam = dataset.camera(i)
        uv = cam.world_to_pixel(index["joint_world"][i].astype(np.float64))
        width, height = index["width"][i], index["height"][i]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (
            uv[:, 1] <= height - 1)
        present = np.repeat(CODES[code], 21).astype(bool)
        raw_valid = np.reshape(ann["joint_valid"], NUM_JOINTS)
        assert np.array_equal(raw_valid, (inside & present).astype(int))
        # hand_type_valid: single-hand frames always, interacting ones above 30 valid joints.
        expected = 1 if code != "dh" else int(raw_valid.sum() > 30)
        assert ann["hand_type_valid"] == expected
        # bbox: the valid joints' extent enlarged 1.2 times about its centre.
        lo, hi = uv[raw_valid > 0].min(axis=0), uv[raw_valid > 0].max(axis=0)
        x, y, w, h = ann["bbox"]
        assert np.allclose([w, h], 1.2 * (hi - lo), atol=1e-3)
        assert np.allclose([x + w / 2, y + h / 2], (lo + hi) / 2, atol=1e-3)
        # The absent hand keeps the placeholder [1, 1, 1] in world space.
        assert np.all(index["joint_world"][i][~present] == 1.0)
    assert {c.decode().split("_")[1] for c in index["seq_name"]} == set(CODES)


def test_orientations_grey_cameras_and_the_camera_file(tree):
    index = InterHandDataset(tree, split="train").index
    sizes = {(int(w), int(h)) for w, h in zip(index["width"], index["height"], strict=True)}
    assert sizes == {(512, 334), (334, 512)}
    grey = index["grey"].astype(bool)
    assert grey.any() and not grey.all()
    cameras = json.loads((tree / "annotations/train/InterHand2.6M_train_camera.json").read_text())
    assert sorted(cameras) == ["0", "1"]
    for record in cameras.values():
        assert len(record["campos"]) == SPEC.cameras
        for rot in record["camrot"].values():
            assert np.isclose(np.linalg.det(rot), 1.0, atol=1e-3)
    dataset = InterHandDataset(tree, split="train")
    image = dataset[int(np.flatnonzero(grey)[0])]["image"].astype(int)
    assert np.abs(image[..., 0] - image[..., 2]).max() <= 8


def test_bone_lengths_are_constant_within_each_sequence(tree):
    joints = json.loads((tree / "annotations/train/InterHand2.6M_train_joint_3d.json").read_text())
    by_seq: dict[str, list[np.ndarray]] = {}
    for frames in joints.values():
        for record in frames.values():
            by_seq.setdefault(record["seq"], []).append(np.array(record["world_coord"]))
    assert len(by_seq) >= 4
    parents, children = np.array(BONES).T
    for seq, frames in by_seq.items():
        world = np.stack(frames)
        lengths = np.linalg.norm(world[:, children] - world[:, parents], axis=-1)
        present = np.all(world[:, children] != 1.0, axis=(0, 2))
        assert np.ptp(lengths[:, present], axis=0).max() < 1e-2, seq


def _ray_hits(target: np.ndarray, segments: np.ndarray, radii: np.ndarray, start: float,
              stop: float) -> np.ndarray:
    """For points on the ray from the camera to ``target``, from ``start`` to ``stop`` of the
    way, which capsules hold them: a brute-force test independent of the renderer's."""
    ts = np.linspace(start, stop, 400)
    points = ts[:, None] * target
    dist = scene.segment_distance(points[:, None], points[:, None], segments[None, :, 0],
                                  segments[None, :, 1])
    return dist < radii - 0.5  # a margin keeps grazing rays out of both answers


def test_visible_joints_lie_on_their_own_hand_and_hidden_ones_do_not(tree):
    checked = {"own": 0, "other": 0}
    for planned in plan_split(SPEC, "train"):
        if planned.kind != "interacting":
            continue
        rig = capture_rig(SPEC, "train", planned.capture)
        for frame, cam, labels in planned.views[:3]:
            out = render_view(SPEC, rig, planned.motion, frame, cam)
            camera = rig.cameras[cam].camera
            joint_cam = camera.world_to_camera(planned.motion.joint_world[frame])
            capsules = [hand_capsules(joint_cam[h * 21:(h + 1) * 21], rig.shapes[h])
                        for h in (0, 1)]
            uv = np.rint(camera.camera_to_pixel(joint_cam)).astype(int)
            # The ray through the centre of the joint's pixel, out to the joint's depth.
            targets = camera.pixel_to_camera(uv.astype(np.float64), joint_cam[:, 2])
            for k in np.flatnonzero(labels["joint_valid"]):
                own, other = k // 21, 1 - k // 21
                radius = rig.shapes[own].radii[k % 21]
                # Its own hand may not cover the ray until just before the joint's surface;
                # the other hand may not touch the ray at all (the hands may press together).
                stop = 1 - (radius + 3) / np.linalg.norm(targets[k])
                hits_own = _ray_hits(targets[k], *capsules[own], 0.05, stop).any()
                hits_other = _ray_hits(targets[k], *capsules[other], 0.05, stop).any()
                touches_other = _ray_hits(targets[k], *capsules[other], stop, 1.0).any()
                owner = out.owner[uv[k, 1], uv[k, 0]]
                if not hits_own and not hits_other and not touches_other:
                    assert owner == own + 1, (planned.name, frame, cam, k)
                    checked["own"] += 1
                elif hits_other and not hits_own:
                    assert owner == other + 1, (planned.name, frame, cam, k)
                    checked["other"] += 1
    assert checked["own"] > 100 and checked["other"] > 0, checked


def test_cli_writes_labels_only_and_rejects_impossible_counts(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--seed", "1", "--train", "10", "--val", "0",
            "--test", "5", "--sequences", "2", "--frames", "3", "--cameras", "4",
            "--views", "2", "--annotations-only", "--quiet"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"]["train"] and sum(summary["images"]["test"].values()) == 5
    assert len(InterHandDataset(out, split="train")) == 10
    assert not (out / "images").exists() and not (out / "annotations" / "val").exists()
    assert main([*args[:-2], "--views", "5"]) == 2
    assert "views" in capsys.readouterr().err
    assert main([*args[:5], "--train", "1000", *args[7:]]) == 2
    assert "1000 images" in capsys.readouterr().err


def test_cli_sets_every_spec_field(tmp_path, capsys):
    """Each SynthSpec setting is an option of its own, and reaches the spec written."""
    given = {"seed": 3, "captures": 2, "sequences": 3, "frames": 2, "cameras": 5, "views": 2,
             "jpeg_quality": 70}  # fmt: skip
    names = {f.name for f in dataclasses.fields(SynthSpec)}
    assert names == {*given, "images", "annotations_only"}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in given.items()]
    assert main(["synth", "--out", str(tmp_path / "all"), *args, "--train", "4", "--val", "0",
                 "--test", "0", "--annotations-only", "--quiet"]) == 0  # fmt: skip
    spec = json.loads(capsys.readouterr().out)["spec"]
    assert spec == {**given, "images": {"train": 4}, "annotations_only": True}


def test_data_samples_is_what_its_readme_command_writes(tmp_path):
    """data_samples/ holds the default spec's output for seed 0, within its size budget."""
    root = Path(__file__).resolve().parents[1] / "data_samples"
    assert "python -m minternet synth --out data_samples --seed 0" in (
        root / "README.md").read_text()
    expected = tmp_path / "expected"
    assert main(["synth", "--out", str(expected), "--seed", "0", "--annotations-only",
                 "--quiet"]) == 0
    assert tree_digest(root, "*.json") == tree_digest(expected, "*.json")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 15_000_000
    minimum = {"train": 600, "val": 100, "test": 100}
    for split, count in minimum.items():
        dataset = InterHandDataset(root, split=split)
        assert len(dataset) >= count
        hand_types = {tuple(t) for t in dataset.index["hand_type"].tolist()}
        assert hand_types == {(1, 0), (0, 1), (1, 1)}
        assert all(dataset.image_path(i).is_file() for i in range(len(dataset)))
