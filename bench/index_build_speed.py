"""The streamed index build of this checkout against another checkout's (e.g. a ``git
worktree`` of an earlier commit), on the same annotation files, alternating: seconds and
peak memory of ``interhand.build_index``, each in a fresh process.

    python bench/index_build_speed.py --baseline SRC [--annotations 200000] [--rounds 3]

The annotation files (labels only, no images) are written once by this checkout's ``synth``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, resource, sys, time
from minternet.interhand import build_index, find_annotation_files
started = time.perf_counter()
index = build_index(find_annotation_files(sys.argv[1], "train"))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(index["image_id"]),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(source: str, root: Path) -> dict:
    """One build in a fresh process importing the package from ``source``."""
    env = {**os.environ, "PYTHONPATH": source}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(root)], env=env, check=True,
                          capture_output=True, text=True, cwd=source)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="another checkout's root")
    parser.add_argument("--annotations", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "minternet", "synth", "--out", str(root),
                        "--annotations-only", "--train", str(args.annotations), "--val", "0",
                        "--test", "0", "--captures", "10", "--sequences", "50", "--frames",
                        "50", "--cameras", "40", "--views", "10", "--quiet"],
                       check=True, capture_output=True, cwd=here)  # fmt: skip
        results: dict[str, list[dict]] = {"baseline": [], "ours": []}
        for _ in range(args.rounds):
            results["baseline"].append(measure(os.path.abspath(args.baseline), root))
            results["ours"].append(measure(here, root))
    rows = {r["rows"] for runs in results.values() for r in runs}
    print(f"{args.annotations:,} annotations written, {rows} rows indexed by each")
    for name, runs in results.items():
        print(f"{name:<9} seconds: " + ", ".join(f"{r['seconds']:.2f}" for r in runs)
              + "; peak MB: " + ", ".join(f"{r['peak_mb']:.0f}" for r in runs))  # fmt: skip
    best = {name: min(r["seconds"] for r in runs) for name, runs in results.items()}
    peak = {name: max(r["peak_mb"] for r in runs) for name, runs in results.items()}
    print(f"best time, ours / baseline: {best['ours'] / best['baseline']:.2f}x; "
          f"peak memory, ours / baseline: {peak['ours'] / peak['baseline']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
