#!/usr/bin/env python3
"""Writes every test fixture of quantlens, deterministically, and the goldens.

    python scripts/make_fixtures.py            # from the repository root

Needs the pinned packages of scripts/requirements-fixtures.txt (onnx, onnxruntime,
numpy). Outputs: tests/data/** (models, golden.json, README.md) and assets/example/.
Models are built with onnx.helper + numpy (seeded: np.random.default_rng(0)); the
quantized variants come from onnxruntime's quantize_static / quantize_dynamic.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
ASSETS = ROOT / "assets" / "example"
PRODUCER = "quantlens-fixtures"
BINS = 32

F = TensorProto.FLOAT


# --------------------------------------------------------------------------- helpers


def init(name: str, arr: np.ndarray) -> TensorProto:
    arr = np.asarray(arr)  # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
    return numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(), name)


def make_model(graph: onnx.GraphProto, opset: int = 17, ir: int = 8, extra_opsets=()) -> onnx.ModelProto:
    ops = [helper.make_opsetid("", opset), *extra_opsets]
    m = helper.make_model(graph, opset_imports=ops, producer_name=PRODUCER, producer_version="1")
    m.ir_version = ir
    return m


def save(model: onnx.ModelProto, rel: str, check: bool = True) -> Path:
    path = DATA / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if check:
        onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_raw(rel: str, data: bytes) -> Path:
    path = DATA / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def smoke_run(path: Path) -> None:
    """Runs `path` once on onnxruntime's CPU provider with seeded random inputs."""
    so = onnxruntime.SessionOptions()
    so.log_severity_level = 3
    sess = onnxruntime.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif i.type == "tensor(int64)":
            feeds[i.name] = rng.integers(0, 50, shape).astype(np.int64)
        elif i.type == "tensor(bool)":
            feeds[i.name] = np.array(True)
    sess.run(None, feeds)


def he(rng, shape, fan_in) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def small(rng, shape, s=0.01) -> np.ndarray:
    return (rng.standard_normal(shape) * s).astype(np.float32)


