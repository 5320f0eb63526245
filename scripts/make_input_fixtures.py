#!/usr/bin/env python3
"""Input fixtures for the inference tests: every way quantlens reads samples.

    python scripts/make_input_fixtures.py     # from the repository root (pinned packages)

Writes (deterministic; byte-identical when run again):
- tests/data/infer/resnet8_inputs_compressed.npz: resnet8_inputs.npy's rows as `x`,
  written by np.savez_compressed (deflated members: read while inflating);
- tests/data/digits/images/<digit>/row_NNNN.png: the first 60 rows of digits.npz as 8-bit
  grayscale PNGs (pixel = round(x * 255)), one sub-folder per class (ImageFolder layout);
- tests/data/tokens/: a small text classifier with three int64 inputs as a transformer
  export has them (`input_ids`, `attention_mask`, `token_type_ids`, each [batch, sequence],
  both dynamic): word and type embeddings (Gather), the mask applied, a MatMul + Relu
  layer, masked mean pooling, a classifier MatMul. float, and onnxruntime quantize_static
  int8 / uint8 (QDQ, per-channel), with tokens.npz (16 samples of sequence 12, one array per
  input, labels `y`) and tokens_golden.json: onnxruntime's qdq_loss_debug figures
  (`qdq_err`, `xmodel_err` per activation, sessions unfused) on the first 4 samples.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402
from make_infer_fixtures import qdq_loss_debug  # noqa: E402

DATA = mf.DATA
VOCAB, TYPES, D, HIDDEN, CLASSES, SEQ = 50, 2, 32, 64, 3, 12


def png_gray(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of `pixels` (uint8, [h, w]), written by hand (no Pillow)."""
    h, w = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def digit_images() -> None:
    d = np.load(DATA / "digits/digits.npz")
    x, y = d["x"], d["y"]
    out = DATA / "digits/images"
    for i in range(60):
        folder = out / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(np.round(x[i, 0] * 255.0), 0, 255).astype(np.uint8)
        (folder / f"row_{i:04d}.png").write_bytes(png_gray(pixels))


def build_tokens() -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    inits = [
        mf.init("word_embeddings", (rng.standard_normal((VOCAB, D)) * 0.5).astype(np.float32)),
        mf.init("type_embeddings", (rng.standard_normal((TYPES, D)) * 0.1).astype(np.float32)),
        mf.init("dense.weight", mf.he(rng, (D, HIDDEN), D)),
        mf.init("dense.bias", mf.small(rng, (HIDDEN,))),
        mf.init("classifier.weight", mf.he(rng, (HIDDEN, CLASSES), HIDDEN)),
        mf.init("classifier.bias", mf.small(rng, (CLASSES,))),
        mf.init("unsqueeze_axes", np.array([-1], np.int64)),
        mf.init("pool_axes", np.array([1], np.int64)),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["word_embeddings", "input_ids"], ["words"], name="word_embed"),
        n("Gather", ["type_embeddings", "token_type_ids"], ["types"], name="type_embed"),
        n("Add", ["words", "types"], ["embedded"], name="embed_add"),
        n("Cast", ["attention_mask"], ["mask_f"], name="mask_cast", to=TensorProto.FLOAT),
        n("Unsqueeze", ["mask_f", "unsqueeze_axes"], ["mask3"], name="mask_unsqueeze"),
        n("Mul", ["embedded", "mask3"], ["masked"], name="mask_apply"),
        n("MatMul", ["masked", "dense.weight"], ["dense_mm"], name="dense"),
        n("Add", ["dense_mm", "dense.bias"], ["dense_out"], name="dense_bias"),
        n("Relu", ["dense_out"], ["hidden"], name="dense_relu"),
        n("Mul", ["hidden", "mask3"], ["hidden_masked"], name="pool_mask"),
        n("ReduceSum", ["hidden_masked", "pool_axes"], ["pooled_sum"], name="pool_sum", keepdims=0),
        n("ReduceSum", ["mask3", "pool_axes"], ["mask_count"], name="mask_sum", keepdims=0),
        n("Div", ["pooled_sum", "mask_count"], ["pooled"], name="pool_mean"),
        n("MatMul", ["pooled", "classifier.weight"], ["logits_mm"], name="classifier"),
        n("Add", ["logits_mm", "classifier.bias"], ["logits"], name="classifier_bias"),
    ]
    dims = ["batch", "sequence"]
    g = helper.make_graph(
        nodes, "tokens",
        [helper.make_tensor_value_info(k, TensorProto.INT64, dims) for k in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        inits,
    )
    return mf.make_model(g)


def token_samples(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (n, SEQ), dtype=np.int64)
    lengths = rng.integers(4, SEQ + 1, n)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    ids = ids * mask
    types = ((np.arange(SEQ)[None, :] >= (lengths // 2)[:, None]) & (mask == 1)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


class TokenRows(CalibrationDataReader):
    """The rows of several arrays, one sample each, as the inputs of the same names."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.rewind()

    def get_next(self):
        i = next(self.it, None)
        return None if i is None else {k: v[i : i + 1] for k, v in self.arrays.items()}

    def rewind(self):
        self.it = iter(range(len(next(iter(self.arrays.values())))))


def tokens() -> None:
    folder = DATA / "tokens"
    folder.mkdir(parents=True, exist_ok=True)
    fp = mf.save(build_tokens(), "tokens/tokens_float.onnx")
    calib = token_samples(16, 1)
    for variant, qt in (("int8", QuantType.QInt8), ("uint8", QuantType.QUInt8)):
        quantize_static(
            str(fp), str(folder / f"tokens_{variant}.onnx"), TokenRows(calib),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=qt, weight_type=qt,
        )
    data = token_samples(16, 2)
    logits = mf.onnxruntime.InferenceSession(str(fp), providers=["CPUExecutionProvider"]).run(None, data)[0]
    np.savez(folder / "tokens.npz", **data, y=logits.argmax(1).astype(np.int64))
    first = {k: v[:4] for k, v in data.items()}
    golden = {"inputs": "tokens/tokens.npz", "samples": 4, "dims": {"batch": 1, "sequence": SEQ}, "variants": {}}
    quantized = {v: folder / f"tokens_{v}.onnx" for v in ("int8", "uint8")}
    golden["variants"] = qdq_loss_debug(fp, quantized, lambda: TokenRows(first))
    (DATA / "tokens_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    for v, e in golden["variants"].items():
        print("tokens", v, len(e), "activations")


def main() -> None:
    x = np.load(DATA / "infer/resnet8_inputs.npy")
    np.savez_compressed(DATA / "infer/resnet8_inputs_compressed.npz", x=x)
    digit_images()
    tokens()


if __name__ == "__main__":
    main()
