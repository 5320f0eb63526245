#!/usr/bin/env python3
"""Blocked low-bit fixtures: onnxruntime's MatMulNBitsQuantizer in its QDQ form (opset 21
`DequantizeLinear` with `block_size`) on the bundled transformer block.

    python scripts/make_lowbit_fixtures.py     # from the repository root (pinned packages)

Writes tests/data/lowbit/:
- transformer_float.onnx: copy of tests/data/transformer/transformer_float.onnx;
- transformer_int4.onnx: 4-bit symmetric, block 32 (int4, no zero points; onnxruntime's
  RTN writes negative scales: the block's signed extreme over -8);
- transformer_uint4.onnx: 4-bit asymmetric, block 16 (uint4 with zero points);
and tests/data/lowbit_golden.json: for every blocked weight, numpy's dequantization
`(q - zp[block]) * scale[block]` in float32: its FNV-1a 64 hash over the little-endian
bytes, count, min, max, mean, and the SQNR against the float weight (onnxruntime's
formula, float64).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import QuantFormat
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

DATA = mf.DATA
OUT = DATA / "lowbit"


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def quantize(src: Path, dst: Path, block: int, symmetric: bool) -> None:
    cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, quant_format=QuantFormat.QDQ,
                                       op_types_to_quantize=("MatMul",))
    q = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=cfg)
    q.process()
    onnx.save(q.model.model, str(dst))


def dequantized(model: onnx.ModelProto) -> dict[str, tuple[str, np.ndarray]]:
    """Per blocked DequantizeLinear: (the float weight it stands for, its values)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: a.i for a in n.attribute}
        if not attrs.get("block_size"):
            continue
        q = inits[n.input[0]].astype(np.int32)
        scale = inits[n.input[1]].astype(np.float32)
        zp = inits[n.input[2]].astype(np.int32) if len(n.input) > 2 and n.input[2] else np.zeros_like(scale, np.int32)
        axis, block = attrs.get("axis", 1), attrs["block_size"]
        scale_full = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        zp_full = np.repeat(zp, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        values = ((q - zp_full).astype(np.float32) * scale_full).astype(np.float32)
        float_name = n.input[0].split("_DQ_")[0]
        out[n.input[0]] = (float_name, values)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    src = DATA / "transformer/transformer_float.onnx"
    shutil.copyfile(src, OUT / "transformer_float.onnx")
    quantize(src, OUT / "transformer_int4.onnx", 32, True)
    quantize(src, OUT / "transformer_uint4.onnx", 16, False)
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    golden: dict = {}
    for variant in ("int4", "uint4"):
        golden[variant] = {}
        for qname, (fname, v) in sorted(dequantized(onnx.load(str(OUT / f"transformer_{variant}.onnx"))).items()):
            x = floats[fname].astype(np.float64)
            err = np.linalg.norm(x - v.astype(np.float64))
            golden[variant][qname] = {
                "float": fname,
                "fnv1a64": fnv1a64(np.ascontiguousarray(v, "<f4").tobytes()),
                "count": int(v.size),
                "min": float(v.min()),
                "max": float(v.max()),
                "mean": float(v.astype(np.float64).mean()),
                "sqnr_db": float(20 * np.log10(max(np.linalg.norm(x), np.finfo(float).eps) / max(err, np.finfo(float).eps))),
            }
    (DATA / "lowbit_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    for variant, ws in golden.items():
        print(variant, len(ws), "blocked weights", [round(w["sqnr_db"], 2) for w in ws.values()])


if __name__ == "__main__":
    main()
