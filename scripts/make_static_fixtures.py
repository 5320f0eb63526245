#!/usr/bin/env python3
"""Fixtures and goldens for the static picture: biases, activation quantization, exact
tensors, scalar constants and differing nodes.

    python scripts/make_static_fixtures.py     # from the repository root, after make_fixtures.py

Same pinned packages as make_fixtures.py (scripts/requirements-fixtures.txt). Writes:
- tests/data/pt_style/model_float.onnx: a small CNN written the way torch.onnx.export
  writes folded BatchNorm (each Conv bias reaches its Conv through an Identity node), with
  a scalar Mul and a Clip(0, 6) whose bounds are constants;
- tests/data/pt_style/model_int8.onnx: onnxruntime quantize_static of it (QDQ, per-channel,
  QInt8/QInt8), which quantizes the biases to int32 behind their Identity nodes;
- tests/data/identity_dq/model_int8.onnx: pt_style/model_int8 with its Identity-fed biases
  quantized to int32 (onnxruntime's bias scale) behind DequantizeLinear -> Identity -> Conv,
  as reported for torch-exported models (hand-edited; model_float.onnx is a copy);
- tests/data/one_relu_fused/: resnet8_float, and a copy with only s2_relu1 removed and
  every node renamed (n<i>), so that only the structure tells which Relu is gone;
- tests/data/constw/model_float.onnx: pt_style/model_float with its weights in Constant
  nodes (as some exporters write them), and constw/model_int8.onnx, onnxruntime's
  quantize_static of it: the weights stay float behind QuantizeLinear -> DequantizeLinear,
  quantized as the graph runs;
- tests/data/static_golden.json: with numpy, from the committed files: every quantized
  bias's dequantized values `(q - zp) * scale` and SQNR against its float bias
  (onnxruntime's formula), every statically quantized activation's scale, zero point and
  representable range `[(qmin - zp) * s, (qmax - zp) * s]`, and the nodes each variant
  lacks or adds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

DATA = mf.DATA
QRANGE = {2: (0, 255), 3: (-128, 127), 4: (0, 65535), 5: (-32768, 32767)}


def build_pt_style() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    nodes, inits = [], []

    def conv(name, x, cin, cout, k):
        inits.append(mf.init(f"{name}.weight", mf.he(rng, (cout, cin, k, k), cin * k * k)))
        # the exporter's folded BatchNorm bias: an initializer behind an Identity
        inits.append(mf.init(f"onnx::Conv_{name}", mf.small(rng, (cout,), 0.05)))
        nodes.append(helper.make_node("Identity", [f"onnx::Conv_{name}"], [f"{name}.bias_id"], name=f"{name}/Identity"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias_id"], [f"{name}_out"], name=name,
                                      kernel_shape=[k, k], pads=[k // 2] * 4))
        return f"{name}_out"

    x = conv("conv1", "input", 3, 8, 3)
    inits.append(mf.init("clip_min", np.array(0.0, np.float32)))
    inits.append(mf.init("clip_max", np.array(6.0, np.float32)))
    nodes.append(helper.make_node("Clip", [x, "clip_min", "clip_max"], ["relu6_out"], name="relu6"))
    x = conv("conv2", "relu6_out", 8, 8, 3)
    inits.append(mf.init("half", np.array(0.5, np.float32)))
    nodes.append(helper.make_node("Mul", [x, "half"], ["scaled_out"], name="scale_half"))
    nodes.append(helper.make_node("Relu", ["scaled_out"], ["relu_out"], name="relu"))
    nodes.append(helper.make_node("GlobalAveragePool", ["relu_out"], ["gap_out"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="flatten", axis=1))
    inits.append(mf.init("fc.weight", mf.he(rng, (4, 8), 8)))
    inits.append(mf.init("fc.bias", mf.small(rng, (4,), 0.05)))
    nodes.append(helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["output"], name="fc", transB=1))
    g = helper.make_graph(nodes, "main_graph", [helper.make_tensor_value_info("input", mf.F, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("output", mf.F, [1, 4])], inits)
    return mf.make_model(g)


def with_constant_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The `*.weight` initializers as Constant nodes."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    weights = [t for t in g.initializer if t.name.endswith(".weight")]
    rest = [t for t in g.initializer if not t.name.endswith(".weight")]
    consts = [helper.make_node("Constant", [], [t.name], name=f"{t.name}/Constant", value=t) for t in weights]
    nodes = list(g.node)
    del g.initializer[:]
    g.initializer.extend(rest)
    del g.node[:]
    g.node.extend(consts + nodes)
    return m


def constant_values(g: mf.Graph) -> dict:
    out = dict(g.inits)
    for n in g.model.graph.node:
        if n.op_type == "Constant":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def runtime_weight_goldens(float_path: Path, q_path: Path) -> list:
    """Float weights behind QuantizeLinear -> DequantizeLinear: quantized as ONNX runs it
    (x / scale rounded half to even, plus zero point, saturated), then dequantized."""
    fg, qg = mf.Graph(float_path), mf.Graph(q_path)
    fv, qv = constant_values(fg), constant_values(qg)
    out = []
    for n in qg.model.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] not in qv or qv[n.input[0]].dtype != np.float32:
            continue
        w, s, zp = qv[n.input[0]], qv[n.input[1]].astype(np.float32), qv[n.input[2]]
        axis = qg.attr(n, "axis", 1)
        if s.size > 1:
            shape = mf.broadcast_shape(w.ndim, axis, s.size)
            s, zp = s.reshape(shape), zp.reshape(shape)
        info = np.iinfo(zp.dtype)
        q = np.clip(np.rint(w / s) + zp.astype(np.float32), info.min, info.max)
        y = ((q.astype(np.int32) - zp.astype(np.int32)).astype(np.float32) * s).astype(np.float32)
        x = fv[n.input[0]].astype(np.float64)
        layer = [c.name for dq in qg.consumers[n.output[0]] for c in qg.consumers[dq.output[0]]][0]
        out.append({"layer": layer, "float": n.input[0], "dequantized": [float(v) for v in y.ravel()],
                    "sqnr_db": float(compute_signal_to_quantization_noice_ratio(x, y.astype(np.float64)))})
    return out


def identity_after_dq(q_path: Path) -> onnx.ModelProto:
    """pt_style/model_int8 with each Identity-fed Conv bias quantized to int32 the way
    onnxruntime quantizes biases (scale = input scale x weight scale, zero point 0) and
    dequantized before the Identity: DequantizeLinear -> Identity -> Conv, as reported for
    a torch-exported MobileNetV2 quantized by onnxruntime."""
    m = onnx.load(str(q_path))
    g = mf.Graph(q_path)
    for n in list(m.graph.node):
        if n.op_type != "Identity":
            continue
        conv = g.consumers[n.output[0]][0]
        x_scale = g.inits[g.producer[conv.input[0]].input[1]].astype(np.float32)
        w_scale = g.inits[g.producer[conv.input[1]].input[1]].astype(np.float32)
        scale = (x_scale * w_scale).astype(np.float32)
        b = g.inits[n.input[0]]
        q = np.rint(b / scale).astype(np.int32)
        name = n.input[0]
        m.graph.initializer.extend([
            mf.init(f"{name}_quantized", q), mf.init(f"{name}_quantized_scale", scale),
            mf.init(f"{name}_quantized_zero_point", np.zeros_like(q)),
        ])
        dq = helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_quantized_scale",
                                                   f"{name}_quantized_zero_point"], [f"{name}_dq"],
                              name=f"{name}_DequantizeLinear", axis=0)
        m.graph.node.insert(list(m.graph.node).index(n), dq)
        n.input[0] = f"{name}_dq"
    kept = {i.name for i in m.graph.initializer} - {n.input[0] for n in m.graph.node if n.op_type == "Identity"}
    used = {i for n in m.graph.node for i in n.input}
    inits = [i for i in m.graph.initializer if i.name in used and i.name in kept]
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    return m


def one_relu_fused(float_path: Path, relu: str) -> onnx.ModelProto:
    """The float model with one Relu removed (its consumers read its input) and every
    node renamed n<i>: only the graph's structure says which Relu is gone."""
    m = onnx.load(str(float_path))
    g = m.graph
    node = next(n for n in g.node if n.name == relu)
    for n in g.node:
        for i, t in enumerate(n.input):
            if t == node.output[0]:
                n.input[i] = node.input[0]
    g.node.remove(node)
    for i, n in enumerate(g.node):
        n.name = f"n{i}"
    return m


