"""Checkpoint files: every one is read here, safely, and written here, never half-written;
and the random state a resumed run needs (book chapters 6, 8 and 10).

A model file (:func:`save_model`) is ``{"state_dict", "meta"}`` in mmpose 1.x's layout, its
``meta["minternet"]`` the model's :class:`~minternet.model.InterNetConfig` as a dict; it is
read back by :func:`minternet.convert.load_mmpose_checkpoint`. A training checkpoint
(:func:`save_training_checkpoint`) is a model file with the rest of the training state next
to it: ``optimizer``, ``scheduler``, ``scaler`` and ``rng``, and ``meta["train"]`` saying
where in the schedule it was written. Everything in either is tensors and plain containers,
so it loads with ``torch.load(..., weights_only=True)``.

Files from elsewhere (mmpose's published checkpoints) are read by :func:`read_checkpoint`, which
allows exactly the few types mmengine and mmcv write into ``meta`` besides tensors: numpy
arrays, scalars and dtypes, and ``collections.Counter`` (in a scheduler's state). Anything
else is refused before it is built, so no code in a file ever runs.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # files hold a model's tensors and settings, never the model itself
    from minternet.model import InterNet

try:  # numpy >= 2 moved numpy.core to numpy._core; files written by numpy 1 name the old one
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

_NUMPY_DTYPES = "?bhilqBHILQefdFDUS"  # bool, integers, floats, complex, str, bytes; no objects
SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    *dict.fromkeys(type(np.dtype(code)) for code in _NUMPY_DTYPES),
    _multiarray._reconstruct,
    _multiarray.scalar,
    (_multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_multiarray.scalar, "numpy.core.multiarray.scalar"),
    collections.Counter,
]
"""What :func:`read_checkpoint` lets a file build besides tensors and plain containers: numpy
arrays, scalars and dtypes of plain numbers and text (under numpy 1's and 2's names), and the
``Counter`` of a MultiStepLR's milestones. None of them runs code of the file's choosing."""


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A file that asks to build objects :func:`read_checkpoint` does not allow (``names``)."""

    def __init__(self, path: str | os.PathLike[str], names: list[str], detail: str) -> None:
        listed = ", ".join(names) if names else detail
        super().__init__(
            f"{os.fspath(path)}: refused, it holds objects other than tensors, plain containers "
            f"and numpy arrays ({listed}); nothing in it was run. If you trust the file, load it "
            "yourself and save only its state dict."
        )
        self.names = names


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """A checkpoint's contents, read with ``torch.load(..., weights_only=True)`` and only
    the extra types of :data:`SAFE_GLOBALS`.

    Raises:
        FileNotFoundError: naming the file, when there is none.
        UnsafeCheckpointError: the file asks for any other global (named in the message).
        ValueError: naming the file, when it is no torch file (truncated, random bytes).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{os.fspath(path)}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # a file too broken to list: it is no checkpoint at all
            names = []
        allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS if callable(g)}
        allowed |= {g[1] for g in SAFE_GLOBALS if isinstance(g, tuple)}
        refused = [name for name in names if name not in allowed]
        if refused:
            raise UnsafeCheckpointError(path, refused, str(err).splitlines()[-1]) from None
        failure: Exception = err
    except (EOFError, RuntimeError, ValueError) as err:  # torch.load on a truncated file
        failure = err
    first = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
    raise ValueError(f"{os.fspath(path)}: not a readable checkpoint ({first})") from None


def _model_file(model: InterNet, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{"state_dict", "meta"}`` of ``model``: contiguous CPU tensors in mmpose 1.x's
    layout, and ``meta`` with the model's configuration added under ``"minternet"``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {
        "state_dict": state,
        "meta": {**meta, "minternet": dataclasses.asdict(model.config)},
    }


def save_model(
    model: InterNet, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and configuration to ``path`` atomically (see the module
    docstring); ``meta`` holds plain values only, so the file stays readable with
    ``weights_only=True``. Read it back with :func:`minternet.convert.load_mmpose_checkpoint`.
    """
    return atomic_save(_model_file(model, meta or {}), path)


def save_training_checkpoint(
    path: str | os.PathLike[str],
    model: InterNet,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    train: Mapping[str, Any],
) -> Path:
    """Write the whole training state atomically: :func:`save_model`'s file with ``train``
    (where the run is, plain values) as ``meta["train"]``, the optimiser's, scheduler's and
    gradient scaler's states and every generator's (:func:`rng_state`)."""
    return atomic_save(
        {
            **_model_file(model, {"train": dict(train)}),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
        },
        path,
    )


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in ``path``'s folder, flushed to disk, then renamed
    over ``path``: a crash or a full disk leaves the previous file whole, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that saves of ``path`` killed mid-write left behind
    (``.NAME.*.tmp`` beside it; one process writes a run's checkpoints) -> those deleted."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def rng_state() -> dict[str, Any]:
    """The state of every generator a run may draw from: torch (CPU and each CUDA device),
    numpy's legacy global one and Python's ``random``, as tensors and plain values.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only when there are as many
    devices as when it was saved).
    """
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def load_training_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> dict[str, Any]:
    """What :func:`save_training_checkpoint` wrote, read with :func:`read_checkpoint`.

    Raises:
        ValueError: naming the file, when it is not a readable checkpoint (truncated, not a
            torch file, foreign objects) or lacks the training state (e.g. a model file,
            which can be evaluated or fine-tuned but not resumed).
    """
    ckpt = read_checkpoint(path, map_location)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("meta") or {}, dict):
        raise ValueError(f"{os.fspath(path)}: not a minternet training checkpoint")
    missing = [k for k in ("state_dict", "optimizer", "scheduler", "rng") if k not in ckpt]
    if "train" not in (ckpt.get("meta") or {}):
        missing.append("meta.train")
    if missing:
        raise ValueError(
            f"{os.fspath(path)}: not a minternet training checkpoint (no {', '.join(missing)}), "
            "so training cannot resume from it"
        )
    return ckpt
