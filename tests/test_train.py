"""The training engine: resume after SIGKILL, atomic checkpoints, DDP on 2 CPU processes
against 1, non-finite stops, mixed precision on the CPU, the sampler and the CLI.

Runs use a 24-image synthetic tree and a ResNet-18 at 64 x 64 so each takes seconds.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SMALL_RUN as SMALL
from conftest import load_tool, options

from minternet import InterHandDataset, checkpoint, engine, train_loop
from minternet.__main__ import main as cli_main
from minternet.checkpoint import atomic_save, load_training_checkpoint
from minternet.config import TINY, TrainConfig
from minternet.distributed import ShardedSampler, setup
from minternet.model import InterNet
from minternet.train import Trainer, train
from minternet.train_loop import LOSS_NAMES, NonFiniteLossError


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minternet", "train", "--quiet", *args]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_after_sigkill_equals_uninterrupted_run(tree: Path, tmp_path: Path) -> None:
    settings = {**SMALL, "epochs": "2", "batch_size": "4", "checkpoint_steps": "2"}
    common = ["--data", str(tree), *options(settings)]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(cli(*common, "--out", str(whole)), check=True, capture_output=True)

    proc = subprocess.Popen(cli(*common, "--out", str(killed)), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "last.pth").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    position = load_training_checkpoint(killed / "last.pth")["meta"]["train"]["position"]
    assert (position["epoch"], position["step"]) < (2, 0), "killed too late to test a resume"
    assert position["step"] > 0  # mid-epoch: the sampler must skip what was done

    subprocess.run(cli(*common, "--out", str(killed), "--resume"), check=True, capture_output=True)
    a, b = weights(whole / "last.pth"), weights(killed / "last.pth")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    runs = [
        [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (whole, killed)
    ]
    for first, second in zip(*runs, strict=True):
        assert first["train"] == second["train"] and first["val"] == second["val"]


def test_ddp_two_processes_equal_one_process_with_the_same_global_batch(
    tree: Path, tmp_path: Path
) -> None:
    # Batch statistics differ between 2 x 2 and 1 x 4 samples by construction, so BN runs on
    # its running statistics here; with that, the two must train the same model.
    settings = {**SMALL, "epochs": "1", "val_split": "", "batch_norm": "frozen", "lr": "1e-3"}
    common = ["--data", str(tree), *options(settings)]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        cli(*common, "--batch-size", "4", "--out", str(one)), check=True, capture_output=True
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(
        [
            *torchrun,
            "-m",
            "minternet",
            "train",
            "--quiet",
            *common,
            "--batch-size",
            "2",
            "--out",
            str(two),
        ],
        check=True,
        capture_output=True,
    )
    (record_one,), (record_two,) = (
        [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (one, two)
    )
    assert record_two["step"] == record_one["step"] == 6
    for key, value in record_one["train"].items():
        assert record_two["train"][key] == pytest.approx(value, rel=1e-4)
    # A control: one process with half the batch sees the same crops in another grouping.
    half = tmp_path / "half"
    subprocess.run(
        cli(*common, "--batch-size", "2", "--out", str(half)), check=True, capture_output=True
    )
    a, b, c = (weights(d / "last.pth") for d in (one, two, half))
    # Summation order differs (two half-batch means, then an all-reduce), and Adam divides
    # by sqrt(v), which magnifies that rounding where a gradient is near 0. So each tensor's
    # difference is held against the control's, a run that trained differently (measured:
    # at most 0.0012 of it), and the whole model's against how far training moved it
    # (measured: 9e-5).
    torch.manual_seed(0)
    init = InterNet(TINY.replace(settings).model).state_dict()
    moved, gap, travel, worst = 0, 0.0, 0.0, 0.0
    for key in a:
        if not a[key].is_floating_point():
            assert torch.equal(a[key], b[key])
            continue
        if (a[key] - init[key]).norm() > 1e-4:
            moved += 1
            worst = max(worst, float((a[key] - b[key]).norm() / (a[key] - c[key]).norm()))
        gap += float((a[key] - b[key]).norm() ** 2)
        travel += float((a[key] - init[key]).norm() ** 2)
    assert worst < 0.02 and (gap / travel) ** 0.5 < 1e-3
    assert moved > 50  # most tensors trained, so the bounds above are not vacuous
    meta = torch.load(two / "last.pth", weights_only=True)["meta"]["train"]
    assert meta["world_size"] == 2


def test_atomic_save_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pth"
    atomic_save({"x": torch.arange(10)}, path)
    before = path.read_bytes()

    def disk_full(obj: object, f) -> None:
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_save({"x": torch.arange(1000)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temporary left


def test_non_finite_loss_stops_with_last_good_checkpoint(
    tree: Path, tmp_path: Path, monkeypatch
) -> None:
    calls = {"n": 0}
    real_loss = train_loop.internet_loss

    def poisoned(*args, **kwargs):
        losses = real_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(train_loop, "internet_loss", poisoned)
    config = TINY.replace({**SMALL, "batch_size": "4", "checkpoint_steps": "1", "val_split": ""})
    with pytest.raises(NonFiniteLossError, match=r"not finite at epoch 1, step 3.*last\.pth"):
        train(config, tree, tmp_path / "run", progress=False, device="cpu")
    saved = load_training_checkpoint(tmp_path / "run" / "last.pth")
    assert saved["meta"]["train"]["position"]["global_step"] == 2
    assert all(
        torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_step_on_cpu(tree: Path, tmp_path: Path, amp: str, dtype) -> None:
    config = TINY.replace({**SMALL, "epochs": "1", "batch_size": "8", "amp": amp, "val_split": ""})
    trainer = Trainer(setup("cpu"), config, tree, tmp_path / "run", resume=False)
    seen = []
    trainer.model.head.right_hand_head.final_layer.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype)
    )
    before = trainer.model.head.root_head.fc[0].weight.detach().clone()
    losses = trainer.step(next(iter(trainer.loader)))
    assert seen == [dtype]  # the convolutions ran in the reduced type
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert not torch.equal(before, trainer.model.head.root_head.fc[0].weight)
    # float16 needs the gradient scaler; bfloat16 has float32's range and does not.
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    trainer.save(trainer.last)
    saved = load_training_checkpoint(trainer.last)["scaler"]
    assert ("scale" in saved) == (amp == "fp16")


def test_existing_run_is_not_overwritten(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = TINY.replace({**SMALL, "epochs": "1", "batch_size": "8", "val_split": ""})
    train(config, tree, run, progress=False, device="cpu")
    result = subprocess.run(
        cli("--data", str(tree), "--out", str(run), *options(SMALL)), capture_output=True, text=True
    )
    assert result.returncode == 2 and "already holds a run" in result.stderr
    # --resume of a finished run trains nothing more and keeps the weights.
    before = weights(run / "last.pth")
    train(config, tree, run, resume=True, progress=False, device="cpu")
    after = weights(run / "last.pth")
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sharded_sampler_partitions_each_epoch(world_size: int) -> None:
    shards = [ShardedSampler(10, rank=r, world_size=world_size, seed=5) for r in range(world_size)]
    for s in shards:
        s.set_epoch(1)
    orders = [list(s) for s in shards]
    assert len({len(o) for o in orders}) == 1  # every process takes the same number of steps
    seen = [i for o in orders for i in o]
    assert sorted(set(seen)) == list(range(10))
    assert len(seen) - 10 < world_size  # padding repeats fewer than one sample per process
    shards[0].set_epoch(2)
    assert list(shards[0]) != orders[0] or world_size == 3  # a new order each epoch
    shards[0].set_epoch(1, start=2)
    assert list(shards[0]) == orders[0][2:]


def test_config_overrides_parse_and_name_bad_fields() -> None:
    config = TINY.replace({"milestones": "3,4", "channels_last": "false", "lr": "3e-4"})
    assert config.milestones == (3, 4) and config.channels_last is False and config.lr == 3e-4
    with pytest.raises(ValueError, match="unknown setting 'learning_rate'"):
        TINY.replace({"learning_rate": "1"})
    with pytest.raises(ValueError, match="batch_size='many'"):
        TINY.replace({"batch_size": "many"})
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainConfig(amp="fp8")


def test_saved_config_round_trips(tree: Path, tmp_path: Path) -> None:
    config = TINY.replace({**SMALL, "epochs": "0", "milestones": "7,9", "val_split": ""})
    train(config, tree, tmp_path / "run", progress=False, device="cpu")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert TrainConfig.load(tmp_path / "run" / "config.json") == config
    assert saved["model"]["heatmap_size"] == 4 and "heatmap_size" not in saved
    # A config.json of an earlier version: the model's settings beside the others.
    flat = {**{k: v for k, v in saved.items() if k != "model"}, **saved["model"]}
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    assert TrainConfig.load(tmp_path / "flat.json") == config
    (tmp_path / "bad.json").write_text('{"depth": 3}')
    with pytest.raises(ValueError, match=r"bad\.json"):
        TrainConfig.load(tmp_path / "bad.json")


def test_missing_images_stop_before_training_or_are_dropped(
    tree: Path, tmp_path: Path, capsys
) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(tree, partial)
    train_images = sorted((partial / "images" / "train").rglob("*.jpg"))
    for path in train_images[:2]:
        path.unlink()
    config = TINY.replace({**SMALL, "epochs": "1", "batch_size": "8", "val_split": ""})
    with pytest.raises(FileNotFoundError, match=r"2 of 24 images .* missing, the first .*\.jpg"):
        train(config, partial, tmp_path / "run", progress=False, device="cpu")
    assert not (tmp_path / "run" / "last.pth").exists()

    dropped = config.replace({"missing_images": "drop"})
    (record,) = train(dropped, partial, tmp_path / "run2", progress=False, device="cpu")
    assert record["step"] == 3  # 22 crops in batches of 8
    assert record["skipped_images"] == 0

    for path in sorted((partial / "images" / "val").rglob("*.jpg"))[:3]:
        path.unlink()
    args = ["eval", "--oracle", "--data", str(partial), "--split", "val"]
    assert cli_main(args) == 2
    assert "3 of 8 images" in capsys.readouterr().err
    assert cli_main([*args, "--missing-images", "drop", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["samples"] == 5


def test_cli_train_then_eval_on_data_samples(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[1] / "data_samples"
    run = tmp_path / "run"
    result = subprocess.run(
        cli(
            "--config",
            "tiny",
            "--data",
            str(data),
            "--out",
            str(run),
            "--train-split",
            "val",
            "--val-split",
            "test",
            "--val-samples",
            "16",
            "--epochs",
            "1",
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["epoch"] == 1 and record["step"] == 8  # 120 crops, 16 per step
    assert record["val"]["MPJPE_all"] > 0 and 0 <= record["val"]["APh"] <= 1
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]  # tiny validates first
    assert {"best.pth", "last.pth", "metrics.png", "config.json"} <= {p.name for p in run.iterdir()}
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "minternet",
            "eval",
            "--checkpoint",
            str(run / "best.pth"),
            "--data",
            str(data),
            "--split",
            "test",
            "--json",
            str(tmp_path / "test.json"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| data_samples/test | InterNet ResNet-18 (16x16x16) | 128x128 |" in table
    assert json.loads((tmp_path / "test.json").read_text())["samples"] == 120


def twin_trainers(tree: Path, tmp_path: Path, **changes: str) -> tuple[Trainer, Trainer]:
    """Two trainers with the same weights and settings (on the CPU)."""
    config = TINY.replace({**SMALL, "epochs": "1", "batch_size": "4", "val_split": "", **changes})
    return tuple(
        Trainer(setup("cpu"), config, tree, tmp_path / name, resume=False) for name in "ab"
    )


@pytest.mark.parametrize(("amp", "channels_last"), [("off", "false"), ("off", "true"),
                                                    ("bf16", "true")])
def test_step_computes_what_the_previous_step_did(
    tree: Path, tmp_path: Path, amp: str, channels_last: str
) -> None:
    # The previous step (one joined volume, a float32 copy for the loss, autograd through
    # its contractions) is kept in bench/throughput_planner.py as the speed baseline.
    previous_step = load_tool("throughput_planner", "bench").previous_step
    ours, before = twin_trainers(tree, tmp_path, amp=amp, channels_last=channels_last)
    batch = next(iter(ours.loader))
    losses = ours.step(batch)
    reference = previous_step(before, batch)
    for name in LOSS_NAMES:  # float32 and bfloat16 alike: the loss adds no rounding
        assert abs(losses[name].item() / reference[name].item() - 1) <= 1e-6
    for (name, p), q in zip(ours.model.named_parameters(), before.model.parameters(), strict=True):
        # float32: the same gradients and the same Adam step, to 1e-6 relative (bit for bit
        # on this CPU); bfloat16: the heatmap gradient may differ in its last bit.
        tolerance = 1e-6 if amp == "off" else 2**-7
        assert (p.grad - q.grad).norm() <= tolerance * q.grad.norm(), name
        assert (p - q).norm() <= max(tolerance, 1e-6) * q.norm(), name


def test_compile_is_off_on_the_cpu_and_checked_before_use(
    tree: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    trainer, _ = twin_trainers(tree, tmp_path, compile="true")
    assert not trainer.compiled and trainer.fast_net is trainer.net

    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(engine.torch, "compile", broken)
    with caplog.at_level("WARNING"):
        assert not engine.compile_works(torch.device("cpu"))
    assert "no C compiler" in caplog.text and "runs eagerly" in caplog.text


def test_device_batches_keep_the_order(tree: Path, tmp_path: Path) -> None:
    trainer, _ = twin_trainers(tree, tmp_path)
    batches = list(trainer.loader)
    moved = list(engine.device_batches(batches, torch.device("cpu")))
    assert len(moved) == len(batches) == 6
    for a, b in zip(moved, batches, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_epoch_speed_leaves_out_the_first_step(tree: Path, tmp_path: Path, monkeypatch) -> None:
    # The first step compiles and tunes kernels on a GPU: 2 s here, the others 10 ms.
    trainer, _ = twin_trainers(tree, tmp_path)
    calls = []

    def step(batch: dict[str, torch.Tensor]) -> None:
        time.sleep(2.0 if not calls else 0.01)
        calls.append(len(batch["image"]))
        trainer.last_loss = 1.0

    monkeypatch.setattr(trainer, "step", step)
    record = trainer.train_epoch(progress=False)
    assert calls == [4] * 6
    assert record["seconds"] >= 2.0
    # 20 crops in the time after the first step, far above 24 crops over the whole epoch.
    assert record["samples_per_second"] > 2 * 24 / record["seconds"]


def test_heatmap_peak_scales_the_target_the_loss_is_taken_against(
    tree: Path, tmp_path: Path
) -> None:
    # At initialisation the heads output ~1e-3, so the heatmap loss is the target's mean
    # square: peak^2 times the unit target's, whatever the peak.
    config = TINY.replace({**SMALL, "epochs": "1", "batch_size": "4", "val_split": ""})
    losses = {}
    for peak in (255.0, 16.0):
        changed = dataclasses.replace(config, heatmap_peak=peak)
        trainer = Trainer(setup("cpu"), changed, tree, tmp_path / str(peak), resume=False)
        assert trainer.codec.max_value == peak
        losses[peak] = trainer.step(next(iter(trainer.loader)))["loss_kpt"].item()
    assert losses[16.0] / losses[255.0] == pytest.approx((16 / 255) ** 2, rel=1e-2)
    assert TINY.replace({"heatmap_peak": "16"}).heatmap_peak == 16.0
    with pytest.raises(ValueError, match="heatmap_peak must be a number"):
        dataclasses.replace(TINY, heatmap_peak=0.0)


def test_rates_time_the_steps_asked_for(tree: Path) -> None:
    calls = []
    timed = engine.timed_steps(lambda: calls.append(time.sleep(0.01)), torch.device("cpu"),
                               warmup=2, steps=3)  # fmt: skip
    assert len(calls) == 5 and timed["peak_bytes"] is None
    assert 0.01 <= timed["seconds"] < 0.5 and timed["warmup_seconds"] >= 0.02
    dataset = InterHandDataset(tree, "train", train=True, input_size=64)
    rate = engine.loader_rate(dataset, 4, workers=0, batches=3)
    assert 0 < rate < float("inf")


@pytest.mark.parametrize("root_lr_scale", ["0.1", "1"])
def test_the_root_head_steps_at_root_lr_scale_times_lr(
    tree: Path, tmp_path: Path, root_lr_scale: str
) -> None:
    # Adam's first step moves each weight with a gradient by lr exactly (m / sqrt(v) is the
    # gradient's sign), so the largest move in a tensor is that tensor's lr.
    trainer, _ = twin_trainers(tree, tmp_path, root_lr_scale=root_lr_scale)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.step(next(iter(trainer.loader)))
    moved = {
        name: (p.detach() - before[name]).abs().max().item()
        for name, p in trainer.model.named_parameters()
    }
    root = [name for name in moved if name.startswith("head.root_head.")]
    assert len(root) == 4  # two Linear layers' weights and biases
    for name, move in moved.items():
        lr = TINY.lr * (float(root_lr_scale) if name in root else 1.0)
        assert move == pytest.approx(lr, rel=1e-3), name
