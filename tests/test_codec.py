from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minternet import InterHandDataset
from minternet.codec import HeatmapCodec
from minternet.skeleton import ROOTS

CODEC = HeatmapCodec()
SMALL = HeatmapCodec(input_size=128, heatmap_size=32, depth_bins=32)
SIGMA = 2.5


def reference_target(codec: HeatmapCodec, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's target written voxel by voxel: every combination of 16 offsets
    i - 7.5 per axis, rounded half-to-even and clipped, gets 255 exp(-d^2 / 2 sigma^2) at
    the rounded voxel. Returns (target (42, D, H, W) float64, support mask).
    """
    depth, height, width = codec.shape
    mu_x = keypoints[:, 0] * width / codec.input_size
    mu_y = keypoints[:, 1] * height / codec.input_size
    mu_z = (keypoints[:, 2] / codec.depth_bound + 0.5) * depth
    offsets = np.arange(16) - 7.5
    oz, oy, ox = (a.ravel() for a in np.meshgrid(offsets, offsets, offsets, indexing="ij"))
    target = np.zeros((len(keypoints), depth, height, width))
    support = np.zeros(target.shape, dtype=bool)
    for k in range(len(keypoints)):
        qx = np.clip(np.round(mu_x[k] + ox), 0, width - 1)
        qy = np.clip(np.round(mu_y[k] + oy), 0, height - 1)
        qz = np.clip(np.round(mu_z[k] + oz), 0, depth - 1)
        d2 = (qx - mu_x[k]) ** 2 + (qy - mu_y[k]) ** 2 + (qz - mu_z[k]) ** 2
        iz, iy, ix = qz.astype(int), qy.astype(int), qx.astype(int)
        target[k, iz, iy, ix] = 255 * np.exp(-d2 / (2 * SIGMA**2))
        support[k, iz, iy, ix] = True
    return target, support


def keypoints_at(x: float, y: float, z: float) -> np.ndarray:
    """42 copies of one keypoint (crop px x, y, z mm), float32."""
    return np.tile(np.float32([x, y, z]), (42, 1))


@pytest.fixture(scope="module")
def crops(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The real frames as unaugmented training samples."""
    dataset = InterHandDataset(samples_dir, cache_dir=tmp_path_factory.mktemp("idx"), train=False)
    return [dataset[i] for i in range(len(dataset))]


def test_target_layout() -> None:
    target, weights = CODEC.encode(keypoints_at(100.3, 150.6, 37.0), np.ones(42, np.float32))
    assert target.shape == (42, 64, 64, 64) and target.dtype == np.float32
    assert weights.shape == (42,) and weights.dtype == np.float32
    # mmpose's layout: channel k * 64 + z is joint k at depth bin z.
    stacked = target.reshape(2688, 64, 64)
    mu_z = (37.0 / 400 + 0.5) * 64
    assert np.array_equal(stacked[5 * 64 + round(mu_z)], target[5, round(mu_z)])


def test_wrist_comb_on_real_frames(crops: list[dict]) -> None:
    checked = 0
    for crop in crops:
        target, _ = CODEC.encode(crop["keypoints"], crop["joint_valid"])
        for root in ROOTS:
            mu = crop["keypoints"][root, :2] / 4
            assert crop["keypoints"][root, 2] == 0
            if not np.all((mu > 8) & (mu < 55) & (mu != np.round(mu))):
                continue
            nonzero = target[root] > 0
            assert nonzero.sum() == 16 * 16 * 9
            assert np.array_equal(np.flatnonzero(nonzero.any(axis=(1, 2))), np.arange(24, 41, 2))
            checked += 1
    assert checked >= 4


def test_odd_integer_centre_leaves_its_voxel_empty() -> None:
    # mu = (33, 20.3, 31): x and z odd integers, so both combs have 8 even planes.
    target, _ = CODEC.encode(keypoints_at(132.0, 81.2, -6.25), np.ones(42, np.float32))
    volume = target[0]
    assert volume[31, 20, 33] == 0
    assert np.array_equal(np.flatnonzero(volume.any(axis=(1, 2))), np.arange(24, 39, 2))
    assert np.array_equal(np.flatnonzero(volume.any(axis=(0, 1))), np.arange(26, 41, 2))
    # The nearest populated voxel carries the Gaussian at its own integer coordinate.
    d2 = 1 + 0.3**2 + 1
    assert volume[32, 20, 32] == pytest.approx(255 * np.exp(-d2 / 12.5), rel=1e-6)


def test_even_integer_centre_peaks_at_255() -> None:
    target, _ = CODEC.encode(keypoints_at(128.0, 64.0, 0.0), np.ones(42, np.float32))
    assert target[0, 32, 16, 32] == np.float32(255)
    assert target[0].max() == np.float32(255)


keypoint = st.tuples(
    st.floats(-100, 400) | st.integers(-10, 70).map(lambda i: 4.0 * i),
    st.floats(-100, 400) | st.integers(-10, 70).map(lambda i: 4.0 * i + 2),
    st.floats(-400, 400) | st.integers(-70, 70).map(lambda i: 6.25 * i),
)


@settings(max_examples=15, deadline=None)
@given(st.lists(keypoint, min_size=42, max_size=42))
def test_encode_and_factors_match_reference(points: list) -> None:
    keypoints = np.float32(points)
    reference, support = reference_target(CODEC, keypoints.astype(np.float64))
    target, _ = CODEC.encode(keypoints, np.ones(42, np.float32))
    assert np.all(target[~support] == 0)
    np.testing.assert_allclose(target[support], reference[support], rtol=1e-6, atol=1e-6)
    fz, fy, fx = CODEC.factors(torch.from_numpy(keypoints))
    outer = 255 * torch.einsum("kz,ky,kx->kzyx", fz, fy, fx).numpy()
    assert np.all(outer[~support] == 0)
    np.testing.assert_allclose(outer[support], reference[support], rtol=1e-5, atol=1e-6)


def test_factors_are_batched() -> None:
    keypoints = torch.rand(3, 2, 42, 3) * 256
    fz, fy, fx = CODEC.factors(keypoints)
    assert fz.shape == fy.shape == fx.shape == (3, 2, 42, 64) and fz.dtype == torch.float32
    single = CODEC.factors(keypoints[2, 1])
    assert all(torch.equal(a[2, 1], b) for a, b in zip((fz, fy, fx), single, strict=True))


def test_full_target_is_the_whole_gaussian() -> None:
    full = HeatmapCodec(target="full")
    keypoints = np.float32(np.random.default_rng(3).uniform([0, 0, -200], [256, 256, 200], (42, 3)))
    target, _ = full.encode(keypoints, np.ones(42, np.float32))
    mu = keypoints.astype(np.float64) * [1 / 4, 1 / 4, 64 / 400] + [0, 0, 32]
    z, y, x = np.meshgrid(np.arange(64), np.arange(64), np.arange(64), indexing="ij")
    for k in (0, 20, 41):
        d2 = (x - mu[k, 0]) ** 2 + (y - mu[k, 1]) ** 2 + (z - mu[k, 2]) ** 2
        np.testing.assert_allclose(target[k], 255 * np.exp(-d2 / 12.5), rtol=1e-6, atol=1e-30)
    fz, fy, fx = full.factors(keypoints)
    outer = 255 * torch.einsum("kz,ky,kx->kzyx", fz, fy, fx).numpy()
    np.testing.assert_allclose(outer, target, rtol=1e-5, atol=1e-6)


def test_weights() -> None:
    z = np.float32([-200, 199.9, 200, -200.1, 0, 0])
    keypoints = np.zeros((6, 3), np.float32)
    keypoints[:, 2] = z
    valid = np.float32([1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(CODEC.weights(keypoints, valid), [1, 1, 0, 0, 1, 0])
    # No test on x or y: a joint far outside the crop keeps its weight.
    _, weights = CODEC.encode(keypoints_at(-500, 900, 10), np.ones(42, np.float32))
    assert np.all(weights == 1)
    as_torch = CODEC.weights(torch.from_numpy(keypoints), torch.from_numpy(valid))
    assert torch.equal(as_torch, torch.tensor([1.0, 1, 0, 0, 1, 0]))


def assert_round_trip(codec: HeatmapCodec, keypoints: np.ndarray, valid: np.ndarray) -> int:
    """Decode the encoded target: within half a voxel per axis for joints inside the grid
    with weight 1 and no odd-integer centre coordinate (whose own voxel the comb leaves
    empty). Returns how many joints were checked.
    """
    target, weights = codec.encode(keypoints, valid)
    decoded, scores = codec.decode(target)
    mu = codec.centres(keypoints.astype(np.float64))
    inside = (weights > 0) & np.all((mu >= 0) & (mu <= codec.heatmap_size - 1), axis=1)
    odd = (mu == np.round(mu)) & (np.round(mu) % 2 == 1)
    checked = inside & ~odd.any(axis=1)
    px = codec.input_size / codec.heatmap_size
    mm = codec.depth_bound / codec.depth_bins
    error = np.abs(decoded - keypoints)[checked]
    assert np.all(error[:, :2] <= px / 2 + 1e-4) and np.all(error[:, 2] <= mm / 2 + 1e-4)
    assert np.all(scores[inside] > 0)
    return int(checked.sum())


def test_decode_round_trip_on_real_frames(crops: list[dict]) -> None:
    checked = 0
    for crop in crops:
        checked += assert_round_trip(CODEC, crop["keypoints"], crop["joint_valid"])
        target, _ = CODEC.encode(crop["keypoints"], crop["joint_valid"])
        decoded, _ = CODEC.decode(target)
        mu = crop["keypoints"][list(ROOTS), :2] / 4
        inside = np.all((mu >= 0) & (mu <= 63), axis=1)
        assert np.all(decoded[list(ROOTS), 2][inside] == 0)
    assert checked > 42


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 252), st.floats(0, 252), st.floats(-200, 199)),
        min_size=42,
        max_size=42,
    )
)
def test_decode_round_trip_property(points: list) -> None:
    keypoints = np.float32(points)
    keypoints[list(ROOTS), 2] = 0
    assert_round_trip(CODEC, keypoints, np.ones(42, np.float32))
    decoded, _ = CODEC.decode(CODEC.encode(keypoints, np.ones(42, np.float32))[0])
    assert np.all(decoded[list(ROOTS), 2] == 0)


