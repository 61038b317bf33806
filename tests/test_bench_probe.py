"""bench/handedness_probe.py renders labelled crops and trains both of its networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import load_tool


def test_probe_runs_both_networks_on_both_generators(tmp_path: Path, capsys):
    probe = load_tool("handedness_probe", "bench")
    saved = tmp_path / "crops.npz"
    argv = ["--train", "48", "--test", "16", "--steps", "4", "--captures", "2", "--workers", "1",
            "--crops", str(saved)]  # fmt: skip
    rows = probe.main(argv)
    assert [(look, network) for look, network, *_ in rows] == [
        (look, network) for look in probe.LOOKS for network in probe.NETWORKS
    ]
    assert all(0.0 <= fitted <= 1.0 and 0.0 <= held_out <= 1.0 for *_, fitted, held_out, _ in rows)
    assert "rendered in" in capsys.readouterr().out

    crops = np.load(saved)
    for look in probe.LOOKS:
        images, right = crops[f"{look}_train_crops"], crops[f"{look}_train_right"]
        uv, facing = crops[f"{look}_train_uv"], crops[f"{look}_train_facing"]
        assert images.shape == (48, probe.CROP, probe.CROP, 3) and uv.shape == (48, 21, 2)
        assert set(right) == {0, 1}
        # The crop is the labels' box enlarged 1.25 times, so the wrist and the middle
        # knuckle, which bound the hand, land inside it (a joint may leave the frame).
        inside = ((uv >= 0) & (uv <= probe.CROP - 1)).all(axis=-1)
        assert inside[:, [20, 11]].mean() > 0.9
        assert np.all(np.abs(facing) <= 1.0) and (facing > 0.2).any() and (facing < -0.2).any()

    rerun = probe.main(argv)  # read back from the file: the same crops, the same training
    assert rerun[0][2:4] == rows[0][2:4]
    assert "read from" in capsys.readouterr().out


def test_joint_network_reads_joints_in_crop_coordinates():
    probe = load_tool("handedness_probe", "bench")
    model = probe.JointCNN().eval()
    with torch.no_grad():
        right, facing, joints = model(torch.zeros(2, 3, probe.CROP, probe.CROP))
    assert right.shape == facing.shape == (2,) and joints.shape == (2, 21, 2)
    # Softmax weights over cell centres: every estimate is a convex mix, inside [-1, 1].
    assert joints.abs().max() < 1.0
    # Heatmap cell k covers pixels 4k .. 4k + 3, so its centre is pixel 4k + 1.5, in the
    # coordinates the targets are given in; a mirrored pixel is the negated coordinate.
    cells = np.unique(model.grid[0].numpy())
    pixels = 4 * np.arange(probe.CROP // 4) + 1.5
    np.testing.assert_allclose(cells, probe.crop_coordinates(pixels), atol=1e-6)
    np.testing.assert_allclose(probe.crop_coordinates(probe.CROP - 1 - pixels),
                               -probe.crop_coordinates(pixels), atol=1e-6)  # fmt: skip
    x, y = model.grid.numpy()  # x grows along a row (image u), y down a column (image v)
    assert (np.diff(x, axis=1) > 0).all() and (np.diff(x, axis=0) == 0).all()
    assert (np.diff(y, axis=0) > 0).all() and (np.diff(y, axis=1) == 0).all()


def test_joint_network_heatmaps_see_most_of_the_crop():
    """A heatmap cell must see far enough to tell one finger from another: the centre cell's
    logits depend on pixels across at least three quarters of the crop in both directions."""
    probe = load_tool("handedness_probe", "bench")
    torch.manual_seed(0)
    model = probe.JointCNN().eval()
    x = torch.randn(1, 3, probe.CROP, probe.CROP, requires_grad=True)
    heatmaps, _ = model.heatmap_logits(x)
    assert heatmaps.shape == (1, 21, probe.CROP // 4, probe.CROP // 4)
    centre = heatmaps.shape[-1] // 2
    heatmaps[0, :, centre, centre].sum().backward()
    rows, columns = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero().T
    for seen in (rows, columns):
        assert seen.max() - seen.min() + 1 >= 0.75 * probe.CROP
