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

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from minternet import distributed as dist
from minternet.checkpoint import (
    load_training_checkpoint,
    remove_stale_temporaries,
    save_training_checkpoint,
    set_rng_state,
)
from minternet.config import TrainConfig
from minternet.convert import load_strict
from minternet.dataset import open_run_datasets
from minternet.engine import amp_dtype, apply_schedule, compile_works, param_groups
from minternet.evaluate import evaluate_model
from minternet.loader import make_loader
from minternet.metrics import json_metrics
from minternet.model import InterNet
from minternet.run_folder import (
    append_record,
    changed_settings,
    check_run_folder,
    trim_history,
)
from minternet.train_loop import LOSS_NAMES, TrainLoop

log = logging.getLogger(__name__)

SCHEDULE = ("lr", "root_lr_scale", "milestones", "gamma")
"""Settings a resumed run applies to the optimiser and scheduler it loads."""


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
    too), trimming ``metrics.jsonl`` to its epoch; the :data:`SCHEDULE` settings that
    differ from the checkpoint's are applied to its schedule and recorded (``resumed_with``
    in the next epoch's record); the model's settings cannot change. A folder holding any
    of :data:`~minternet.run_folder.RUN_FILES` is refused without ``resume``, and with it
    unless ``last.pth`` is there: a run is never overwritten. ``device`` None: CUDA when available.

    Raises:
        NonFiniteLossError: the loss became NaN or inf; ``last.pth`` is the last good state.
        FileExistsError, FileNotFoundError, ValueError: naming the folder, file or setting.
    """
    ctx = dist.setup(device)
    try:
        return Trainer(ctx, config, Path(data), Path(out), resume).fit(progress)
    finally:
        dist.teardown(ctx)


class Trainer(TrainLoop):
    """The state of one run in one process: what it trains with, its checkpoints, its
    validation and its records; the steps and epochs are :class:`TrainLoop`'s.
    :func:`train` is how to use it."""

    def __init__(
        self, ctx: dist.Context, config: TrainConfig, data: Path, out: Path, resume: bool
    ) -> None:
        self.ctx, self.config, self.out = ctx, config, out
        self.last, self.best = out / "last.pth", out / "best.pth"
        resuming = check_run_folder(out, resume)
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
        self.codec = config.codec()
        size = self.model.input_size
        self.train_set, self.val_set = open_run_datasets(config, data, size, ctx.is_main)
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
            param_groups(self.model, config), lr=config.lr, fused=ctx.device.type == "cuda"
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
            step = saved["position"]["step"]
            changed = changed_settings(saved["config"], self.config, step, self.last)
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
            apply_schedule(self.config, self.optimizer, self.scheduler)
        self.resumed_with = changed
        if self.ctx.is_main:  # rank 0 carries the epoch's sums so far, the others restart at 0
            self.sums += sums
            self.history = trim_history(self.out, self.pos["epoch"])
            if self.pending and any(h["epoch"] == self.pending["epoch"] for h in self.history):
                self.pending = None  # recorded before the kill
            trained = [h.get("val", {}).get("MPJPE_all") for h in self.history if "train" in h]
            scores = [v for v in trained if v is not None]
            self.pos["best"] = min(scores) if scores else None  # as best.pth was chosen
            if changed:
                self.config.save(self.out / "config.json")

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

    def record(self, entry: dict[str, Any]) -> None:
        """Append an epoch's record to metrics.jsonl and redraw metrics.png (rank 0)."""
        append_record(self.out, self.history, entry)

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
