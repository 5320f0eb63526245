#!/usr/bin/env python3
"""The HQQ fixture: onnxruntime's MatMulNBitsQuantizer with its HQQ algorithm (which needs
torch, hence a script of its own) on the bundled transformer block.

    python scripts/make_hqq_fixture.py      # in a venv with torch, onnx, onnxruntime

Writes tests/data/lowbit/transformer_hqq.onnx: MatMulNBits, 4 bits, block 32, with float
zero points (HQQ's; `(q − zp) · scale` with zp a float per block). Then run
scripts/make_lowbit_fixtures.py (pinned venv) to record numpy's dequantization of it with
the others.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests/data/transformer/transformer_float.onnx"
DST = ROOT / "tests/data/lowbit/transformer_hqq.onnx"


def main() -> None:
    cfg = HQQWeightOnlyQuantConfig(block_size=32, bits=4, op_types_to_quantize=("MatMul",))
    q = MatMulNBitsQuantizer(onnx.load(str(SRC)), algo_config=cfg)
    q.process()
    onnx.save(q.model.model, str(DST))
    g = q.model.model.graph
    print(DST.name, [(t.name, t.data_type, list(t.dims)) for t in g.initializer if "zero" in t.name][:2])


if __name__ == "__main__":
    main()
