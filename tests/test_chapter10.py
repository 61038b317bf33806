"""Book chapter 10 runs without the weights (one line per cell that needs them) and, with a
checkpoint served by a local stand-in for download.openmmlab.com, runs every cell."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import Server
from nbclient import NotebookClient

from minternet import hub
from minternet.model import SMALL_CONFIG, InterNet

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTER = BOOK / "10_trained_model.ipynb"
SKIPPED = "Skipped: needs the"


def run_chapter() -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(CHAPTER, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(BOOK)}}).execute()
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def kinds(cell: nbformat.NotebookNode) -> set[str]:
    return {key for o in cell.outputs for key in o.get("data", {})}


def test_offline_every_cell_runs_and_those_needing_weights_say_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(hub.ENV_WEIGHTS_URL, "http://127.0.0.1:9")  # nothing listens
    monkeypatch.delenv(hub.ENV_WEIGHTS, raising=False)
    monkeypatch.delenv("MINTERNET_CHECKPOINT", raising=False)
    cells = run_chapter()
    needing = [c for c in cells
               if "needs_weights()" in c.source and "def needs_weights" not in c.source]
    assert len(needing) >= 8
    for cell in needing:
        assert text(cell).count(SKIPPED) == 1, cell.source[:80]
        assert not kinds(cell) & {"image/png", "application/vnd.plotly.v1+json"}
    loading = next(c for c in cells if "def needs_weights" in c.source)
    assert text(loading) == (
        "No mmpose-1.x weights here: cells that need them print one line and skip.\n"
    )
    others = [c for c in cells if c not in needing and c is not loading]
    assert all(SKIPPED not in text(c) for c in others)


def test_served_checkpoint_runs_every_cell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch.manual_seed(0)
    # A 256 px input, as mmpose's files imply.
    model = InterNet(dataclasses.replace(SMALL_CONFIG, heatmap_size=32))
    path = tmp_path / "www" / "standin.pth"
    path.parent.mkdir()
    torch.save({"state_dict": collections.OrderedDict(model.state_dict()), "meta": {}}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    named = path.rename(path.with_name(f"internet_standin-{digest}_20261204.pth"))
    server = Server(named.parent)
    try:
        monkeypatch.setenv(hub.ENV_WEIGHTS_URL, server.origin)
        monkeypatch.delenv(hub.ENV_WEIGHTS, raising=False)
        monkeypatch.setenv("MINTERNET_CHECKPOINT", f"{hub.WEIGHTS_URL}/mmpose/test/{named.name}")
        cells = run_chapter()
    finally:
        server.stop()
    assert [r[1] for r in server.gets()] == [named.name]
    assert not any(SKIPPED in text(c) or "weights here" in text(c) for c in cells)
    outputs = [kinds(c) for c in cells]
    assert sum("application/vnd.plotly.v1+json" in k for k in outputs) >= 2
    assert sum("image/png" in k for k in outputs) >= 3
    table = next(c for c in cells if "| frame | true hands |" in c.source)
    markdown = table.outputs[0]["data"]["text/markdown"]
    assert markdown.count("\n| ") == 4  # one row per frame
    exercise = next(c for c in cells if "MPJPE by hand" in c.source)
    assert "= joint_errors" in text(exercise)
