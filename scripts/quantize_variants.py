#!/usr/bin/env python3
"""Quantizes a float ONNX model the way most users do, into a folder quantlens opens:

    python scripts/quantize_variants.py MODEL.onnx OUT_DIR --shape 1,3,320,320 [--samples 8]

writes OUT_DIR/<stem>_float.onnx (a copy), <stem>_int8.onnx and <stem>_uint8.onnx
(onnxruntime quantize_static, QDQ, per-channel, MinMax calibration on seeded random inputs
of the given shape; pre-processed with onnxruntime's quant_pre_process when it succeeds)
and <stem>_dynamic_uint8.onnx (quantize_dynamic). Random calibration data gives
unrepresentative activation ranges: use it to try the tool, not to ship a model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import Rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--shape", required=True, help="calibration input shape, e.g. 1,3,320,320")
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    shape = [int(d) for d in args.shape.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.model.stem
    float_path = args.out / f"{stem}_float.onnx"
    shutil.copyfile(args.model, float_path)
    pre = args.out / f".{stem}_pre.onnx"
    try:
        quant_pre_process(str(args.model), str(pre))
        source = pre
    except Exception as e:  # noqa: BLE001 (pre-processing is optional)
        print(f"quant_pre_process failed ({e}); quantizing the model as it is")
        source = args.model
    name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    for variant, qt in (("int8", QuantType.QInt8), ("uint8", QuantType.QUInt8)):
        quantize_static(str(source), str(args.out / f"{stem}_{variant}.onnx"), Rows(np.random.default_rng(0).standard_normal([args.samples, *shape[1:]]).astype(np.float32), name),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=qt, weight_type=qt)
    try:
        quantize_dynamic(str(source), str(args.out / f"{stem}_dynamic_uint8.onnx"), weight_type=QuantType.QUInt8)
    except Exception as e:  # noqa: BLE001 (onnxruntime refuses some graphs; the static variants stand)
        print(f"quantize_dynamic failed: {e}")
    pre.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
