#!/usr/bin/env bash
# Every GPU measurement of the training step's speed in one run of at most about 4 minutes:
# the throughput planner's table (the previous step as the baseline, today's step eager and
# compiled, fp32 / bf16 / bf16 + channels_last, batches 32, 64 and 128, FLOPs and the
# measured bf16 matmul peak, where the time goes, one epoch with the loader), the numerical
# checks of the fast step against float32, and the evaluation speed, bf16 + channels_last
# against float32.
#
#     bash bench/gpu_throughput.sh           # on the GPU, from the repository root
#     bash bench/gpu_throughput.sh --tiny    # the same end to end with the tiny model
#
# Tables and JSON go to $OUT (default: a new temporary folder): planner_target.{txt,json}
# (the target variant, its baseline and where its time goes), numerics.{txt,json},
# planner_more.{txt,json} (the rest, and one epoch), eval.{txt,json}, env.txt. Each part runs under a time limit taken
# from what is left of BUDGET seconds (default 235); the planner writes its JSON after
# every variant and skips those that would not finish in time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
BUDGET="${BUDGET:-235}"
START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }
if [ -x .venv/bin/python ]; then PYTHON="${PYTHON:-.venv/bin/python}"; else PYTHON="${PYTHON:-python3}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MINTERNET_CACHE="${MINTERNET_CACHE:-$(mktemp -d)}"
CPUS=$(nproc)

# tqdm only draws progress bars, which these runs switch off: a stand-in where it is missing.
if ! "$PYTHON" -c "import tqdm" 2>/dev/null; then
    SHIM=$(mktemp -d)
    mkdir -p "$SHIM/tqdm"
    printf '%s\n' "class tqdm:" \
        "    def __init__(self, *a, **k): pass" \
        "    def __getattr__(self, name): return lambda *a, **k: None" \
        > "$SHIM/tqdm/__init__.py"
    cp "$SHIM/tqdm/__init__.py" "$SHIM/tqdm/auto.py"
    export PYTHONPATH="$PYTHONPATH:$SHIM"
    echo "tqdm missing: a stand-in without progress bars is used"
fi

"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import importlib, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("GPU:", torch.cuda.get_device_name(0), f"| {p.total_memory / 2**30:.0f} GiB",
          f"| {p.multi_processor_count} SMs | capability {p.major}.{p.minor}")
else:
    print("GPU: none, running on the CPU")
for name in ("numpy", "cv2", "torchvision", "tqdm", "triton"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError as err:
        print(f"{name} MISSING ({err})")
EOF
if ! "$PYTHON" -c "import minternet.train" 2>"$OUT/import_error.txt"; then
    echo "cannot import minternet here:"; cat "$OUT/import_error.txt"; exit 1
fi

DATA=data_samples
if [ "${1:-}" = "--tiny" ]; then
    CONFIG=tiny
    # A small synthetic tree, so that the epoch and the evaluation are short too.
    DATA=$(mktemp -d)/tree
    "$PYTHON" -m minternet synth --out "$DATA" --train 24 --val 0 --test 8 --captures 1 \
        --workers 1 --quiet > /dev/null
    FIRST=8:bf16+cl:previous,8:bf16+cl:eager,8:bf16+cl:compiled
    REST=8:fp32:previous,8:fp32:eager,4:bf16+cl:eager
    TARGET=8:bf16+cl:compiled
    BREAKDOWN=8:bf16+cl:eager  # no compiled variant on a CPU
    PLAN=(--steps 1 --warmup 1 --peak-size 512 --workers 1)
    NUMERICS=(--batch-size 4 --loss-batch 4)
    EVAL=(--batch-size 8 --crops 32 --steps 2 --workers 1)
else
    CONFIG=paper
    # First the target variant and its baseline; then, after the numerical checks (which
    # reuse its compiled kernels from the cache), the other precisions and batch sizes,
    # one epoch with the loader, and more compiled variants while the budget lasts.
    FIRST=64:bf16+cl:previous,64:bf16+cl:eager,64:bf16+cl:compiled
    REST=64:fp32:previous,64:fp32:eager,64:bf16:previous,64:bf16:eager,32:bf16+cl:previous,32:bf16+cl:eager,128:bf16+cl:previous,128:bf16+cl:eager,128:bf16+cl:compiled,64:bf16:compiled,64:fp32:compiled
    TARGET=64:bf16+cl:compiled
    BREAKDOWN=$TARGET
    WORKERS=$((CPUS > 2 ? CPUS - 2 : 1))
    PLAN=(--steps 10 --warmup 2 --workers "$WORKERS")
    NUMERICS=(--batch-size 64 --loss-batch 64)
    EVAL=(--batch-size 128 --crops 1024 --steps 10 --workers "$WORKERS")
fi
# The seconds left minus $1, at least 10.
upto() { local n=$(($(left) - $1)); echo $((n > 10 ? n : 10)); }

planner() {  # planner() NAME RESERVE ARGS...: a planner run that leaves RESERVE seconds
    local name=$1 reserve=$2
    shift 2
    echo "== planner, $name ($(left) s left)"
    timeout --kill-after=5 "$(upto "$reserve")" "$PYTHON" bench/throughput_planner.py \
        --config "$CONFIG" --data "$DATA" --no-loader --budget "$(upto $((reserve + 15)))" \
        --json "$OUT/planner_$name.json" "${PLAN[@]}" "$@" 2>&1 | tee "$OUT/planner_$name.txt"
    if [ "${PIPESTATUS[0]}" -ne 0 ] && [ -s "$OUT/planner_$name.json" ]; then
        echo "(the planner was stopped: its table so far)" | tee -a "$OUT/planner_$name.txt"
        "$PYTHON" bench/throughput_planner.py --report "$OUT/planner_$name.json" 2>&1 \
            | tee -a "$OUT/planner_$name.txt"
    fi
}

planner target 95 --variants "$FIRST" --breakdown "$BREAKDOWN"

echo "== numerical checks ($(left) s left)"
timeout --kill-after=5 "$(upto 40)" "$PYTHON" bench/step_numerics.py --config "$CONFIG" --data "$DATA" \
    --json "$OUT/numerics.json" "${NUMERICS[@]}" 2>&1 | tee "$OUT/numerics.txt"

planner more 22 --variants "$REST" --epoch "$TARGET"

echo "== evaluation speed ($(left) s left)"
timeout --kill-after=3 "$(upto 2)" "$PYTHON" bench/eval_speed.py --config "$CONFIG" --data "$DATA" \
    --json "$OUT/eval.json" "${EVAL[@]}" 2>&1 | tee "$OUT/eval.txt"

echo "== done in $((SECONDS - START)) s; results in $OUT:"
ls -l "$OUT"