def arr(g: mf.Graph, name: str):
    return g.inits.get(name)


def bias_goldens(float_path: Path, q_path: Path) -> list:
    """Every int32 bias behind a DequantizeLinear (QDQ) or at a QLinearConv/QGemm bias slot."""
    fg, qg = mf.Graph(float_path), mf.Graph(q_path)
    out = []
    for n in qg.model.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            if len(n.input) < 3:
                continue
            t = n.input[2]
            while t in qg.producer and qg.producer[t].op_type == "Identity":
                t = qg.producer[t].input[0]
            dq = qg.producer.get(t)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = arr(qg, dq.input[0])
            scale = arr(qg, dq.input[1])
            zp = arr(qg, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
            y = mf.dequantize(q, scale, zp, 0 if scale.size > 1 else None)
            q_name = dq.input[0]
        elif n.op_type in ("QLinearConv", "QGemm"):
            k = 8 if n.op_type == "QLinearConv" else 6
            if len(n.input) <= k or not n.input[k]:
                continue
            q_name = n.input[k]
            q = arr(qg, q_name)
            scale = (arr(qg, n.input[4]).astype(np.float32) * arr(qg, n.input[1]).astype(np.float32)).astype(np.float32)
            y = mf.dequantize(q, scale, None, 0 if scale.size > 1 else None)
        else:
            continue
        fnode = fg.nodes[n.name.removesuffix("_quant")]
        ft = fnode.input[2]
        while ft in fg.producer and fg.producer[ft].op_type == "Identity":
            ft = fg.producer[ft].input[0]
        x = arr(fg, ft).astype(np.float32)
        out.append({
            "layer": fnode.name, "float": ft, "name": q_name, "dtype": "int32",
            "dequantized": [float(v) for v in y.ravel()],
            "sqnr_db": float(compute_signal_to_quantization_noice_ratio(x.astype(np.float64), y.astype(np.float64))),
            "exact": bool(np.array_equal(x, y)),
        })
    return out


def activation_goldens(q_path: Path) -> list:
    """Every QuantizeLinear of a computed tensor (QDQ), and QLinearConv's x/y scales."""
    g = mf.Graph(q_path)
    out = []

    def entry(tensor, s_name, z_name, role, layer):
        s = float(arr(g, s_name))
        z = arr(g, z_name) if z_name else None
        code = g.model.graph.initializer[[i.name for i in g.model.graph.initializer].index(z_name)].data_type if z_name else 2
        zp = int(z) if z is not None else 0
        lo, hi = QRANGE[code]
        tensor = tensor.removesuffix("_QuantizeLinear_Input")
        return {"layer": layer, "tensor": tensor, "role": role, "scale": s, "zero_point": zp,
                "range": [float((lo - zp) * np.float64(np.float32(s))), float((hi - zp) * np.float64(np.float32(s)))]}

    for n in g.model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in g.inits:
            for c in g.consumers.get(n.output[0], []):
                for dq_out in c.output:
                    for layer in g.consumers.get(dq_out, []):
                        if layer.op_type in ("Conv", "Gemm", "MatMul"):
                            out.append(entry(n.input[0], n.input[1], n.input[2] if len(n.input) > 2 else None, "input", layer.name))
            src = g.producer.get(n.input[0])
            if src is not None and src.op_type in ("Conv", "Gemm", "MatMul"):
                out.append(entry(n.input[0], n.input[1], n.input[2] if len(n.input) > 2 else None, "output", src.name))
        if n.op_type == "QLinearConv":
            out.append(entry(n.input[0].removesuffix("_quantized"), n.input[1], n.input[2], "input", n.name))
            out.append(entry(n.output[0].removesuffix("_quantized"), n.input[6], n.input[7], "output", n.name))
    return out


def main() -> None:
    folder = DATA / "pt_style"
    folder.mkdir(parents=True, exist_ok=True)
    fp = mf.save(build_pt_style(), "pt_style/model_float.onnx")
    quantize_static(str(fp), str(folder / "model_int8.onnx"), mf.Reader("input", [1, 3, 8, 8], 3),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    idq = folder.parent / "identity_dq"
    idq.mkdir(parents=True, exist_ok=True)
    mf.save(onnx.load(str(fp)), "identity_dq/model_float.onnx")
    mf.save(identity_after_dq(folder / "model_int8.onnx"), "identity_dq/model_int8.onnx")
    mf.save(onnx.load(str(DATA / "resnet8/resnet8_float.onnx")), "one_relu_fused/model_float.onnx")
    mf.save(one_relu_fused(DATA / "resnet8/resnet8_float.onnx", "s2_relu1"), "one_relu_fused/model_int8.onnx")
    cw = folder.parent / "constw"
    cw.mkdir(parents=True, exist_ok=True)
    cwf = mf.save(with_constant_weights(onnx.load(str(fp))), "constw/model_float.onnx")
    quantize_static(str(cwf), str(cw / "model_int8.onnx"), mf.Reader("input", [1, 3, 8, 8], 3),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    cases = {
        "resnet8_int8": ("resnet8/resnet8_float.onnx", "resnet8/resnet8_int8.onnx"),
        "resnet8_uint8": ("resnet8/resnet8_float.onnx", "resnet8/resnet8_uint8.onnx"),
        "resnet8_qoperator_int8": ("resnet8/resnet8_float.onnx", "qoperator/resnet8_qoperator_int8.onnx"),
        "pt_style_int8": ("pt_style/model_float.onnx", "pt_style/model_int8.onnx"),
        "identity_dq_int8": ("identity_dq/model_float.onnx", "identity_dq/model_int8.onnx"),
    }
    golden = {}
    for key, (f, q) in cases.items():
        golden[key] = {"float": f, "quantized": q, "biases": bias_goldens(DATA / f, DATA / q),
                       "activations": activation_goldens(DATA / q)}
    golden["runtime_weights"] = {"float": "constw/model_float.onnx", "quantized": "constw/model_int8.onnx",
                                 "weights": runtime_weight_goldens(cwf, cw / "model_int8.onnx")}
    (DATA / "static_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    for key, v in golden.items():
        print(key, {k: len(x) for k, x in v.items() if isinstance(x, list)})


if __name__ == "__main__":
    main()
