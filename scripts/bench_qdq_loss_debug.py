#!/usr/bin/env python3
"""The Python pipeline `quantlens report --inputs` is benchmarked against: onnxruntime's
own `qdq_loss_debug`, as its documentation drives it.

    python scripts/bench_qdq_loss_debug.py DIR [--samples 2] [--seed 0] [--dim NAME=N]...

DIR holds a float variant (`*float*.onnx`) and quantized ones (`*int8*`, `*uint8*`). For
every file: `modify_model_output_intermediate_tensors` (every intermediate tensor made a
graph output), `collect_activations` on the same seeded standard-normal samples
(onnxruntime's default for it: one session, `ORT_DISABLE_ALL`), then for every quantized
variant `create_activation_matching` against the float activations and
`compute_activation_error` (`qdq_err`, `xmodel_err` per activation). Dynamic input
dimensions take `--dim NAME=N`.

Prints one JSON line: {"wall_s", "augment_s", "collect_s", "compare_s", "activations",
"samples", "peak_rss_mb"} (peak_rss_mb: getrusage ru_maxrss / 1024, this process).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    compute_activation_error,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)

TYPES = {1: np.float32, 7: np.int64, 6: np.int32}


class Samples(CalibrationDataReader):
    def __init__(self, feeds):
        self.feeds = feeds
        self.rewind()

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.feeds)


def feeds(model_path: Path, n: int, seed: int, dims: dict[str, int]):
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feed = {}
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            t = inp.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else dims[d.dim_param] for d in t.shape.dim]
            dtype = TYPES.get(t.elem_type, np.float32)
            feed[inp.name] = (rng.standard_normal(shape).astype(dtype) if dtype == np.float32
                              else np.zeros(shape, dtype))
        out.append(feed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=N")
    a = ap.parse_args()
    dims = {k: int(v) for k, v in (d.split("=", 1) for d in a.dim)}
    files = sorted(a.dir.glob("*.onnx"))
    float_path = next(p for p in files if "float" in p.name.lower())
    quantized = [p for p in files if p != float_path and "int8" in p.name.lower()]
    start = time.perf_counter()
    samples = feeds(float_path, a.samples, a.seed, dims)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        augmented = {}
        for p in [float_path, *quantized]:
            augmented[p] = Path(tmp) / p.name
            modify_model_output_intermediate_tensors(str(p), str(augmented[p]))
        augment_s = time.perf_counter() - t
        t = time.perf_counter()
        acts = {p: collect_activations(str(augmented[p]), Samples(samples)) for p in augmented}
        collect_s = time.perf_counter() - t
    t = time.perf_counter()
    count = 0
    for p in quantized:
        errors = compute_activation_error(create_activation_matching(acts[p], acts[float_path]))
        count += len(errors)
    compare_s = time.perf_counter() - t
    print(json.dumps({
        "wall_s": time.perf_counter() - start,
        "augment_s": augment_s,
        "collect_s": collect_s,
        "compare_s": compare_s,
        "activations": count,
        "samples": a.samples,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
