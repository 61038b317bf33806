"""Prediction, the codec oracle and the eval command, on the real frames and data_samples."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from minternet.__main__ import main
from minternet.checkpoint import save_model
from minternet.codec import HeatmapCodec
from minternet.dataset import InterHandDataset
from minternet.evaluate import (
    average_pose_predictions,
    evaluate_model,
    ground_truth,
    oracle_predictions,
    predict,
    score_predictions,
)
from minternet.metrics import METRIC_KEYS
from minternet.model import SMALL_CONFIG, InterNet, InterNetOutput
from minternet.results import (
    TABLE_COLUMNS,
    Report,
    evaluate,
    prediction_records,
    results_table,
)
from minternet.transforms import apply_affine, normalize, sample_matrix

REPO = Path(__file__).resolve().parents[1]
DATA_SAMPLES = REPO / "data_samples"
HEADER = "| Set | Arch | Input Size | MPJPE-single | MPJPE-interacting | MPJPE-all | MRRPE | APh |"


@pytest.fixture(scope="module")
def crops_256(samples_dir: Path) -> InterHandDataset:
    return InterHandDataset(samples_dir, train=False, input_size=256)


@pytest.fixture(scope="module")
def oracle(crops_256: InterHandDataset) -> dict[str, np.ndarray]:
    return oracle_predictions(crops_256, HeatmapCodec())


def test_oracle_on_the_real_frames_is_the_quantisation_floor(
    crops_256: InterHandDataset, oracle: dict[str, np.ndarray]
) -> None:
    assert oracle["keypoints"].shape == (4, 42, 3) and oracle["hand_type"].dtype == bool
    assert np.array_equal(oracle["index"], np.arange(4))
    result = score_predictions(oracle, crops_256)
    assert 0 < result["MPJPE_all"] < 4
    assert 0 < result["MPJPE_single"] < 4 and 0 < result["MPJPE_interacting"] < 4
    assert 0 <= result["MRRPE"] < 10  # two interacting frames with both wrists valid
    assert result["APh"] == 1.0
    # Every joint is valid in the same number of frames of each category (one right-only,
    # one left-only, two full interacting frames), so both averages coincide here.
    original = score_predictions(oracle, crops_256, protocol="original")
    assert original == pytest.approx(result, rel=1e-5)


def test_average_pose_predicts_the_training_mean_in_every_crop(
    crops_256: InterHandDataset, oracle: dict[str, np.ndarray]
) -> None:
    samples = [crops_256[i] for i in range(len(crops_256))]
    valid = np.stack([s["joint_valid"] for s in samples])
    keypoints = np.stack([s["keypoints"] for s in samples]).astype(np.float64)
    mean = (keypoints * valid[..., None]).sum(0) / valid.sum(0)[:, None]
    roots = [float(s["rel_root_depth"]) for s in samples if s["rel_root_valid"] > 0]
    baseline = average_pose_predictions(crops_256, crops_256, HeatmapCodec())
    for j, sample in enumerate(samples):  # back into each crop, the same pose every time
        in_crop = apply_affine(sample_matrix(sample), baseline["keypoints"][j, :, :2])
        assert np.allclose(in_crop, mean[:, :2], atol=1e-3)
        assert np.allclose(baseline["keypoints"][j, :, 2], mean[:, 2], atol=1e-4)
    assert np.array_equal(baseline["hand_type"], np.stack([s["hand_type"] > 0 for s in samples]))
    assert np.allclose(baseline["rel_root_depth"], np.mean(roots), atol=1e-3)
    scores = score_predictions(baseline, crops_256)
    assert scores["APh"] == 1.0
    assert scores["MPJPE_all"] > score_predictions(oracle, crops_256)["MPJPE_all"] + 10


def test_oracle_keypoints_land_within_half_a_voxel_of_the_projection(
    crops_256: InterHandDataset, oracle: dict[str, np.ndarray]
) -> None:
    # Half a heatmap voxel is 2 crop px, i.e. 2 s / 256 original px for a box of side s.
    index = crops_256.index
    cam = index["joint_cam"].astype(np.float64)
    uv = index["focal"][:, None] * cam[..., :2] / cam[..., 2:] + index["princpt"][:, None]
    side = 1.25 * index["bbox"][:, 2:].max(axis=1)
    valid = index["joint_valid"] > 0
    off = np.abs(oracle["keypoints"][..., :2] - uv).max(axis=-1)
    assert (off <= (2 * side / 256)[:, None] + 1e-3)[valid].all()


def test_prediction_records_carry_the_frames_with_their_ground_truth(
    crops_256: InterHandDataset, oracle: dict[str, np.ndarray]
) -> None:
    assert len(prediction_records(oracle, crops_256, frames=10)) == len(crops_256) == 4
    records = prediction_records(oracle, crops_256, frames=3)
    assert len(records) == 3
    json.loads(json.dumps(records))  # plain JSON values
    index = crops_256.index
    rows = [int(np.flatnonzero(index["image_path"] == r["image"].encode())[0]) for r in records]
    assert rows[0] == 0 and rows[-1] == len(crops_256) - 1 and rows == sorted(rows)
    for row, record in zip(rows, records, strict=True):
        assert (crops_256.root / record["image"]).is_file()
        assert record["gt_hand_type"] == index["hand_type"][row].astype(int).tolist()
        assert record["hand_type"] == record["gt_hand_type"]  # the oracle's is the GT's
        valid = np.array(record["joint_valid"]) > 0
        pred, gt = np.array(record["keypoints"]), np.array(record["gt_keypoints"])
        assert gt[20, 2] == gt[41, 2] == 0  # z relative to each hand's own wrist
        # The oracle lands within half a voxel in u, v (2 crop px) and one depth bin in z.
        side = 1.25 * index["bbox"][row, 2:].max()
        assert (np.abs(pred - gt)[valid, :2] <= 2 * side / 256 + 0.02).all()
        assert (np.abs(pred - gt)[valid, 2] <= 6.25 + 0.02).all()
        at = int(np.flatnonzero(oracle["index"] == row)[0])
        assert record["rel_root_depth"] == pytest.approx(oracle["rel_root_depth"][at], abs=0.01)
        assert record["gt_rel_root_depth"] == pytest.approx(index["rel_root_depth"][row], abs=0.01)


class PeakModel(nn.Module):
    """A stand-in InterNet whose every joint peaks at one known voxel."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SMALL_CONFIG
        self.input_size = SMALL_CONFIG.input_size
        self.weight = nn.Parameter(torch.zeros(()))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> InterNetOutput:
        self.inputs.append(x)
        heatmaps = torch.zeros(len(x), 42, 16, 16, 16)
        heatmaps[:, :, 10, 3, 5] = 1.0  # (z, y, x) voxel
        return InterNetOutput(
            heatmaps, torch.full((len(x), 1), 12.0), torch.tensor([[2.0, -1.0]]).repeat(len(x), 1)
        )


