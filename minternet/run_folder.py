"""A run folder: what a run writes there, the checks before one starts or resumes, and its
``metrics.jsonl`` (book chapter 8).

``config.json``; ``metrics.jsonl``, one line per epoch; ``metrics.png``; ``last.pth`` and
``best.pth`` (:mod:`minternet.checkpoint`). A run is never overwritten, and a resumed one
keeps its model and finds its records as its last checkpoint left them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from minternet.config import TrainConfig
from minternet.viz import history_figure

log = logging.getLogger(__name__)

RUN_FILES = ("last.pth", "best.pth", "config.json", "metrics.jsonl", "metrics.png")
"""What a run writes: a folder holding any of them is refused unless resumed."""


def check_run_folder(out: Path, resume: bool) -> bool:
    """Whether the run in ``out`` resumes (its ``last.pth`` is there).

    Raises:
        FileExistsError: ``out`` holds a run and ``resume`` is False.
        FileNotFoundError: ``out`` holds some of :data:`RUN_FILES` but no ``last.pth``.
    """
    present = [name for name in RUN_FILES if (out / name).exists()]
    if present and not resume:
        raise FileExistsError(
            f"{out} already holds a run ({', '.join(present)}): resume it (--resume) or "
            "use another folder"
        )
    if present and not (out / "last.pth").exists():
        raise FileNotFoundError(
            f"{out} holds {', '.join(present)} but no last.pth to resume from: move them "
            "away, or use another folder, to start a new run"
        )
    return (out / "last.pth").exists()


def changed_settings(
    saved: dict[str, Any], config: TrainConfig, step: int, source: str | os.PathLike[str]
) -> dict[str, Any]:
    """{setting: {"from": saved, "to": now}} for what ``config`` changes in the ``saved``
    one (of the checkpoint ``source``, written ``step`` steps into an epoch).

    Raises:
        ValueError: for what a resumed run cannot change (the model; the batch size
            mid-epoch), naming the setting.
    """
    old = TrainConfig.from_dict(saved, os.fspath(source)).settings()
    now = config.settings()
    changed = {k: {"from": old[k], "to": v} for k, v in now.items() if old[k] != v}
    model = {f.name for f in dataclasses.fields(config.model)}
    fixed = [k for k in changed if k in model or (k == "batch_size" and step)]
    if fixed:
        k = fixed[0]
        raise ValueError(
            f"{os.fspath(source)} was trained with {k}={changed[k]['from']!r}; a resumed run "
            f"cannot change it to {changed[k]['to']!r}"
            + (" in the middle of an epoch" if k == "batch_size" else "")
        )
    return changed


def trim_history(out: Path, epoch: int) -> list[dict[str, Any]]:
    """``out/metrics.jsonl``'s records up to ``epoch`` (last.pth's), one per epoch (the
    latest), and the file rewritten so: a kill between a record and a checkpoint leaves no
    duplicate. A line cut short by a kill is dropped."""
    path = out / "metrics.jsonl"
    records: dict[int, dict[str, Any]] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: dropped a damaged line %r", path, line[:80])
            continue
        if record["epoch"] <= epoch:
            records[record["epoch"]] = record
    history = [records[e] for e in sorted(records)]
    if len(history) != len(lines):
        path.write_text("".join(json.dumps(h) + "\n" for h in history))
    return history


def append_record(out: Path, history: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """Add an epoch's record to ``history`` and ``out/metrics.jsonl``; redraw metrics.png."""
    history.append(entry)
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")
    history_figure(history).savefig(out / "metrics.png", dpi=100)
