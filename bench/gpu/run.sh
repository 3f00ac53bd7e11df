#!/usr/bin/env bash
# Run THERE, on the lent GPU machine (the device tool), from the repository root:
#     bash bench/gpu/run.sh [DEADLINE_S] [STEP ...]
# with `carry: [".whl"]` (made here by bench/gpu/fetch_wheels.sh). It installs the wheels beside the
# machine's own CUDA torch, then runs the steps in order, each cut off at DEADLINE_S (default 540)
# seconds after the start, so the call ends inside its 10-minute limit and what was measured comes
# back. Steps (default: all, in this order):
#   tests                 pytest tests/gpu (the engine on CUDA, fp16, unload)
#   sd15_b1_latency sd15_throughput sdxl_b1_latency sdxl_throughput   bench/perf.py's GPU rows
#   fp8                   sdxl_b1_latency once more, now with its FP8 figure (torchao, capability 8.9+);
#                         the rows before run with --no-fp8, and the compile cache makes this one quicker
#   cudagraphs            both batch-1 latency rows with PIXELSERVE_COMPILE_MODE=reduce-overhead (CUDA
#                         graphs), into gpu-reduce-overhead.json: whether it should be the GPU default
# Everything lands in $OUT: run.log and gpu.json (perf.py merges each row into it; cudagraphs writes
# its own file). Built models and the compile cache stay in /tmp/pixelserve-bench while the machine
# is warm, so a second call with the steps left over starts where the first ended.
# Dry run here on a CPU: PYV=3.11 bash bench/gpu/fetch_wheels.sh, then with a python3 on PATH that has
# only the GPU image's packages, PERF_ARGS="--gpu-tiny --quick" bash bench/gpu/run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
DEADLINE=${1:-540}
shift || true
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(tests sd15_b1_latency sd15_throughput sdxl_b1_latency sdxl_throughput fp8 cudagraphs)
OUT=${OUT:-/tmp/pixelserve-out}
PERF_ARGS=${PERF_ARGS:-}  # e.g. "--gpu-tiny --quick": the dry run of this script on a CPU machine
CACHE=/tmp/pixelserve-bench
mkdir -p "$OUT" "$CACHE"
START=$(date +%s)
exec > >(tee -a "$OUT/run.log") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY' || exit 1
import importlib.metadata as md, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())
print(" ".join(f"{d}=={md.version(d)}" for d in ("diffusers", "transformers", "huggingface-hub", "tokenizers", "peft",
                                              "accelerate", "pydantic", "fastapi", "torchao", "numpy", "pillow")))
import pixelserve.app, pixelserve.engine.runners.local  # noqa: F401  (everything the steps import)
PY

for step in "${STEPS[@]}"; do
    left=$((DEADLINE - ($(date +%s) - START)))
    if [ "$left" -lt 20 ]; then
        echo "== $step: not run, ${left}s left of ${DEADLINE}s"
        continue
    fi
    echo "== $step ($(date -u +%T), ${left}s left)"
    t0=$(date +%s)
    case $step in
        tests) timeout -k 5 "$left" python3 -m pytest -q -p no:cacheprovider tests/gpu ;;
        cudagraphs) timeout -k 5 "$left" python3 bench/perf.py --rows sd15_b1_latency,sdxl_b1_latency --no-fp8 \
                        --compile-mode reduce-overhead $PERF_ARGS --cache "$CACHE" --out "$OUT/gpu-reduce-overhead.json" ;;
        fp8) timeout -k 5 "$left" python3 bench/perf.py --rows sdxl_b1_latency $PERF_ARGS --cache "$CACHE" --out "$OUT/gpu.json" ;;
        *) timeout -k 5 "$left" python3 bench/perf.py --rows "$step" --no-fp8 $PERF_ARGS --cache "$CACHE" --out "$OUT/gpu.json" ;;
    esac
    echo "== $step: exit $? after $(($(date +%s) - t0))s"
done
