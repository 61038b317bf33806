#!/usr/bin/env bash
# A convincing synthetic run on one CUDA GPU, in one command, from the repository root:
#
#     bash book/tools/synthetic_gpu_run.sh [RUN_FOLDER] [extra `minternet train` options]
#
# 1. writes a synthetic InterHand2.6M tree: 50,000 training images from 24 captures, and
#    validation and test splits of 2,000 images from captures (subjects) of their own;
# 2. trains `--config synthetic` on it (the paper's model and schedule, batch 64 on one GPU);
# 3. scores the best checkpoint on the test split and copies what the book draws (the
#    per-epoch metrics, the test scores, 64 test frames' predictions with their ground truth,
#    and the machine it ran on) into book/results/synthetic/.
# On an H200-class GPU: about 2 min of generation on 16 cores and under 30 min of training.
# TRAIN_IMAGES, EVAL_IMAGES, CAPTURES and RESULTS override the sizes and the results folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
run=${1:-runs/synthetic}
shift || true
python=${PYTHON:-python}
train_images=${TRAIN_IMAGES:-50000}
eval_images=${EVAL_IMAGES:-2000}
captures=${CAPTURES:-24}
workers=$(( $(nproc) < 16 ? $(nproc) : 16 ))

"$python" -m minternet synth --out "$run/data" --seed 1 --train "$train_images" \
    --val "$eval_images" --test "$eval_images" --captures "$captures" --sequences 120 \
    --cameras 32 --views 4 --workers "$workers" --quiet
"$python" -m minternet train --config synthetic --data "$run/data" --out "$run/train" \
    --quiet "$@"
"$python" -m minternet eval --checkpoint "$run/train/best.pth" --data "$run/data" \
    --split test --json "$run/train/test.json"

results=${RESULTS:-book/results/synthetic}
mkdir -p "$results"
cp "$run/train/metrics.jsonl" "$run/train/test.json" "$run/train/config.json" "$results/"
"$python" - "$run/train/best.pth" "$run/data" "$results/test_predictions.json" <<'PY'
import json, sys
from minternet.evaluate import predict
from minternet.hub import load_model
from minternet.results import open_split, prediction_records
model = load_model(sys.argv[1])
test, _ = open_split(sys.argv[2], "test", model.input_size)
json.dump(prediction_records(predict(model, test), test), open(sys.argv[3], "w"))
PY
"$python" - "$results/machine.json" "$train_images" "$*" <<'PY'
import datetime, json, sys, torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
json.dump({"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
           "date": datetime.date.today().isoformat(), "train_images": int(sys.argv[2]),
           "command": "bash book/tools/synthetic_gpu_run.sh " + sys.argv[3]},
          open(sys.argv[1], "w"), indent=1)
PY
echo "results in $results"
