"""The training loop: one optimisation step, and an epoch of them (book chapter 8).

:class:`TrainLoop` is the part of :class:`~minternet.train.Trainer` that trains: a step
(forward under autocast, the loss with its target built on the device, backward, a check
that the loss is finite on every process, the update) and the loop over an epoch's batches
(augmentation and shard for the epoch, progress, speed, the epoch's mean losses). The
Trainer builds what it uses and keeps the run's books: checkpoints, validation, records.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from minternet import distributed as dist
from minternet.codec import HeatmapCodec
from minternet.config import TrainConfig
from minternet.dataset import InterHandDataset
from minternet.engine import device_batches
from minternet.losses import internet_loss
from minternet.model import InterNet
from minternet.transforms import normalize

LOSS_NAMES = ("loss", "loss_kpt", "loss_rel_root", "loss_hand_type")
"""The losses a step returns and an epoch's record averages, ``loss`` their weighted sum."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the step was not applied."""


class TrainLoop:
    """Steps and epochs over the attributes the :class:`~minternet.train.Trainer` sets up."""

    ctx: dist.Context
    config: TrainConfig
    model: InterNet
    net: torch.nn.Module
    """The model, wrapped for DistributedDataParallel when distributed."""
    fast_net: torch.nn.Module
    """``net`` compiled, or ``net`` itself when not compiling."""
    compiled: bool
    codec: HeatmapCodec
    train_set: InterHandDataset
    sampler: dist.ShardedSampler
    loader: torch.utils.data.DataLoader
    memory: torch.memory_format
    dtype: torch.dtype | None
    """The autocast dtype, None for float32."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    scaler: torch.amp.GradScaler
    pos: dict[str, Any]
    """epoch and step within it (steps done), global_step, best val MPJPE."""
    sums: torch.Tensor
    """(len(LOSS_NAMES) + 1,) float64: this epoch's summed losses, the sample count last."""
    last_loss: float
    last: Path
    """``last.pth``, named when a loss is not finite."""

    def save(self, path: Path) -> None:
        """Write the whole training state to ``path``: the Trainer's, called every
        ``checkpoint_steps`` steps."""
        raise NotImplementedError

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
