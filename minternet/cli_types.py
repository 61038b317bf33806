"""Argument types of the command line: each checks a value as it is parsed, so a bad one
ends the verb with argparse's one-line error, naming the option."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def folder(text: str) -> str:
    """An argparse type: a folder that exists or can be created (nothing on its way is a file)."""
    path = Path(text).expanduser()
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                where = "is" if place == path else f"is under {place}, which is"
                raise argparse.ArgumentTypeError(f"{text} {where} a file, not a folder")
            break
    return text


def output_file(text: str) -> str:
    """An argparse type: a file that can be written (not a folder, not under a file)."""
    if Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    folder(str(Path(text).expanduser().parent))
    return text


def device(text: str) -> str:
    """An argparse type: a torch device that this machine has (cpu, cuda[:N], mps)."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (e.g. cpu, cuda:0)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has {count} CUDA device(s); use cpu or another index"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: only cpu, cuda[:N] and mps are supported")
    return text


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``, checked by :func:`device`, for the verbs that run a model."""
    parser.add_argument(
        "--device", type=device, default=None, help="e.g. cpu or cuda:0 (default: CUDA if any)"
    )


def numbers(
    count: int, names: str, positive: bool = False
) -> Callable[[str], tuple[float, ...]]:
    """An argparse type: ``count`` comma-separated finite numbers, named ``names``."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count or not all(map(math.isfinite, values)) or (
            positive and min(values) <= 0
        ):
            kind = "positive numbers" if positive else "numbers"
            raise argparse.ArgumentTypeError(f"{text!r} is not {count} {kind} {names}")
        return values

    return parse
