"""The device side of a training step: mixed precision, torch.compile, batches copied
ahead, a loaded schedule changed in place, and the rates of the step and the loader
(book chapter 8)."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset

from minternet.config import TrainConfig
from minternet.loader import make_loader
from minternet.model import InterNet

log = logging.getLogger(__name__)


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


def param_groups(model: InterNet, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's two parameter groups: every weight but the root-depth head's, at
    ``config.lr``; the root-depth head's, at ``config.lr * config.root_lr_scale``."""
    root = list(model.head.root_head.parameters())
    in_root = {id(p) for p in root}
    rest = [p for p in model.parameters() if id(p) not in in_root]
    lrs = group_lrs(config)
    return [{"params": rest, "lr": lrs[0]}, {"params": root, "lr": lrs[1]}]


def group_lrs(config: TrainConfig) -> list[float]:
    """The initial lr of each of :func:`param_groups`'s groups."""
    return [config.lr, config.lr * config.root_lr_scale]


def apply_schedule(
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
) -> None:
    """Put ``config``'s lr, root_lr_scale, milestones and gamma into a loaded optimiser (of
    :func:`param_groups`) and scheduler: the lrs the new schedule gives at the epochs done so
    far."""
    scheduler.base_lrs = group_lrs(config)
    scheduler.milestones = collections.Counter(config.milestones)
    scheduler.gamma = config.gamma
    decay = config.gamma ** sum(m <= scheduler.last_epoch for m in config.milestones)
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["initial_lr"], group["lr"] = base, base * decay
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[], object], device: torch.device, warmup: int, steps: int) -> dict:
    """Run ``step`` ``warmup`` times, then ``steps`` times: ``warmup_seconds`` in all, mean
    ``seconds`` per step, and ``peak_bytes`` of device memory over the timed steps (None on
    the CPU)."""
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warm = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"seconds": seconds, "peak_bytes": peak, "warmup_seconds": warm}


def loader_rate(dataset: Dataset, batch_size: int, workers: int, batches: int) -> float:
    """Crops per second a training loader of ``workers`` processes delivers, timed over
    ``batches`` batches after the first (which waits for the workers to start)."""
    loader = make_loader(dataset, batch_size, shuffle=True, num_workers=workers, seed=1)

    def endless() -> Iterator[dict[str, torch.Tensor]]:
        while True:  # a small split is read several times over
            yield from loader

    it = endless()
    next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - started)
