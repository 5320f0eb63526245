#!/usr/bin/env python3
"""A small labelled data set and a CNN trained on it, quantized by onnxruntime, with
onnxruntime's accuracies: the data for quantlens' evaluation tests.

    python scripts/make_digits.py     # from the repository root (requirements-fixtures.txt)

- tests/data/digits/digits.npz: scikit-learn's bundled 8x8 digits (1797 images), pixels
  scaled to [0, 1], `x` float32 [N, 1, 8, 8], `y` int64 [N]; the 360 last (shuffled with
  seed 0) are the test split stored here, the rest trained the model.
- tests/data/digits/digits_float.onnx: conv 3x3 (1->8) + ReLU, conv 3x3 stride 2 (8->16)
  + ReLU, flatten, dense 256->10; trained with plain numpy (im2col, Adam, 40 epochs).
- digits_int8.onnx / digits_uint8.onnx: onnxruntime quantize_static (QDQ, per-channel),
  calibrated on 64 training images.
- tests/data/digits_golden.json: top-1 and top-5 accuracy and top-1 agreement with float
  of each variant on the whole test split, as onnxruntime computes them with
  ORT_DISABLE_ALL (the float Q/DQ arithmetic tract runs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

OUT = mf.DATA / "digits"


def im2col(x, k, stride, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return cols.reshape(n, c * k * k, oh * ow), (oh, ow)


def col2im(cols, shape, k, stride, pad, out_hw):
    n, c, h, w = shape
    oh, ow = out_hw
    cols = cols.reshape(n, c, k, k, oh, ow)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[:, :, i, j]
    return xp[:, :, pad : pad + h, pad : pad + w]


class Net:
    def __init__(self, rng):
        self.p = {
            "w1": (rng.standard_normal((8, 1, 3, 3)) * np.sqrt(2 / 9)).astype(np.float32),
            "b1": np.zeros(8, np.float32),
            "w2": (rng.standard_normal((16, 8, 3, 3)) * np.sqrt(2 / 72)).astype(np.float32),
            "b2": np.zeros(16, np.float32),
            "w3": (rng.standard_normal((10, 256)) * np.sqrt(2 / 256)).astype(np.float32),
            "b3": np.zeros(10, np.float32),
        }

    def conv(self, x, w, b, stride):
        cols, (oh, ow) = im2col(x, 3, stride, 1)
        y = np.einsum("ok,nkp->nop", w.reshape(w.shape[0], -1), cols) + b[None, :, None]
        return y.reshape(x.shape[0], w.shape[0], oh, ow), cols, (oh, ow)

    def forward(self, x):
        p = self.p
        z1, c1, hw1 = self.conv(x, p["w1"], p["b1"], 1)
        a1 = np.maximum(z1, 0)
        z2, c2, hw2 = self.conv(a1, p["w2"], p["b2"], 2)
        a2 = np.maximum(z2, 0)
        f = a2.reshape(len(x), -1)
        logits = f @ p["w3"].T + p["b3"]
        return logits, (x, z1, c1, hw1, a1, z2, c2, hw2, f)

    def grads(self, x, y):
        p = self.p
        logits, (x, z1, c1, hw1, a1, z2, c2, hw2, f) = self.forward(x)
        e = np.exp(logits - logits.max(1, keepdims=True))
        prob = e / e.sum(1, keepdims=True)
        d = prob
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        g = {"w3": d.T @ f, "b3": d.sum(0)}
        da2 = (d @ p["w3"]).reshape(z2.shape) * (z2 > 0)
        dz2 = da2.reshape(len(x), 16, -1)
        g["w2"] = np.einsum("nop,nkp->ok", dz2, c2).reshape(p["w2"].shape)
        g["b2"] = dz2.sum((0, 2))
        dcols2 = np.einsum("ok,nop->nkp", p["w2"].reshape(16, -1), dz2)
        da1 = col2im(dcols2, a1.shape, 3, 2, 1, hw2) * (z1 > 0)
        dz1 = da1.reshape(len(x), 8, -1)
        g["w1"] = np.einsum("nop,nkp->ok", dz1, c1).reshape(p["w1"].shape)
        g["b1"] = dz1.sum((0, 2))
        return g


def train(x, y, rng, epochs=40, lr=3e-3):
    net = Net(rng)
    m = {k: np.zeros_like(v) for k, v in net.p.items()}
    v = {k: np.zeros_like(a) for k, a in net.p.items()}
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            idx = order[i : i + 32]
            g = net.grads(x[idx], y[idx])
            t += 1
            for k in net.p:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
                mh, vh = m[k] / (1 - 0.9**t), v[k] / (1 - 0.999**t)
                net.p[k] = (net.p[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return net


def to_onnx(net) -> onnx.ModelProto:
    p = net.p
    inits = [mf.init(k, a) for k, a in p.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["conv1_out"], name="conv1", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("Conv", ["relu1_out", "w2", "b2"], ["conv2_out"], name="conv2", kernel_shape=[3, 3],
                         pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("Flatten", ["relu2_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("input", mf.F, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("logits", mf.F, [1, 10])], inits)
    return mf.make_model(g)


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train_idx, test_idx = order[:-360], order[-360:]
    net = train(x[train_idx], y[train_idx], rng)
    fp = mf.save(to_onnx(net), "digits/digits_float.onnx")
    for variant, qt in (("int8", QuantType.QInt8), ("uint8", QuantType.QUInt8)):
        quantize_static(str(fp), str(OUT / f"digits_{variant}.onnx"), mf.Rows(x[train_idx[:64]]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=qt, weight_type=qt)
    xt, yt = x[test_idx], y[test_idx]
    np.savez(OUT / "digits.npz", x=xt, y=yt)
    logits = {v: ort_logits(OUT / f"digits_{v}.onnx", xt) for v in ("float", "int8", "uint8")}
    top1_float = logits["float"].argmax(1)
    golden = {"samples": len(yt), "variants": {}}
    for v, lg in logits.items():
        top5 = np.argsort(-lg, 1)[:, :5]
        golden["variants"][v] = {
            "top1": float((lg.argmax(1) == yt).mean()),
            "top5": float((top5 == yt[:, None]).any(1).mean()),
            "agreement_with_float": float((lg.argmax(1) == top1_float).mean()),
        }
    (mf.DATA / "digits_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(json.dumps(golden))


if __name__ == "__main__":
    main()