def test_decode_ties_and_empty_volumes() -> None:
    heatmaps = torch.zeros(2, 42, 8, 64, 64)
    codec = HeatmapCodec(depth_bins=8)
    heatmaps[0, 0, 5, 2, 3] = 7.0
    heatmaps[0, 0, 6, 0, 0] = 7.0  # later in C order: loses the tie
    heatmaps[0, 1, 1, 1, 1] = -1.0  # maximum 0 elsewhere: no detection
    heatmaps[1] = -3.0  # maximum < 0
    keypoints, scores = codec.decode(heatmaps)
    assert keypoints.shape == (2, 42, 3) and scores.shape == (2, 42)
    assert keypoints[0, 0].tolist() == [12.0, 8.0, (5 / 8 - 0.5) * 400]
    assert scores[0, 0] == 7.0
    # Indices -1 map to x = y = -4 px and z = (-1/8 - 1/2) 400 mm.
    assert torch.equal(keypoints[0, 1], torch.tensor([-4.0, -4.0, -250.0]))
    assert torch.all(keypoints[1] == torch.tensor([-4.0, -4.0, -250.0]))
    numpy_keypoints, numpy_scores = codec.decode(heatmaps.numpy())
    assert isinstance(numpy_keypoints, np.ndarray)
    np.testing.assert_array_equal(numpy_keypoints, keypoints.numpy())
    np.testing.assert_array_equal(numpy_scores, scores.numpy())