def test_predict_decodes_and_maps_back_to_the_original_image(samples_dir: Path) -> None:
    dataset = InterHandDataset(samples_dir, train=False, input_size=128)
    model = PeakModel().train()
    out = predict(model, dataset, batch_size=3)
    # Voxel x 5, y 3 -> crop px 40, 24 (128 / 16 px per voxel); u = x s / 128 + c - s / 2.
    x, y, w, h = dataset.index["bbox"].astype(np.float64).T
    side = 1.25 * np.maximum(w, h)
    expected_u = 40 * side / 128 + (x + w / 2) - side / 2
    expected_v = 24 * side / 128 + (y + h / 2) - side / 2
    assert out["keypoints"][..., 0] == pytest.approx(
        np.repeat(expected_u[:, None], 42, 1), abs=1e-3
    )
    assert out["keypoints"][..., 1] == pytest.approx(
        np.repeat(expected_v[:, None], 42, 1), abs=1e-3
    )
    assert np.all(out["keypoints"][..., 2] == (10 / 16 - 0.5) * 400)  # 50 mm
    assert np.all(out["rel_root_depth"] == (12 / 16 - 0.5) * 400)  # 100 mm
    assert out["hand_type"].tolist() == [[True, False]] * 4
    assert np.array_equal(out["index"], np.arange(4)) and out["sample_valid"].all()
    assert model.training  # put back in the mode it came in
    # The images reach the model ImageNet-normalised: a 0-255 input would average ~100.
    images = torch.cat(model.inputs)
    assert images.dtype == torch.float32 and images.shape == (4, 3, 128, 128)
    assert -3 < images.mean() < 3


