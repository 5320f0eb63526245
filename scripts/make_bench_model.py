#!/usr/bin/env python3
"""Generates benchmark models for quantlens (not committed; write them outside the repo or
under bench-data/, which git ignores).

    python scripts/make_bench_model.py OUT_DIR [--size-mb 100] [--external-gb 0] [--seed 0]

--nodes N sets the float node count (the window's 20,000-node check: --nodes 20000
--size-mb 40). Default: OUT_DIR/bench_float.onnx (~size-mb MB of float weights: a chain of
MatMul+Add+Relu layers, ~500 nodes at 100 MB, with weights of varied sizes) and its
bench_int8.onnx / bench_uint8.onnx QDQ variants, quantized here with numpy per channel
along axis 1 of each MatMul weight [K, N] (int8: symmetric, zero point 0; uint8:
asymmetric, zero point per channel), in the QDQ form onnxruntime writes:
`<w>_quantized` → DequantizeLinear(<w>_quantized, <w>_scale, <w>_zero_point, axis=1)
→ `<w>_DequantizeLinear_Output` → MatMul, with node names identical to the float file.
Biases stay float.

--external-gb G (G > 0): instead OUT_DIR/llm_float.onnx (~G GiB of float weights) and
OUT_DIR/llm_int8.onnx (~G/4 GiB) whose tensors all live in one external data file each
(llm_float.weights.bin, llm_int8.weights.bin, next to the model, the layout of onnx's
all_tensors_to_one_file). Weights are generated, quantized and written one tensor at a
time, so the script needs only a few hundred MB of RAM whatever G is.

--external-gb G --nbits: the 4-bit form of the same weights instead of int8:
OUT_DIR/llm_nbits.onnx, onnxruntime's `MatMulNBits` (com.microsoft, bits 4, block 32,
asymmetric round-to-nearest per block; B packed [N, n_blocks, 16] low nibble first, fp32
scales [N · n_blocks], zero points packed two per byte per row), all in
llm_nbits.weights.bin (about G / 6.4 GiB). --no-float skips writing llm_float (its
weights are still generated, one at a time, to be quantized): a multi-GB 4-bit model
alone, as a 7B decoder's 4-bit file is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER = "quantlens-bench"
ALIGN = 4096


# --------------------------------------------------------------------------- quantization


def quantize_int8(w: np.ndarray):
    """Symmetric per-channel int8 along axis 1 (as onnxruntime: range [-127, 127], zp 0)."""
    amax = np.abs(w).max(axis=0).astype(np.float32)
    scale = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale, np.zeros(scale.shape, np.int8)


def quantize_uint8(w: np.ndarray):
    """Asymmetric per-channel uint8 along axis 1 (rmin <= 0 <= rmax, zp = round(-rmin/scale))."""
    rmin = np.minimum(w.min(axis=0), 0).astype(np.float32)
    rmax = np.maximum(w.max(axis=0), 0).astype(np.float32)
    span = rmax - rmin
    scale = np.where(span > 0, span / np.float32(255.0), np.float32(1.0)).astype(np.float32)
    zp = np.clip(np.rint(-rmin / scale), 0, 255).astype(np.uint8)
    q = np.clip(np.rint(w / scale) + zp.astype(np.float32), 0, 255).astype(np.uint8)
    return q, scale, zp


def weights(seed: int, i: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer i's He-init weight [k, n] and bias [n], float32, from its own seeded stream."""
    rng = np.random.default_rng([seed, i])
    w = rng.standard_normal((k, n), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / k))
    b = rng.standard_normal(n, dtype=np.float32)
    b *= np.float32(0.01)
    return w, b


# --------------------------------------------------------------------------- graph


def layer_names(i: int) -> dict:
    p = f"l{i:03d}"
    return {"mm": f"{p}_fc", "add": f"{p}_bias", "relu": f"{p}_relu", "w": f"{p}.weight", "b": f"{p}.bias", "p": p}


