#!/usr/bin/env python3
"""Inputs and onnxruntime's own activation figures for the inference tests.

    python scripts/make_infer_fixtures.py     # from the repository root (pinned packages)

Writes tests/data/infer/resnet8_inputs.npy (4 seeded random samples [4, 3, 32, 32],
float32, one per row: the model takes [1, 3, 32, 32]) and tests/data/infer_golden.json:
for the int8 and uint8 variants of tests/data/resnet8, what onnxruntime's qdq_loss_debug
gives on those samples (every intermediate tensor made a graph output, sessions run with
ORT_DISABLE_ALL: the float Q/DQ arithmetic tract also runs): per activation tensor,
`qdq_err` (SQNR of the tensor against its own QuantizeLinear -> DequantizeLinear in the
quantized model) and `xmodel_err` (SQNR of the float model's tensor against the quantized
model's dequantized one), over all samples concatenated.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    compute_activation_error,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

DATA = mf.DATA


def qdq_loss_debug(float_model: Path, quantized: dict[str, Path], reader) -> dict:
    """onnxruntime's qdq_loss_debug figures of each quantized model against the float one
    on the samples `reader()` gives: {variant: {tensor: {qdq_err, xmodel_err}}}."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        aug_float = Path(tmp) / "float_aug.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(aug_float))
        float_acts = collect_activations(str(aug_float), reader())
        for variant, path in quantized.items():
            aug = Path(tmp) / f"{variant}_aug.onnx"
            modify_model_output_intermediate_tensors(str(path), str(aug))
            acts = collect_activations(str(aug), reader())
            errors = compute_activation_error(create_activation_matching(acts, float_acts))
            out[variant] = {name: {k: float(v) for k, v in e.items()} for name, e in sorted(errors.items())}
    return out


def main() -> None:
    rng = np.random.default_rng(42)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    np.save(DATA / "infer" / "resnet8_inputs.npy", x)
    golden = {"inputs": "infer/resnet8_inputs.npy", "variants": {}}
    quantized = {v: DATA / f"resnet8/resnet8_{v}.onnx" for v in ("int8", "uint8")}
    golden["variants"] = qdq_loss_debug(DATA / "resnet8/resnet8_float.onnx", quantized, lambda: mf.Rows(x))
    (DATA / "infer_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    for v, e in golden["variants"].items():
        print(v, len(e), "activations;", list(e.items())[:2])


if __name__ == "__main__":
    main()