def test_predict_refuses_crops_it_cannot_map_back(samples_dir: Path) -> None:
    with pytest.raises(ValueError, match="train=False"):
        predict(PeakModel(), InterHandDataset(samples_dir, train=True, input_size=128))
    with pytest.raises(ValueError, match="256 px, the model takes 128"):
        predict(PeakModel(), InterHandDataset(samples_dir, train=False, input_size=256))


def test_random_small_model_gives_finite_metrics(samples_dir: Path) -> None:
    torch.manual_seed(0)
    model = InterNet(SMALL_CONFIG)
    dataset = InterHandDataset(samples_dir, train=False, input_size=model.input_size)
    for protocol in ("mmpose", "original"):
        result = evaluate_model(model, dataset, batch_size=2, protocol=protocol)
        assert list(result) == list(METRIC_KEYS)
        assert all(math.isfinite(v) for v in result.values())
        assert 0 <= result["APh"] <= 1


def test_evaluate_checkpoint_matches_the_model_it_saved(samples_dir: Path, tmp_path: Path) -> None:
    # The checkpoint's own config must rebuild the small model (128 px input, 16^3 grid),
    # and the reloaded weights must score what the in-memory model scores.
    torch.manual_seed(1)
    model = InterNet(SMALL_CONFIG)
    save_model(model, tmp_path / "small.pth")
    dataset = InterHandDataset(samples_dir, train=False, input_size=128)
    expected = evaluate_model(model, dataset)
    got = evaluate(samples_dir, checkpoint=tmp_path / "small.pth", device="cpu")
    assert got.input_size == 128 and got.metrics == pytest.approx(expected, rel=1e-5)


def test_skipped_images_count_nowhere(
    crops_256: InterHandDataset, oracle: dict[str, np.ndarray]
) -> None:
    skipped = {**oracle, "sample_valid": np.array([False, True, True, True])}
    gt = ground_truth(crops_256, skipped)
    assert not gt["joint_valid"][0].any() and gt["hand_type_valid"][0] == 0
    assert np.array_equal(gt["joint_valid"][1:], crops_256.index["joint_valid"][1:])


