"""minternet.predict and the predict command, against the evaluation path on the real frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import minternet
from minternet.__main__ import main
from minternet.camera import Camera
from minternet.checkpoint import save_model
from minternet.dataset import InterHandDataset
from minternet.evaluate import predict as predict_split
from minternet.model import SMALL_CONFIG, InterNet

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = next((REPO / "data_samples" / "images" / "test").rglob("*.jpg"))


@pytest.fixture(scope="module")
def model() -> InterNet:
    torch.manual_seed(0)
    return InterNet(SMALL_CONFIG).eval()


@pytest.fixture(scope="module")
def checkpoint(model: InterNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "small.pth"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def frames(samples_dir: Path, model: InterNet) -> InterHandDataset:
    return InterHandDataset(samples_dir, train=False, input_size=model.input_size)


@pytest.mark.parametrize("flip_test", [False, True])
def test_predict_gives_what_evaluate_gives(
    model: InterNet, frames: InterHandDataset, flip_test: bool
) -> None:
    expected = predict_split(model, frames, batch_size=1, flip_test=flip_test)
    for i in range(len(frames)):
        raw = frames.raw(i)
        got = minternet.predict(model, raw["image"], raw["bbox"], flip_test=flip_test)
        assert np.array_equal(got.keypoints_uvz, expected["keypoints"][i])
        assert np.array_equal(got.hand_present, expected["hand_type"][i])
        assert got.rel_root_depth == pytest.approx(float(expected["rel_root_depth"][i]), abs=1e-4)


def test_hand_probabilities_are_the_sigmoid_of_the_logits(
    model: InterNet, frames: InterHandDataset
) -> None:
    raw = frames.raw(0)
    got = minternet.predict(model, raw["image"], raw["bbox"])
    crop = torch.from_numpy(frames[0]["image"]).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model(minternet.normalize(crop)).hand_logits[0].numpy()
    assert np.allclose(got.hand_type, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert np.array_equal(got.hand_present, logits > 0)


def test_joint_cam_is_the_back_projection_at_the_given_depth(
    model: InterNet, frames: InterHandDataset
) -> None:
    raw = frames.raw(1)
    right_depth = float(raw["abs_depth"][0])
    got = minternet.predict(model, raw["image"], raw["bbox"], focal=raw["focal"],
                            princpt=raw["princpt"], root_depth=right_depth)
    assert got.defaults == () and got.anchor in ("right", "left")
    camera = Camera(np.zeros(3), np.eye(3), raw["focal"], raw["princpt"])
    # Projecting the camera-space joints gives back the predicted pixels.
    assert np.allclose(camera.camera_to_pixel(got.joint_cam), got.keypoints_uvz[:, :2], atol=1e-4)
    # Each joint's depth is its hand's reference depth plus its predicted z, as mmpose's
    # metrics add z to the wrist depth: the anchor hand's reference is root_depth, the
    # other hand's is Delta away.
    reference = got.joint_cam[:, 2] - got.keypoints_uvz[:, 2]
    right, left = reference[:21], reference[21:]
    assert np.allclose(right, right[0], atol=1e-4) and np.allclose(left, left[0], atol=1e-4)
    assert left[0] - right[0] == pytest.approx(got.rel_root_depth, abs=1e-4)
    assert (right[0] if got.anchor == "right" else left[0]) == pytest.approx(right_depth)


def test_defaults_are_stated(model: InterNet, frames: InterHandDataset) -> None:
    image = frames.raw(2)["image"]
    got = minternet.predict(model, image)
    height, width = image.shape[:2]
    assert got.defaults == ("bbox", "focal", "princpt", "root_depth")
    assert np.array_equal(got.bbox, [0, 0, width, height])
    assert np.allclose(got.focal, 1.2 * max(width, height))
    assert np.allclose(got.princpt, [(width - 1) / 2, (height - 1) / 2])
    note = got.to_json()["note"]
    assert "1000 mm" in note and "focal" in note and "princpt" in note


def test_bad_boxes_and_intrinsics_name_the_image(model: InterNet, frames: InterHandDataset) -> None:
    image = frames.raw(0)["image"]
    width = image.shape[1]
    for box, why in (([10, 10, 0, 5], "width or height <= 0"),
                     ([width + 5, 0, 20, 20], "outside"),
                     ([-50, -50, 40, 40], "outside"),
                     ([0, 0, np.nan, 4], "finite")):
        with pytest.raises(ValueError, match=why) as info:
            minternet.predict(model, image, box, source="frame.jpg")
        assert str(info.value).startswith("frame.jpg: bbox")
    with pytest.raises(ValueError, match=r"frame\.jpg: focal"):
        minternet.predict(model, image, focal=[1000, -1], source="frame.jpg")
    with pytest.raises(ValueError, match="uint8"):
        minternet.predict(model, image.astype(np.float32))


def test_cli_on_real_frames_and_a_synthetic_image(
    checkpoint: Path, frames: InterHandDataset, samples_dir: Path, tmp_path: Path,
    model: InterNet, capsys: pytest.CaptureFixture[str],
) -> None:
    raws = [frames.raw(i) for i in range(2)]
    paths = [str(raw["image_path"]) for raw in raws]
    boxes = [",".join(f"{v:.6f}" for v in raw["bbox"]) for raw in raws]
    out = tmp_path / "out"
    args = ["predict", *paths, str(SAMPLE_IMAGE), "--checkpoint", str(checkpoint),
            "--out", str(out), "--device", "cpu", "--root-depth", "900"]
    assert main([*args, "--bbox", boxes[0], "--bbox", boxes[1]]) == 2  # 2 boxes, 3 images
    assert "2 --bbox for 3 images" in capsys.readouterr().err
    assert main(["predict", *paths, "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", "--root-depth", "900", "--bbox", boxes[0], "--bbox",
                 boxes[1]]) == 0
    assert main(["predict", str(SAMPLE_IMAGE), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--device", "cpu", "--flip-test"]) == 0
    err = capsys.readouterr().err
    assert f"{SAMPLE_IMAGE}: no --bbox, so the whole image is taken" in err
    for path, raw in zip(paths, raws, strict=True):
        stem = Path(path).stem
        result = json.loads((out / f"{stem}.json").read_text())
        expected = minternet.predict(model, raw["image"], raw["bbox"], root_depth=900)
        assert np.allclose(result["keypoints_uvz"], expected.keypoints_uvz)
        assert np.allclose(result["joint_cam"], expected.joint_cam)
        assert result["hand_present"] == expected.hand_present.tolist()
        assert result["root_depth"] == 900 and result["defaults"] == ["focal", "princpt"]
        png = cv2.imread(str(out / f"{stem}.png"))
        assert png is not None and png.shape[0] > 100
        html = (out / f"{stem}.html").read_text()
        assert 'src="plotly.min.js"' in html and "camera space" in html
    synthetic = json.loads((out / f"{SAMPLE_IMAGE.stem}.json").read_text())
    assert synthetic["flip_test"] is True and np.array(synthetic["joint_cam"]).shape == (42, 3)
    assert synthetic["defaults"] == ["bbox", "focal", "princpt", "root_depth"]
    assert len(list(out.glob("plotly*.js"))) == 1


def test_cli_bad_input_names_the_image_and_the_argument(
    checkpoint: Path, frames: InterHandDataset, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = str(frames.raw(0)["image_path"])
    height, width = frames.raw(0)["image"].shape[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    base = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), "--device", "cpu"]
    cases = [
        ([str(broken)], f"{broken}: cannot be read as an image"),
        ([str(tmp_path / "absent.jpg")], "absent.jpg: no such image file"),
        ([image, "--bbox", f"{width + 1},0,10,10"], f"{image}: --bbox {width + 1},0,10,10 lies "
                                                    f"outside the {width}x{height} image"),
        ([image, "--bbox", "5,5,0,10"], f"{image}: --bbox 5,5,0,10 has a width or height <= 0"),
    ]
    for args, message in cases:
        assert main(["predict", *args, *base]) == 2
        assert message in capsys.readouterr().err
    for flag, value in (("--focal", "1000"), ("--focal", "1000,-3"), ("--bbox", "1,2,3"),
                        ("--root-depth", "abc")):
        with pytest.raises(SystemExit) as info:
            main(["predict", image, *base, flag, value])
        assert info.value.code == 2
        assert f"argument {flag}: '{value}' is not" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
