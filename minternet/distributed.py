"""One process or many: the torchrun environment, sharded resumable sampling, reductions
(book chapter 8).

``torchrun --nproc_per_node=N`` starts N copies of the same program and tells each its
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` through the environment; without them the
program is the only process. Everything here works in both cases, so the training engine
has a single code path.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

# Rank 0 validates and saves while the others wait at a barrier; a full val(M) pass takes
# minutes, longer than the default collective timeout.
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Context:
    """Where this process runs: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process logs and saves (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> Context:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), or run alone.

    ``device`` ``None`` picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU;
    ``"cuda"`` without an index means ``cuda:LOCAL_RANK`` too.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:  # "cuda" alone: this process's GPU, as torchrun numbers them
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    return Context(rank, world_size, dev)


def teardown(ctx: Context) -> None:
    """Leave the process group, if this process joined one."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_ranks_true(ctx: Context, flag: bool) -> bool:
    """Whether ``flag`` holds on every process (one tiny all-reduce when distributed)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor(int(flag), device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def all_reduce_sum(ctx: Context, values: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``values`` over processes (a copy; ``values`` is left alone)."""
    values = values.detach().clone()
    if ctx.distributed:
        dist.all_reduce(values)
    return values


def average_buffers(ctx: Context, module: torch.nn.Module) -> None:
    """Replace each floating buffer (BatchNorm running statistics) by its mean over the
    processes, as mmpose does at the end of every epoch.
    """
    if not ctx.distributed:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= ctx.world_size


class ShardedSampler(Sampler[int]):
    """A shuffled epoch split across processes, that can start part-way through.

    Epoch e's order is ``randperm(n)`` from a generator seeded with (seed, e), padded by
    repeating its head to a multiple of ``world_size`` (so every process takes the same
    number of steps; a few samples count twice, as in torch's DistributedSampler with
    ``drop_last=False``); process r takes positions r, r + W, r + 2W, ... Call
    :meth:`set_epoch` before each epoch; ``start`` skips the first ``start`` samples of
    this process's share, which is how a resumed run continues mid-epoch.
    """

    def __init__(
        self, num_samples: int, *, rank: int = 0, world_size: int = 1, seed: int = 0
    ) -> None:
        if num_samples <= 0:
            raise ValueError("the dataset is empty: nothing to sample")
        self.num_samples, self.rank, self.world_size, self.seed = (
            num_samples,
            rank,
            world_size,
            seed,
        )
        self.epoch, self.start = 0, 0

    @property
    def per_rank(self) -> int:
        """Samples in each process's share of one epoch."""
        return -(-self.num_samples // self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> torch.Tensor:
        """This process's whole share of the current epoch, (per_rank,) int64 indices."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        total = self.per_rank * self.world_size
        order = order.repeat(-(-total // self.num_samples))[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start