def test_results_table_formats_mm_fraction_and_nan() -> None:
    metrics = dict(zip(METRIC_KEYS, [9.691, 13.7249, 11.86, float("nan"), 0.987], strict=True))
    report = Report("val", "oracle", 256, "val", 5, None, "mmpose", metrics)
    lines = results_table([report]).splitlines()
    assert lines[0] == HEADER and tuple(c.strip() for c in HEADER.strip("|").split("|")) == (
        TABLE_COLUMNS
    )
    assert lines[2] == "| val | oracle | 256x256 | 9.69 | 13.72 | 11.86 | n/a | 0.99 |"
    assert json.dumps(report.to_json())  # NaN becomes null, so the JSON is valid
    assert report.to_json()["metrics"]["MRRPE"] is None


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_oracle_on_the_real_frames(
    samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out" / "oracle.json"
    code, out, _ = run_cli(
        ["--oracle", "--data", str(samples_dir), "--json", str(out_json)], capsys
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == HEADER and "| oracle | 256x256 |" in lines[2]
    saved = json.loads(out_json.read_text())
    assert list(saved["metrics"]) == list(METRIC_KEYS)
    assert saved["samples"] == 4 and saved["split"] is None and saved["checkpoint"] is None
    assert 0 < saved["metrics"]["MPJPE_all"] < 4 and saved["metrics"]["APh"] == 1.0


def test_cli_oracle_on_data_samples_val(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "val.json"
    args = ["--oracle", "--data", str(DATA_SAMPLES), "--split", "val", "--json", str(out_json)]
    code, out, _ = run_cli([*args, "--protocol", "original"], capsys)
    assert code == 0 and out.splitlines()[0] == HEADER
    saved = json.loads(out_json.read_text())
    assert saved["split"] == "val" and saved["samples"] == 120 and saved["protocol"] == "original"
    assert list(saved["metrics"]) == list(METRIC_KEYS)
    assert 0 < saved["metrics"]["MPJPE_all"] < 4 and saved["metrics"]["APh"] == 1.0


def test_cli_evaluates_a_saved_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "small.pth"
    save_model(InterNet(SMALL_CONFIG), checkpoint)
    out_json = tmp_path / "small.json"
    args = ["--checkpoint", str(checkpoint), "--data", str(DATA_SAMPLES), "--json", str(out_json)]
    code, out, _ = run_cli([*args, "--device", "cpu", "--batch-size", "40"], capsys)
    assert code == 0
    assert "| InterNet ResNet-18 (16x16x16) | 128x128 |" in out.splitlines()[2]
    saved = json.loads(out_json.read_text())
    assert saved["split"] == "test" and saved["samples"] == 120  # a tree defaults to test
    assert saved["checkpoint"] == str(checkpoint)
    assert all(math.isfinite(v) for v in saved["metrics"].values())


def test_cli_bad_input_exits_2_with_a_message(
    samples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.pth"
    code, out, err = run_cli(["--checkpoint", str(missing), "--data", str(samples_dir)], capsys)
    assert code == 2 and str(missing) in err and out == ""
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["--checkpoint", str(garbage), "--data", str(samples_dir)], capsys)
    assert code == 2 and "not a readable checkpoint" in err
    code, _, err = run_cli(["--oracle", "--data", str(samples_dir), "--split", "val"], capsys)
    assert code == 2 and "flat folder has no splits" in err
    bad_device = ["--checkpoint", str(garbage), "--data", str(samples_dir), "--device", "tpu9"]
    with pytest.raises(SystemExit) as exited:  # refused as the arguments are parsed
        run_cli(bad_device, capsys)
    assert exited.value.code == 2 and "'tpu9' is not a device" in capsys.readouterr().err
    code, _, err = run_cli(["--oracle", "--data", str(tmp_path / "no_data")], capsys)
    assert code == 2 and "no_data" in err


def test_cli_as_a_process_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    proc = subprocess.run(
        [sys.executable, "-m", "minternet", "eval", "--checkpoint", str(missing), "--data", "x"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr


def test_mixed_precision_predict_agrees_with_float32() -> None:
    # bf16 autocast + channels_last (CUDA's default) against float32, on the CPU. Joints
    # whose float32 maximum beats the runner-up by more than bfloat16's rounding must land
    # on the same voxel, so the same keypoint; the others are near-ties either way.
    torch.manual_seed(0)
    model = InterNet(SMALL_CONFIG)
    dataset = InterHandDataset(DATA_SAMPLES, "test", train=False, input_size=128)
    dataset = dataset.select(np.arange(24))
    seen = []
    model.head.left_hand_head.final_layer.register_forward_hook(
        lambda module, inputs, output: seen.append(
            (output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last))
        )
    )
    reference = predict(model, dataset, batch_size=8, mixed=False)
    mixed = predict(model, dataset, batch_size=8, mixed=True)
    assert seen == [(torch.float32, False)] * 3 + [(torch.bfloat16, True)] * 3
    with torch.no_grad():
        images = torch.stack([torch.from_numpy(dataset[i]["image"]) for i in range(24)])
        heatmaps = model.eval()(normalize(images.permute(0, 3, 1, 2))).heatmaps
    top = heatmaps.flatten(2).topk(2, dim=-1).values
    clear = ((top[..., 0] - top[..., 1]) > 2**-6 * top[..., 0].abs()).numpy()
    same = (mixed["keypoints"] == reference["keypoints"]).all(-1)
    assert clear.mean() > 0.5 and same[clear].all()
    assert np.array_equal(mixed["hand_type"], reference["hand_type"])
    # The root depth: within one bfloat16 step of its 400 mm range.
    assert np.abs(mixed["rel_root_depth"] - reference["rel_root_depth"]).max() <= 400 * 2**-7
    for key in ("index", "sample_valid"):
        assert np.array_equal(mixed[key], reference[key])
