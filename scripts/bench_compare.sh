#!/usr/bin/env bash
# Runs `quantlens bench DIR` and the onnx + numpy reference (scripts/bench_numpy.py) on the
# same files, one after the other (each once untimed first), and prints both with their
# ratios.
#   scripts/bench_compare.sh DIR [PYTHON]      (PYTHON: a venv with requirements-fixtures.txt)
set -euo pipefail
dir=${1:?usage: bench_compare.sh DIR [PYTHON]}
py=${2:-.venv-fixtures/bin/python}
bin=${QUANTLENS_BIN:-${CARGO_TARGET_DIR:-target}/release/quantlens}
# one untimed run of each first (as `hyperfine --warmup 1`): files in the page cache and
# cores out of their idle states for both; a short run (quantlens's ~0.1 s) otherwise pays
# the wake-up that a 2 s run hides
"$bin" bench "$dir" >/dev/null
"$py" scripts/bench_numpy.py "$dir" >/dev/null 2>&1
ours=$("$bin" bench "$dir")
numpy=$(/usr/bin/time -f '%M' -o /tmp/quantlens-numpy-rss "$py" scripts/bench_numpy.py "$dir" 2>/dev/null)
numpy_rss_kb=$(cat /tmp/quantlens-numpy-rss)
python3 - "$ours" "$numpy" "$numpy_rss_kb" <<'PY'
import json, sys
ours, numpy, rss = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]) / 1024
same = ours["import_stats_histograms_s"]
print(json.dumps({
    "quantlens": {k: ours[k] for k in ("import_s", "stats_histograms_s", "import_stats_histograms_s",
                                       "metrics_s", "peak_rss_import_mb", "peak_rss_phases_mb", "files_mb")},
    "numpy": {**numpy, "peak_rss_mb_time": round(rss, 1)},
    "speedup_total": round(numpy["wall_s"] / same, 2),
    "speedup_load": round(numpy["load_s"] / ours["import_s"], 2),
    "speedup_stats_histograms": round((numpy["stats_s"] + numpy["hist_s"]) / ours["stats_histograms_s"], 2),
}, indent=1))
PY
