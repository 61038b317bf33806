"""What must not happen to a run or an evaluation: a run folder overwritten, training lost to
a failing validation, settings ignored on resume, duplicate epochs, unreadable files as
tracebacks, loose arguments, temporaries left behind.

Runs use conftest's synthetic tree and its ResNet-18 at 64 x 64.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SMALL_RUN as SMALL
from conftest import options

from minternet import backbone as backbone_module
from minternet import train as train_module
from minternet.__main__ import main as cli_main
from minternet.checkpoint import atomic_save, load_training_checkpoint, save_model
from minternet.config import TINY, TrainConfig
from minternet.convert import load_mmpose_checkpoint
from minternet.model import SMALL_CONFIG, InterNet
from minternet.train import train

ONE_EPOCH = {**SMALL, "epochs": "1", "batch_size": "8"}


@pytest.fixture(scope="module")
def finished(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder after one epoch (lr 1e-3, milestone 5); copy it before changing it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(TINY.replace(ONE_EPOCH), tree, run, progress=False, device="cpu")
    return run


def copy_run(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_folder_with_run_files_but_no_last_pth_is_never_overwritten(
    tree: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path)
    (run / "last.pth").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    config = TINY.replace(ONE_EPOCH)
    with pytest.raises(FileExistsError, match=r"already holds a run \(best\.pth, config\.json"):
        train(config, tree, run, progress=False, device="cpu")
    with pytest.raises(FileNotFoundError, match=r"no last\.pth to resume from"):
        train(config, tree, run, resume=True, progress=False, device="cpu")
    args = ["train", "--data", str(tree), "--out", str(run), "--quiet", *options(ONE_EPOCH)]
    assert cli_main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minternet train: ") and "no last.pth" in err
    assert len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.slow
def test_last_pth_is_saved_before_validation_and_a_resume_validates(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("validation crashed")

    monkeypatch.setattr(train_module, "evaluate_model", crash)
    config = TINY.replace({**ONE_EPOCH, "val_at_start": "false"})
    with pytest.raises(RuntimeError, match="validation crashed"):
        train(config, tree, tmp_path / "run", progress=False, device="cpu")
    saved = load_training_checkpoint(tmp_path / "run" / "last.pth")["meta"]["train"]
    assert saved["position"]["epoch"] == 1 and saved["pending"]["epoch"] == 1
    monkeypatch.undo()
    (record,) = train(config, tree, tmp_path / "run", resume=True, progress=False, device="cpu")
    # The epoch was not trained again: its record is the saved one, validated now.
    assert record["step"] == saved["pending"]["step"] and record["val"]["MPJPE_all"] > 0
    assert epochs(tmp_path / "run") == [1] and (tmp_path / "run" / "best.pth").is_file()


@pytest.mark.slow
def test_undecodable_validation_images_are_skipped_and_counted(
    tree: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(tree, tmp_path / "data"))
    first = sorted((data / "images" / "val").rglob("*.jpg"))[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 3])  # truncated
    config = TINY.replace({**ONE_EPOCH, "val_at_start": "false"})
    (record,) = train(config, data, tmp_path / "run", progress=False, device="cpu")
    assert record["val"]["skipped_images"] == 1 and record["val"]["MPJPE_all"] > 0
    args = ["eval", "--checkpoint", str(tmp_path / "run" / "last.pth"), "--data", str(data)]
    args += ["--split", "val", "--device", "cpu"]
    assert cli_main(args) == 2  # the default: stop, naming the file
    json_path = tmp_path / "eval.json"
    assert cli_main([*args, "--bad-images", "skip", "--json", str(json_path)]) == 0
    report = json.loads(json_path.read_text())
    assert report["skipped_images"] == 1 and report["samples"] == 8


@pytest.mark.slow
def test_resume_applies_and_records_lr_root_lr_scale_milestones_and_gamma(
    tree: Path, finished: Path, tmp_path: Path
) -> None:
    run = copy_run(finished, tmp_path)
    with (run / "metrics.jsonl").open("a") as f:  # a kill after records the checkpoint lacks
        f.write(json.dumps({"epoch": 2, "stale": True}) + "\n" + '{"epoch": 3, "tr')
    changed = TINY.replace({**ONE_EPOCH, "epochs": "2", "lr": "1e-4", "milestones": "1"})
    changed = changed.replace({"gamma": "0.5", "root_lr_scale": "0.25"})
    (run / ".last.pth.k1ll3d.tmp").write_bytes(b"left by a kill during a save")
    history = train(changed, tree, run, resume=True, progress=False, device="cpu")
    assert not (run / ".last.pth.k1ll3d.tmp").exists()
    assert [h["epoch"] for h in history] == epochs(run) == [1, 2]
    record = history[-1]
    assert "stale" not in record
    assert record["lr"] == pytest.approx(1e-4 * 0.5)  # the new schedule, one milestone passed
    optimizer = load_training_checkpoint(run / "last.pth")["optimizer"]
    lrs = [group["lr"] for group in optimizer["param_groups"]]
    assert lrs == pytest.approx([1e-4 * 0.5, 1e-4 * 0.5 * 0.25])  # the root head's is second
    assert record["resumed_with"]["root_lr_scale"] == {"from": TINY.root_lr_scale, "to": 0.25}
    assert record["resumed_with"]["lr"] == {"from": 1e-3, "to": 1e-4}
    assert record["resumed_with"]["milestones"] == {"from": list(TINY.milestones), "to": [1]}
    assert TrainConfig.load(run / "config.json") == changed
    wider = changed.replace({"deconv_channels": "32", "epochs": "3"})
    with pytest.raises(ValueError, match="trained with deconv_channels=16; a resumed run cannot"):
        train(wider, tree, run, resume=True, progress=False, device="cpu")


def test_a_checkpoint_with_one_parameter_group_is_refused_by_name(
    tree: Path, finished: Path, tmp_path: Path
) -> None:
    # Checkpoints written before the root head had its own rate hold one Adam group.
    run = copy_run(finished, tmp_path)
    ckpt = load_training_checkpoint(run / "last.pth")
    rest, root = ckpt["optimizer"]["param_groups"]
    rest["params"] = sorted(rest["params"] + root["params"])
    ckpt["optimizer"]["param_groups"] = [rest]
    atomic_save(ckpt, run / "last.pth")
    again = TINY.replace({**ONE_EPOCH, "epochs": "2"})
    refused = r"last\.pth: not a checkpoint this run can resume \(.*parameter groups"
    with pytest.raises(ValueError, match=refused):
        train(again, tree, run, resume=True, progress=False, device="cpu")


def test_duplicate_epochs_are_trimmed_to_the_checkpoint(
    tree: Path, finished: Path, tmp_path: Path
) -> None:
    run = copy_run(finished, tmp_path)
    (line,) = (run / "metrics.jsonl").read_text().splitlines()  # epoch 1
    again = json.dumps({**json.loads(line), "again": True})
    later = [json.dumps({"epoch": e}) for e in (2, 2, 3)]
    (run / "metrics.jsonl").write_text("\n".join([line, again, *later]) + "\n")
    history = train(TINY.replace(ONE_EPOCH), tree, run, resume=True, progress=False, device="cpu")
    assert epochs(run) == [1] and history[0]["again"]  # the latest record of epoch 1


@pytest.mark.slow
def test_unreadable_last_pth_and_config_json_are_one_line_errors(
    tree: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path)
    args = ["train", "--data", str(tree), "--out", str(run), "--quiet", "--resume"]
    good = (run / "last.pth").read_bytes()
    other = InterNet(SMALL_CONFIG)  # weights of another shape
    wrong = torch.load(run / "last.pth", weights_only=True)
    wrong["state_dict"] = other.state_dict()
    cases = {
        "truncated": lambda: (run / "last.pth").write_bytes(good[: len(good) // 2]),
        "random": lambda: (run / "last.pth").write_bytes(bytes(range(256)) * 64),
        "wrong shapes": lambda: torch.save(wrong, run / "last.pth"),
    }
    for case, damage in cases.items():
        damage()
        assert cli_main(args) == 2, case
        err = capsys.readouterr().err
        assert "last.pth" in err and len(err.splitlines()) == 1, (case, err)
    (run / "last.pth").write_bytes(good)
    for text in ("{not json", '{"lr": "fast"}', "[1, 2]"):
        (run / "config.json").write_text(text)
        assert cli_main(args) == 2, text
        err = capsys.readouterr().err
        assert "config.json" in err and len(err.splitlines()) == 1, (text, err)


def test_stale_temporaries_are_removed_by_the_next_save(tmp_path: Path) -> None:
    stale = [tmp_path / f".last.pth.{i}abc.tmp" for i in range(3)]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    (tmp_path / ".best.pth.x.tmp").write_bytes(b"another file's")
    atomic_save({"x": torch.zeros(1)}, tmp_path / "last.pth")
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.pth.x.tmp", "last.pth"]


def test_pretrained_true_without_the_weights_is_an_error_unless_auto(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when torchvision cannot fetch them: the backbone keeps its random weights.
    monkeypatch.setattr(backbone_module.ResNetBackbone, "_load_imagenet", lambda self, w: None)
    config = TINY.replace({**ONE_EPOCH, "epochs": "0", "pretrained": "true"})
    with pytest.raises(ValueError, match=r"pretrained=true but .* could not be loaded"):
        train(config, tree, tmp_path / "strict", progress=False, device="cpu")
    assert not (tmp_path / "strict").exists()
    auto = config.replace({"pretrained": "auto"})
    assert auto.pretrained == "auto" and TrainConfig().pretrained == "auto"
    train(auto, tree, tmp_path / "auto", progress=False, device="cpu")
    assert TrainConfig.load(tmp_path / "auto" / "config.json") == auto


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("checkpoint_steps", "-1"),
        ("val_samples", "-5"),
        ("seed", "-1"),
        ("lr", "1e38"),
        ("lr", "nan"),
        ("gamma", "0"),
        ("root_lr_scale", "0"),
        ("root_lr_scale", "2"),
        ("batch_size", str(10**30)),
        ("heatmap_size", "1000000"),
        ("milestones", "3,2"),
        ("pretrained", "maybe"),
    ],
)
def test_settings_out_of_range_name_the_field(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        TINY.replace({field: value})


def test_cli_arguments_are_checked_when_parsed(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("a plain file")
    (tmp_path / "folder").mkdir()
    train_args = ["train", "--data", str(tree), "--quiet"]
    eval_args = ["eval", "--oracle", "--data", str(tree), "--split", "val"]
    refused = {
        "--device banana": [*train_args, "--out", str(tmp_path / "r"), "--device", "banana"],
        "--device cuda:7": [*train_args, "--out", str(tmp_path / "r"), "--device", "cuda:7"],
        "--device meta": [*eval_args, "--device", "meta"],
        "--out under a file": [*train_args, "--out", str(tmp_path / "file" / "run")],
        "--json a folder": [*eval_args, "--json", str(tmp_path / "folder")],
        "--batch-size 0": [*eval_args, "--batch-size", "0"],
        "--workers -1": [*eval_args, "--workers", "-1"],
    }
    for case, args in refused.items():
        with pytest.raises(SystemExit) as exited:
            cli_main(args)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and "argument --" in err, (case, err)
    assert not (tmp_path / "r").exists()
    for flag, value in (("--lr", "1e38"), ("--checkpoint-steps", "-1"), ("--seed", "-1")):
        assert cli_main([*train_args, "--out", str(tmp_path / "r"), flag, value]) == 2
        err = capsys.readouterr().err
        assert flag[2:].replace("-", "_") in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_checkpoint_meta_outside_sane_ranges_is_refused(tmp_path: Path) -> None:
    model = InterNet(SMALL_CONFIG)
    save_model(model, tmp_path / "ok.pth")
    ckpt = torch.load(tmp_path / "ok.pth", weights_only=True)
    ckpt["meta"]["minternet"]["heatmap_size"] = 10**6
    torch.save(ckpt, tmp_path / "huge.pth")
    with pytest.raises(ValueError, match=r"huge\.pth: heatmap_size=1000000 is not an integer"):
        load_mmpose_checkpoint(tmp_path / "huge.pth")
    ckpt["meta"]["minternet"] = {"heatmap_size": 16}
    torch.save(ckpt, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth: model settings must be"):
        load_mmpose_checkpoint(tmp_path / "partial.pth")


def test_internal_errors_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minternet import results

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(results, "evaluate", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli_main(["eval", "--oracle", "--data", str(tmp_path)])
