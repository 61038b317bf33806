from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import MMPOSE_DERIVED
from hypothesis import given, settings
from hypothesis import strategies as st

from minternet import InterHandDataset
from minternet.augment import MMPOSE, ORIGINAL, AugParams, sample_augmentation
from minternet.skeleton import FLIP_INDEX, HAND_OF_JOINT
from minternet.synth.plan import SynthSpec, capture_rig, plan_split, render_view
from minternet.synth.render import joint_visible
from minternet.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_affine,
    bbox_to_centre_scale,
    compose_affine,
    crop_matrix,
    inverse_crop_matrix,
    make_sample,
    mirror_matrix,
    normalize,
    sample_matrix,
    warp_image,
)

FLIP = list(FLIP_INDEX)
DATA_SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
# Deliberately strong augmentations, flipped and not, to run the geometry tests through.
PARAMS = [
    AugParams(),
    AugParams(flip=True),
    AugParams(flip=True, shift=(0.1, -0.05), scale=1.3, rotation=0.7),
    AugParams(shift=(-0.12, 0.08), scale=0.6, rotation=-1.4),
]
LABELS = ("keypoints", "joint_valid", "rel_root_depth", "rel_root_valid", "hand_type")


@pytest.fixture(scope="module")
def raws(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The four real frames as raw samples."""
    dataset = InterHandDataset(samples_dir, cache_dir=tmp_path_factory.mktemp("index"))
    return [dataset[i] for i in range(len(dataset))]


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(st.floats(-200, 800), st.floats(-200, 800)).map(np.array),
    st.floats(8, 1500),
    st.floats(-np.pi, np.pi),
    st.sampled_from([64, 256]),
    st.tuples(st.floats(-1000, 1500), st.floats(-1000, 1500)).map(np.array),
)
def test_crop_then_inverse_returns_the_original_pixel(centre, scale, rotation, size, uv):
    forward = crop_matrix(centre, scale, rotation, size)
    back = inverse_crop_matrix(centre, scale, rotation, size)
    assert np.abs(apply_affine(back, apply_affine(forward, uv)) - uv).max() < 0.5
    assert np.allclose(compose_affine(back, forward), np.eye(2, 3), atol=1e-9)
    # The crop's own pixel grid comes back too: the centre of crop pixel (x, y) is the image
    # point the warp samples for it.
    xy = np.array([size / 2, 0.0])
    assert np.allclose(apply_affine(forward, apply_affine(back, xy)), xy, atol=1e-6)


def test_rotation_zero_is_the_hand_derived_formula():
    # The interacting real frame: c = (126.0973, 236.2866), s = 231.3223 (samples README).
    (cx, cy), s = (126.0973, 236.2866), 231.3223
    uv = np.array([[0.0, 0.0], [126.0973, 236.2866], [300.5, 17.25], [cx - s / 2, cy + s / 2]])
    by_hand = np.column_stack([(uv[:, 0] - cx) * 256 / s + 128, (uv[:, 1] - cy) * 256 / s + 128])
    assert np.allclose(apply_affine(crop_matrix((cx, cy), s, 0.0, 256), uv), by_hand)
    assert np.allclose(by_hand[1], [128, 128]) and np.allclose(by_hand[3], [0, 256])
    # The test-time inverse of the reference: u = x s / 256 + c_x - s / 2.
    xy = np.array([[0.0, 0.0], [252.0, 100.0]])
    inverse = np.column_stack([xy[:, 0] * s / 256 + cx - s / 2, xy[:, 1] * s / 256 + cy - s / 2])
    assert np.allclose(apply_affine(inverse_crop_matrix((cx, cy), s, 0.0, 256), xy), inverse)


@pytest.mark.parametrize("rotation", [0.3, np.pi / 2, -2.0])
def test_rotation_turns_the_box_as_mmpose(rotation):
    centre, s = np.array([200.0, 150.0]), 100.0
    cos, sin = np.cos(rotation), np.sin(rotation)
    # mmpose: c + R(theta) (0, -s/2) becomes the crop's top centre.
    top = centre + np.array([[cos, -sin], [sin, cos]]) @ [0.0, -s / 2]
    matrix = crop_matrix(centre, s, rotation, 256)
    assert np.allclose(apply_affine(matrix, top), [128, 0])
    # A positive angle turns the content counter-clockwise on screen (y points down).
    if rotation == np.pi / 2:
        assert np.allclose(apply_affine(matrix, centre + np.array([s / 2, 0])), [128, 0])


def test_bbox_to_centre_scale_reproduces_mmpose(raws):
    for raw in raws:
        centre, side = MMPOSE_DERIVED[int(raw["ann_id"])][3:]
        got_centre, got_side = bbox_to_centre_scale(raw["bbox"])
        assert np.allclose(got_centre, centre, atol=1e-3) and got_side == pytest.approx(side, 1e-5)
    assert bbox_to_centre_scale([10, 20, 30, 80], padding=1.0) == (pytest.approx([25, 60]), 80)


def blob(height: int, width: int, uv: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """(H, W, 3) uint8, black but for a Gaussian spot centred on the sub-pixel point uv."""
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    spot = 255 * np.exp(-((u - uv[0]) ** 2 + (v - uv[1]) ** 2) / (2 * sigma**2))
    return np.repeat(np.rint(spot).astype(np.uint8)[..., None], 3, axis=2)


def centroid(image: np.ndarray) -> np.ndarray:
    weight = image[..., 0].astype(np.float64)
    rows, cols = np.indices(weight.shape)
    return np.array([(cols * weight).sum(), (rows * weight).sum()]) / weight.sum()


@pytest.mark.parametrize("params", PARAMS)
def test_warped_image_puts_each_joint_on_its_keypoint(raws, params):
    """A spot drawn where a joint projects in the original image ends up, warped, centred
    on that joint's crop keypoint (under its flipped index when mirrored).
    """
    checked = 0
    for raw in raws:
        height, width = raw["image"].shape[:2]
        uv = (raw["joint_cam"][:, :2] / raw["joint_cam"][:, 2:]) * raw["focal"] + raw["princpt"]
        keypoints = make_sample(raw, params=params)["keypoints"]
        for k in np.flatnonzero(raw["joint_valid"])[::4]:
            xy = keypoints[FLIP[k] if params.flip else k, :2]
            if not (10 <= uv[k, 0] < width - 10 and 10 <= uv[k, 1] < height - 10):
                continue
            if not ((16 <= xy) & (xy < 240)).all():
                continue
            crop = make_sample({**raw, "image": blob(height, width, uv[k])}, params=params)
            assert np.abs(centroid(crop["image"]) - xy).max() < 0.1, (raw["ann_id"], k)
            checked += 1
    assert checked >= 12


def mirror_raw(raw: dict) -> dict:
    """The raw sample of the mirrored image, derived by hand: u -> W - 1 - u is the camera
    with X -> -X and c_x -> W - 1 - c_x; the box mirrors the same way; a mirrored right
    hand is a left hand.
    """
    width = int(raw["width"])
    x, y, w, h = raw["bbox"]
    return {
        **raw,
        "image": np.ascontiguousarray(raw["image"][:, ::-1]),
        "joint_cam": (raw["joint_cam"] * np.float32([-1, 1, 1]))[FLIP],
        "princpt": np.float32([width - 1 - raw["princpt"][0], raw["princpt"][1]]),
        "bbox": np.float32([width - 1 - (x + w), y, w, h]),
        "joint_valid": raw["joint_valid"][FLIP],
        "hand_type": raw["hand_type"][::-1],
        "rel_root_depth": -raw["rel_root_depth"],
        "abs_depth": raw["abs_depth"][::-1],
    }


def assert_same_sample(a: dict, b: dict) -> None:
    for key in LABELS:
        assert np.allclose(a[key], b[key], atol=2e-3), key
    assert np.allclose(a["centre"], b["centre"], atol=1e-3) and a["scale"] == b["scale"]
    # Equal source coordinates computed by two routes can round apart in OpenCV's 1/32 px
    # fixed point, so a few pixels on strong edges may differ by a level or two.
    diff = np.abs(a["image"].astype(int) - b["image"].astype(int))
    assert diff.mean() < 0.05 and np.quantile(diff, 0.999) <= 2


@pytest.mark.parametrize("params", PARAMS[1:3])
def test_flip_in_the_warp_equals_mirroring_first_and_twice_is_identity(raws, params):
    unflipped = dataclasses.replace(params, flip=False)
    for raw in raws:
        flipped = make_sample(raw, params=params)
        assert_same_sample(flipped, make_sample(mirror_raw(raw), params=unflipped))
        assert_same_sample(
            make_sample(mirror_raw(raw), params=params), make_sample(raw, params=unflipped)
        )
    assert np.allclose(compose_affine(mirror_matrix(334), mirror_matrix(334)), np.eye(2, 3))


def test_a_flipped_samples_right_hand_is_the_originals_left(raws):
    for raw in raws:
        plain, flipped = make_sample(raw), make_sample(raw, params=AugParams(flip=True))
        # Mirror c_x -> W - 1 - c_x with no half-pixel shift: crop x goes to 256 - x, so
        # the flipped crop is the mirrored crop moved by one pixel (mmpose's non-UDP warp).
        for new, old in ((slice(0, 21), slice(21, 42)), (slice(21, 42), slice(0, 21))):
            assert np.allclose(flipped["keypoints"][new, 0], 256 - plain["keypoints"][old, 0])
            assert np.allclose(flipped["keypoints"][new, 1:], plain["keypoints"][old, 1:])
            assert np.array_equal(flipped["joint_valid"][new], plain["joint_valid"][old])
        assert flipped["hand_type"].tolist() == plain["hand_type"][::-1].tolist()
        assert flipped["rel_root_depth"] == -plain["rel_root_depth"]
        assert flipped["rel_root_valid"] == plain["rel_root_valid"]
        assert np.array_equal(flipped["abs_depth"], plain["abs_depth"])  # as mmpose: kept
        assert flipped["centre"][0] == pytest.approx(int(raw["width"]) - 1 - plain["centre"][0])
        diff = flipped["image"][:, 1:].astype(int) - plain["image"][:, :0:-1].astype(int)
        assert np.abs(diff).mean() < 0.05
        assert np.allclose(
            apply_affine(sample_matrix(flipped, inverse=True), [128, 128]),
            [plain["centre"][0], plain["centre"][1]],
            atol=1e-3,
        )
        if int(raw["ann_id"]) == 680801:  # left only -> right only
            assert flipped["joint_valid"].tolist() == [1] * 21 + [0] * 21
            assert flipped["hand_type"].tolist() == [1, 0]


def test_keypoint_depth_is_per_hand_and_labels_follow_the_raw_sample(raws):
    raw = raws[0]
    sample = make_sample(raw, input_size=128)
    z = raw["joint_cam"][:, 2]
    assert np.allclose(sample["keypoints"][:21, 2], z[:21] - z[20], atol=1e-3)
    assert np.allclose(sample["keypoints"][21:, 2], z[21:] - z[41], atol=1e-3)
    assert sample["keypoints"][[20, 41], 2].tolist() == [0, 0]
    assert sample["image"].shape == (128, 128, 3) and sample["image"].dtype == np.uint8
    assert sample["rel_root_depth"] == pytest.approx(raw["rel_root_depth"])
    label_bytes = sum(v.nbytes for k, v in sample.items() if k != "image")
    assert label_bytes < 1024


def test_original_drops_joints_leaving_the_crop_and_mmpose_keeps_them(raws):
    zoom = AugParams(scale=0.3)  # a crop far smaller than the hands
    for raw in raws:
        kept, dropped = make_sample(raw, params=zoom), make_sample(raw, params=zoom, aug=ORIGINAL)
        inside = ((kept["keypoints"][:, :2] >= 0) & (kept["keypoints"][:, :2] < 256)).all(axis=1)
        assert np.array_equal(kept["joint_valid"], raw["joint_valid"])
        assert np.array_equal(dropped["joint_valid"], raw["joint_valid"] * inside)
        assert not inside[raw["joint_valid"] > 0].all()


def test_colour_gains_scale_each_channel_and_clip(raws):
    raw = raws[0]
    plain = make_sample(raw)["image"].astype(float)
    tinted = make_sample(raw, params=AugParams(colour=(0.8, 1.0, 1.2)))["image"].astype(float)
    assert np.abs(tinted - np.clip(np.rint(plain * [0.8, 1.0, 1.2]), 0, 255)).max() <= 1


@pytest.fixture(scope="module")
def synthetic_views(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """Re-rendered synthetic views (a raw sample with the rendered image, the render with its
    owner mask, and each joint's visibility), matched to their data_samples rows.
    """
    cache = tmp_path_factory.mktemp("index")
    dataset = InterHandDataset(DATA_SAMPLES, split="train", cache_dir=cache)
    index = dataset.index
    row_of = {
        key: row
        for row, key in enumerate(
            zip(index["capture"], index["frame_idx"], index["camera"], strict=True)
        )
    }
    spec, views, plans = SynthSpec(), [], plan_split(SynthSpec(), "train")
    for planned in (next(plans) for _ in range(4)):  # interacting, right, interacting, left
        rig = capture_rig(spec, "train", planned.capture)
        for frame, cam, _ in planned.views[:3]:
            spec_cam = rig.cameras[cam]
            row = row_of[planned.capture, planned.first_frame + frame, int(spec_cam.name)]
            render = render_view(spec, rig, planned.motion, frame, cam)
            raw = {**dataset.raw(row), "image": render.image}
            hand = np.array(HAND_OF_JOINT)
            radius = np.concatenate([rig.shapes[0].radii, rig.shapes[1].radii])
            camera = spec_cam.camera
            visible = joint_visible(
                render, raw["joint_cam"], hand + 1, radius, camera.focal, camera.princpt
            )
            views.append((raw, render, visible))
    return views


def firmly_on_own_hand(owner: np.ndarray, uv: np.ndarray, hand: int, radius: int) -> bool:
    """Every image pixel within ``radius`` of uv's pixel shows ``hand`` (0 right, 1 left)."""
    col, row = np.rint(uv).astype(int)
    window = owner[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
    return window.size == (2 * radius + 1) ** 2 and bool((window == hand + 1).all())


@pytest.mark.parametrize("aug", [MMPOSE, ORIGINAL], ids=["mmpose", "original"])
def test_visible_joints_stay_on_their_own_hand_under_any_augmentation(synthetic_views, aug):
    checked, flips, turns = 0, 0, 0
    for n, (raw, render, visible) in enumerate(synthetic_views):
        focal, princpt, joint_cam = raw["focal"], raw["princpt"], raw["joint_cam"]
        uv = joint_cam[:, :2] / joint_cam[:, 2:] * focal + princpt
        for seed in range(20):
            params = sample_augmentation(np.random.default_rng([seed, n]), aug)
            sample = make_sample(raw, params=params, aug=aug)
            owner = warp_image(render.owner, sample_matrix(sample), 256, cv2.INTER_NEAREST)
            flips, turns = flips + params.flip, turns + (params.rotation != 0)
            # The crop pixel nearest a keypoint samples the image within 0.71 s / 256 px of
            # the joint, plus up to a pixel of rounding: that far around it must be its hand.
            reach = int(np.ceil(0.71 * sample["scale"] / 256 + 1))
            xy = sample["keypoints"][:, :2]
            inside = ((xy >= 0) & (xy < 256)).all(axis=1)
            if aug.drop_outside:
                assert not sample["joint_valid"][~inside].any()
            for j in np.flatnonzero(inside):
                x, y = np.minimum(np.rint(xy[j]).astype(int), 255)
                k = FLIP[j] if params.flip else j  # the joint j was in the original image
                if not visible[k] or not firmly_on_own_hand(render.owner, uv[k], k // 21, reach):
                    continue
                # Owner ids are the original image's: a flipped left joint sits on hand 1 (right).
                assert owner[y, x] == k // 21 + 1, (n, seed, j)
                assert sample["joint_valid"][j] == raw["joint_valid"][k]
                checked += 1
    assert checked > 2000 and flips > 40 and turns > 40, (checked, flips, turns)


def test_augmentation_statistics_match_the_recipes():
    rng = np.random.default_rng(0)
    drawn = {
        name: [sample_augmentation(rng, aug) for _ in range(2000)]
        for name, aug in (("mmpose", MMPOSE), ("original", ORIGINAL))
    }
    for draws in drawn.values():
        assert np.mean([p.flip for p in draws]) == pytest.approx(0.5, abs=0.05)
        assert np.mean([p.rotation != 0 for p in draws]) == pytest.approx(0.6, abs=0.05)
    mmpose, original = (
        {
            f.name: np.array([getattr(p, f.name) for p in draws])
            for f in dataclasses.fields(AugParams)
        }
        for draws in drawn.values()
    )
    # mmpose: truncated normals (std of TN(-1, 1) is 0.5376), shift only 30 % of the time.
    assert np.mean(np.any(mmpose["shift"] != 0, axis=1)) == pytest.approx(0.3, abs=0.05)
    assert np.abs(mmpose["shift"]).max() <= 0.16 and np.all(mmpose["scale"] >= 0.5)
    assert np.all(mmpose["scale"] <= 1.5) and np.std(mmpose["scale"]) == pytest.approx(
        0.269, abs=0.02
    )
    assert np.abs(mmpose["rotation"]).max() <= np.pi / 2 and np.all(mmpose["colour"] == 1)
    # original: uniform shift always, clipped normals pile up at their bounds.
    assert np.all(original["shift"] != 0) and np.abs(original["shift"]).max() <= 0.15
    assert np.std(original["shift"]) == pytest.approx(0.15 / np.sqrt(3), abs=0.005)
    assert np.all(np.abs(original["scale"] - 1) <= 0.25)
    assert np.mean(np.abs(original["scale"] - 1) == 0.25) == pytest.approx(0.317, abs=0.04)
    assert np.abs(original["rotation"]).max() == pytest.approx(np.pi / 2)
    assert np.all((original["colour"] >= 0.8) & (original["colour"] <= 1.2))
    # The same generator state gives the same draw: a sample's augmentation replays.
    assert sample_augmentation(np.random.default_rng(7), ORIGINAL) == sample_augmentation(
        np.random.default_rng(7), ORIGINAL
    )


def test_normalize_matches_a_hand_computation():
    images = torch.randint(
        0, 256, (2, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    by_hand = torch.empty(2, 3, 5, 4, dtype=torch.float64)
    for c in range(3):
        by_hand[:, c] = (images[:, c].double() - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    assert torch.allclose(normalize(images), by_hand.float(), atol=1e-6)
    assert normalize(images, torch.float64).dtype == torch.float64
    assert torch.allclose(normalize(images, torch.float64), by_hand)
    half = normalize(images, torch.float16)
    assert half.dtype == torch.float16 and torch.allclose(half.double(), by_hand, atol=1e-2)
