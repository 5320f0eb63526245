#!/usr/bin/env python3
"""Blocked low-bit fixtures: onnxruntime's MatMulNBitsQuantizer in its QDQ form (opset 21
`DequantizeLinear` with `block_size`) on the bundled transformer block.

    python scripts/make_lowbit_fixtures.py     # from the repository root (pinned packages)

Writes tests/data/lowbit/:
- transformer_float.onnx: copy of tests/data/transformer/transformer_float.onnx;
- transformer_int4.onnx: 4-bit symmetric, block 32 (int4, no zero points; onnxruntime's
  RTN writes negative scales: the block's signed extreme over -8);
- transformer_uint4.onnx: 4-bit asymmetric, block 16 (uint4 with zero points);
- transformer_nbits.onnx / transformer_nbits_asym.onnx: the QOperator form, `MatMulNBits`
  (com.microsoft; B packed [N, n_blocks, blob]), symmetric block 16 (no zero points: the
  midpoint 8) and asymmetric block 32 (packed uint8 zero points);
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


def quantize(src: Path, dst: Path, block: int, symmetric: bool, fmt=QuantFormat.QDQ) -> None:
    cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, quant_format=fmt,
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
    for n in model.graph.node:
        if n.op_type != "MatMulNBits":
            continue
        attrs = {a.name: a.i for a in n.attribute}
        k, nn, bits, block = attrs["K"], attrs["N"], attrs.get("bits", 4), attrs["block_size"]
        blocks = -(-k // block)
        packed = inits[n.input[1]].reshape(nn, -1)
        q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(nn, -1).astype(np.int32)  # low nibble first
        scale = inits[n.input[2]].reshape(nn, blocks).astype(np.float32)
        if len(n.input) > 3 and n.input[3]:
            zb = inits[n.input[3]].reshape(nn, -1)
            zp = np.stack([zb & 0x0F, zb >> 4], axis=-1).reshape(nn, -1)[:, :blocks].astype(np.int32)
        else:
            zp = np.full((nn, blocks), 1 << (bits - 1), np.int32)
        values = ((q - np.repeat(zp, block, axis=1)).astype(np.float32) * np.repeat(scale, block, axis=1))[:, :k]
        out[n.input[1]] = (n.input[1].split("_Q4")[0], np.ascontiguousarray(values.T.astype(np.float32)))
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    src = DATA / "transformer/transformer_float.onnx"
    shutil.copyfile(src, OUT / "transformer_float.onnx")
    quantize(src, OUT / "transformer_int4.onnx", 32, True)
    quantize(src, OUT / "transformer_uint4.onnx", 16, False)
    quantize(src, OUT / "transformer_nbits.onnx", 16, True, QuantFormat.QOperator)
    quantize(src, OUT / "transformer_nbits_asym.onnx", 32, False, QuantFormat.QOperator)
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    golden: dict = {}
    for variant in ("int4", "uint4", "nbits", "nbits_asym"):
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
