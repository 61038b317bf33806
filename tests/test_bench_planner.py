"""bench/throughput_planner.py runs end to end and its estimate follows from its measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_tool

from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    write_dataset(SynthSpec(images={"train": 8}, captures=1), root, workers=1, progress=False)
    return root


def run(tree: Path, out: Path, *extra: str) -> dict:
    planner = load_tool("throughput_planner", "bench")
    common = ["--config", "tiny", "--data", str(tree), "--steps", "1", "--warmup", "1"]
    return planner.main([*common, "--device", "cpu", "--peak-size", "64", "--json", str(out),
                         *extra])


def test_planner_runs_and_estimates_from_the_slower_part(tree: Path, tmp_path: Path, capsys):
    out = tmp_path / "plan.json"
    result = run(tree, out, "--batch-size", "4", "--precisions", "fp32,bf16+cl", "--workers",
                 "1", "--breakdown", "4:bf16+cl:eager")
    assert json.loads(out.read_text())["bottleneck"] == result["bottleneck"]
    # On a CPU: the previous step and today's, eagerly, in each precision asked for.
    variants = [(r["precision"], r["mode"]) for r in result["rows"]]
    assert variants == [(p, m) for p in ("fp32", "bf16+cl") for m in ("previous", "eager")]
    assert set(result["loader"]) == {0, 1}
    for row in result["rows"]:
        assert row["ms_per_step"] == pytest.approx(1e3 * 4 / row["crops_per_second"])
        achieved = row["gflop_per_crop"] * row["crops_per_second"] / 1e3
        assert row["tflops"] == pytest.approx(achieved)
        assert row["fraction_of_peak"] == pytest.approx(achieved / result["matmul_peak_tflops"])
        assert row["gflop_per_crop"] > 0.1  # a ResNet-18 at 128 x 128 and its heads
    eager = result["rows"][3]
    assert eager["vs_previous"] == pytest.approx(
        eager["crops_per_second"] / result["rows"][2]["crops_per_second"]
    )
    rate = min(result["best"]["crops_per_second"], max(result["loader"].values()))
    assert result["hours"][1] == pytest.approx(20 * 1_361_062 / rate / 3600)
    assert result["hours"][4] == pytest.approx(result["hours"][1] / 4)
    assert set(result["breakdown"]) == {
        "variant", "backbone fwd+bwd", "model fwd+bwd, trivial loss", "full step"
    }
    printed = capsys.readouterr().out
    assert "bottleneck: the" in printed and "paper schedule: 20 epochs" in printed
    assert "where the time goes" in printed


def test_planner_budget_and_variants(tree: Path, tmp_path: Path, capsys):
    out = tmp_path / "plan.json"
    # A compiled variant is assumed to need 90 s until one is measured: over a 60 s budget.
    result = run(tree, out, "--variants", "2:fp32:eager,4:fp32:compiled", "--no-loader",
                 "--budget", "60")
    assert [(r["batch"], r["mode"]) for r in result["rows"]] == [(2, "eager")]
    assert result["skipped"] == ["batch 4 fp32 compiled (budget)"]
    assert "vs_previous" in result["rows"][0] and result["rows"][0]["vs_previous"] is None
    # A run cut short can be printed again from its JSON.
    capsys.readouterr()
    load_tool("throughput_planner", "bench").main(["--report", str(out)])
    assert "batch 4 fp32 compiled (budget)" in capsys.readouterr().out
