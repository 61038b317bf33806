"""The cues that tell a right hand from a left one, and the studio around the hands."""

from __future__ import annotations

import numpy as np
import pytest

from minternet.synth import render, skin, studio
from minternet.synth.hand import (
    POSE_NAMES,
    dressed_hand,
    forward_kinematics,
    hand_capsules,
    mean_shape,
    palmar_directions,
    sample_shape,
    sleeve_capsule,
)
from minternet.synth.plan import KIND_CYCLE, camera_studio, sequence_kind
from minternet.synth.skin import (
    CAPSULE_KINDS,
    FINGERTIP,
    NAIL,
    PALM_PINK,
    SkinSurface,
    palm_tone,
    skin_tone,
    surface_albedo,
)

FOCAL = np.array([1200.0, 1200.0])
PRINCPT = np.array([256.0, 167.0])
SIZE = (512, 334)


def test_background():
    first = studio.background(np.random.default_rng(3), SIZE)
    assert first.shape == (334, 512, 3) and first.dtype == np.uint8
    assert studio.background(np.random.default_rng(3), (334, 512)).shape == (512, 334, 3)
    assert np.array_equal(first, studio.background(np.random.default_rng(3), SIZE))
    others = [studio.background(np.random.default_rng(seed), SIZE) for seed in range(4)]
    assert all(not np.array_equal(a, b) for i, a in enumerate(others) for b in others[i + 1 :])
    assert 0 < np.mean(others) < 128  # a studio: dark on the whole


def test_skin_tones_vary_within_range():
    tones = np.array([skin_tone(np.random.default_rng(seed)) for seed in range(50)])
    assert tones.shape == (50, 3) and (tones >= 0).all() and (tones <= 1).all()
    assert np.ptp(tones.mean(-1)) > 0.3  # light to dark skin
    assert (tones[:, 0] > tones[:, 2]).all()  # always warmer than blue


def test_palms_are_lighter_and_pinker_than_backs():
    backs = np.array([skin_tone(np.random.default_rng(seed)) for seed in range(50)])
    palms = palm_tone(backs)
    assert (palms.mean(-1) > backs.mean(-1) + 0.03).all()
    assert (palms[:, 0] >= palms[:, 1]).all() and (palms[:, 1] >= palms[:, 2]).all()  # warm
    # Pinker: closer in hue to a pink than the back is.
    assert (np.abs(palms - PALM_PINK).sum(-1) < np.abs(backs - PALM_PINK).sum(-1)).all()
    # Darker skin: a larger step from back to palm, as melanin is sparse on palms.
    step = palms.mean(-1) - backs.mean(-1)
    assert np.corrcoef(backs.mean(-1), step)[0, 1] < 0


@pytest.mark.parametrize("side", ["right", "left"])
def test_palmar_directions_follow_the_palm_and_the_flexed_fingers(side: str) -> None:
    flat = forward_kinematics(mean_shape(), np.zeros(len(POSE_NAMES)), side)
    out_of_palm = palmar_directions(flat, side)
    assert out_of_palm.shape == (26, 3)
    assert np.allclose(np.linalg.norm(out_of_palm, axis=-1), 1.0)
    # Hand-local z points out of the palm for either side (the left hand mirrors x only).
    fingers_and_palm = [k for k in range(20) if k > 3] + [20, 21, 22, 24, 25]
    assert (out_of_palm[fingers_and_palm, 2] > 0.9).all()
    # Index MCP flexed 90 deg: its proximal bone points palmar (+z) and the palm side of
    # that bone and those beyond it faces back towards the wrist (-y).
    pose = np.zeros(len(POSE_NAMES))
    pose[POSE_NAMES.index("index_mcp_flex")] = 90.0
    bent = forward_kinematics(mean_shape(), pose, side)
    facing = palmar_directions(bent, side)
    bone = bent[6] - bent[7]
    assert bone[2] / np.linalg.norm(bone) > 0.99
    assert (facing[4:7, 1] < -0.9).all()
    for child in range(20):  # always across its bone
        parent = 20 if child % 4 == 3 else child + 1
        bone = bent[child] - bent[parent]
        assert abs(facing[child] @ bone) / np.linalg.norm(bone) < 1e-6


