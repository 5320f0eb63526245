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

Also (issue 11, second part):
- transformer_int4_b128.onnx: QDQ int4 symmetric, block 128 (longer than the 64-long axes
  of most weights: one short block, as onnxruntime writes it);
- transformer_nbits8.onnx: MatMulNBits, 8 bits, asymmetric, block 32;
- transformer_nbits_b128.onnx: MatMulNBits, 4 bits, symmetric, block 128;
- transformer_nbits2.onnx / transformer_nbits3.onnx: MatMulNBits with 2 and 3 bits,
  asymmetric, block 32, written here with numpy (onnxruntime's default quantizer writes 4
  and 8 bits only): elements and zero points packed as a little-endian bit stream per row
  (the layout of onnxruntime's kernels; 2 bits checked by running them when it can);
- transformer_fp8.onnx: onnxruntime's quantize_static to float8 e4m3fn (QDQ, weights and
  activations; onnx 1.19 dropped a module it imports, shimmed with ml_dtypes), and
  transformer_fp8_e4m3fnuz / _e5m2 / _e5m2fnuz.onnx: its weights re-encoded by ml_dtypes
  into the other float8 types (scale: the weight's max |x| over the type's largest value);
- lowbit_tokens/: the token classifier (tests/data/tokens) with its embeddings quantized to
  GatherBlockQuantized (com.microsoft) and its MatMuls to MatMulNBits, 4 bits, block 16,
  symmetric (int4 data) and asymmetric (uint4 data, zero points); and both rewritten in
  GatherBlockQuantized's packed uint8 form (tokens_q4_u8 / tokens_q4_asym_u8; onnxruntime
  runs them to the same outputs);
- transformer_nbits_actorder.onnx / transformer_nbits_actorder_asym.onnx: MatMulNBits with
  act-order GPTQ's `g_idx` (rows grouped by importance, here the row's sum of squares as
  the Hessian diagonal's stand-in), 4 bits, symmetric block 16 (no zero points) and
  asymmetric block 32 (packed zero points), written with numpy by the operator's
  definition `(q[n, k] - zp[n, g[k]]) * scale[n, g[k]]`. onnxruntime runs the symmetric one
  to the same outputs as the float model holding numpy's weights (checked here); it
  ignores packed zero points under g_idx (1.23.2: it subtracts 8), which is printed;
- transformer_hqq.onnx, when present (written by scripts/make_hqq_fixture.py, which needs
  torch): MatMulNBits with HQQ's float zero points, recorded like the others.
Every weight's record gains its block size, element type and std.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnx 1.19 removed the module onnxruntime 1.23's float8 quantization imports: the same
# types from ml_dtypes (what onnx now uses itself)
_shim = types.ModuleType("onnx.reference.custom_element_types")
_shim.float8e4m3fn, _shim.int4, _shim.uint4 = ml_dtypes.float8_e4m3fn, ml_dtypes.int4, ml_dtypes.uint4
sys.modules.setdefault("onnx.reference.custom_element_types", _shim)
if not hasattr(numpy_helper, "float8e4m3_to_float32"):
    numpy_helper.float8e4m3_to_float32 = lambda i: float(np.array(i, np.uint8).view(ml_dtypes.float8_e4m3fn))
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
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