class Reader(CalibrationDataReader):
    """8 seeded random inputs."""

    def __init__(self, name: str, shape, seed: int, n: int = 8):
        rng = np.random.default_rng(seed)
        self.items = [{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.items)


class Rows(CalibrationDataReader):
    """The rows of an array, one sample each, as input `name`."""

    def __init__(self, x: np.ndarray, name: str = "input"):
        self.x, self.name = x, name
        self.rewind()

    def get_next(self):
        i = next(self.it, None)
        return None if i is None else {self.name: self.x[i : i + 1]}

    def rewind(self):
        self.it = iter(range(len(self.x)))


# --------------------------------------------------------------------------- models


def build_resnet8() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def conv(name, x, cin, cout, k, stride):
        w = he(rng, (cout, cin, k, k), cin * k * k)
        b = small(rng, (cout,))
        inits.extend([init(f"{name}.weight", w), init(f"{name}.bias", b)])
        pad = k // 2
        out = f"{name}_out"
        nodes.append(
            helper.make_node(
                "Conv", [x, f"{name}.weight", f"{name}.bias"], [out], name=name,
                kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
            )
        )
        return out

    def relu(name, x):
        out = f"{name}_out"
        nodes.append(helper.make_node("Relu", [x], [out], name=name))
        return out

    x = relu("stem_relu", conv("stem_conv", "input", 3, 16, 3, 1))
    cin = 16
    for s, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        h = relu(f"s{s}_relu1", conv(f"s{s}_conv1", x, cin, cout, 3, stride))
        h = conv(f"s{s}_conv2", h, cout, cout, 3, 1)
        skip = x if (cin == cout and stride == 1) else conv(f"s{s}_proj", x, cin, cout, 1, stride)
        nodes.append(helper.make_node("Add", [h, skip], [f"s{s}_add_out"], name=f"s{s}_add"))
        x = relu(f"s{s}_relu2", f"s{s}_add_out")
        cin = cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap_out"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten", axis=1))
    inits.extend([init("fc.weight", he(rng, (10, 64), 64)), init("fc.bias", small(rng, (10,)))])
    nodes.append(helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["output"], name="fc", transB=1))
    g = helper.make_graph(
        nodes, "resnet8",
        [helper.make_tensor_value_info("input", F, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", F, [1, 10])],
        inits,
    )
    return make_model(g)


def build_transformer() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    d, heads, seq, hidden = 64, 4, 16, 256
    hd = d // heads
    nodes, inits = [], []

    def const(name, arr):
        inits.append(init(name, arr))
        return name

    def node(op, name, ins, **attrs):
        out = f"{name}_out"
        nodes.append(helper.make_node(op, ins, [out], name=name, **attrs))
        return out

    def linear(name, x, din, dout):
        w = const(f"{name}.weight", he(rng, (din, dout), din))
        b = const(f"{name}.bias", small(rng, (dout,)))
        return node("Add", f"{name}_bias", [node("MatMul", name, [x, w]), b])

    const("ln1.scale", (1.0 + small(rng, (d,), 0.05)).astype(np.float32))
    const("ln1.bias", small(rng, (d,)))
    const("ln2.scale", (1.0 + small(rng, (d,), 0.05)).astype(np.float32))
    const("ln2.bias", small(rng, (d,)))
    const("heads_shape", np.array([1, seq, heads, hd], np.int64))
    const("model_shape", np.array([1, seq, d], np.int64))
    const("attn_scale", np.array(1.0 / np.sqrt(hd), np.float32))

    h = node("LayerNormalization", "ln1", ["x", "ln1.scale", "ln1.bias"], axis=-1, epsilon=1e-5)
    q = linear("q_proj", h, d, d)
    k = linear("k_proj", h, d, d)
    v = linear("v_proj", h, d, d)
    q = node("Transpose", "q_transpose", [node("Reshape", "q_reshape", [q, "heads_shape"])], perm=[0, 2, 1, 3])
    k = node("Transpose", "k_transpose", [node("Reshape", "k_reshape", [k, "heads_shape"])], perm=[0, 2, 3, 1])
    v = node("Transpose", "v_transpose", [node("Reshape", "v_reshape", [v, "heads_shape"])], perm=[0, 2, 1, 3])
    s = node("Mul", "qk_scale", [node("MatMul", "qk_matmul", [q, k]), "attn_scale"])
    p = node("Softmax", "softmax", [s], axis=-1)
    a = node("MatMul", "attn_v_matmul", [p, v])
    a = node("Reshape", "attn_reshape", [node("Transpose", "attn_transpose", [a], perm=[0, 2, 1, 3]), "model_shape"])
    o = linear("out_proj", a, d, d)
    r1 = node("Add", "residual1", ["x", o])
    h2 = node("LayerNormalization", "ln2", [r1, "ln2.scale", "ln2.bias"], axis=-1, epsilon=1e-5)
    m = node("Relu", "mlp_relu", [linear("mlp_fc1", h2, d, hidden)])
    m = linear("mlp_fc2", m, hidden, d)
    nodes.append(helper.make_node("Add", [r1, m], ["y"], name="residual2"))
    g = helper.make_graph(
        nodes, "transformer_block",
        [helper.make_tensor_value_info("x", F, [1, seq, d])],
        [helper.make_tensor_value_info("y", F, [1, seq, d])],
        inits,
    )
    return make_model(g)


def quantize_variants(float_path: Path, folder: Path, stem: str, input_name: str, shape, seed: int,
                      asymmetric_uint8_weights: dict | None = None):
    """int8 (QInt8/QInt8) and uint8 (QUInt8/QUInt8) QDQ variants, per-channel.

    onnxruntime quantizes per-channel weights symmetrically whatever the type, so uint8
    weights get zero point 127 in every channel. `asymmetric_uint8_weights` ({weight: axis})
    asks it, through its TensorQuantOverrides option, for asymmetric per-channel uint8
    weights instead (a different zero point per channel). Only for MatMul weights: the CPU
    QLinearConv kernel refuses per-channel zero points that differ.
    """
    for variant, qt in (("int8", QuantType.QInt8), ("uint8", QuantType.QUInt8)):
        out = folder / f"{stem}_{variant}.onnx"
        extra = {}
        if variant == "uint8" and asymmetric_uint8_weights:
            extra["TensorQuantOverrides"] = {w: [{"axis": a, "symmetric": False}] for w, a in asymmetric_uint8_weights.items()}
        quantize_static(
            str(float_path), str(out), Reader(input_name, shape, seed),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=qt, weight_type=qt, extra_options=extra,
        )


# --------------------------------------------------------------------------- edge cases


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def edge_constant_weights():
    rng = np.random.default_rng(0)
    c = lambda name, arr: helper.make_node(  # noqa: E731
        "Constant", [], [name], name=f"{name}_const", value=numpy_helper.from_array(arr, name)
    )
    nodes = [
        c("w1", he(rng, (8, 16), 8)),
        c("b1", small(rng, (16,))),
        c("w2", he(rng, (16, 4), 16)),
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu"),
        helper.make_node("MatMul", ["hr", "w2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "constant_weights", [vi("x", F, [1, 8])], [vi("y", F, [1, 4])])
    return make_model(g)


def edge_subgraph_if():
    rng = np.random.default_rng(0)
    inits = [
        init("outer_conv.weight", he(rng, (4, 3, 3, 3), 27)),
        init("outer_conv.bias", small(rng, (4,))),
        init("outer_mm.weight", he(rng, (8, 8), 8)),
        init("outer_pw.weight", he(rng, (4, 4, 1, 1), 4)),
    ]
    out_vi = lambda n: vi(n, F, [1, 4, 8, 8])  # noqa: E731
    inner_then = helper.make_graph(
        [helper.make_node("MatMul", ["t_conv", "outer_mm.weight"], ["it_out"], name="inner_then_matmul")],
        "inner_then", [], [out_vi("it_out")],
    )
    inner_else = helper.make_graph(
        [
            helper.make_node("Conv", ["t_conv", "outer_pw.weight"], ["ie_conv"], name="inner_else_conv", kernel_shape=[1, 1]),
            helper.make_node("Relu", ["ie_conv"], ["ie_out"], name="inner_else_relu"),
        ],
        "inner_else", [], [out_vi("ie_out")],
    )
    outer_then = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["x", "outer_conv.weight", "outer_conv.bias"], ["t_conv"], name="then_conv",
                kernel_shape=[3, 3], pads=[1, 1, 1, 1],
            ),
            helper.make_node("If", ["cond2"], ["t_out"], name="inner_if", then_branch=inner_then, else_branch=inner_else),
        ],
        "outer_then", [], [out_vi("t_out")],
    )
    outer_else = helper.make_graph(
        [
            helper.make_node(
                "Conv", ["x", "outer_conv.weight", "outer_conv.bias"], ["e_conv"], name="else_conv",
                kernel_shape=[3, 3], pads=[1, 1, 1, 1],
            ),
            helper.make_node("MatMul", ["e_conv", "outer_mm.weight"], ["e_out"], name="else_matmul"),
        ],
        "outer_else", [], [out_vi("e_out")],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["y"], name="outer_if", then_branch=outer_then, else_branch=outer_else),
    ]
    g = helper.make_graph(
        nodes, "subgraph_if",
        [vi("x", F, [1, 3, 8, 8]), vi("cond", TensorProto.BOOL, []), vi("cond2", TensorProto.BOOL, [])],
        [out_vi("y")], inits,
    )
    return make_model(g)


def edge_weight_only_cast_mul():
    rng = np.random.default_rng(0)
    w1 = rng.integers(-127, 128, (16, 8)).astype(np.int8)
    s1 = (rng.uniform(0.001, 0.01, (1, 8))).astype(np.float32)
    w2 = rng.integers(-127, 128, (8, 4)).astype(np.int8)
    s2 = np.array(0.004, np.float32)
    inits = [init("fc1.weight_int8", w1), init("fc1.weight_scale", s1), init("fc2.weight_int8", w2), init("fc2.weight_scale", s2)]
    nodes = [
        helper.make_node("Cast", ["fc1.weight_int8"], ["fc1.weight_f"], name="fc1_weight_cast", to=F),
        helper.make_node("Mul", ["fc1.weight_f", "fc1.weight_scale"], ["fc1.weight"], name="fc1_weight_mul"),
        helper.make_node("MatMul", ["x", "fc1.weight"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("Cast", ["fc2.weight_int8"], ["fc2.weight_f"], name="fc2_weight_cast", to=F),
        helper.make_node("Mul", ["fc2.weight_f", "fc2.weight_scale"], ["fc2.weight"], name="fc2_weight_mul"),
        helper.make_node("MatMul", ["hr", "fc2.weight"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "weight_only_cast_mul", [vi("x", F, [1, 16])], [vi("y", F, [1, 4])], inits)
    golden = {}
    for name, w, s in (("fc1", w1, s1), ("fc2", w2, s2)):
        deq = (w.astype(np.float32) * s).astype(np.float32)
        golden[name] = {
            "node": name, "weight_q": f"{name}.weight_int8", "scale_tensor": f"{name}.weight_scale",
            "axis": 1 if s.ndim else None, "scale": [float(v) for v in s.ravel()],
            "dequant_first": [float(v) for v in deq.ravel()[:16]],
        }
    return make_model(g), golden


def edge_scalar_weight():
    inits = [
        init("mul_scalar", np.array(1.5, np.float32)),
        init("dq_scalar.q", np.array(-42, np.int8)),
        init("dq_scalar.scale", np.array(0.05, np.float32)),
        init("dq_scalar.zero_point", np.array(3, np.int8)),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "mul_scalar"], ["h"], name="mul_by_scalar"),
        helper.make_node("DequantizeLinear", ["dq_scalar.q", "dq_scalar.scale", "dq_scalar.zero_point"], ["dq_scalar.deq"], name="dq_scalar_dequant"),
        helper.make_node("Mul", ["h", "dq_scalar.deq"], ["y"], name="mul_by_dq_scalar"),
    ]
    g = helper.make_graph(nodes, "scalar_weight", [vi("x", F, [1, 4])], [vi("y", F, [1, 4])], inits)
    return make_model(g)


def symmetric_int8(w: np.ndarray, axis=None):
    if axis is None:
        s = np.float32(np.abs(w).max() / 127.0)
        q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
        return q, np.array(s, np.float32), np.array(0, np.int8)
    s = (np.abs(w).max(axis=1 - axis) / 127.0).astype(np.float32)
    sb = s.reshape((1, -1) if axis == 1 else (-1, 1))
    q = np.clip(np.round(w / sb), -127, 127).astype(np.int8)
    return q, s, np.zeros(s.shape, np.int8)


def edge_opset12_qdq():
    rng = np.random.default_rng(0)
    w1, w2 = he(rng, (8, 8), 8), he(rng, (8, 4), 8)
    q1, s1, z1 = symmetric_int8(w1)
    q2, s2, z2 = symmetric_int8(w2)
    inits = [
        init("x_scale", np.array(0.02, np.float32)), init("x_zero_point", np.array(0, np.int8)),
        init("fc1.weight_quantized", q1), init("fc1.weight_scale", s1), init("fc1.weight_zero_point", z1),
        init("fc2.weight_quantized", q2), init("fc2.weight_scale", s2), init("fc2.weight_zero_point", z2),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["x_q"], name="x_QuantizeLinear"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero_point"], ["x_dq"], name="x_DequantizeLinear"),
        helper.make_node("DequantizeLinear", ["fc1.weight_quantized", "fc1.weight_scale", "fc1.weight_zero_point"], ["fc1.weight_dq"], name="fc1.weight_DequantizeLinear"),
        helper.make_node("MatMul", ["x_dq", "fc1.weight_dq"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("DequantizeLinear", ["fc2.weight_quantized", "fc2.weight_scale", "fc2.weight_zero_point"], ["fc2.weight_dq"], name="fc2.weight_DequantizeLinear"),
        helper.make_node("MatMul", ["hr", "fc2.weight_dq"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "opset12_qdq", [vi("x", F, [1, 8])], [vi("y", F, [1, 4])], inits)
    return make_model(g, opset=12, ir=7)


def edge_per_axis_activation():
    """An activation quantized per channel (scale and zero point along axis 1): the Q→DQ
    pair tract runs as its own two ops (quantlens fuses only per-tensor pairs)."""
    scale = np.array([0.02, 0.05, 0.1], np.float32)
    zp = np.array([128, 100, 140], np.uint8)
    inits = [init("x_scale", scale), init("x_zero_point", zp)]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero_point"], ["x_q"], name="x_QuantizeLinear", axis=1),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero_point"], ["x_dq"], name="x_DequantizeLinear",
                         axis=1),
        helper.make_node("Relu", ["x_dq"], ["y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "per_axis_activation", [vi("x", F, [1, 3, 4, 4])], [vi("y", F, [1, 3, 4, 4])], inits)
    return make_model(g)


def edge_depthwise():
    """Strided depthwise convolutions (quantlens runs them with its own kernel) of several
    geometries, and element-wise ops of every kind tract runs in place (per channel, by
    scalar, Clip, same-shape, flipped Sub) on tensors a capture keeps; with onnxruntime's
    values of every tensor (ORT_DISABLE_ALL) on a fixed input, in `depthwise_ref.npz`."""
    rng = np.random.default_rng(11)
    c = 8
    w = lambda k: (rng.standard_normal((c, 1, *k)) * 0.3).astype(np.float32)
    inits = [
        init("w1", w((3, 3))), init("b1", rng.standard_normal(c).astype(np.float32)),
        init("w2", w((5, 5))),
        init("w3", w((3, 3))), init("b3", rng.standard_normal(c).astype(np.float32)),
        init("w4", w((3, 3))),
        init("w5", w((1, 1))),
        init("per_channel", rng.uniform(0.5, 2.0, (1, c, 1, 1)).astype(np.float32)),
        init("half", np.array(0.5, np.float32)), init("zero", np.array(0.0, np.float32)),
        init("six", np.array(6.0, np.float32)), init("offset", rng.standard_normal((1, c, 1, 1)).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["d1"], name="dw_s2", group=c, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["d2"], name="dw_5x5_s2", group=c, strides=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("Conv", ["x", "w3", "b3"], ["d3"], name="dw_s21_dilated", group=c, strides=[2, 1],
                         pads=[0, 1, 1, 0], dilations=[1, 2]),
        helper.make_node("Conv", ["x", "w4"], ["d4"], name="dw_same_s3", group=c, strides=[3, 3], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["x", "w5"], ["d5"], name="dw_1x1_s2", group=c, strides=[2, 2]),
        helper.make_node("Mul", ["d1", "per_channel"], ["m"], name="per_channel_mul"),
        helper.make_node("Add", ["m", "half"], ["a"], name="scalar_add"),
        helper.make_node("Clip", ["a", "zero", "six"], ["clipped"], name="clip"),
        helper.make_node("Mul", ["d1", "clipped"], ["hs"], name="same_shape_mul"),
        helper.make_node("Sub", ["offset", "hs"], ["y1"], name="flipped_sub"),
        helper.make_node("Relu", ["d3"], ["y3"], name="relu"),
    ]
    every = ["d1", "d2", "d3", "d4", "d5", "m", "a", "clipped", "hs", "y1", "y3"]
    probe = helper.make_graph(nodes, "depthwise", [vi("x", F, [1, c, 13, 11])],
                              [onnx.ValueInfoProto(name=n) for n in every], inits)
    opts = onnxruntime.SessionOptions()
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = onnxruntime.InferenceSession(make_model(probe).SerializeToString(), opts,
                                        providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, c, 13, 11)).astype(np.float32)
    ref = dict(zip(every, sess.run(every, {"x": x})))
    outputs = [vi(n, F, list(ref[n].shape)) for n in ("y1", "d2", "y3", "d4", "d5")]
    model = make_model(helper.make_graph(nodes, "depthwise", [vi("x", F, [1, c, 13, 11])], outputs, inits))
    return model, {"x": x, **ref}


def edge_uint8_in_int8():
    rng = np.random.default_rng(0)
    emb = rng.integers(0, 256, (100, 16)).astype(np.uint8)
    emb_s, emb_z = np.array(0.01, np.float32), np.array(128, np.uint8)
    q, s, z = symmetric_int8(he(rng, (16, 8), 16), axis=1)
    inits = [
        init("embed.weight_quantized", emb), init("embed.weight_scale", emb_s), init("embed.weight_zero_point", emb_z),
        init("fc.weight_quantized", q), init("fc.weight_scale", s), init("fc.weight_zero_point", z),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["embed.weight_quantized", "embed.weight_scale", "embed.weight_zero_point"], ["embed.weight"], name="embed.weight_DequantizeLinear"),
        helper.make_node("Gather", ["embed.weight", "ids"], ["e"], name="embed", axis=0),
        helper.make_node("DequantizeLinear", ["fc.weight_quantized", "fc.weight_scale", "fc.weight_zero_point"], ["fc.weight"], name="fc.weight_DequantizeLinear", axis=1),
        helper.make_node("MatMul", ["e", "fc.weight"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "uint8_in_int8", [vi("ids", TensorProto.INT64, [1, 5])], [vi("y", F, [1, 5, 8])], inits)
    deq = ((emb.astype(np.int32) - emb_z.astype(np.int32)).astype(np.float32) * emb_s).astype(np.float32)
    golden = {
        "node": "embed", "weight_q": "embed.weight_quantized", "dtype": "uint8",
        "scale": [float(emb_s)], "zero_point": [int(emb_z)],
        "dequant_first": [float(v) for v in deq.ravel()[:16]], "dequant_stats": stats(deq),
    }
    return make_model(g), golden


def edge_int16_qdq():
    rng = np.random.default_rng(0)
    w16 = rng.integers(-30000, 30001, (8, 4)).astype(np.int16)
    s16, z16 = np.array(1e-5, np.float32), np.array(-7, np.int16)
    wu16 = rng.integers(0, 65536, (4, 4)).astype(np.uint16)
    su16, zu16 = np.array(2e-5, np.float32), np.array(32768, np.uint16)
    w4 = rng.integers(-8, 8, (4, 4)).astype(np.int8)
    s4 = rng.uniform(0.01, 0.1, (4,)).astype(np.float32)
    inits = [
        init("fc_i16.weight_quantized", w16), init("fc_i16.weight_scale", s16), init("fc_i16.weight_zero_point", z16),
        init("fc_u16.weight_quantized", wu16), init("fc_u16.weight_scale", su16), init("fc_u16.weight_zero_point", zu16),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["fc_i16.weight_quantized", "fc_i16.weight_scale", "fc_i16.weight_zero_point"], ["fc_i16.weight"], name="fc_i16.weight_DequantizeLinear"),
        helper.make_node("MatMul", ["x", "fc_i16.weight"], ["h1"], name="fc_i16"),
        helper.make_node("DequantizeLinear", ["fc_u16.weight_quantized", "fc_u16.weight_scale", "fc_u16.weight_zero_point"], ["fc_u16.weight"], name="fc_u16.weight_DequantizeLinear"),
        helper.make_node("MatMul", ["h1", "fc_u16.weight"], ["h2"], name="fc_u16"),
    ]
    int4_written = False
    try:
        q4 = numpy_helper.from_array(w4.astype(ml_dtypes.int4), "fc_i4.weight_quantized")
        z4 = numpy_helper.from_array(np.zeros(4, np.int8).astype(ml_dtypes.int4), "fc_i4.weight_zero_point")
        inits.extend([q4, init("fc_i4.weight_scale", s4), z4])
        nodes.extend([
            helper.make_node("DequantizeLinear", ["fc_i4.weight_quantized", "fc_i4.weight_scale", "fc_i4.weight_zero_point"], ["fc_i4.weight"], name="fc_i4.weight_DequantizeLinear", axis=1),
            helper.make_node("MatMul", ["h2", "fc_i4.weight"], ["y"], name="fc_i4"),
        ])
        int4_written = True
    except Exception as e:  # pragma: no cover - depends on the onnx version
        print(f"int4 not written: {e}", file=sys.stderr)
        nodes.append(helper.make_node("Identity", ["h2"], ["y"], name="out"))
    g = helper.make_graph(nodes, "int16_qdq", [vi("x", F, [1, 8])], [vi("y", F, [1, 4])], inits)
    golden = {}
    for key, (w, s, z, wq) in {"int16": (w16, s16, z16, "fc_i16"), "uint16": (wu16, su16, zu16, "fc_u16")}.items():
        deq = ((w.astype(np.int32) - z.astype(np.int32)).astype(np.float32) * s).astype(np.float32)
        golden[key] = {
            "node": wq, "weight_q": f"{wq}.weight_quantized", "dtype": key, "scale": [float(s)], "zero_point": [int(z)],
            "dequant_first": [float(v) for v in deq.ravel()[:16]],
        }
    if int4_written:
        deq = (w4.astype(np.float32) * s4.reshape(1, -1)).astype(np.float32)
        golden["int4"] = {
            "node": "fc_i4", "weight_q": "fc_i4.weight_quantized", "dtype": "int4", "axis": 1,
            "scale": [float(v) for v in s4], "zero_point": [0] * 4,
            "dequant_first": [float(v) for v in deq.ravel()[:16]],
        }
    return make_model(g, opset=21, ir=10), golden, int4_written


def edge_fp16_bf16():
    rng = np.random.default_rng(0)
    w16 = he(rng, (8, 4), 8).astype(np.float16)
    wbf = he(rng, (4, 4), 4).astype(ml_dtypes.bfloat16)
    inits = [init("fc_fp16.weight", w16), numpy_helper.from_array(wbf, "fc_bf16.weight")]
    nodes = [
        helper.make_node("Cast", ["fc_fp16.weight"], ["fc_fp16.weight_f32"], name="fc_fp16_weight_cast", to=F),
        helper.make_node("MatMul", ["x", "fc_fp16.weight_f32"], ["h"], name="fc_fp16"),
        helper.make_node("Cast", ["fc_bf16.weight"], ["fc_bf16.weight_f32"], name="fc_bf16_weight_cast", to=F),
        helper.make_node("MatMul", ["h", "fc_bf16.weight_f32"], ["y"], name="fc_bf16"),
    ]
    g = helper.make_graph(nodes, "fp16_bf16", [vi("x", F, [1, 8])], [vi("y", F, [1, 4])], inits)
    return make_model(g)


def edge_nan_inf():
    rng = np.random.default_rng(0)
    w = he(rng, (8, 8), 8)
    flat = w.reshape(-1)
    flat[[3, 17, 40]] = np.nan
    flat[[5, 22]] = np.inf
    flat[60] = -np.inf
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
        "nan_inf", [vi("x", F, [1, 8])], [vi("y", F, [1, 8])], [init("fc.weight", w)],
    )
    return make_model(g)


def edge_bad_quant_params():
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    x = "x"

    def layer(name, q, scale, zp, axis=None):
        nonlocal x
        inits.extend([init(f"{name}.weight_quantized", q), init(f"{name}.weight_scale", scale), init(f"{name}.weight_zero_point", zp)])
        attrs = {} if axis is None else {"axis": axis}
        nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}.weight_quantized", f"{name}.weight_scale", f"{name}.weight_zero_point"],
            [f"{name}.weight"], name=f"{name}.weight_DequantizeLinear", **attrs))
        out = f"{name}_out"
        nodes.append(helper.make_node("MatMul", [x, f"{name}.weight"], [out], name=name))
        x = out

    q = lambda: rng.integers(-127, 128, (8, 8)).astype(np.int8)  # noqa: E731
    sc = lambda n: rng.uniform(0.005, 0.02, (n,)).astype(np.float32)  # noqa: E731
    layer("good", q(), sc(8), np.zeros(8, np.int8), axis=1)
    layer("scale_count_mismatch", q(), sc(7), np.zeros(7, np.int8), axis=1)
    layer("zero_point_length_mismatch", q(), sc(8), np.zeros(5, np.int8), axis=1)
    layer("zero_point_dtype_mismatch", q(), sc(8), np.full(8, 128, np.uint8), axis=1)
    layer("zero_scale", q(), np.array(0.0, np.float32), np.array(0, np.int8))
    layer("negative_scale", q(), np.array(-0.01, np.float32), np.array(0, np.int8))
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    g = helper.make_graph(nodes, "bad_quant_params", [vi("x", F, [1, 8])], [vi("y", F, [1, 8])], inits)
    return make_model(g)


def edge_quant_annotation():
    rng = np.random.default_rng(0)
    emb = rng.integers(-127, 128, (50, 8)).astype(np.int8)
    inits = [
        init("embed.weight_quantized", emb),
        init("embed.weight_scale", rng.uniform(0.005, 0.02, (8,)).astype(np.float32)),
        init("embed.weight_zero_point", np.zeros(8, np.int8)),
        init("embed_float_scale", np.array(0.05, np.float32)),
        init("embed_float_zero_point", np.array(0, np.int8)),
        init("fc.weight", he(rng, (8, 4), 8)),
    ]
    nodes = [
        helper.make_node("Gather", ["embed.weight_quantized", "ids"], ["e_q"], name="embed", axis=0),
        helper.make_node("Cast", ["e_q"], ["e_float"], name="embed_cast", to=F),
        helper.make_node("MatMul", ["e_float", "fc.weight"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "quant_annotation", [vi("ids", TensorProto.INT64, [1, 5])], [vi("y", F, [1, 5, 4])], inits)

    def ann(tensor, scale, zp):
        a = onnx.TensorAnnotation()
        a.tensor_name = tensor
        for k, v in (("SCALE_TENSOR", scale), ("ZERO_POINT_TENSOR", zp)):
            e = a.quant_parameter_tensor_names.add()
            e.key, e.value = k, v
        return a

    g.quantization_annotation.extend([
        ann("embed.weight_quantized", "embed.weight_scale", "embed.weight_zero_point"),
        ann("e_q", "embed_float_scale", "embed_float_zero_point"),
    ])
    return make_model(g)


def edge_external():
    rng = np.random.default_rng(0)
    inits = [init("fc1.weight", he(rng, (16, 8), 16)), init("fc1.bias", small(rng, (8,))), init("fc2.weight", he(rng, (8, 4), 8))]
    nodes = [
        helper.make_node("MatMul", ["x", "fc1.weight"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "fc1.bias"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu"),
        helper.make_node("MatMul", ["hr", "fc2.weight"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "external", [vi("x", F, [1, 16])], [vi("y", F, [1, 4])], inits)
    m = make_model(g)
    onnx.checker.check_model(m, full_check=True)
    folder = DATA / "edge" / "external"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    onnx.save_model(m, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.checker.check_model(str(folder / "model.onnx"), full_check=True)


def edge_renamed(int8_path: Path):
    m = onnx.load(str(int8_path))
    g = m.graph
    names: dict[str, str] = {"": ""}

    def t(name: str) -> str:
        if name not in names:
            names[name] = f"t{len(names) - 1}"
        return names[name]

    for x in g.input:
        x.name = t(x.name)
    for x in g.initializer:
        x.name = t(x.name)
    for i, n in enumerate(g.node):
        n.name = f"n{i}"
        for k in range(len(n.input)):
            n.input[k] = t(n.input[k])
        for k in range(len(n.output)):
            n.output[k] = t(n.output[k])
        assert not any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute)
    for x in g.output:
        x.name = t(x.name)
    for x in g.value_info:
        x.name = t(x.name)
    for a in g.quantization_annotation:
        a.tensor_name = t(a.tensor_name)
    return m


def edge_dup_names():
    rng = np.random.default_rng(0)
    inits = [init("w1", he(rng, (8, 8), 8)), init("w2", he(rng, (8, 8), 8)), init("w3", he(rng, (8, 4), 8))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="dup"),
        helper.make_node("Relu", ["h1"], ["r1"], name="dup"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name=""),
        helper.make_node("Relu", ["h2"], ["r2"], name=""),
        helper.make_node("MatMul", ["r2", "w3"], ["y"], name="last"),
    ]
    g = helper.make_graph(nodes, "dup_names", [vi("x", F, [1, 8])], [vi("y", F, [1, 4])], inits)
    return make_model(g)


# --------------------------------------------------------------------------- broken files


def small_valid_layer(rng):
    """A valid MatMul layer (x [1,8] → fc) so each per-tensor-broken file still has a layer."""
    return init("fc.weight", he(rng, (8, 4), 8)), helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")


def broken_model(nodes, inits, name, outputs=(("y", [1, 4]),)):
    g = helper.make_graph(nodes, name, [vi("x", F, [1, 8])], [vi(n, F, s) for n, s in outputs], inits)
    return make_model(g)


def external_tensor(name: str, location: str, dims=(8, 4)) -> TensorProto:
    t = TensorProto()
    t.name = name
    t.data_type = F
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(int(np.prod(dims)) * 4))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def write_broken(resnet_float: Path):
    rng = np.random.default_rng(0)
    write_raw("broken/empty.onnx", b"")
    # 'O' (0x4F) is protobuf wire type 7, which does not exist: never decodes.
    write_raw("broken/not_protobuf.onnx", b"Oops: this is plain text, not an ONNX protobuf model.\n")
    full = resnet_float.read_bytes()
    write_raw("broken/truncated.onnx", full[: int(len(full) * 0.6)])

    g = helper.make_graph([], "empty", [vi("x", F, [1, 8])], [vi("y", F, [1, 8])])
    save(make_model(g), "broken/empty_graph.onnx", check=False)

    w, mm = small_valid_layer(rng)
    bad = TensorProto(name="bad.weight", data_type=F, dims=[8, 8], raw_data=b"\0" * 100)
    nodes = [mm, helper.make_node("MatMul", ["x", "bad.weight"], ["z"], name="bad_fc")]
    save(broken_model(nodes, [w, bad], "raw_size_mismatch", (("y", [1, 4]), ("z", [1, 8]))), "broken/raw_size_mismatch.onnx", check=False)

    w, mm = small_valid_layer(rng)
    huge = TensorProto(name="huge.weight", data_type=F, dims=[1 << 40, 1 << 40], raw_data=b"\0" * 16)
    nodes = [mm, helper.make_node("MatMul", ["x", "huge.weight"], ["z"], name="huge_fc")]
    save(broken_model(nodes, [w, huge], "huge_dims", (("y", [1, 4]), ("z", None))), "broken/huge_dims.onnx", check=False)

    w, mm = small_valid_layer(rng)
    unk = TensorProto(name="unknown.weight", data_type=999, dims=[8], raw_data=b"\0" * 32)
    nodes = [mm, helper.make_node("Add", ["x", "unknown.weight"], ["z"], name="unknown_add")]
    save(broken_model(nodes, [w, unk], "unknown_dtype", (("y", [1, 4]), ("z", [1, 8]))), "broken/unknown_dtype.onnx", check=False)

    for rel, loc in (
        ("broken/escape_external.onnx", "../../../etc/passwd"),
        ("broken/absolute_external.onnx", "/etc/passwd"),
        ("broken/missing_external.onnx", "nowhere.bin"),
    ):
        w, mm = small_valid_layer(rng)
        ext = external_tensor("ext.weight", loc)
        nodes = [mm, helper.make_node("MatMul", ["x", "ext.weight"], ["z"], name="ext_fc")]
        save(broken_model(nodes, [w, ext], Path(rel).stem, (("y", [1, 4]), ("z", [1, 4]))), rel, check=False)

    w, mm = small_valid_layer(rng)
    nodes = [
        mm,
        helper.make_node("Add", ["x", "c"], ["b"], name="cycle_add"),
        helper.make_node("Relu", ["b"], ["c"], name="cycle_relu"),
    ]
    save(broken_model(nodes, [w], "cycle", (("y", [1, 4]), ("b", [1, 8]))), "broken/cycle.onnx", check=False)


# --------------------------------------------------------------------------- goldens


def stats(a: np.ndarray) -> dict:
    a = np.asarray(a).astype(np.float64).ravel()
    finite = a[np.isfinite(a)]
    q25, q50, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {
        "count": int(a.size), "nan": int(np.isnan(a).sum()), "inf": int(np.isinf(a).sum()),
        "min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean()),
        "std": float(finite.std()), "q25": float(q25), "q50": float(q50), "q75": float(q75),
    }


def broadcast_shape(ndim: int, axis: int, n: int):
    shape = [1] * ndim
    shape[axis] = n
    return shape


def dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int | None) -> np.ndarray:
    """(q - zp) * scale in float32, as onnxruntime computes it."""
    zp = np.zeros_like(scale, dtype=np.int32) if zp is None else zp.astype(np.int32)
    scale = scale.astype(np.float32)
    if scale.size > 1:
        bs = broadcast_shape(q.ndim, axis, scale.size)
        scale, zp = scale.reshape(bs), zp.reshape(bs)
    return ((q.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def per_element_scale(q_shape, scale: np.ndarray, axis: int | None) -> np.ndarray:
    s = scale.astype(np.float64)
    if s.size > 1:
        s = s.reshape(broadcast_shape(len(q_shape), axis, s.size))
    return np.broadcast_to(s, q_shape)


def metrics(x32: np.ndarray, y32: np.ndarray, scale_el: np.ndarray) -> dict:
    x, y = x32.astype(np.float64).ravel(), y32.astype(np.float64).ravel()
    d = x - y
    s = scale_el.astype(np.float64).ravel()
    return {
        "sqnr_db": float(compute_signal_to_quantization_noice_ratio(x, y)),
        "mse": float(np.mean(d * d)),
        "max_abs": float(np.max(np.abs(d))),
        "cosine": float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))),
        "norm_l2": float(np.linalg.norm(d) / np.linalg.norm(x)),
        "rmse_over_scale": float(np.sqrt(np.mean((d / s) ** 2))),
    }


class Graph:
    def __init__(self, path: Path):
        self.model = onnx.load(str(path))
        g = self.model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.nodes = {n.name: n for n in g.node}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def attr(self, node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default


def qdq_weight(g: Graph, node_name: str) -> dict:
    node = g.nodes[node_name]
    dq = g.producer[node.input[1]]
    assert dq.op_type == "DequantizeLinear", dq
    wq, sname = dq.input[0], dq.input[1]
    zname = dq.input[2] if len(dq.input) > 2 and dq.input[2] else None
    q, s = g.inits[wq], g.inits[sname]
    z = g.inits[zname] if zname else None
    axis = g.attr(dq, "axis", 1)
    if axis < 0:
        axis += q.ndim
    return {"node": node.name, "weight_q": wq, "q": q, "scale": s, "zp": z, "axis": axis if s.size > 1 else None,
            "scale_name": sname, "zp_name": zname}


def golden_model(model: str, float_rel: str, variants: dict, layers: list[str]) -> dict:
    fg = Graph(DATA / float_rel)
    vgs = {k: Graph(DATA / v) for k, v in variants.items()}
    out = {"float_file": float_rel, "layers": []}
    for layer in layers:
        node = fg.nodes[layer]
        wname = node.input[1]
        x = fg.inits[wname]
        entry = {"layer": layer, "op": node.op_type, "float_weight": wname, "float_stats": stats(x), "variants": {}}
        arrays = {"float": x.astype(np.float64).ravel()}
        for vname, vg in vgs.items():
            w = qdq_weight(vg, layer)
            y = dequantize(w["q"], w["scale"], w["zp"], w["axis"])
            assert y.shape == x.shape, (layer, vname, y.shape, x.shape)
            arrays[vname] = y.astype(np.float64).ravel()
            entry["variants"][vname] = {
                "file": variants[vname], "node": w["node"], "weight_q": w["weight_q"],
                "dtype": str(w["q"].dtype), "axis": w["axis"] if w["axis"] is not None else 0,
                "scale": [float(v) for v in w["scale"].ravel()],
                "zero_point": [int(v) for v in (w["zp"] if w["zp"] is not None else np.zeros_like(w["scale"], np.int32)).ravel()],
                "dequant_first": [float(v) for v in y.ravel()[:16]],
                "dequant_stats": stats(y),
                "metrics": metrics(x, y, per_element_scale(w["q"].shape, w["scale"], w["axis"])),
            }
        lo = float(min(a.min() for a in arrays.values()))
        hi = float(max(a.max() for a in arrays.values()))
        entry["histogram"] = {
            "bins": BINS, "lo": lo, "hi": hi,
            "counts": {k: [int(c) for c in np.histogram(a, bins=BINS, range=(lo, hi))[0]] for k, a in arrays.items()},
        }
        out["layers"].append(entry)
    return out


def golden_qoperator() -> dict:
    res = {}
    rel = "qoperator/transformer_dynamic_uint8.onnx"
    g = Graph(DATA / rel)
    entries = []
    for n in g.model.graph.node:
        if n.op_type != "MatMulInteger" or n.input[1] not in g.inits:
            continue
        wq = n.input[1]
        q = g.inits[wq]
        z = g.inits[n.input[3]] if len(n.input) > 3 and n.input[3] else None
        # onnxruntime writes MatMulInteger → Cast → Mul(out, Mul(x_scale, <w>_scale))
        cast = g.consumers[n.output[0]][0]
        mul = g.consumers[cast.output[0]][0]
        scale_name = None
        for i in mul.input:
            p = g.producer.get(i)
            if p is not None and p.op_type == "Mul":
                scale_name = next(k for k in p.input if k in g.inits)
            elif i in g.inits:
                scale_name = i
        s = g.inits[scale_name]
        axis = 1 if s.size > 1 else None
        y = dequantize(q, s, z, axis)
        entries.append({
            "node": n.name, "weight_q": wq, "dtype": str(q.dtype),
            "scale": [float(v) for v in s.ravel()], "zero_point": [int(v) for v in z.ravel()],
            "dequant_first": [float(v) for v in y.ravel()[:16]],
        })
        if len(entries) == 2:
            break
    assert len(entries) == 2, entries
    res[rel] = entries

    rel = "qoperator/resnet8_qoperator_int8.onnx"
    g = Graph(DATA / rel)
    entries = []
    for n in g.model.graph.node:
        if n.op_type != "QLinearConv":
            continue
        wq, sn, zn = n.input[3], n.input[4], n.input[5]
        q, s, z = g.inits[wq], g.inits[sn], g.inits[zn]
        y = dequantize(q, s, z, 0)
        entries.append({
            "node": n.name, "weight_q": wq, "dtype": str(q.dtype),
            "scale": [float(v) for v in s.ravel()], "zero_point": [int(v) for v in z.ravel()],
            "dequant_first": [float(v) for v in y.ravel()[:16]],
        })
        break
    res[rel] = entries
    return res


# --------------------------------------------------------------------------- README


README_LINES = [
    ("resnet8/resnet8_float.onnx", "ResNet8-style CIFAR CNN (input float[1,3,32,32], opset 17, ~78k params, He-init weights, no BatchNorm), built with onnx.helper + numpy (seed 0)."),
    ("resnet8/resnet8_int8.onnx", "onnxruntime quantize_static of resnet8_float: QDQ, per-channel, QInt8 activations and weights, MinMax calibration on 8 seeded random inputs."),
    ("resnet8/resnet8_uint8.onnx", "Same as resnet8_int8 with QUInt8 activations and weights; onnxruntime's default symmetric per-channel weights, so uint8 weights with zero point 127 in every channel."),
    ("transformer/transformer_float.onnx", "Small transformer block (input float[1,16,64], opset 17): LayerNorm, Q/K/V projections, 4-head attention, output projection, residual, LayerNorm, MLP 64→256→64 with Relu, residual."),
    ("transformer/transformer_int8.onnx", "onnxruntime quantize_static of transformer_float: QDQ, per-channel, QInt8/QInt8."),
    ("transformer/transformer_uint8.onnx", "onnxruntime quantize_static of transformer_float: QDQ, per-channel, QUInt8/QUInt8; MatMul weights asymmetric through TensorQuantOverrides (symmetric=False), so each channel has its own zero point."),
    ("qoperator/resnet8_qoperator_int8.onnx", "onnxruntime quantize_static of resnet8_float in QOperator format (QLinearConv, QLinearAdd, QGemm, ...), per-channel, QInt8/QInt8."),
    ("qoperator/transformer_dynamic_uint8.onnx", "onnxruntime quantize_dynamic of transformer_float, weight_type QUInt8, per-tensor (DynamicQuantizeLinear + MatMulInteger, uint8 weights with non-zero zero points)."),
    ("qoperator/resnet8_dynamic_uint8.onnx", "onnxruntime quantize_dynamic of resnet8_float, weight_type QUInt8, per-tensor: every Conv becomes ConvInteger (input 1 uint8 weight, input 3 zero point, scale on the Mul after the Cast); the Gemm becomes MatMulInteger (weight transposed to [64,10]) + Add."),
    ("edge/constant_weights.onnx", "MatMul weights and bias held in Constant nodes instead of initializers."),
    ("edge/subgraph_if.onnx", "If whose branches hold Conv/MatMul nodes using outer-scope initializers; a second If nested inside the then-branch."),
    ("edge/weight_only_cast_mul.onnx", "Weight-only quantization without DequantizeLinear: int8 initializer → Cast(float) → Mul(scale) → MatMul; per-column scale [1,8] on fc1, scalar scale on fc2."),
    ("edge/scalar_weight.onnx", "A 0-d float initializer used by Mul, and a 0-d int8 weight dequantized by DequantizeLinear with scalar scale/zero point."),
    ("edge/opset12_qdq.onnx", "Hand-written QDQ at opset 12, per-tensor (DequantizeLinear without axis), int8 weights."),
    ("edge/uint8_in_int8.onnx", "int8 QDQ model (per-channel int8 MatMul weight) that also holds a uint8 embedding table [100,16] with zero point 128, DequantizeLinear → Gather."),
    ("edge/int16_qdq.onnx", "Opset 21 DequantizeLinear of an int16 and a uint16 weight (per-tensor) and a packed INT4 weight (per-channel, axis 1)."),
    ("edge/fp16_bf16.onnx", "float16 and bfloat16 initializers, each Cast to float before a MatMul."),
    ("edge/nan_inf.onnx", "Float MatMul weight [8,8] holding 3 NaN, 2 +Inf and 1 -Inf."),
    ("edge/bad_quant_params.onnx", "DequantizeLinear weights with bad params (scale count ≠ channels, zero point length ≠ scale length, uint8 zero point for an int8 weight, zero scale, negative scale) plus one good layer 'good'. Not checker-valid on purpose."),
    ("edge/quant_annotation.onnx", "int8 embedding consumed by Gather whose scale/zero point are only declared by graph.quantization_annotation (SCALE_TENSOR / ZERO_POINT_TENSOR), plus an annotated activation."),
    ("edge/external/model.onnx", "Valid MLP saved with external data (all tensors in one file)."),
    ("edge/external/weights.bin", "The external data of edge/external/model.onnx."),
    ("edge/renamed/model_float.onnx", "Copy of resnet8/resnet8_float.onnx."),
    ("edge/renamed/model_int8.onnx", "resnet8/resnet8_int8.onnx with every node renamed to n<i> and every tensor to t<j>: nothing matches the float file by name, structure identical."),
    ("edge/dup_names.onnx", "MatMul/Relu chain where two nodes share the name 'dup' and two nodes have an empty name (onnx.checker accepts it; onnxruntime refuses duplicate node names)."),
    ("broken/empty.onnx", "0 bytes."),
    ("broken/not_protobuf.onnx", "Plain text (first byte is protobuf wire type 7, which cannot decode)."),
    ("broken/truncated.onnx", "resnet8_float.onnx cut to 60% of its bytes."),
    ("broken/empty_graph.onnx", "ModelProto whose graph has no nodes."),
    ("broken/raw_size_mismatch.onnx", "Initializer bad.weight dims [8,8] float with 100 bytes of raw_data (needs 256), plus a valid MatMul fc."),
    ("broken/huge_dims.onnx", "Initializer huge.weight dims [2^40, 2^40] with 16 bytes of raw_data, plus a valid MatMul fc."),
    ("broken/unknown_dtype.onnx", "Initializer unknown.weight with data_type 999, plus a valid MatMul fc."),
    ("broken/escape_external.onnx", "External-data tensor with location ../../../etc/passwd, plus a valid MatMul fc."),
    ("broken/absolute_external.onnx", "External-data tensor with location /etc/passwd, plus a valid MatMul fc."),
    ("broken/missing_external.onnx", "External-data tensor with location nowhere.bin (absent), plus a valid MatMul fc."),
    ("broken/cycle.onnx", "Two nodes (cycle_add, cycle_relu) whose outputs feed each other, plus an ordinary MatMul fc."),
    ("golden.json", "Goldens computed with numpy/onnx/onnxruntime's qdq_loss_debug: weights, quant params, dequantized values, stats, metrics, shared histograms."),
]


def write_readme():
    lines = [
        "# Test data",
        "",
        "Every file here is written by `python scripts/make_fixtures.py` (from the repository root,",
        "in a venv with `pip install -r scripts/requirements-fixtures.txt`). Regenerate them all with it;",
        "do not edit by hand. `assets/example/` holds copies of the three resnet8 files.",
        "",
    ]
    for rel, what in README_LINES:
        assert (DATA / rel).exists(), rel
        lines.append(f"- `{rel}`: {what}")
    lines += [
        "",
        "Written by `python scripts/make_static_fixtures.py` (run it after make_fixtures.py):",
        "",
        "- `pt_style/model_float.onnx`: Small CNN written as torch.onnx.export writes folded BatchNorm: "
        "each Conv bias reaches its Conv through an Identity node; a Clip(0, 6) with constant bounds and a "
        "Mul by the scalar 0.5.",
        "- `pt_style/model_int8.onnx`: onnxruntime quantize_static of pt_style/model_float (QDQ, per-channel, "
        "QInt8/QInt8): Clip and Relu fused away, the Identity-fed biases left in float, the Gemm bias int32.",
        "- `identity_dq/model_float.onnx`: Copy of pt_style/model_float.onnx.",
        "- `identity_dq/model_int8.onnx`: pt_style/model_int8 with its Identity-fed Conv biases quantized to "
        "int32 (scale = input scale x weight scale, zero point 0) behind DequantizeLinear -> Identity -> Conv, "
        "as reported for torch-exported models quantized by onnxruntime (hand-edited).",
        "- `one_relu_fused/model_float.onnx`: Copy of resnet8/resnet8_float.onnx.",
        "- `one_relu_fused/model_int8.onnx`: resnet8_float with only s2_relu1 removed (its consumer reads its "
        "input) and every node renamed n<i>: only the structure tells which Relu is gone.",
        "- `constw/model_float.onnx`: pt_style/model_float with its `*.weight` initializers in Constant nodes.",
        "- `constw/model_int8.onnx`: onnxruntime quantize_static of constw/model_float (QDQ, per-channel, "
        "QInt8/QInt8): the weights stay float behind QuantizeLinear -> DequantizeLinear (quantized as the "
        "graph runs).",
        "- `infer/resnet8_inputs.npy`, `infer_golden.json`: written by `scripts/make_infer_fixtures.py`: four "
        "seeded samples and onnxruntime's qdq_loss_debug figures (qdq_err, xmodel_err) on them.",
        "- `digits/`, `digits_golden.json`: written by `scripts/make_digits.py`: scikit-learn's 8x8 digits "
        "(test split, `x`/`y` in digits.npz), a numpy-trained CNN in float, int8 and uint8 (onnxruntime "
        "quantize_static), onnxruntime's accuracies.",
        "- `infer/resnet8_inputs_compressed.npz`, `digits/images/`, `tokens/`, `tokens_golden.json`: written by `scripts/make_input_fixtures.py`: the resnet8 inputs deflated (np.savez_compressed), 60 digits rows as class-folder PNGs, a three-input int64 token classifier (float, onnxruntime int8/uint8) with its `tokens.npz` and onnxruntime's qdq_loss_debug figures.",
        "- `torch/`: real files written by PyTorch 2.11.0 (`torch.ao.quantization`, CPU), copied unchanged from the steering folder's `torch-fixtures/resnet8/` (made by its `make_torch_variants.py`, which needs torch: kept as data, not regenerated here): float state_dict and TorchScript; FX int8 (x86, per-channel) as TorchScript, state_dict and whole module; eager int8 as state_dict and whole module; FX qnnpack (per-tensor) TorchScript; `inputs.npy` and PyTorch's own `reference.json` (per file and module: dtype, qscheme, scales, zero points, axis, first integers, SQNR against float, output scale/zero point).",
        "- `torch/embedding_float.pt`, `torch/embedding_int8.pt`, `torch/embedding_reference.json`: written by `scripts/make_torch_embedding.py` with PyTorch 2.15 (needs torch; kept as data): an Embedding(64, 16) + Linear net, float and with the embedding quantized eagerly (`float_qparams_weight_only_qconfig`: per-channel quint8 with real zero points), and PyTorch's own dequantized values, scales and zero points.",
        "- `lowbit/`, `lowbit_golden.json`: written by `scripts/make_lowbit_fixtures.py`: the transformer block quantized by onnxruntime's MatMulNBitsQuantizer in its QDQ form (opset 21 DequantizeLinear with block_size): int4 symmetric block 32 (negative scales, no zero points) and uint4 asymmetric block 16 (zero points), and in its QOperator form (MatMulNBits: symmetric block 16, asymmetric block 32 with packed zero points), and numpy's dequantization of every blocked weight (FNV-1a 64 hash of its float32 bytes, count, min, max, mean, std, SQNR against float). Also: QDQ int4 block 128 (one short block on 64-long axes, as onnxruntime writes it); MatMulNBits 8-bit asymmetric block 32 and 4-bit block 128 (onnxruntime), 2- and 3-bit asymmetric block 32 (numpy, little-endian bit streams; onnxruntime 1.23 runs 4 and 8 bits only); float8 e4m3fn QDQ by onnxruntime's quantize_static (weights and activations) and its weights re-encoded by ml_dtypes into e4m3fnuz, e5m2 and e5m2fnuz. `lowbit_tokens/`: the token classifier with GatherBlockQuantized embeddings and MatMulNBits (onnxruntime, 4 bits, block 16, symmetric int4 and asymmetric uint4 data), and both rewritten in the packed uint8 form (onnxruntime gives the same outputs). `lowbit/transformer_hqq.onnx`: written by `scripts/make_hqq_fixture.py` (onnxruntime's HQQ quantizer, needs torch; kept as data): MatMulNBits with float zero points.",
        "- `qoperator/digits_qlinearconv_int8.onnx`: written by `scripts/make_qoperator_digits.py`: onnxruntime quantize_static of digits_float in QOperator format with only the Convs quantized (QLinearConv x2, per-channel QInt8 weights, QUInt8 activations; the Gemm stays float), a QOperator model tract runs (it runs neither QGemm nor QLinearAdd).",
        "- `static_golden.json`: numpy goldens from the committed files: each quantized bias's dequantized "
        "values and SQNR against its float bias, each statically quantized activation's scale, zero point "
        "and representable range, each weight quantized as the graph runs (constw) requantized.",
    ]
    lines.append("")
    (DATA / "README.md").write_text("\n".join(lines))


# --------------------------------------------------------------------------- main


def main() -> None:
    os.chdir(ROOT)
    for sub in ("resnet8", "transformer", "qoperator", "edge", "broken"):
        if (DATA / sub).exists():
            shutil.rmtree(DATA / sub)
        (DATA / sub).mkdir(parents=True)
    report: dict = {}

    rf = save(build_resnet8(), "resnet8/resnet8_float.onnx")
    quantize_variants(rf, DATA / "resnet8", "resnet8", "input", (1, 3, 32, 32), seed=1)
    tf = save(build_transformer(), "transformer/transformer_float.onnx")
    transformer_weights = ("q_proj", "k_proj", "v_proj", "out_proj", "mlp_fc1", "mlp_fc2")
    quantize_variants(
        tf, DATA / "transformer", "transformer", "x", (1, 16, 64), seed=2,
        asymmetric_uint8_weights={f"{w}.weight": 1 for w in transformer_weights},
    )

    quantize_static(
        str(rf), str(DATA / "qoperator/resnet8_qoperator_int8.onnx"), Reader("input", (1, 3, 32, 32), 1),
        quant_format=QuantFormat.QOperator, per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    quantize_dynamic(str(tf), str(DATA / "qoperator/transformer_dynamic_uint8.onnx"), weight_type=QuantType.QUInt8)
    quantize_dynamic(str(rf), str(DATA / "qoperator/resnet8_dynamic_uint8.onnx"), weight_type=QuantType.QUInt8)

    ASSETS.mkdir(parents=True, exist_ok=True)
    for v in ("float", "int8", "uint8"):
        shutil.copyfile(DATA / f"resnet8/resnet8_{v}.onnx", ASSETS / f"resnet8_{v}.onnx")

    # edge cases
    save(edge_constant_weights(), "edge/constant_weights.onnx")
    save(edge_subgraph_if(), "edge/subgraph_if.onnx")
    m, g_wocm = edge_weight_only_cast_mul()
    save(m, "edge/weight_only_cast_mul.onnx")
    save(edge_scalar_weight(), "edge/scalar_weight.onnx")
    save(edge_opset12_qdq(), "edge/opset12_qdq.onnx")
    save(edge_per_axis_activation(), "infer/per_axis_activation.onnx")
    m, ref = edge_depthwise()
    save(m, "infer/depthwise.onnx")
    np.savez(DATA / "infer/depthwise_ref.npz", **ref)
    m, g_u8 = edge_uint8_in_int8()
    save(m, "edge/uint8_in_int8.onnx")
    m, g_i16, int4_written = edge_int16_qdq()
    save(m, "edge/int16_qdq.onnx")
    save(edge_fp16_bf16(), "edge/fp16_bf16.onnx")
    save(edge_nan_inf(), "edge/nan_inf.onnx")
    save(edge_bad_quant_params(), "edge/bad_quant_params.onnx", check=False)
    save(edge_quant_annotation(), "edge/quant_annotation.onnx")
    edge_external()
    (DATA / "edge/renamed").mkdir()
    shutil.copyfile(rf, DATA / "edge/renamed/model_float.onnx")
    save(edge_renamed(DATA / "resnet8/resnet8_int8.onnx"), "edge/renamed/model_int8.onnx")
    save(edge_dup_names(), "edge/dup_names.onnx")

    write_broken(rf)

    golden = {
        "resnet8": golden_model(
            "resnet8", "resnet8/resnet8_float.onnx",
            {"int8": "resnet8/resnet8_int8.onnx", "uint8": "resnet8/resnet8_uint8.onnx"},
            ["stem_conv", "s2_conv2", "s3_proj", "fc"],
        ),
        "transformer": golden_model(
            "transformer", "transformer/transformer_float.onnx",
            {"int8": "transformer/transformer_int8.onnx", "uint8": "transformer/transformer_uint8.onnx"},
            ["q_proj", "out_proj", "mlp_fc1", "mlp_fc2"],
        ),
        "qoperator": golden_qoperator(),
        "edge": {
            "edge/uint8_in_int8.onnx": g_u8,
            "edge/weight_only_cast_mul.onnx": g_wocm,
            "edge/int16_qdq.onnx": g_i16,
        },
    }
    (DATA / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    write_readme()
    report["int4_written"] = int4_written
    # every valid model runs on onnxruntime (dup_names: ORT refuses duplicate node names;
    # bad_quant_params: invalid on purpose)
    skip = {"edge/dup_names.onnx", "edge/bad_quant_params.onnx"}
    ran = 0
    for path in sorted(DATA.glob("*/**/*.onnx")):
        rel = path.relative_to(DATA).as_posix()
        if rel.startswith("broken/") or rel in skip:
            continue
        smoke_run(path)
        ran += 1
    report["ran_on_onnxruntime"] = ran
    print(json.dumps(report))


if __name__ == "__main__":
    main()
