#!/usr/bin/env python3
"""The ONNX bench set written by PyTorch, to time opening `.pt` against `.onnx` on the same
weights (it needs torch: run it in a venv of its own).

    python scripts/make_bench_torch.py bench-data/m100 bench-data/m100_torch

Reads every initializer of DIR's float model that a MatMul/Gemm/Conv uses as its weight,
and writes OUT/m100_float.pt (`torch.save` of a state_dict `<node>.weight` of those float
tensors) and OUT/m100_int8.pt (the same weights quantized by `torch.quantize_per_channel`,
qint8, symmetric per output channel as PyTorch's x86 backend does, with `<node>.scale` and
`<node>.zero_point` for an output quantization), so that `quantlens bench OUT` and
`quantlens bench DIR` read the same number of weights.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    src = next(p for p in sorted(a.dir.glob("*.onnx")) if "float" in p.name)
    m = onnx.load(str(src))
    inits = {t.name: t for t in m.graph.initializer}
    float_sd, int8_sd = OrderedDict(), OrderedDict()
    for n in m.graph.node:
        if n.op_type not in ("MatMul", "Gemm", "Conv") or len(n.input) < 2 or n.input[1] not in inits:
            continue
        w = torch.from_numpy(numpy_helper.to_array(inits[n.input[1]]).copy())
        if n.op_type == "MatMul":
            w = w.t().contiguous()  # [K, N] -> PyTorch's Linear [N, K]
        float_sd[f"{n.name}.weight"] = w
        axis = 0
        reduce = tuple(d for d in range(w.dim()) if d != axis)
        scales = (w.abs().amax(dim=reduce).double() / 127.0).clamp(min=1e-12)
        zps = torch.zeros_like(scales, dtype=torch.long)
        int8_sd[f"{n.name}.weight"] = torch.quantize_per_channel(w, scales, zps, axis, torch.qint8)
        int8_sd[f"{n.name}.scale"] = torch.tensor(0.05)
        int8_sd[f"{n.name}.zero_point"] = torch.tensor(128)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save(float_sd, a.out / "m100_float.pt")
    torch.save(int8_sd, a.out / "m100_int8.pt")
    print(len(float_sd), "weights;", *(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(a.out.glob("*.pt"))))


if __name__ == "__main__":
    main()