FP8 = {
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
}
DTYPE_NAMES = {
    TensorProto.INT4: "int4", TensorProto.UINT4: "uint4", TensorProto.INT8: "int8", TensorProto.UINT8: "uint8",
    TensorProto.FLOAT8E4M3FN: "float8e4m3fn", TensorProto.FLOAT8E4M3FNUZ: "float8e4m3fnuz",
    TensorProto.FLOAT8E5M2: "float8e5m2", TensorProto.FLOAT8E5M2FNUZ: "float8e5m2fnuz",
}


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Elements of `bits` bits from a little-endian bit stream (element i at bit i·bits)."""
    stream = np.unpackbits(packed.astype(np.uint8), bitorder="little")
    stream = stream[: count * bits].reshape(count, bits).astype(np.int32)
    return (stream << np.arange(bits)).sum(axis=1)


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of unpack_bits: a row of elements into ceil(n·bits / 8) bytes."""
    v = values.astype(np.int64).reshape(-1)
    stream = ((v[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


def init_values(model: onnx.ModelProto) -> dict:
    return {t.name: t for t in model.graph.initializer}


def raw_q(t: onnx.TensorProto) -> tuple[np.ndarray, str]:
    """A quantized initializer's stored values (float8 decoded by ml_dtypes), and its type."""
    if t.data_type in FP8:
        return np.frombuffer(t.raw_data, np.uint8).view(FP8[t.data_type]).reshape(tuple(t.dims)), DTYPE_NAMES[t.data_type]
    return numpy_helper.to_array(t), DTYPE_NAMES.get(t.data_type, str(t.data_type))


def dequantized(model: onnx.ModelProto) -> dict[str, dict]:
    """Per quantized weight: the float weight it stands for, numpy's dequantization, its
    block size and element type."""
    inits = init_values(model)
    out = {}
    for n in model.graph.node:
        if n.op_type not in ("DequantizeLinear", "GatherBlockQuantized") or n.input[0] not in inits:
            continue
        attrs = {a.name: a.i for a in n.attribute}
        q, dtype = raw_q(inits[n.input[0]])
        si, zi = (1, 2) if n.op_type == "DequantizeLinear" else (2, 3)
        scale = numpy_helper.to_array(inits[n.input[si]]).astype(np.float32)
        has_zp = len(n.input) > zi and n.input[zi]
        if n.op_type == "DequantizeLinear":
            axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
        else:
            axis, block = attrs.get("quantize_axis", 1), attrs.get("block_size", 128)
        if n.op_type == "GatherBlockQuantized" and dtype == "uint8" and attrs.get("bits", 4) == 4:
            # MatMulNBits' conventions: two values per byte along the last axis, zero
            # points packed alike, absent ones 8
            q = np.stack([unpack_bits(r, 4, r.size * 2) for r in q.reshape(-1, q.shape[-1])]).reshape(
                *q.shape[:-1], q.shape[-1] * 2)
            dtype = "uint4"
            rows = scale.reshape(-1, scale.shape[-1])
            if has_zp:
                zb = numpy_helper.to_array(inits[n.input[zi]]).reshape(rows.shape[0], -1)
                zp8 = np.stack([unpack_bits(r, 4, rows.shape[1]) for r in zb]).reshape(scale.shape)
            else:
                zp8 = np.full(scale.shape, 8)
            scale_full = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
            zp_full = np.repeat(zp8, block, axis=axis).take(range(q.shape[axis]), axis=axis)
            values = ((q - zp_full).astype(np.float32) * scale_full).astype(np.float32)
        elif dtype.startswith("float8"):
            values = (q.astype(np.float32) * scale).astype(np.float32)
        else:
            q = q.astype(np.int32)
            zp = numpy_helper.to_array(inits[n.input[zi]]).astype(np.int32) if has_zp else np.zeros_like(scale, np.int32)
            if block:
                scale_full = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
                zp_full = np.repeat(zp, block, axis=axis).take(range(q.shape[axis]), axis=axis)
            else:
                shape = [1] * q.ndim
                if scale.ndim:
                    shape[axis] = -1
                scale_full, zp_full = scale.reshape(shape), zp.reshape(shape)
            values = ((q - zp_full).astype(np.float32) * scale_full).astype(np.float32)
        float_name = n.input[0].split("_DQ_")[0].split("_quantized")[0].split("_Q4")[0]
        out[n.input[0]] = {"float": float_name, "values": values, "block": block or None, "dtype": dtype,
                           "scale": scale, "axis": axis}
    for n in model.graph.node:
        if n.op_type != "MatMulNBits":
            continue
        attrs = {a.name: a.i for a in n.attribute}
        k, nn, bits, block = attrs["K"], attrs["N"], attrs.get("bits", 4), attrs["block_size"]
        blocks = -(-k // block)
        packed = numpy_helper.to_array(inits[n.input[1]]).reshape(nn, -1)
        q = np.stack([unpack_bits(row, bits, blocks * block) for row in packed])
        scale = numpy_helper.to_array(inits[n.input[2]]).reshape(nn, blocks).astype(np.float32)
        zt = inits.get(n.input[3]) if len(n.input) > 3 and n.input[3] else None
        # the block of each row k: g_idx's (act order) or k / block
        gt = inits.get(n.input[4]) if len(n.input) > 4 and n.input[4] else None
        g = numpy_helper.to_array(gt).astype(np.int64) if gt is not None else np.arange(k) // block
        q = q[:, :k]
        if zt is not None and zt.data_type == TensorProto.FLOAT:
            # HQQ: float zero points, one per block, subtracted as floats
            zp = numpy_helper.to_array(zt).reshape(nn, blocks).astype(np.float32)
            values = (q.astype(np.float32) - zp[:, g]) * scale[:, g]
        else:
            if zt is not None:
                zb = numpy_helper.to_array(zt).reshape(nn, -1)
                zp = np.stack([unpack_bits(row, bits, blocks) for row in zb])
            else:
                zp = np.full((nn, blocks), 1 << (bits - 1), np.int32)
            values = (q - zp[:, g]).astype(np.float32) * scale[:, g]
        out[n.input[1]] = {
            "float": n.input[1].split("_Q")[0],
            "values": np.ascontiguousarray(values.T.astype(np.float32)),
            "block": block,
            "dtype": "uint4" if bits == 4 else "uint8" if bits == 8 else f"uint{bits}",
            "scale": np.ascontiguousarray(scale.T),  # [n_blocks, N]: blocks along axis 0 of [K, N]
            "axis": 0,
            "groups": g if gt is not None else None,
        }
    return out


def act_order_groups(b: np.ndarray, block: int) -> np.ndarray:
    """Act-order GPTQ's g_idx for a [K, N] weight: rows sorted by importance (sum of
    squares, standing in for the Hessian diagonal), each run of `block` of them a group."""
    perm = np.argsort(-(b.astype(np.float64) ** 2).sum(axis=1), kind="stable")
    g = np.empty(b.shape[0], np.int32)
    g[perm] = np.arange(b.shape[0]) // block
    return g


def nbits_by_numpy(src: Path, dst: Path, bits: int, block: int, act_order: bool = False,
                   symmetric: bool = False) -> None:
    """MatMulNBits with `bits` bits, round-to-nearest per block (asymmetric with packed zero
    points, or symmetric around the implicit midpoint), packed as onnxruntime's kernels read
    it (see `unpack_bits`); with `act_order`, blocks are g_idx's groups of rows."""
    m = onnx.load(str(src))
    inits = init_values(m)
    qmax = (1 << bits) - 1
    nodes = []
    for node in m.graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) > 1 else None
        if w is None:
            nodes.append(node)
            continue
        b = numpy_helper.to_array(w).astype(np.float32)  # [K, N]
        k, n = b.shape
        blocks = -(-k // block)
        # the block of each row: its position's, or act-order's group
        g = act_order_groups(b, block) if act_order else np.arange(k) // block
        lo = np.zeros((n, blocks), np.float32)
        hi = np.zeros((n, blocks), np.float32)
        for j in range(blocks):
            rows = b[g == j]
            lo[:, j], hi[:, j] = np.minimum(rows.min(axis=0), 0), np.maximum(rows.max(axis=0), 0)
        if symmetric:
            half = 1 << (bits - 1)
            scale = (np.maximum(-lo, hi) / (half - 1)).astype(np.float32)
            scale[scale == 0] = 1.0
            zp = np.full((n, blocks), half, np.int32)
        else:
            scale = ((hi - lo) / qmax).astype(np.float32)
            scale[scale == 0] = 1.0
            zp = np.clip(np.round(-lo / scale), 0, qmax).astype(np.int32)
        q = np.zeros((n, blocks * block), np.int32)
        q[:, :k] = np.clip(np.round(b.T / scale[:, g]) + zp[:, g], 0, qmax)
        packed = np.stack([pack_bits(q[r], bits) for r in range(n)]).reshape(n, blocks, block * bits // 8)
        zpacked = np.stack([pack_bits(zp[r], bits) for r in range(n)])
        name = w.name
        m.graph.initializer.remove(w)
        inputs = [node.input[0], f"{name}_Q{bits}", f"{name}_scales", "" if symmetric else f"{name}_zero_points"]
        m.graph.initializer.extend([
            numpy_helper.from_array(packed, f"{name}_Q{bits}"),
            numpy_helper.from_array(scale.reshape(-1), f"{name}_scales"),
        ])
        if not symmetric:
            m.graph.initializer.append(numpy_helper.from_array(zpacked.reshape(-1), f"{name}_zero_points"))
        if act_order:
            m.graph.initializer.append(numpy_helper.from_array(g.astype(np.int32), f"{name}_g_idx"))
            inputs.append(f"{name}_g_idx")
        nodes.append(helper.make_node(
            "MatMulNBits", inputs, list(node.output), name=f"{node.name}_Q{bits}", domain="com.microsoft",
            K=k, N=n, bits=bits, block_size=block))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(m, str(dst))


class Calibration(CalibrationDataReader):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.batches = iter([{"x": rng.standard_normal((1, 16, 64)).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self.batches, None)


def float8(src: Path, dst: Path) -> None:
    quantize_static(str(src), str(dst), Calibration(), quant_format=QuantFormat.QDQ,
                    weight_type=QuantType.QFLOAT8E4M3FN, activation_type=QuantType.QFLOAT8E4M3FN,
                    calibrate_method=CalibrationMethod.Distribution, op_types_to_quantize=["MatMul"])


def reencode_float8(src: Path, dst: Path, code: int) -> None:
    """`src`'s float8 e4m3fn weights re-encoded into float8 type `code` (ml_dtypes rounds
    to nearest even), scale = max |x| / the type's largest finite value."""
    m = onnx.load(str(src))
    inits = init_values(m)
    fmax = float(ml_dtypes.finfo(FP8[code]).max)
    for n in m.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits or not n.input[0].endswith("_quantized"):
            continue
        q, _ = raw_q(inits[n.input[0]])
        s_t = inits[n.input[1]]
        x = q.astype(np.float32) * numpy_helper.to_array(s_t).astype(np.float32)
        scale = np.float32(np.abs(x).max() / fmax)
        q8 = (x / scale).astype(FP8[code])
        t = inits[n.input[0]]
        t.data_type, t.raw_data = code, q8.view(np.uint8).tobytes()
        s_t.CopyFrom(numpy_helper.from_array(np.array(scale, np.float32), s_t.name))
        z = inits[n.input[2]]
        z.data_type, z.raw_data = code, b"\x00"
    onnx.save(m, str(dst))


def nbits_q(src: Path, dst: Path, block: int, symmetric: bool, bits: int = 4, gather: bool = False) -> None:
    ops = ("MatMul", "Gather") if gather else ("MatMul",)
    cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, quant_format=QuantFormat.QOperator,
                                       op_types_to_quantize=ops, bits=bits,
                                       quant_axes=(("MatMul", 0), ("Gather", 1)))
    q = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=cfg)
    q.process()
    onnx.save(q.model.model, str(dst))


def gather_as_uint8(src: Path, dst: Path) -> None:
    """`src`'s GatherBlockQuantized rewritten in the packed uint8 form (MatMulNBits'
    conventions): int4 data shifted by 8 with no zero points (the default 8), uint4 data
    with its zero points packed two per byte per row."""
    m = onnx.load(str(src))
    inits = init_values(m)
    for n in m.graph.node:
        if n.op_type != "GatherBlockQuantized":
            continue
        t = inits[n.input[0]]
        q = numpy_helper.to_array(t).astype(np.int32)
        if t.data_type == TensorProto.INT4:
            q = q + 8
        packed = np.stack([pack_bits(r, 4) for r in q.reshape(-1, q.shape[-1])]).reshape(*q.shape[:-1], -1)
        t.CopyFrom(numpy_helper.from_array(packed.astype(np.uint8), t.name))
        if len(n.input) > 3 and n.input[3]:
            z = inits[n.input[3]]
            zp = numpy_helper.to_array(z).astype(np.int32)
            zpacked = np.stack([pack_bits(r, 4) for r in zp.reshape(-1, zp.shape[-1])])
            z.CopyFrom(numpy_helper.from_array(zpacked.astype(np.uint8), z.name))
        n.attribute.append(helper.make_attribute("bits", 4))
    onnx.save(m, str(dst))


def check_runs(dst: Path, src: Path, feeds: dict) -> float:
    """Runs `dst` and `src` in onnxruntime on `feeds`: the output SQNR (the file is one
    onnxruntime reads as the fixture's records say), or NaN when it cannot run it."""
    try:
        opts = onnxruntime.SessionOptions()
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        y = onnxruntime.InferenceSession(str(dst), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    except Exception as e:  # noqa: BLE001 (an op or type onnxruntime's CPU kernels lack)
        print(f"  {dst.name}: onnxruntime cannot run it ({str(e).splitlines()[0][:100]})")
        return float("nan")
    f = onnxruntime.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return float(20 * np.log10(np.linalg.norm(f) / max(np.linalg.norm(f - y), 1e-30)))


def act_order_agreement(path: Path, src: Path, feeds: dict) -> float:
    """Max |difference| between onnxruntime's outputs of the MatMulNBits file `path` and of
    the float model `src` holding numpy's dequantized weights (`dequantized`)."""
    m = onnx.load(str(src))
    weights = {w["float"]: w["values"] for w in dequantized(onnx.load(str(path))).values()}
    for t in m.graph.initializer:
        if t.name in weights:
            t.CopyFrom(numpy_helper.from_array(weights[t.name], t.name))
    opts = onnxruntime.SessionOptions()
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    run = lambda b: onnxruntime.InferenceSession(b, opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return float(np.abs(run(m.SerializeToString()) - run(str(path))).max())


def worst_block(x: np.ndarray, v: np.ndarray, w: dict) -> dict | None:
    """The block with the highest rmse/scale: its index in parameter order (the blocked
    shape, C order) and its rmse/scale, float64."""
    if not w["block"]:
        return None
    if w.get("groups") is not None:
        # act order: the rows of each group, wherever they are ([K, N], blocks along axis 0)
        g, nb = w["groups"], w["scale"].shape[0]
        sums = np.zeros((nb, x.shape[1]))
        np.add.at(sums, g, (x - v.astype(np.float64)) ** 2)
        rmse = np.sqrt(sums / np.bincount(g, minlength=nb)[:, None]) / np.abs(w["scale"].astype(np.float64))
        i = int(np.argmax(rmse.reshape(-1)))
        return {"index": i, "rmse_over_scale": float(rmse.reshape(-1)[i]), "blocks": int(rmse.size)}
    axis, block = w["axis"] % x.ndim, w["block"]
    d2 = (x - v.astype(np.float64)) ** 2
    nb = -(-x.shape[axis] // block)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, nb * block - x.shape[axis])
    d2 = np.pad(d2, pad, constant_values=np.nan)
    d2 = d2.reshape(*x.shape[:axis], nb, block, *x.shape[axis + 1:])
    rmse = np.sqrt(np.nanmean(d2, axis=axis + 1)) / np.abs(w["scale"].astype(np.float64).reshape(d2.shape[:axis + 1] + d2.shape[axis + 2:]))
    i = int(np.argmax(rmse.reshape(-1)))
    return {"index": i, "rmse_over_scale": float(rmse.reshape(-1)[i]), "blocks": int(rmse.size)}


def record(floats: dict, weights: dict) -> dict:
    out = {}
    for qname, w in sorted(weights.items()):
        v = w["values"]
        x = floats[w["float"]].astype(np.float64)
        err = np.linalg.norm(x - v.astype(np.float64))
        out[qname] = {
            "worst_block": worst_block(x, v, w),
            "float": w["float"],
            "block": w["block"],
            "dtype": w["dtype"],
            "fnv1a64": fnv1a64(np.ascontiguousarray(v, "<f4").tobytes()),
            "count": int(v.size),
            "min": float(v.min()),
            "max": float(v.max()),
            "mean": float(v.astype(np.float64).mean()),
            "std": float(v.astype(np.float64).std()),
            "sqnr_db": float(20 * np.log10(max(np.linalg.norm(x), np.finfo(float).eps) / max(err, np.finfo(float).eps))),
        }
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    src = DATA / "transformer/transformer_float.onnx"
    shutil.copyfile(src, OUT / "transformer_float.onnx")
    quantize(src, OUT / "transformer_int4.onnx", 32, True)
    quantize(src, OUT / "transformer_uint4.onnx", 16, False)
    quantize(src, OUT / "transformer_int4_b128.onnx", 128, True)
    quantize(src, OUT / "transformer_nbits.onnx", 16, True, QuantFormat.QOperator)
    quantize(src, OUT / "transformer_nbits_asym.onnx", 32, False, QuantFormat.QOperator)
    quantize(src, OUT / "transformer_nbits_b128.onnx", 128, True, QuantFormat.QOperator)
    nbits_q(src, OUT / "transformer_nbits8.onnx", 32, False, bits=8)
    nbits_by_numpy(src, OUT / "transformer_nbits2.onnx", 2, 32)
    nbits_by_numpy(src, OUT / "transformer_nbits3.onnx", 3, 32)
    nbits_by_numpy(src, OUT / "transformer_nbits_actorder.onnx", 4, 16, act_order=True, symmetric=True)
    nbits_by_numpy(src, OUT / "transformer_nbits_actorder_asym.onnx", 4, 32, act_order=True)
    float8(src, OUT / "transformer_fp8.onnx")
    for code, suffix in ((TensorProto.FLOAT8E4M3FNUZ, "e4m3fnuz"), (TensorProto.FLOAT8E5M2, "e5m2"),
                         (TensorProto.FLOAT8E5M2FNUZ, "e5m2fnuz")):
        reencode_float8(OUT / "transformer_fp8.onnx", OUT / f"transformer_fp8_{suffix}.onnx", code)
    x = {"x": np.random.default_rng(1).standard_normal((1, 16, 64)).astype(np.float32)}
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    golden: dict = {}
    for path in sorted(OUT.glob("transformer_*.onnx")):
        variant = path.stem.removeprefix("transformer_")
        if variant == "float":
            continue
        golden[variant] = record(floats, dequantized(onnx.load(str(path))))
        print(variant, len(golden[variant]), "weights", [round(w["sqnr_db"], 2) for w in golden[variant].values()],
              "output SQNR in onnxruntime", round(check_runs(path, src, x), 2))
    # embeddings: GatherBlockQuantized
    tokens = OUT.parent / "lowbit_tokens"
    tokens.mkdir(exist_ok=True)
    tsrc = DATA / "tokens/tokens_float.onnx"
    shutil.copyfile(tsrc, tokens / "tokens_float.onnx")
    nbits_q(tsrc, tokens / "tokens_q4.onnx", 16, True, gather=True)
    nbits_q(tsrc, tokens / "tokens_q4_asym.onnx", 16, False, gather=True)
    gather_as_uint8(tokens / "tokens_q4.onnx", tokens / "tokens_q4_u8.onnx")
    gather_as_uint8(tokens / "tokens_q4_asym.onnx", tokens / "tokens_q4_asym_u8.onnx")
    tfloats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tsrc)).graph.initializer}
    feeds = dict(np.load(DATA / "tokens/tokens.npz"))
    feeds = {k: v[:1] for k, v in feeds.items() if k != "y"}
    for path in sorted(tokens.glob("tokens_q4*.onnx")):
        golden[f"tokens_{path.stem.removeprefix('tokens_')}"] = record(tfloats, dequantized(onnx.load(str(path))))
        print(path.stem, "output SQNR in onnxruntime", round(check_runs(path, tsrc, feeds), 2))
    for stem in ("nbits_actorder", "nbits_actorder_asym"):
        print(stem, "onnxruntime against numpy's weights in a float model: max |diff|",
              act_order_agreement(OUT / f"transformer_{stem}.onnx", src, x))
    (DATA / "lowbit_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
