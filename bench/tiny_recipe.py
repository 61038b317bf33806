"""Which of TINY's settings make chapter 8's CPU run learn? The run, with each of its two
changes from the earlier recipe undone, against the average-pose predictor.

The earlier recipe had 32 deconvolution channels and mmpose's target peak of 255; TINY has
128 channels and a peak of 16. Every variant trains TINY's schedule on the same data with
the same seed, one after the other, and is scored on the val split after every epoch.

    python bench/tiny_recipe.py [--data data_samples] [--out /tmp/tiny_recipe] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from minternet import HeatmapCodec, InterHandDataset
from minternet.config import TINY
from minternet.evaluate import average_pose_predictions, score_predictions
from minternet.train import train

VARIANTS = {
    "TINY (128 channels, peak 16)": {},
    "peak 255 (mmpose's)": {"heatmap_peak": "255"},
    "32 channels": {"deconv_channels": "32"},
    "32 channels, peak 255 (the earlier recipe)": {"deconv_channels": "32", "heatmap_peak": "255"},
}
"""Each variant's changes to TINY, as the command line gives them (TrainConfig.replace)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_samples")
    parser.add_argument("--out", default="/tmp/tiny_recipe", help="run folders (replaced)")
    parser.add_argument("--epochs", type=int, default=TINY.epochs)
    args = parser.parse_args()
    size = TINY.model.input_size
    val = InterHandDataset(args.data, TINY.val_split, train=False, input_size=size)
    train_crops = InterHandDataset(args.data, TINY.train_split, train=False, input_size=size)
    average = score_predictions(
        average_pose_predictions(train_crops, val, HeatmapCodec.for_model(TINY.model)), val
    )
    trusted = val.index["hand_type_valid"] > 0
    interacting = float((val.index["hand_type"][trusted] == 1).all(axis=1).mean())
    print(f"val: average pose MPJPE_all {average['MPJPE_all']:.1f} mm, MRRPE "
          f"{average['MRRPE']:.1f} mm; always 'interacting' APh {interacting:.3f}")  # fmt: skip
    print(f"{'variant':<44}{'s':>6}  val MPJPE_all by epoch (mm)   last: x avg, MRRPE, APh")
    for name, changes in VARIANTS.items():
        out = Path(args.out) / name.split(" (")[0].replace(" ", "_").replace(",", "")
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        config = TINY.replace({**changes, "epochs": str(args.epochs)})
        history = train(config, args.data, out, progress=False, device="cpu")
        seconds = time.perf_counter() - start
        curve = " ".join(f"{h['val']['MPJPE_all']:.0f}" for h in history)
        last = history[-1]["val"]
        print(f"{name:<44}{seconds:>6.0f}  {curve}   {last['MPJPE_all'] / average['MPJPE_all']:.2f}"
              f"x, {last['MRRPE']:.1f}, {last['APh']:.3f}", flush=True)  # fmt: skip
        (out / "summary.json").write_text(json.dumps({"variant": name, "seconds": seconds}))


if __name__ == "__main__":
    main()
