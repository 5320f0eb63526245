#!/usr/bin/env bash
# `quantlens report --inputs` against onnxruntime's qdq_loss_debug pipeline in Python
# (scripts/bench_qdq_loss_debug.py) on the same folder, as whole processes, one after the
# other (each once untimed first): wall time and peak RSS of both, and the ratio.
#   scripts/bench_infer_compare.sh DIR SAMPLES [--dim NAME=N]...   (PYTHON: a venv with
#   requirements-fixtures.txt, default .venv-fixtures/bin/python; QUANTLENS_BIN: the binary)
set -euo pipefail
dir=${1:?usage: bench_infer_compare.sh DIR SAMPLES [--dim NAME=N]...}
n=${2:?samples}
shift 2
py=${PYTHON:-.venv-fixtures/bin/python}
bin=${QUANTLENS_BIN:-${CARGO_TARGET_DIR:-target}/release/quantlens}
ours() { "$bin" report "$dir" --format json --inputs random --samples "$n" "$@" >/dev/null; }
theirs() { "$py" scripts/bench_qdq_loss_debug.py "$dir" --samples "$n" "$@"; }
ours "$@"
theirs "$@" >/dev/null 2>&1
/usr/bin/time -f '%e %M' -o /tmp/quantlens-infer-ours "$bin" report "$dir" --format json --inputs random \
  --samples "$n" "$@" >/dev/null
/usr/bin/time -f '%e %M' -o /tmp/quantlens-infer-theirs "$py" scripts/bench_qdq_loss_debug.py "$dir" --samples "$n" "$@" \
  >/tmp/quantlens-infer-theirs.json 2>/dev/null
python3 - <<'PY'
import json
ours = open("/tmp/quantlens-infer-ours").read().split()
theirs = open("/tmp/quantlens-infer-theirs").read().split()
inner = json.load(open("/tmp/quantlens-infer-theirs.json"))
print(json.dumps({
    "quantlens": {"wall_s": float(ours[0]), "peak_rss_mb": round(int(ours[1]) / 1024, 1)},
    "qdq_loss_debug": {**inner, "wall_s": float(theirs[0]), "peak_rss_mb": round(int(theirs[1]) / 1024, 1)},
    "speedup": round(float(theirs[0]) / float(ours[0]), 2),
}, indent=1))
PY
