#!/usr/bin/env python3
"""The numpy reference for a 4-bit `MatMulNBits` model in external data, streamed one layer
at a time (what `quantlens report DIR` does for it): `bench_numpy.py` keeps every
dequantized weight, which for a multi-GB 4-bit model is 8× its size in float32.

    python scripts/bench_numpy_nbits.py DIR [--bins 64]

DIR holds llm_nbits.onnx (+ llm_nbits.weights.bin) from `make_bench_model.py
--external-gb G --nbits`, and optionally llm_float.onnx. Per MatMulNBits layer: its
tensors memory-mapped from the external file (np.memmap), B unpacked (low nibble first)
and dequantized `(q − zp[block]) · scale[block]` in float32 in the float MatMul's [K, N]
orientation; then the statistics quantlens reports (count, NaN/Inf, min, max, mean, std,
q25/q50/q75), and with the float model: np.histogram of both over shared bins, SQNR
(onnxruntime's formula), MSE, max |err|, cosine and rmse/scale. Prints one JSON line
{"wall_s", "layers", "params", "peak_rss_mb"}.
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

EPS = np.finfo(float).eps


def external(model_dir: Path, t: onnx.TensorProto, dtype) -> np.ndarray:
    info = {e.key: e.value for e in t.external_data}
    return np.memmap(model_dir / info["location"], dtype=dtype, mode="r", offset=int(info.get("offset", 0)),
                     shape=tuple(t.dims))


def summary(a: np.ndarray) -> dict:
    f = a.reshape(-1)
    finite = np.isfinite(f)
    nan, inf = int(np.isnan(f).sum()), int((~finite).sum() - np.isnan(f).sum())
    if not finite.all():
        f = f[finite]
    f64 = f.astype(np.float64)
    q25, q50, q75 = np.quantile(f64, [0.25, 0.5, 0.75])
    return {"count": int(a.size), "nan": nan, "inf": inf, "min": float(f.min()), "max": float(f.max()),
            "mean": float(f64.mean()), "std": float(f64.std()), "q25": q25, "q50": q50, "q75": q75}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bins", type=int, default=64)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    qm = onnx.load(str(a.dir / "llm_nbits.onnx"), load_external_data=False)
    qinit = {t.name: t for t in qm.graph.initializer}
    fpath = a.dir / "llm_float.onnx"
    finit = {}
    if fpath.exists():
        fm = onnx.load(str(fpath), load_external_data=False)
        finit = {t.name: t for t in fm.graph.initializer}
    layers = params = 0
    for n in qm.graph.node:
        if n.op_type != "MatMulNBits":
            continue
        attrs = {x.name: x.i for x in n.attribute}
        k, nn, block = attrs["K"], attrs["N"], attrs["block_size"]
        nb = -(-k // block)
        packed = external(a.dir, qinit[n.input[1]], np.uint8).reshape(nn, nb, block // 2)
        scale = external(a.dir, qinit[n.input[2]], np.float32).reshape(nn, nb)
        zb = external(a.dir, qinit[n.input[3]], np.uint8).reshape(nn, -1)
        zp = np.stack([zb & 0x0F, zb >> 4], axis=-1).reshape(nn, -1)[:, :nb].astype(np.float32)
        q = np.empty((nn, nb, block), np.float32)
        q[:, :, 0::2] = packed & 0x0F
        q[:, :, 1::2] = packed >> 4
        y = ((q - zp[:, :, None]) * scale[:, :, None]).reshape(nn, nb * block)[:, :k].T  # [K, N]
        del q
        summary(y)
        wname = n.input[1].removesuffix("_Q4")
        if wname in finit:
            x = external(a.dir, finit[wname], np.float32)
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            np.histogram(x, bins=a.bins, range=(lo, hi))
            np.histogram(y, bins=a.bins, range=(lo, hi))
            summary(x)
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            d = x64 - y64
            nx, ny, nd = np.linalg.norm(x64), np.linalg.norm(y64), np.linalg.norm(d)
            padded = np.zeros((nb * block, nn))
            padded[:k] = d
            steps = padded.reshape(nb, block, nn) / scale.T[:, None, :]
            _ = (20 * np.log10(max(nx, EPS) / max(nd, EPS)), (d * d).mean(), np.abs(d).max(),
                 float((x64 * y64).sum() / (nx * ny)), np.sqrt((steps[:, :, :] ** 2).sum() / d.size))
            del x64, y64, d
        else:
            np.histogram(y, bins=a.bins)
        layers += 1
        params += k * nn
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(time.perf_counter() - t0, 3), "layers": layers, "params": params,
                      "peak_rss_mb": round(peak, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
