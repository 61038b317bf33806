"""The training engine: one code path for a CPU, one GPU or N GPUs under torchrun
(book chapter 8).

:func:`train` trains an :class:`~minternet.model.InterNet` on an InterHand2.6M tree and
writes into the run folder: ``config.json``; ``metrics.jsonl``, one line per epoch (train
losses, learning rate, speed, validation metrics); ``metrics.png``; ``last.pth``, every
epoch (before validating) and every ``checkpoint_steps`` steps; ``best.pth``, lowest
validation ``MPJPE_all``. Checkpoints are written atomically and hold all a resumed run
needs to continue exactly.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from minternet import distributed as dist
from minternet.augment import MMPOSE, ORIGINAL
from minternet.checkpoint import (
    load_training_checkpoint,
    remove_stale_temporaries,
    save_training_checkpoint,
    set_rng_state,
)
from minternet.codec import HeatmapCodec
from minternet.config import TrainConfig
from minternet.convert import load_strict
from minternet.dataset import InterHandDataset
from minternet.evaluate import evaluate_model
from minternet.loader import make_loader
from minternet.losses import internet_loss
from minternet.metrics import json_metrics
from minternet.model import InterNet
from minternet.transforms import normalize
from minternet.viz import plot_history

log = logging.getLogger(__name__)

LOSS_NAMES = ("loss", "loss_kpt", "loss_rel_root", "loss_hand_type")
RUN_FILES = ("last.pth", "best.pth", "config.json", "metrics.jsonl", "metrics.png")
"""What a run writes: a folder holding any of them is refused unless resumed."""
SCHEDULE = ("lr", "milestones", "gamma")
"""Settings a resumed run applies to the optimiser and scheduler it loads."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the step was not applied."""


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``amp`` asks for on ``device``; None means float32."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if setting == "bf16" else torch.float16


def compile_works(device: torch.device) -> bool:
    """Whether ``torch.compile`` (Inductor) builds and runs a small forward and backward on
    ``device``; a missing compiler toolchain is then found before the run, not in it."""
    try:
        probe = torch.compile(lambda x: (x * x).sum(dim=1), dynamic=False)
        x = torch.ones(4, 8, device=device, requires_grad=True)
        probe(x).sum().backward()
        return bool(torch.equal(x.grad, torch.full_like(x, 2.0)))
    except Exception as err:  # any failure of the compiler stack means: run eagerly
        log.warning("torch.compile does not work on %s (%s); training runs eagerly", device, err)
        return False


