#!/usr/bin/env python3
"""A QOperator model tract can run: the bundled digits CNN quantized by onnxruntime's
quantize_static in QOperator form with only its Convs quantized (QLinearConv ×2; the Gemm
stays float behind a DequantizeLinear, since tract runs neither QGemm nor QLinearAdd).

    python scripts/make_qoperator_digits.py     # from the repository root (pinned packages)

Writes tests/data/qoperator/digits_qlinearconv_int8.onnx (per-channel int8 weights, uint8
activations, calibrated on the first 32 digits of tests/data/digits/digits.npz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests/data"


class Digits(CalibrationDataReader):
    def __init__(self) -> None:
        x = np.load(DATA / "digits/digits.npz")["x"].astype(np.float32)
        self.batches = iter([{"input": x[i:i + 1]} for i in range(32)])

    def get_next(self):
        return next(self.batches, None)


def main() -> None:
    out = DATA / "qoperator/digits_qlinearconv_int8.onnx"
    quantize_static(str(DATA / "digits/digits_float.onnx"), str(out), Digits(), quant_format=QuantFormat.QOperator,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    op_types_to_quantize=["Conv"])
    print(out.relative_to(ROOT))


if __name__ == "__main__":
    main()
