#!/usr/bin/env python3
"""The Python reference path quantlens is benchmarked against (`quantlens bench DIR`).

    python scripts/bench_numpy.py DIR [--bins 64]

For every *.onnx in DIR: onnx.load (external data included), numpy_helper.to_array of
every initializer, dequantization of the QDQ weights ((q - zp) * scale along the
DequantizeLinear axis, float32), per-tensor statistics (count, NaN/Inf count, min, max,
mean, std, q25/q50/q75 over the finite values) of every float weight and dequantized
weight, then, per layer matched by node name across the files, np.histogram of the float
and each dequantized weight over shared edges (bins over the common min/max).

Prints one JSON line: {"wall_s", "load_s", "stats_s", "hist_s", "peak_rss_mb"}
(peak_rss_mb from getrusage(RUSAGE_SELF).ru_maxrss / 1024). A summary goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

LAYER_OPS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "Gather": 0}


def load(path: Path):
    model = onnx.load(str(path), load_external_data=True)
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return model, arrays


def dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int) -> np.ndarray:
    scale = scale.astype(np.float32)
    zp = np.zeros(scale.shape, np.int32) if zp is None else zp.astype(np.int32)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis if axis >= 0 else axis + q.ndim] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q.astype(np.int32) - zp).astype(np.float32) * scale


def weights_of(model, arrays) -> tuple[dict, dict]:
    """(tensors to summarise by name, layer node name → weight array)."""
    g = model.graph
    produced: dict[str, np.ndarray] = {}
    quant_params: set[str] = set()
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in arrays:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            zp = arrays.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            try:
                produced[n.output[0]] = dequantize(arrays[n.input[0]], arrays[n.input[1]], zp, axis)
            except (KeyError, ValueError, IndexError) as e:
                print(f"warning: {n.input[0]}: cannot dequantize ({e})", file=sys.stderr)
            quant_params.update(n.input[1:])
    tensors = {k: v for k, v in arrays.items() if v.dtype.kind == "f" and k not in quant_params}
    tensors.update(produced)
    layers = {}
    for n in g.node:
        k = LAYER_OPS.get(n.op_type)
        if k is not None and k < len(n.input) and n.input[k] in tensors:
            layers[n.name] = tensors[n.input[k]]
    return tensors, layers


def summary(a: np.ndarray) -> dict:
    flat = a.reshape(-1)
    finite_mask = np.isfinite(flat)
    f = flat[finite_mask] if not finite_mask.all() else flat
    f64 = f.astype(np.float64)
    out = {
        "count": int(flat.size),
        "nan": int(np.isnan(flat).sum()),
        "inf": int(np.isinf(flat).sum()),
    }
    if f.size:
        q25, q50, q75 = np.quantile(f64, [0.25, 0.5, 0.75])
        out.update(min=float(f.min()), max=float(f.max()), mean=float(f64.mean()), std=float(f64.std()),
                   q25=float(q25), q50=float(q50), q75=float(q75))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bins", type=int, default=64)
    a = ap.parse_args(argv)
    files = sorted(a.dir.glob("*.onnx"))
    if not files:
        print(f"error: no .onnx file in {a.dir}", file=sys.stderr)
        return 1
    t_start = time.perf_counter()
    load_s = stats_s = hist_s = 0.0
    per_file_layers: dict[str, dict] = {}
    n_tensors = 0
    for path in files:
        t0 = time.perf_counter()
        try:
            model, arrays = load(path)
        except Exception as e:  # noqa: BLE001 - a reference run skips what onnx cannot read
            print(f"warning: {path}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        t1 = time.perf_counter()
        tensors, layers = weights_of(model, arrays)
        stats = {name: summary(arr) for name, arr in tensors.items()}
        t2 = time.perf_counter()
        load_s += t1 - t0
        stats_s += t2 - t1
        n_tensors += len(stats)
        per_file_layers[path.name] = layers
        del model, arrays, tensors
    t3 = time.perf_counter()
    names = sorted({n for layers in per_file_layers.values() for n in layers})
    n_hist = 0
    for name in names:
        arrs = []
        for layers in per_file_layers.values():
            if name in layers:
                v = layers[name].reshape(-1)
                arrs.append(v[np.isfinite(v)] if not np.isfinite(v).all() else v)
        arrs = [v for v in arrs if v.size]
        if not arrs:
            continue
        lo = min(float(v.min()) for v in arrs)
        hi = max(float(v.max()) for v in arrs)
        for v in arrs:
            np.histogram(v.astype(np.float64), bins=a.bins, range=(lo, hi))
            n_hist += 1
    hist_s = time.perf_counter() - t3
    wall_s = time.perf_counter() - t_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"bench_numpy: {len(files)} files, {n_tensors} tensors summarised, {len(names)} layers, {n_hist} histograms",
        file=sys.stderr,
    )
    print(json.dumps({
        "wall_s": round(wall_s, 4), "load_s": round(load_s, 4), "stats_s": round(stats_s, 4),
        "hist_s": round(hist_s, 4), "peak_rss_mb": round(peak, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