def device_batches(
    batches: Iterable[dict[str, torch.Tensor]], device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """``batches`` on ``device``, each copy started one batch ahead: on CUDA the copy from
    the loader's pinned memory runs on a side stream while the previous step computes."""
    if device.type != "cuda":
        yield from ({k: v.to(device) for k, v in batch.items()} for batch in batches)
        return
    copies = torch.cuda.Stream(device)

    def start(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.cuda.Event]:
        with torch.cuda.stream(copies):
            moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            done = torch.cuda.Event()
            done.record(copies)
        return moved, done

    def ready(moved: dict[str, torch.Tensor], done: torch.cuda.Event) -> dict[str, torch.Tensor]:
        compute = torch.cuda.current_stream(device)
        compute.wait_event(done)  # this batch's copy only, not the next one's
        for tensor in moved.values():  # the allocator must not reuse it before compute is done
            tensor.record_stream(compute)
        return moved

    pending = None
    for batch in batches:
        started = start(batch)
        if pending is not None:
            yield ready(*pending)
        pending = started
    if pending is not None:
        yield ready(*pending)


def train(
    config: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Train, validate each epoch, checkpoint; returns the records of ``metrics.jsonl``.

    Under ``torchrun`` every process calls this with the same arguments; rank 0 draws the
    progress bar, validates and saves. ``resume`` continues from ``out/last.pth`` (mid-epoch
    too), trimming ``metrics.jsonl`` to its epoch; ``lr``, ``milestones`` and ``gamma`` that
    differ from the checkpoint's are applied to its schedule and recorded (``resumed_with``
    in the next epoch's record); the model's settings cannot change. A folder holding any
    of :data:`RUN_FILES` is refused without ``resume``, and with it unless ``last.pth`` is
    there: a run is never overwritten. ``device`` None: CUDA when available.

    Raises:
        NonFiniteLossError: the loss became NaN or inf; ``last.pth`` is the last good state.
        FileExistsError, FileNotFoundError, ValueError: naming the folder, file or setting.
    """
    ctx = dist.setup(device)
    try:
        return Trainer(ctx, config, Path(data), Path(out), resume).fit(progress)
    finally:
        dist.teardown(ctx)


class Trainer:
    """The state of one run in one process; :func:`train` is how to use it."""

    def __init__(
        self, ctx: dist.Context, config: TrainConfig, data: Path, out: Path, resume: bool
    ) -> None:
        self.ctx, self.config, self.out = ctx, config, out
        self.last, self.best = out / "last.pth", out / "best.pth"
        present = [name for name in RUN_FILES if (out / name).exists()]
        if present and not resume:
            raise FileExistsError(
                f"{out} already holds a run ({', '.join(present)}): resume it (--resume) or "
                "use another folder"
            )
        if present and not self.last.exists():
            raise FileNotFoundError(
                f"{out} holds {', '.join(present)} but no last.pth to resume from: move them "
                "away, or use another folder, to start a new run"
            )
        resuming = self.last.exists()
        torch.manual_seed(config.seed)
        # A resumed run's weights come from last.pth: no need to fetch ImageNet's.
        self.model = InterNet(
            config.model, pretrained=config.pretrained is not False and not resuming
        )
        if config.pretrained is True and not resuming and not self.model.backbone.pretrained_loaded:
            raise ValueError(
                f"pretrained=true but torchvision's ImageNet weights for resnet"
                f"{config.model.backbone_depth} could not be loaded (see the warning above): "
                "connect to the internet, or use --pretrained auto to start from random weights "
                "instead"
            )
        self.codec = HeatmapCodec.for_model(config.model)
        size = self.model.input_size
        aug = {"mmpose": MMPOSE, "original": ORIGINAL, "none": MMPOSE}[config.augmentation]
        self.train_set = InterHandDataset(
            data,
            config.train_split,
            train=config.augmentation != "none",
            input_size=size,
            augmentation=aug,
            seed=config.seed,
            on_bad_image="skip",
        ).check_images(config.missing_images)
        self.val_set = None
        if config.val_split and ctx.is_main:
            self.val_set = InterHandDataset(
                data, config.val_split, train=False, input_size=size, on_bad_image="skip"
            ).check_images(config.missing_images)
            if not len(self.val_set):  # e.g. none of its images were downloaded
                log.warning("%s: no %s sample has its image; no validation", data, config.val_split)
                self.val_set = None
            elif 0 < config.val_samples < len(self.val_set):
                rows = torch.linspace(0, len(self.val_set) - 1, config.val_samples).round()
                self.val_set = self.val_set.select(rows.long().numpy())
        self.sampler = dist.ShardedSampler(
            len(self.train_set), rank=ctx.rank, world_size=ctx.world_size, seed=config.seed
        )
        self.loader = make_loader(
            self.train_set,
            config.batch_size,
            shuffle=False,
            sampler=self.sampler,
            num_workers=config.workers,
            seed=config.seed,
        )
        self.memory = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(ctx.device, memory_format=self.memory)
        if ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick each conv's fastest kernel
        # Buffers are not broadcast each step: each process keeps its own BN statistics,
        # averaged at the end of an epoch (see distributed.average_buffers), as mmpose.
        self.net = (
            DistributedDataParallel(self.model, broadcast_buffers=False)
            if ctx.distributed
            else self.model
        )
        # compile: the full batches go through the compiled model and loss; the shorter last
        # batch of an epoch runs eagerly instead of compiling the step again, mid-run.
        self.compiled = config.compile and ctx.device.type == "cuda" and compile_works(ctx.device)
        self.fast_net = torch.compile(self.net, dynamic=False) if self.compiled else self.net
        # One kernel for the whole update on CUDA; the same arithmetic as the default loop.
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, fused=ctx.device.type == "cuda"
        )
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, list(config.milestones), config.gamma
        )
        self.dtype = amp_dtype(config.amp, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.dtype == torch.float16)
        # Where the run is: epoch and step within it (steps done), global step, best val
        # MPJPE, and this epoch's summed losses with the sample count last.
        self.pos: dict[str, Any] = {"epoch": 0, "step": 0, "global_step": 0, "best": None}
        self.sums = torch.zeros(len(LOSS_NAMES) + 1, dtype=torch.float64, device=ctx.device)
        self.last_loss = math.nan  # the latest step's total loss, read once per step
        self.history: list[dict[str, Any]] = []
        # The epoch record saved in last.pth before validation, and settings changed on resume.
        self.pending: dict[str, Any] | None = None
        self.resumed_with: dict[str, Any] = {}
        if resuming:
            self._resume()
        elif ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            config.save(out / "config.json")
            (out / "metrics.jsonl").write_text("")

    def _resume(self) -> None:
        remove_stale_temporaries(self.last)
        # On the CPU: the RNG states must be; the optimiser moves its state to the weights.
        ckpt = load_training_checkpoint(self.last)
        try:
            saved = ckpt["meta"]["train"]
            changed = self._changed_settings(saved["config"], saved["position"]["step"])
            load_strict(self.model, ckpt["state_dict"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
            self.pos = dict(saved["position"])
            self.pending = saved.get("pending")
            sums = torch.tensor(saved["sums"], dtype=torch.float64, device=self.ctx.device)
            world_size = saved["world_size"]
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ValueError(f"{self.last}: not a checkpoint this run can resume ({err})") from None
        if self.pos["step"] and world_size != self.ctx.world_size:
            raise ValueError(
                f"{self.last} was written mid-epoch by {world_size} processes: "
                f"resume it with as many, not {self.ctx.world_size}"
            )
        if changed.keys() & set(SCHEDULE):
            self._apply_schedule()
        self.resumed_with = changed
        if self.ctx.is_main:  # rank 0 carries the epoch's sums so far, the others restart at 0
            self.sums += sums
            self.history = self._trim_history()
            if self.pending and any(h["epoch"] == self.pending["epoch"] for h in self.history):
                self.pending = None  # recorded before the kill
            trained = [h.get("val", {}).get("MPJPE_all") for h in self.history if "train" in h]
            scores = [v for v in trained if v is not None]
            self.pos["best"] = min(scores) if scores else None  # as best.pth was chosen
            if changed:
                self.config.save(self.out / "config.json")

    def _changed_settings(self, saved: dict[str, Any], step: int) -> dict[str, Any]:
        """{setting: {"from": saved, "to": now}} for what this run's config changes; raises
        for what a resumed run cannot change (the model; the batch size mid-epoch)."""
        old = TrainConfig.from_dict(saved, os.fspath(self.last)).settings()
        now = self.config.settings()
        changed = {k: {"from": old[k], "to": v} for k, v in now.items() if old[k] != v}
        model = {f.name for f in dataclasses.fields(self.config.model)}
        fixed = [k for k in changed if k in model or (k == "batch_size" and step)]
        if fixed:
            k = fixed[0]
            raise ValueError(
                f"{self.last} was trained with {k}={changed[k]['from']!r}; a resumed run cannot "
                f"change it to {changed[k]['to']!r}"
                + (" in the middle of an epoch" if k == "batch_size" else "")
            )
        return changed

    def _apply_schedule(self) -> None:
        """Put this config's lr, milestones and gamma into the loaded optimiser and scheduler:
        the lr the new schedule gives at the epochs done so far."""
        config, scheduler = self.config, self.scheduler
        scheduler.base_lrs = [config.lr] * len(scheduler.base_lrs)
        scheduler.milestones = collections.Counter(config.milestones)
        scheduler.gamma = config.gamma
        passed = sum(m <= scheduler.last_epoch for m in config.milestones)
        lr = config.lr * config.gamma**passed
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = config.lr, lr
        scheduler._last_lr = [lr] * len(scheduler.base_lrs)

    def _trim_history(self) -> list[dict[str, Any]]:
        """metrics.jsonl's records up to last.pth's epoch, one per epoch (the latest), and
        the file rewritten so: a kill between a record and a checkpoint leaves no duplicate.
        A line cut short by a kill is dropped."""
        path = self.out / "metrics.jsonl"
        records: dict[int, dict[str, Any]] = {}
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: dropped a damaged line %r", path, line[:80])
                continue
            if record["epoch"] <= self.pos["epoch"]:
                records[record["epoch"]] = record
        history = [records[e] for e in sorted(records)]
        if len(history) != len(lines):
            path.write_text("".join(json.dumps(h) + "\n" for h in history))
        return history

    def save(self, path: Path) -> None:
        """Write the whole training state to ``path`` (rank 0; mid-epoch every process must
        call it)."""
        # Mid-epoch (the same step on every process) the sums so far are gathered; at an
        # epoch's end they are zero, so rank 0 may then save alone (best.pth).
        sums = dist.all_reduce_sum(self.ctx, self.sums) if self.pos["step"] else self.sums
        if not self.ctx.is_main:
            return
        train = {
            "config": dataclasses.asdict(self.config),
            "position": dict(self.pos),
            "sums": sums.tolist(),
            "world_size": self.ctx.world_size,
            "pending": self.pending,
        }
        save_training_checkpoint(
            path,
            self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            train=train,
        )

    def validate(self) -> dict[str, float | None]:
        """Metrics of the current weights on the validation set (rank 0), {} without one,
        with ``skipped_images``: undecodable images skipped (and counted nowhere) so far."""
        if self.val_set is None:
            return {}
        metrics = evaluate_model(
            self.model.eval(),
            self.val_set,
            batch_size=2 * self.config.batch_size,
            device=self.ctx.device,
            num_workers=self.config.workers,
        )
        # metrics.jsonl: an empty category is null
        return {**json_metrics(metrics), "skipped_images": self.val_set.skipped}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimisation step on one batch; returns the losses (before the step)."""
        batch = {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}
        images = normalize(batch["image"]).contiguous(memory_format=self.memory)
        compiled = self.compiled and len(images) == self.config.batch_size
        with torch.autocast(
            self.ctx.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        ):
            output = (self.fast_net if compiled else self.net)(images, join_hands=False)
        losses = internet_loss(
            output.heatmaps,
            output.root_depth,
            output.hand_logits,
            batch,
            self.codec,
            compiled=compiled,
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        # Checked once the backward is queued, so the device is not left waiting for it;
        # nothing has changed the weights yet. Every process must agree, or one would wait
        # forever in the next gradient all-reduce.
        self.last_loss = losses["loss"].item()
        if not dist.all_ranks_true(self.ctx, math.isfinite(self.last_loss)):
            values = ", ".join(f"{k}={losses[k].item():.4g}" for k in LOSS_NAMES)
            raise NonFiniteLossError(
                f"loss not finite at epoch {self.pos['epoch'] + 1}, step {self.pos['step'] + 1} "
                f"({values}); the step was not applied and {self.last} holds the last good "
                "state: resume from it, e.g. with --resume and a lower --lr"
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = torch.stack([losses[k].detach().double() for k in LOSS_NAMES])
        self.sums += torch.cat([values * len(images), values.new_ones(1) * len(images)])
        return losses

    def train_epoch(self, progress: bool) -> dict[str, Any]:
        """The rest of the current epoch; returns its record (train losses, lr, speed)."""
        cfg, epoch = self.config, self.pos["epoch"]
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start=self.pos["step"] * cfg.batch_size)
        self.net.train()
        if cfg.batch_norm == "frozen":
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        total = -(-self.sampler.per_rank // cfg.batch_size)
        bar = tqdm(
            total=total,
            initial=self.pos["step"],
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (progress and self.ctx.is_main),
            dynamic_ncols=True,
        )
        # The speed counts from the end of the first step, which compiles and tunes kernels
        # (all of the epoch when it has one step).
        started = time.perf_counter()
        warm, seen, first = started, 0, 0
        for i, batch in enumerate(device_batches(self.loader, self.ctx.device)):
            self.step(batch)
            self.pos["step"] += 1
            self.pos["global_step"] += 1
            seen += len(batch["image"]) * self.ctx.world_size
            if i == 0:
                warm, first = time.perf_counter(), seen
            rate = (seen - first) / max(time.perf_counter() - warm, 1e-9)
            bar.set_postfix(loss=f"{self.last_loss:.4g}", samples_s=f"{rate:.1f}")
            bar.update()
            if cfg.checkpoint_steps and self.pos["global_step"] % cfg.checkpoint_steps == 0:
                self.save(self.last)
        bar.close()
        ended = time.perf_counter()
        seconds = ended - started
        if cfg.batch_norm == "batch":
            dist.average_buffers(self.ctx, self.model)
        sums = dist.all_reduce_sum(self.ctx, self.sums)
        record = {
            "epoch": epoch + 1,
            "step": self.pos["global_step"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "train": dict(zip(LOSS_NAMES, (sums[:-1] / sums[-1]).tolist(), strict=True)),
            "samples_per_second": (
                (seen - first) / (ended - warm) if seen > first else seen / max(seconds, 1e-9)
            ),
            "skipped_images": self.train_set.skipped,
            "seconds": seconds,
        }
        self.scheduler.step()
        self.pos.update(epoch=epoch + 1, step=0)
        self.sums.zero_()
        return record

    def record(self, entry: dict[str, Any]) -> None:
        """Append an epoch's record to metrics.jsonl and redraw metrics.png (rank 0)."""
        self.history.append(entry)
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")
        plot_history(self.history, self.out / "metrics.png")

    def finish_epoch(self, entry: dict[str, Any]) -> None:
        """Validate the epoch just trained, keep ``best.pth``, and record it (rank 0)."""
        self.pending = None
        entry["val"] = self.validate()
        if self.resumed_with:
            entry["resumed_with"], self.resumed_with = self.resumed_with, {}
        mpjpe = entry["val"].get("MPJPE_all")  # None: no val set, or no valid joint
        if mpjpe is not None and (self.pos["best"] is None or mpjpe < self.pos["best"]):
            self.pos["best"] = mpjpe
            self.save(self.best)
        self.record(entry)

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Run the remaining epochs; returns all epoch records."""
        if self.ctx.is_main and self.config.val_at_start and not self.history:
            self.record({"epoch": 0, "step": 0, "val": self.validate()})
        if self.ctx.is_main and self.pending:  # killed after last.pth, before the record
            self.finish_epoch(self.pending)
        self.pending = None
        while self.pos["epoch"] < self.config.epochs:
            # Saved before validating, so a failing validation loses no training.
            self.pending = self.train_epoch(progress)
            self.save(self.last)
            if self.ctx.is_main:
                self.finish_epoch(self.pending)
            self.pending = None
            dist.barrier(self.ctx)
        return self.history
