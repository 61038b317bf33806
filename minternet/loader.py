"""Batching cropped samples into tensors, reproducibly (book chapter 2).

The loader moves uint8 crops and a few hundred bytes of labels per sample; normalising
(:func:`minternet.transforms.normalize`) and building heatmap targets happen on the device.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack cropped samples (``InterHandDataset(train=True/False)``) into a batch.

    ``image`` (S, S, 3) uint8 each -> (B, 3, S, S) uint8, contiguous; every other field is
    stacked along a new first axis with its numpy dtype. Raw samples (``train=None``) hold
    strings and images of different sizes and cannot be batched.
    """
    batch = {}
    for key in samples[0]:
        values = np.stack([np.asarray(s[key]) for s in samples])
        if not (values.dtype == np.bool_ or np.issubdtype(values.dtype, np.number)):
            raise TypeError(f"field {key!r} holds {values.dtype} values: only crops can be batched")
        batch[key] = torch.from_numpy(values)
    batch["image"] = batch["image"].permute(0, 3, 1, 2).contiguous()
    return batch


def seed_worker(worker_id: int) -> None:
    """Seed numpy, ``random`` and torch in a DataLoader worker from torch's per-worker seed
    (the loader's base seed plus ``worker_id``), so any randomness there is reproducible.
    """
    seed = torch.initial_seed()
    torch.manual_seed(seed)
    # The legacy global state, for any library code that still draws from it.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader of :func:`collate` batches whose order depends on ``seed`` only.

    Shuffling uses its own generator: the loader also draws its workers' base seed from a
    generator, once per epoch without persistent workers and once in all with them, and
    sharing one would make the order depend on the worker setup. Give ``sampler`` (with
    ``shuffle=False``) for distributed training. ``pin_memory`` defaults to whether CUDA is
    available, ``persistent_workers`` to ``num_workers > 0``: call the dataset's
    ``set_epoch`` before each epoch, its workers see it through shared memory.
    """
    if shuffle and sampler is not None:
        raise ValueError("give either shuffle=True or a sampler, not both")
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0 if persistent_workers is None else persistent_workers,
    )
