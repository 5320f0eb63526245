#!/usr/bin/env python3
"""Writes tests/data/shapes_golden.json: the activation shapes and dtypes that onnx's own
shape inference (onnx.shape_inference.infer_shapes, strict off) gives for the committed
fixtures (the float and QDQ files carry no value_info; the QOperator file keeps stale
entries of the float graph, which are left out). quantlens' inference (src/model/shapes.rs) is tested
against it.

    .venv-fixtures/bin/python scripts/make_shape_golden.py
"""

import json
from pathlib import Path

import onnx
from onnx import shape_inference

ROOT = Path(__file__).resolve().parent.parent / "tests" / "data"
FILES = [
    "resnet8/resnet8_float.onnx",
    "resnet8/resnet8_int8.onnx",
    "resnet8/resnet8_uint8.onnx",
    "transformer/transformer_float.onnx",
    "transformer/transformer_int8.onnx",
    "transformer/transformer_uint8.onnx",
    "qoperator/resnet8_qoperator_int8.onnx",
    "qoperator/resnet8_dynamic_uint8.onnx",
    "qoperator/transformer_dynamic_uint8.onnx",
]


def main() -> None:
    out = {}
    for rel in FILES:
        model = shape_inference.infer_shapes(onnx.load(str(ROOT / rel)))
        produced = {o for n in model.graph.node for o in n.output}
        shapes = {}
        for vi in model.graph.value_info:
            if vi.name not in produced:  # stale entries the quantizer left behind
                continue
            t = vi.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            if t.HasField("shape") and all(d is not None for d in dims):
                shapes[vi.name] = {"shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name}
        out[rel] = shapes
    (ROOT / "shapes_golden.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print({k: len(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
