"""Published checkpoints: verified downloads from a local server, and safe loading.

The server (127.0.0.1, started and stopped here) stands in for download.openmmlab.com through
$MINTERNET_WEIGHTS_URL. The file it serves is deterministic InterNet weights in mmpose's
layout with the ``meta`` an mmengine run writes, named as OpenMMLab names its files: with
the first 8 hex digits of its own sha256.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Server

from minternet import hub
from minternet.__main__ import main
from minternet.checkpoint import UnsafeCheckpointError, read_checkpoint
from minternet.convert import load_mmpose_checkpoint
from minternet.model import SMALL_CONFIG, InterNet
from minternet.transfer import ChecksumError

# ResNet-18, 16 depth bins: small, and a 256 px input as every mmpose file implies (8 * 2**2).
STANDIN = dataclasses.replace(SMALL_CONFIG, heatmap_size=32)
CONFIG_TEXT = "model = dict(type='TopdownPoseEstimator', backbone=dict(type='ResNet', depth=50))\n"


def mmengine_meta() -> dict:
    """What mmengine's CheckpointHook writes into ``meta`` (and mmcv's ``hook_msgs``)."""
    return {
        "cfg": CONFIG_TEXT,
        "seed": 0,
        "experiment_name": "internet_res50_4xb16-20e_interhand3d-256x256_20230913",
        "time": "20230913_101010",
        "mmengine_version": "0.8.4",
        "epoch": 20,
        "iter": 425_340,
        "dataset_meta": {
            "dataset_name": "interhand3d",
            "num_keypoints": 42,
            "flip_indices": [*range(21, 42), *range(21)],
            "skeleton_links": [(0, 1), (1, 2)],
            "sigmas": np.full(42, 0.025, dtype=np.float32),
            "joint_weights": np.ones(42, dtype=np.float64),
            "keypoint_colors": np.zeros((42, 3), dtype=np.int64),
        },
        "hook_msgs": {"best_score": np.float64(13.36), "best_ckpt": "best_MPJPE_all.pth"},
    }


def write_checkpoint(path: Path, meta: dict, seed: int = 0) -> InterNet:
    torch.manual_seed(seed)
    model = InterNet(STANDIN)
    torch.save(
        {
            "meta": meta,
            "state_dict": collections.OrderedDict(model.state_dict()),
            "param_schedulers": [{"milestones": collections.Counter([15, 17]), "gamma": 0.1,
                                  "last_step": 20, "by_epoch": True}],
        },
        path,
    )
    return model


def digest_named(path: Path, stem: str) -> Path:
    """``path`` renamed as OpenMMLab names a published file: STEM-<sha256[:8]>_<date>.pth."""
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return path.rename(path.with_name(f"{stem}-{prefix}_20261204.pth"))


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A served folder with a good file and a tampered one (a byte changed after naming)."""
    root = tmp_path_factory.mktemp("openmmlab")
    write_checkpoint(root / "good.pth", mmengine_meta())
    good = digest_named(root / "good.pth", "internet_standin")
    write_checkpoint(root / "bad.pth", mmengine_meta(), seed=1)
    bad = digest_named(root / "bad.pth", "internet_tampered")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    return {"root": root, "good": good, "bad": bad}