def test_sleeve_carries_the_forearm_on() -> None:
    shape = sample_shape(np.random.default_rng(1))
    joints = forward_kinematics(shape, np.zeros(len(POSE_NAMES)), "right")
    segments, radii = hand_capsules(joints, shape)
    sleeve, sleeve_radius = sleeve_capsule(segments, shape)
    assert sleeve.shape == (1, 2, 3) and sleeve_radius[0] > radii[24]
    assert np.allclose(sleeve[0, 0], segments[24, 1])
    forearm = segments[24, 1] - segments[24, 0]
    onwards = sleeve[0, 1] - sleeve[0, 0]
    assert np.allclose(np.cross(forearm, onwards), 0.0, atol=1e-6) and forearm @ onwards > 0
    assert len(CAPSULE_KINDS) == len(radii) + 1


def test_surface_albedo_sides_nails_and_creases() -> None:
    back = np.array([0.5, 0.35, 0.25])
    n = len(CAPSULE_KINDS)
    surface = SkinSurface(
        np.tile([0.0, 0.0, 1.0], (n, 1)), CAPSULE_KINDS, np.tile(back, (n, 1)),
        np.tile(palm_tone(back), (n, 1)), np.array([0.1, 0.2, 0.6]),
    )  # fmt: skip
    tip, bone, sleeve = 0, 1, n - 1
    assert CAPSULE_KINDS[tip] == FINGERTIP
    normals = np.array([[0, 0, 1.0], [0, 0, -1.0], [0, 0, -1.0], [0, 0, -1.0], [0, 0, 1.0],
                        [1.0, 0, 0]])  # fmt: skip
    along = np.array([0.5, 0.5, 0.6, 0.1, 0.5, 0.5])
    capsule = np.array([bone, bone, tip, tip, tip, sleeve])
    albedo, gloss = surface_albedo(normals, along, capsule, surface)
    assert np.allclose(albedo[0], palm_tone(back)) and np.allclose(albedo[1], back)
    assert np.allclose(albedo[2], NAIL) and gloss[2] > 0  # the back of the tip, distal part
    assert not np.allclose(albedo[3], NAIL) and gloss[3] == 0  # the back, near the DIP
    assert np.allclose(albedo[4], palm_tone(back))  # the tip's pad carries no nail
    assert np.allclose(albedo[5], [0.1, 0.2, 0.6])  # the sleeve is cloth, any side
    crease, _ = surface_albedo(np.array([[0, 0, 1.0]]), np.array([0.95]), np.array([bone]), surface)
    assert (crease[0] < albedo[0]).all()


def test_one_sided_surface_renders_as_the_plain_colours() -> None:
    segments = np.array(
        [[[-40.0, 0.0, 500.0], [40.0, 0.0, 500.0]], [[0, -60.0, 520], [0, 60, 520]]]
    )
    colors = np.array([[0.8, 0.6, 0.5], [0.3, 0.5, 0.7]])
    plain = render.render_capsules(segments, [10.0, 12.0], [1, 2], colors, FOCAL, PRINCPT, SIZE)
    same = SkinSurface(np.zeros((2, 3)), np.zeros(2, int), colors, colors, np.zeros(3))
    surfaced = render.render_capsules(
        segments, [10.0, 12.0], [1, 2], colors, FOCAL, PRINCPT, SIZE, surface=same
    )
    assert np.array_equal(plain.image, surfaced.image)
    assert np.array_equal(plain.owner, surfaced.owner)


def _rendered_hand(towards_camera: float) -> render.Render:
    """A flat right hand 900 mm ahead, palm (+1) or back (-1) facing the camera."""
    shape = mean_shape()
    rotation = np.diag([-1.0, 1.0, -1.0]) if towards_camera > 0 else np.eye(3)  # about y
    joints = forward_kinematics(shape, np.zeros(len(POSE_NAMES)), "right",
                                np.array([0.0, -95.0, 900.0]), rotation)  # fmt: skip
    segments, radii, palmar = dressed_hand(joints, shape, "right")
    back = np.tile(skin_tone(np.random.default_rng(0)), (26, 1))
    surface = SkinSurface(palmar, CAPSULE_KINDS, back, palm_tone(back), np.zeros(3))
    return render.render_capsules(segments, radii, np.ones(26, int), back, FOCAL, PRINCPT, SIZE,
                                  soften=0.0, surface=surface)  # fmt: skip


