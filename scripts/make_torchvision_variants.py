#!/usr/bin/env python3
"""Real PyTorch-quantized files of torchvision's quantizable models, to hold quantlens's
PyTorch reader to (it needs torch and torchvision, which the fixture venv does not have:
run it in a venv of its own; nothing here is downloaded at run time, the weights are a
seeded random init).

    python scripts/make_torchvision_variants.py OUT [--model shufflenet_v2_x0_5] [--size 96]

Writes OUT/<model>/:
- <model>_float.onnx: torch.onnx.export of the float model (the TorchScript-based exporter,
  whose node names carry the module scopes: /features/features.1/conv/.../Conv);
- <model>_int8_ort.onnx: onnxruntime quantize_static of it (QDQ, per-channel, QInt8);
- <model>_float.pt: its state_dict;
- <model>_int8_eager.pt / _int8_eager_module.pt: eager mode (fuse_model(), x86 qconfig,
  calibrated on random inputs, convert) as state_dict and as the whole module;
- <model>_int8_fx.pt / _int8_fx_module.pt: FX graph mode (prepare_fx / convert_fx) as
  TorchScript (jit.trace) and as the whole GraphModule.
"""

from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.models.quantization as tvq
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch.ao.quantization import get_default_qconfig, get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

warnings.filterwarnings("ignore")


class Rows(CalibrationDataReader):
    def __init__(self, x: np.ndarray):
        self.x = x
        self.rewind()

    def get_next(self):
        i = next(self.it, None)
        return None if i is None else {"input": self.x[i : i + 1]}

    def rewind(self):
        self.it = iter(range(len(self.x)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default="shufflenet_v2_x0_5")
    ap.add_argument("--size", type=int, default=96)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.quantized.engine = "x86"
    out = a.out / a.model
    out.mkdir(parents=True, exist_ok=True)
    build = getattr(tvq, a.model)
    float_model = build(weights=None, quantize=False).eval()
    calib = [torch.randn(1, 3, a.size, a.size) for _ in range(8)]
    x = calib[0]

    torch.save(float_model.state_dict(), out / f"{a.model}_float.pt")
    onnx_path = out / f"{a.model}_float.onnx"
    try:
        torch.onnx.export(float_model, (x,), str(onnx_path), input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    except TypeError:
        torch.onnx.export(float_model, (x,), str(onnx_path), input_names=["input"], output_names=["logits"],
                          opset_version=17)
    quantize_static(str(onnx_path), str(out / f"{a.model}_int8_ort.onnx"),
                    Rows(torch.cat(calib).numpy()), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)

    eager = copy.deepcopy(float_model)
    eager.fuse_model(is_qat=False)
    eager.qconfig = get_default_qconfig("x86")
    torch.ao.quantization.prepare(eager, inplace=True)
    with torch.no_grad():
        for c in calib:
            eager(c)
    torch.ao.quantization.convert(eager, inplace=True)
    torch.save(eager.state_dict(), out / f"{a.model}_int8_eager.pt")
    torch.save(eager, out / f"{a.model}_int8_eager_module.pt")

    fx = prepare_fx(copy.deepcopy(float_model), get_default_qconfig_mapping("x86"), (x,))
    with torch.no_grad():
        for c in calib:
            fx(c)
    fx = convert_fx(fx)
    torch.jit.save(torch.jit.trace(fx, (x,)), str(out / f"{a.model}_int8_fx.pt"))
    torch.save(fx, out / f"{a.model}_int8_fx_module.pt")
    for p in sorted(out.iterdir()):
        print(f"{p.stat().st_size:>10}  {p}")


if __name__ == "__main__":
    main()
