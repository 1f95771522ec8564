#!/usr/bin/env bash
# GPU readiness check: on a machine with an NVIDIA GPU, installs what the project needs (with
# TensorFlow's CUDA libraries), runs the test suite (the GPU tests included; the slow CPU
# subprocess tests left out), then the GPU rows of the inference and training benchmarks, and
# writes everything to one JSON file. About 5 minutes on one H100.
#
#   bash experiments/gpu_check.sh [results.json]
#
# Without a GPU it says so and runs what does not need one: it collects the GPU tests (which
# skip) and runs the benchmarks' GPU code on tiny inputs on the CPU (--smoke; GPU_CHECK_SMOKE=0
# leaves that out). It then exits 0: no GPU is not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check.json}
PYTHON=${PYTHON:-python}
TMP=$(mktemp -d -t hdr_gan_gpu_check.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no GPU: nvidia-smi finds no NVIDIA GPU here, so the GPU tests and benchmark rows are skipped"
    "$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -m gpu tests/test_gpu.py | tail -1
    if [ "${GPU_CHECK_SMOKE:-1}" != 0 ]; then
        "$PYTHON" experiments/bench_infer.py --smoke --json "$TMP/infer.json"
        "$PYTHON" experiments/bench_train.py --smoke --json "$TMP/train.json"
    fi
    "$PYTHON" - "$OUT" <<'PY'
import json, sys
json.dump({"gpu": None, "skipped": "no NVIDIA GPU on this machine"}, open(sys.argv[1], "w"),
          indent=2)
PY
    echo "wrote $OUT (no GPU results)"
    exit 0
fi

GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "GPU: $GPU_NAME"
if ! "$PYTHON" -c "import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices('GPU'))" 2>/dev/null; then
    "$PYTHON" -m pip install -q -r requirements.txt -e . "tensorflow[and-cuda]==2.21.*"
fi
"$PYTHON" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'sees', tf.config.list_physical_devices('GPU'))"

START=$(date +%s)
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -m "gpu or not slow" > "$TMP/pytest.log" 2>&1
TESTS_RC=$?
set -e
tail -3 "$TMP/pytest.log"
"$PYTHON" experiments/bench_infer.py --gpu --json "$TMP/infer.json"
"$PYTHON" experiments/bench_train.py --gpu --json "$TMP/train.json"
"$PYTHON" - "$OUT" "$GPU_NAME" "$TESTS_RC" "$TMP" "$START" <<'PY'
import json, sys, time
out, gpu, rc, tmp, start = sys.argv[1:]
summary = open(f"{tmp}/pytest.log").read().strip().splitlines()[-1]
results = {"gpu": gpu, "tests": {"passed": rc == "0", "summary": summary},
           "inference": json.load(open(f"{tmp}/infer.json")),
           "training": json.load(open(f"{tmp}/train.json")),
           "seconds": time.time() - float(start)}
json.dump(results, open(out, "w"), indent=2)
PY
echo "wrote $OUT"
exit "$TESTS_RC"