def build_graph(dims: list[int], variant: str, name: str) -> tuple[list, list]:
    """Nodes and value_infos of the chain; `variant` float|int8|uint8 decides the weight input."""
    nodes = []
    x = "x"
    last = len(dims) - 2
    for i in range(len(dims) - 1):
        nm = layer_names(i)
        w = nm["w"]
        if variant == "nbits":
            h = f"{nm['p']}_fc_out"
            nodes.append(helper.make_node(
                "MatMulNBits", [x, f"{w}_Q4", f"{w}_scales", f"{w}_zero_points"], [h], name=f"{nm['mm']}_Q4",
                domain="com.microsoft", K=dims[i], N=dims[i + 1], bits=4, block_size=32))
            hb = f"{nm['p']}_bias_out" if i < last else "y"
            nodes.append(helper.make_node("Add", [h, nm["b"]], [hb], name=nm["add"]))
            if i < last:
                x = f"{nm['p']}_relu_out"
                nodes.append(helper.make_node("Relu", [hb], [x], name=nm["relu"]))
            continue
        if variant != "float":
            nodes.append(helper.make_node(
                "DequantizeLinear", [f"{w}_quantized", f"{w}_scale", f"{w}_zero_point"],
                [f"{w}_DequantizeLinear_Output"], name=f"{w}_DequantizeLinear", axis=1))
            w = f"{w}_DequantizeLinear_Output"
        h = f"{nm['p']}_fc_out"
        nodes.append(helper.make_node("MatMul", [x, w], [h], name=nm["mm"]))
        hb = f"{nm['p']}_bias_out" if i < last else "y"
        nodes.append(helper.make_node("Add", [h, nm["b"]], [hb], name=nm["add"]))
        if i < last:
            x = f"{nm['p']}_relu_out"
            nodes.append(helper.make_node("Relu", [hb], [x], name=nm["relu"]))
    return nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dims[0]])], [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dims[-1]])]


def make_model(nodes, inputs, outputs, inits, name: str) -> onnx.ModelProto:
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name=PRODUCER, producer_version="1")
    m.ir_version = 8
    return m


# --------------------------------------------------------------------------- in-memory (default)


def chain_dims(size_mb: float, seed: int, n_layers: int) -> list[int]:
    """Varied layer widths whose float weights sum to about size_mb MB."""
    rng = np.random.default_rng(seed)
    base = rng.choice([64, 128, 192, 256, 384, 512, 768, 1024, 1536], size=n_layers + 1).astype(np.float64)
    target = size_mb * 1e6 / 4
    for _ in range(20):
        dims = np.maximum(8, np.round(base / 8) * 8).astype(np.int64)
        total = float((dims[:-1] * dims[1:]).sum() + dims[1:].sum())
        if abs(total - target) / target < 0.005:
            break
        base *= np.sqrt(target / total)
    return [int(d) for d in dims]


def write_in_memory(out: Path, size_mb: float, seed: int, nodes: int = 500) -> list[Path]:
    n_layers = max(1, round(nodes / 3))
    dims = chain_dims(size_mb, seed, n_layers)
    inits = {"float": [], "int8": [], "uint8": []}
    for i in range(n_layers):
        nm = layer_names(i)
        w, b = weights(seed, i, dims[i], dims[i + 1])
        bias = numpy_helper.from_array(b, nm["b"])
        inits["float"] += [numpy_helper.from_array(w, nm["w"]), bias]
        for variant, fn in (("int8", quantize_int8), ("uint8", quantize_uint8)):
            q, s, z = fn(w)
            inits[variant] += [
                numpy_helper.from_array(q, f"{nm['w']}_quantized"),
                numpy_helper.from_array(s, f"{nm['w']}_scale"),
                numpy_helper.from_array(z, f"{nm['w']}_zero_point"),
                bias,
            ]
    paths = []
    for variant in ("float", "int8", "uint8"):
        nodes, ins, outs = build_graph(dims, variant, "bench")
        m = make_model(nodes, ins, outs, inits[variant], f"bench_{variant}")
        onnx.checker.check_model(m)
        p = out / f"bench_{variant}.onnx"
        p.write_bytes(m.SerializeToString())
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- external data (streaming)