def test_a_palm_facing_the_camera_looks_lighter_than_a_back_and_shows_no_nails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(skin, "NAIL", np.array([0.0, 1.0, 0.0]))  # nails green, to count them
    palm, back = _rendered_hand(+1.0), _rendered_hand(-1.0)
    for view in (palm, back):  # the whole hand in the picture; the sleeve leaves at the top
        assert not view.owner[-1].any() and not view.owner[:, [0, -1]].any()
    # Turned about the vertical axis, the silhouette is mirrored: a right palm has the
    # outline of a left hand's back.
    mirrored = back.owner[:, ::-1] > 0
    overlap = (palm.owner > 0) & mirrored
    assert overlap.sum() / ((palm.owner > 0) | mirrored).sum() > 0.85
    skin_pixels = [view.image[view.owner > 0].astype(int) for view in (palm, back)]
    green = [((p[:, 1] > p[:, 0] + 60) & (p[:, 1] > p[:, 2] + 60)).sum() for p in skin_pixels]
    assert green[0] == 0 and green[1] > 100  # five nails on the back, none on the palm side
    assert skin_pixels[0].mean() > skin_pixels[1].mean() + 10  # the palm lighter


def test_dressed_hand_is_the_capsules_the_sleeve_and_the_palm_sides() -> None:
    shape = sample_shape(np.random.default_rng(2))
    joints = forward_kinematics(shape, np.full(len(POSE_NAMES), 10.0), "left")
    segments, radii, palmar = dressed_hand(joints, shape, "left")
    capsules, capsule_radii = hand_capsules(joints, shape)
    sleeve, sleeve_radius = sleeve_capsule(capsules, shape)
    assert np.array_equal(segments, np.concatenate([capsules, sleeve]))
    assert np.array_equal(radii, np.concatenate([capsule_radii, sleeve_radius]))
    assert np.array_equal(palmar, palmar_directions(joints, "left"))


def test_studio_lights_come_from_the_camera_side_and_the_camera_blurs_and_adds_noise() -> None:
    for seed in range(20):
        light = studio.lighting(np.random.default_rng(seed))
        assert light.directions[0][2] < 0 and light.directions[1][2] <= 0
        assert light.intensities[0] > light.intensities[1]
    flat = np.full((100, 120, 3), 100, np.uint8)
    assert np.array_equal(studio.sensor(flat, np.random.default_rng(0), 0.0), flat)
    noisy = studio.sensor(flat, np.random.default_rng(0), 2.0).astype(float)
    assert 1.7 < noisy.std() < 2.3 and abs(noisy.mean() - 100) < 0.2
    boxed = studio.sensor(flat, np.random.default_rng(0), 2.0, (slice(10, 30), slice(5, 50)))
    changed = np.argwhere((boxed != flat).any(-1))
    assert len(changed) > 500 and changed.min(0).tolist() >= [10, 5]
    assert changed.max(0).tolist() <= [29, 49]
    # The camera's blur is the renderer's soften: a hard edge becomes a ramp.
    edge = [[[-40.0, 0.0, 500.0], [40.0, 0.0, 500.0]]]
    hard, soft = (render.render_capsules(np.array(edge), [10.0], [1], [0.8, 0.6, 0.5], FOCAL,
                                         PRINCPT, SIZE, soften=blur).image[:, 256, 0]
                  for blur in (0.0, 1.0))  # fmt: skip
    outside = np.flatnonzero(hard == 0)
    first_out = outside[outside > 167][0]  # the first dark row below the capsule's axis
    assert 0 < soft[first_out] and soft[first_out - 1] < hard[first_out - 1]


def test_camera_studio_is_kept_and_read_only() -> None:
    first = camera_studio(5, 3, SIZE)
    assert camera_studio(5, 3, SIZE) is first
    assert not first[0].flags.writeable and first[0].shape == (334, 512, 3)
    assert not np.array_equal(camera_studio(5, 4, SIZE)[0], first[0])


@pytest.mark.parametrize("captures", range(1, 13))
def test_every_capture_shows_every_kind_and_small_splits_have_all_kinds(captures: int) -> None:
    for capture in range(captures):
        kinds = [sequence_kind(seq, capture, captures) for seq in range(4)]
        assert sorted(kinds) == sorted(KIND_CYCLE)
    in_writing_order = [sequence_kind(s, c, captures) for s in range(4) for c in range(captures)]
    assert set(in_writing_order[:4]) == set(KIND_CYCLE)
