"""The device side of a training step: mixed precision, torch.compile, batches copied
ahead, and a loaded schedule changed in place (book chapter 8)."""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Iterator

import torch

from minternet.config import TrainConfig

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


def apply_schedule(
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
) -> None:
    """Put ``config``'s lr, milestones and gamma into a loaded optimiser and scheduler: the
    lr the new schedule gives at the epochs done so far."""
    scheduler.base_lrs = [config.lr] * len(scheduler.base_lrs)
    scheduler.milestones = collections.Counter(config.milestones)
    scheduler.gamma = config.gamma
    passed = sum(m <= scheduler.last_epoch for m in config.milestones)
    lr = config.lr * config.gamma**passed
    for group in optimizer.param_groups:
        group["initial_lr"], group["lr"] = config.lr, lr
    scheduler._last_lr = [lr] * len(scheduler.base_lrs)