@pytest.fixture
def server(release: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    srv = Server(release["root"])
    monkeypatch.setenv(hub.ENV_WEIGHTS_URL, srv.origin)
    monkeypatch.delenv(hub.ENV_WEIGHTS, raising=False)
    yield srv
    srv.stop()


def published(path: Path) -> hub.PublishedCheckpoint:
    return hub.PublishedCheckpoint("stand-in", f"{hub.WEIGHTS_URL}/mmpose/test/{path.name}")


def test_the_published_checkpoints_and_their_numbers() -> None:
    # Addresses and numbers as OpenMMLab's model zoo publishes them (test H+M, then val M).
    one, zero = hub.CHECKPOINTS["mmpose-1.x"], hub.CHECKPOINTS["mmpose-0.x"]
    assert one.url == ("https://download.openmmlab.com/mmpose/v1/hand_3d_keypoint/internet/"
                       "interhand3d/internet_res50_interhand3d-d6ff20d6_20230913.pth")
    assert zero.url == ("https://download.openmmlab.com/mmpose/hand3d/internet/"
                        "res50_intehand3dv1.0_all_256x256-42b7f2ac_20210702.pth")
    assert (one.sha256_prefix, zero.sha256_prefix) == ("d6ff20d6", "42b7f2ac")
    order = ("MPJPE_single", "MPJPE_interacting", "MPJPE_all", "MRRPE", "APh")
    rows = {(c.name, s): [c.results[s][k] for k in order]
            for c in (one, zero) for s in ("test (H+M)", "val (M)")}
    assert rows == {
        ("mmpose-1.x", "test (H+M)"): [9.69, 13.72, 11.86, 29.27, 0.99],
        ("mmpose-1.x", "val (M)"): [11.30, 15.57, 13.36, 32.15, 0.98],
        ("mmpose-0.x", "test (H+M)"): [9.47, 13.40, 11.59, 29.28, 0.99],
        ("mmpose-0.x", "val (M)"): [11.22, 15.23, 13.16, 31.73, 0.98],
    }


def test_download_is_verified_cached_and_loads(
    server: Server, release: dict[str, Path], tmp_path: Path
) -> None:
    path = hub.checkpoint_file(published(release["good"]), tmp_path / "weights", progress=False)
    assert path == tmp_path / "weights" / release["good"].name
    assert path.read_bytes() == release["good"].read_bytes()
    assert server.gets()[0][1] == release["good"].name
    again = hub.checkpoint_file(published(release["good"]), tmp_path / "weights", progress=False)
    assert again == path and len(server.gets()) == 1  # verified from the cache, not fetched
    model = load_mmpose_checkpoint(path)
    reference = write_checkpoint(tmp_path / "same.pth", {})
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_tampered_file_is_deleted_and_refused(
    server: Server, release: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "weights"
    expected = release["bad"].name.split("-")[-1][:8]
    with pytest.raises(ChecksumError) as info:
        hub.checkpoint_file(published(release["bad"]), cache, progress=False)
    actual = hashlib.sha256(release["bad"].read_bytes()).hexdigest()[:8]
    assert (info.value.expected, info.value.actual) == (expected, actual) and expected != actual
    assert expected in str(info.value) and actual in str(info.value)
    assert not any(cache.iterdir())  # neither the file nor a partial one is left


def test_cut_transfer_is_resumed(server: Server, release: dict[str, Path], tmp_path: Path) -> None:
    name = release["good"].name
    server.drop[name] = 1  # the first answer stops half-way and hangs up
    path = hub.checkpoint_file(published(release["good"]), tmp_path / "w", progress=False)
    assert path.read_bytes() == release["good"].read_bytes()
    (_, _, first), (_, _, second) = server.gets(name)
    size = release["good"].stat().st_size
    assert first is None and second == f"bytes={size // 2}-"  # the rest only


def test_missing_file_names_what_to_get_and_where(
    server: Server, tmp_path: Path
) -> None:
    with pytest.raises(hub.WeightsUnavailableError) as info:
        hub.checkpoint_file("mmpose-1.x", tmp_path / "weights", progress=False)
    message = str(info.value)
    assert "internet_res50_interhand3d-d6ff20d6_20230913.pth" in message
    assert server.origin + "/mmpose/v1/hand_3d_keypoint/internet/interhand3d/" in message  # tried
    assert hub.CHECKPOINTS["mmpose-1.x"].url in message  # where to get it by hand
    assert str(tmp_path / "weights") in message and hub.ENV_WEIGHTS in message


def test_no_network_gives_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(hub.ENV_WEIGHTS_URL, "http://127.0.0.1:9")  # nothing listens
    monkeypatch.delenv(hub.ENV_WEIGHTS, raising=False)
    with pytest.raises(hub.WeightsUnavailableError, match="could not be downloaded"):
        hub.checkpoint_file("mmpose-0.x", tmp_path, progress=False)


def test_weights_folder_with_and_without_the_file(
    release: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(hub.ENV_WEIGHTS_URL, "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv(hub.ENV_WEIGHTS, str(release["root"]))
    assert hub.checkpoint_file(published(release["good"])) == release["good"]
    with pytest.raises(ChecksumError):
        hub.checkpoint_file(published(release["bad"]))
    assert release["bad"].is_file()  # the user's own folder is never touched
    monkeypatch.setenv(hub.ENV_WEIGHTS, str(tmp_path))
    with pytest.raises(hub.WeightsUnavailableError) as info:
        hub.checkpoint_file("mmpose-1.x")
    assert str(tmp_path) in str(info.value) and "d6ff20d6_20230913.pth" in str(info.value)


def test_a_url_without_a_digest_in_its_name_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be verified"):
        hub.checkpoint_file("https://example.org/weights/internet.pth")
    with pytest.raises(ValueError, match="neither a published checkpoint"):
        hub.checkpoint_file("mmpose-2.x")


def test_eval_takes_a_published_name_or_url(
    server: Server, release: dict[str, Path], samples_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = published(release["good"]).url
    assert main(["eval", "--checkpoint", url, "--data", str(samples_dir), "--device", "cpu"]) == 0
    assert "InterNet ResNet-18" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", "mmpose-1.x", "--data", str(samples_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minternet eval: checkpoint mmpose-1.x needs internet_res50_interhand3d")


def test_mmengine_meta_loads_under_numpy_1_and_2_names(tmp_path: Path) -> None:
    path = tmp_path / "mmengine.pth"
    write_checkpoint(path, mmengine_meta())
    # The same file as numpy 1 pickles it (numpy.core instead of numpy._core).
    old = tmp_path / "numpy1.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(item, data)
    for file in (path, old):
        loaded = read_checkpoint(file)
        meta = loaded["meta"]
        assert meta["cfg"] == CONFIG_TEXT and meta["epoch"] == 20
        assert np.array_equal(meta["dataset_meta"]["sigmas"], np.full(42, 0.025, np.float32))
        assert meta["dataset_meta"]["keypoint_colors"].dtype == np.int64
        assert meta["hook_msgs"]["best_score"] == 13.36
        assert loaded["param_schedulers"][0]["milestones"] == {15: 1, 17: 1}
        assert load_mmpose_checkpoint(file).config == STANDIN


class Payload:
    """Creates ``marker`` when unpickled: how a malicious checkpoint runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_malicious_meta_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write_checkpoint(path, {**mmengine_meta(), "hook_msgs": {"best": Payload(marker)}})
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    assert "open" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(UnsafeCheckpointError):
        load_mmpose_checkpoint(path)
    assert not marker.exists()
    # The payload is real: an unrestricted load runs it.
    torch.load(io.BytesIO(path.read_bytes()), weights_only=False)
    assert marker.exists()