def test_depth_decode_range() -> None:
    heatmaps = np.zeros((42, 64, 64, 64), np.float32)
    heatmaps[0, 0, 0, 0] = heatmaps[1, 63, 63, 63] = 1
    keypoints, _ = CODEC.decode(heatmaps)
    assert keypoints[0].tolist() == [0, 0, -200] and keypoints[1].tolist() == [252, 252, 193.75]


def test_root_encode_decode() -> None:
    delta = np.float32([-200, -37.5, 0, 193.75, 200, 200.5, -200.5])
    valid = np.float32([1, 1, 0, 1, 1, 1, 1])
    rho, weight = CODEC.encode_root(delta, valid)
    np.testing.assert_allclose(rho, [0, 26, 32, 63, 64, 64.08, -0.08], atol=1e-5)
    # rho = 64 is kept (<= 64), unlike a joint at mu_z = 64.
    np.testing.assert_array_equal(weight, [1, 1, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(CODEC.decode_root(rho), delta, atol=1e-4)
    rho_t, weight_t = CODEC.encode_root(torch.from_numpy(delta), torch.from_numpy(valid))
    assert torch.equal(rho_t, torch.from_numpy(rho))
    assert torch.equal(weight_t, torch.from_numpy(weight))
    assert CODEC.decode_root(torch.tensor(63.0)) == 193.75


def test_hand_type() -> None:
    logits = torch.tensor([[0.0, 1e-6], [-1e-6, 3.0]])
    assert CODEC.decode_hand_type(logits).tolist() == [[False, True], [False, True]]
    assert CODEC.decode_hand_type(np.float32([0, 2])).tolist() == [False, True]


def test_small_configuration() -> None:
    rng = np.random.default_rng(7)
    keypoints = np.float32(rng.uniform([0, 0, -190], [124, 124, 190], (42, 3)))
    keypoints[list(ROOTS), 2] = 0
    target, weights = SMALL.encode(keypoints, np.ones(42, np.float32))
    assert target.shape == (42, 32, 32, 32) and np.all(weights == 1)
    # The wrist comb sits around mu_z = 16.
    assert np.array_equal(np.flatnonzero(target[20].any(axis=(1, 2))), np.arange(8, 25, 2))
    assert assert_round_trip(SMALL, keypoints, np.ones(42, np.float32)) == 42
    fz, fy, fx = SMALL.factors(keypoints)
    outer = 255 * torch.einsum("kz,ky,kx->kzyx", fz, fy, fx).numpy()
    np.testing.assert_allclose(outer, target, rtol=1e-5, atol=1e-6)


def test_rejects_unknown_target() -> None:
    with pytest.raises(ValueError, match="target"):
        HeatmapCodec(target="soft")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "codec",
    [CODEC, SMALL, HeatmapCodec(target="full"), HeatmapCodec(64, 16, 16, sigma=4.0)],
    ids=["mmpose", "small", "full", "wide-sigma"],
)
def test_decode_target_equals_decoding_the_dense_target(codec: HeatmapCodec) -> None:
    generator = torch.Generator().manual_seed(7)
    size, bound = codec.input_size, codec.depth_bound
    # Anywhere in and around the crop and the depth range, plus exact voxel centres (the
    # comb, ties), the grid's edges and far outside it (factors that vanish entirely).
    keypoints = torch.rand(6, 42, 3, generator=generator, dtype=torch.float64)
    keypoints = keypoints * torch.tensor([1.6 * size, 1.6 * size, 1.6 * bound])
    keypoints -= torch.tensor([0.3 * size, 0.3 * size, 0.8 * bound])
    step = size / codec.heatmap_size
    keypoints[0, :, :2] = torch.randint(0, codec.heatmap_size, (42, 2), generator=generator) * step
    keypoints[1, :, :2] = torch.tensor([0.0, size - step])
    keypoints[2, :21] = torch.tensor([-40.0 * size, 3.0 * size, 5.0 * bound])
    fz, fy, fx = codec.factors(keypoints)
    dense = (
        codec.max_value * fz[..., :, None, None] * fy[..., None, :, None] * fx[..., None, None, :]
    )
    want_keypoints, want_scores = codec.decode(dense)
    got_keypoints, got_scores = codec.decode_target(keypoints)
    assert torch.equal(got_scores, want_scores)
    assert torch.equal(got_keypoints, want_keypoints)
    assert (want_scores <= 0).any() and (want_scores > 0).any()  # both branches exercised