class ExternalWriter:
    """Appends tensors to one external data file and returns TensorProtos pointing at them."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "wb")  # noqa: SIM115
        self.offset = 0

    def add(self, name: str, arr: np.ndarray) -> TensorProto:
        pad = (-self.offset) % ALIGN
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        self.f.write(memoryview(data).cast("B"))
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", self.path.name), ("offset", str(self.offset)), ("length", str(data.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.offset += data.nbytes
        return t

    def close(self):
        self.f.close()


def quantize_nbits(w: np.ndarray, block: int = 32):
    """MatMulNBits' 4-bit asymmetric blocks of w [K, N] along K: (B [N, nb, block/2] uint8,
    scales [N·nb] float32, zero points [N·ceil(nb/2)] uint8), as onnxruntime packs them."""
    k, n = w.shape
    nb = -(-k // block)
    wt = np.zeros((n, nb * block), np.float32)
    wt[:, :k] = w.T
    wt = wt.reshape(n, nb, block)
    lo = np.minimum(wt.min(axis=2), 0)
    hi = np.maximum(wt.max(axis=2), 0)
    scale = ((hi - lo) / np.float32(15)).astype(np.float32)
    scale[scale == 0] = 1
    zp = np.clip(np.rint(-lo / scale), 0, 15).astype(np.uint8)
    q = np.clip(np.rint(wt / scale[:, :, None]) + zp[:, :, None], 0, 15).astype(np.uint8)
    packed = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)
    if nb % 2:
        zp = np.concatenate([zp, np.zeros((n, 1), np.uint8)], axis=1)
    zpacked = (zp[:, 0::2] | (zp[:, 1::2] << 4)).astype(np.uint8)
    return packed, scale.reshape(-1), zpacked.reshape(-1)


def write_external(out: Path, gb: float, seed: int, nbits: bool = False, float_file: bool = True) -> list[Path]:
    hidden = 2048 if gb >= 0.5 else 512
    per_matrix = hidden * 4 * hidden * 4  # bytes of one [H,4H] float matrix
    n_layers = max(2, 2 * round(gb * 2**30 / (2 * per_matrix)))
    dims = [hidden if i % 2 == 0 else 4 * hidden for i in range(n_layers + 1)]
    qname = "nbits" if nbits else "int8"
    fw = ExternalWriter(out / "llm_float.weights.bin") if float_file else None
    qw = ExternalWriter(out / f"llm_{qname}.weights.bin")
    f_inits, q_inits = [], []
    for i in range(n_layers):
        nm = layer_names(i)
        w, b = weights(seed, i, dims[i], dims[i + 1])
        if fw:
            f_inits += [fw.add(nm["w"], w), fw.add(nm["b"], b)]
        if nbits:
            packed, s, z = quantize_nbits(w)
            q_inits += [
                qw.add(f"{nm['w']}_Q4", packed), qw.add(f"{nm['w']}_scales", s),
                qw.add(f"{nm['w']}_zero_points", z), qw.add(nm["b"], b),
            ]
        else:
            q, s, z = quantize_int8(w)
            q_inits += [
                qw.add(f"{nm['w']}_quantized", q), qw.add(f"{nm['w']}_scale", s),
                qw.add(f"{nm['w']}_zero_point", z), qw.add(nm["b"], b),
            ]
        del w
    if fw:
        fw.close()
    qw.close()
    paths = []
    for variant, inits in (("float", f_inits), (qname, q_inits)):
        if not inits:
            continue
        nodes, ins, outs = build_graph(dims, variant, "llm")
        m = make_model(nodes, ins, outs, inits, f"llm_{variant}")
        if variant == "nbits":
            m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        p = out / f"llm_{variant}.onnx"
        p.write_bytes(m.SerializeToString())
        onnx.checker.check_model(str(p))  # by path: checks the external files exist
        paths.append(p)
    return paths


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--size-mb", type=float, default=100.0, help="float weights of bench_float.onnx, MB (default 100)")
    ap.add_argument("--external-gb", type=float, default=0.0, help="if > 0: llm_float/llm_int8 with ~GiB float weights in external data")
    ap.add_argument("--nodes", type=int, default=500, help="float nodes (MatMul+Add+Relu triples; default 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nbits", action="store_true", help="with --external-gb: llm_nbits (MatMulNBits 4-bit) instead of llm_int8")
    ap.add_argument("--no-float", action="store_true", help="with --external-gb: do not write llm_float")
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if a.external_gb > 0:
        paths = write_external(a.out_dir, a.external_gb, a.seed, a.nbits, not a.no_float)
    else:
        paths = write_in_memory(a.out_dir, a.size_mb, a.seed, a.nodes)
    files = {}
    for p in paths:
        files[p.name] = p.stat().st_size
        for side in p.parent.glob(p.stem + ".weights.bin"):
            files[side.name] = side.stat().st_size
    print(json.dumps({"wall_s": round(time.perf_counter() - t0, 3), "files": files}))


if __name__ == "__main__":
    sys.exit(main())
