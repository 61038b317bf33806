"""Checkpoint conversion: mmpose 1.x round trip, 0.x layout, strict errors, unreadable files.

Small models keep the files a few MB; one test writes the full model (about 190 MB) once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from minternet.checkpoint import save_model
from minternet.convert import (
    CheckpointMismatchError,
    load_mmpose_checkpoint,
)
from minternet.model import SMALL_CONFIG as SMALL
from minternet.model import InterNet


@pytest.fixture
def small() -> InterNet:
    torch.manual_seed(0)
    model = InterNet(SMALL)
    # A few BN statistics away from 1/0 and a non-zero counter, so buffers are checked too.
    model(torch.randn(2, 3, 128, 128))
    return model.eval()


def _outputs(model: InterNet, seed: int = 3) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(seed)
    with torch.no_grad():
        return tuple(model(torch.randn(2, 3, model.input_size, model.input_size)))


def _assert_same_state(a: InterNet, b: InterNet) -> None:
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k


def _assert_same(a: InterNet, b: InterNet) -> None:
    """Same tensors under the same names, and bit-identical outputs on one random input."""
    _assert_same_state(a, b)
    for x, y in zip(_outputs(a), _outputs(b), strict=True):
        assert torch.equal(x, y)


def test_save_then_load_is_bit_identical(small: InterNet, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ckpt.pth"
    save_model(small, path, meta={"epoch": 3})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "meta"}
    assert raw["meta"]["epoch"] == 3 and raw["meta"]["minternet"] == dataclasses.asdict(SMALL)
    assert list(raw["state_dict"]) == list(small.state_dict())
    assert all(t.is_contiguous() and t.device.type == "cpu" for t in raw["state_dict"].values())
    loaded = load_mmpose_checkpoint(path)
    assert not loaded.training and loaded.config == SMALL
    _assert_same(small, loaded)


def test_full_model_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = InterNet().eval()
    path = tmp_path / "full.pth"
    save_model(model, path)
    loaded = load_mmpose_checkpoint(path)
    _assert_same_state(model, loaded)


def test_config_inferred_without_meta(small: InterNet, tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    torch.save({"state_dict": small.state_dict()}, path)  # as an mmpose file: no minternet meta
    # The heatmap size is not in the weights: mmpose's 256 x 256 input is assumed ...
    assert load_mmpose_checkpoint(path).config == dataclasses.replace(SMALL, heatmap_size=32)
    # ... unless given; every other setting comes from the tensor shapes.
    loaded = load_mmpose_checkpoint(path, heatmap_size=16)
    assert loaded.config == SMALL
    _assert_same(small, loaded)


def test_mmpose_0x_layout_loads(small: InterNet, tmp_path: Path) -> None:
    state = {
        ("keypoint_head." + k.removeprefix("head.") if k.startswith("head.") else k): v
        for k, v in small.state_dict().items()
    }
    assert any(k.startswith("keypoint_head.right_hand_head.deconv_layers.") for k in state)
    path = tmp_path / "v0.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    _assert_same(small, load_mmpose_checkpoint(path, heatmap_size=SMALL.heatmap_size))


def test_mismatch_names_missing_unexpected_and_shape(small: InterNet, tmp_path: Path) -> None:
    state = dict(small.state_dict())
    del state["head.root_head.fc.0.bias"]
    state["head.extra.weight"] = torch.zeros(3)
    state["head.hand_type_head.fc.2.bias"] = torch.zeros(5)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state, "meta": {"minternet": dataclasses.asdict(SMALL)}}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_mmpose_checkpoint(path)
    message = str(err.value)
    assert "missing [head.root_head.fc.0.bias]" in message
    assert "unexpected [head.extra.weight]" in message
    assert "head.hand_type_head.fc.2.bias (file (5,), model (2,))" in message


def test_files_that_hold_no_model_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=r"list\.pth: not a model checkpoint"):
        load_mmpose_checkpoint(path)
    path.write_bytes(path.read_bytes()[:50])  # cut short
    with pytest.raises(ValueError, match=r"list\.pth: not a readable checkpoint"):
        load_mmpose_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"none\.pth"):
        load_mmpose_checkpoint(tmp_path / "none.pth")


def test_save_model_leaves_the_previous_file_whole(
    small: InterNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pth"
    save_model(small, path)
    good = path.read_bytes()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_model(InterNet(SMALL), path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["model.pth"]
