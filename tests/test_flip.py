"""Mirrored inputs: :func:`minternet.model.flip_output` and :meth:`InterNet.flip_test`.

The oracle for "consistent hands" is a perfect model: its output for a crop is that crop's
own target. The mirrored crop's labels come from :func:`minternet.transforms.make_sample`
with ``flip=True`` (its own code path: mirrored image, swapped joint blocks, negated root
depth, swapped hand bits), so mapping the perfect output of the mirrored crop back must give
the hands of the unmirrored crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from minternet.augment import AugParams
from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.model import SMALL_CONFIG, InterNet, InterNetOutput, flip_output
from minternet.transforms import make_sample

CODEC = HeatmapCodec()


def perfect_output(sample: dict[str, np.ndarray], codec: HeatmapCodec) -> InterNetOutput:
    """What a perfect model outputs for one crop: its target, batched (B = 1)."""
    keypoints = torch.from_numpy(sample["keypoints"])
    fz, fy, fx = codec.factors(keypoints)
    heatmaps = codec.max_value * torch.einsum("kz,ky,kx->kzyx", fz, fy, fx)
    rho, _ = codec.encode_root(torch.tensor(sample["rel_root_depth"]), torch.tensor(1.0))
    logits = torch.where(torch.from_numpy(sample["hand_type"]) > 0, 5.0, -5.0)
    return InterNetOutput(heatmaps[None], rho.reshape(1, 1), logits[None])


@pytest.fixture(scope="module")
def real_frames(samples_dir: Path) -> InterHandDataset:
    return InterHandDataset(samples_dir, train=None)


def test_flip_output_is_its_own_inverse() -> None:
    generator = torch.Generator().manual_seed(0)
    output = InterNetOutput(
        torch.randn(2, 42, 4, 5, 6, generator=generator),
        torch.rand(2, 1, generator=generator) * 15,
        torch.randn(2, 2, generator=generator),
    )
    twice = flip_output(flip_output(output, 16), 16)
    assert torch.equal(twice.heatmaps, output.heatmaps)
    assert torch.equal(twice.hand_logits, output.hand_logits)
    torch.testing.assert_close(twice.root_depth, output.root_depth)  # R - (R - rho): rounding
    once = flip_output(output, 16)
    assert torch.equal(once.heatmaps[:, 0, :, :, 0], output.heatmaps[:, 21, :, :, -1])
    assert torch.equal(once.hand_logits[:, 0], output.hand_logits[:, 1])


def test_perfect_outputs_of_mirrored_real_crops_map_back(real_frames: InterHandDataset) -> None:
    checked = 0
    for i in range(len(real_frames)):
        raw = real_frames[i]
        plain = make_sample(raw)
        mirrored = make_sample(raw, params=AugParams(flip=True))
        back = flip_output(perfect_output(mirrored, CODEC), CODEC.root_bins)
        expected = perfect_output(plain, CODEC)

        # Hand type and relative root depth: exact up to float rounding.
        assert torch.equal(CODEC.decode_hand_type(back.hand_logits), expected.hand_logits > 0)
        delta_back = CODEC.decode_root(back.root_depth).item()
        assert delta_back == pytest.approx(float(plain["rel_root_depth"]), abs=1e-3)

        got, _ = CODEC.decode(back.heatmaps[0])
        want, _ = CODEC.decode(expected.heatmaps[0])
        valid = torch.from_numpy(CODEC.weights(plain["keypoints"], plain["joint_valid"]) > 0)
        # The mirrored image's crop is x -> S - x, the reversed heatmap axis x -> W - 1 - x:
        # one voxel (4 crop px) apart at most; y and z are untouched by a mirror.
        step = CODEC.input_size / CODEC.heatmap_size
        assert torch.all((got[valid, 0] - want[valid, 0]).abs() <= step)
        assert torch.equal(got[valid, 1:], want[valid, 1:])
        checked += int(valid.sum())
    assert checked >= 80  # the four frames hold 126 valid joints, most inside the depth range


def test_flip_test_is_mirror_equivariant() -> None:
    torch.manual_seed(0)
    model = InterNet(SMALL_CONFIG).eval()
    images = torch.randn(2, 3, model.input_size, model.input_size)
    with torch.no_grad():
        of_mirror = model.flip_test(images.flip(-1))
        mirrored_back = flip_output(model.flip_test(images), model.config.root_bins)
        plain = model(images)
    for a, b in zip(of_mirror, mirrored_back, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # A random model is not symmetric by itself, so the average did change something.
    assert not torch.allclose(model.flip_test(images).hand_logits, plain.hand_logits)
