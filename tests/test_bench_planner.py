"""bench/throughput_planner.py runs end to end and its estimate follows from its measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_tool

from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset


def test_planner_runs_and_estimates_from_the_slower_part(tmp_path: Path, capsys) -> None:
    write_dataset(
        SynthSpec(images={"train": 8}, captures=1), tmp_path / "tree", workers=1, progress=False
    )
    planner = load_tool("throughput_planner", "bench")
    out = tmp_path / "plan.json"
    result = planner.main(
        [
            "--config",
            "tiny",
            "--data",
            str(tmp_path / "tree"),
            "--batch-size",
            "4",
            "--steps",
            "1",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["bottleneck"] == result["bottleneck"]
    assert len(result["steps"]) == 4 and set(result["loader"]) == {0, 1}
    rate = min(max(result["steps"].values()), max(result["loader"].values()))
    assert result["hours"][1] == pytest.approx(20 * 1_361_062 / rate / 3600)
    assert result["hours"][4] == pytest.approx(result["hours"][1] / 4)
    printed = capsys.readouterr().out
    assert "bottleneck: the" in printed and "paper schedule: 20 epochs" in printed
