#!/usr/bin/env python3
"""A PyTorch file with a quantized embedding (per_channel_affine_float_qparams: float zero
points), for the PyTorch reader's test (it needs torch: run it in a venv of its own; the
file is committed as data).

    python scripts/make_torch_embedding.py      # from the repository root

Writes tests/data/torch/embedding_float.pt (state_dict: `embed.weight` [64, 16] and a
Linear `head`), tests/data/torch/embedding_int8.pt (eager quantization: the embedding with
`float_qparams_weight_only_qconfig`, the Linear left in float) and
tests/data/torch/embedding_reference.json: the embedding's dequantized values as PyTorch
computes them (`weight().dequantize()`), its scales and zero points.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.ao.quantization import float_qparams_weight_only_qconfig

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "torch"


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(64, 16)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, ids):
        return self.head(self.embed(ids).mean(1))


def main() -> None:
    torch.manual_seed(3)
    net = Net().eval()
    torch.save(net.state_dict(), OUT / "embedding_float.pt")
    net.embed.qconfig = float_qparams_weight_only_qconfig
    torch.ao.quantization.prepare(net, inplace=True)
    torch.ao.quantization.convert(net, inplace=True)
    torch.save(net.state_dict(), OUT / "embedding_int8.pt")
    w = net.embed.weight()
    ref = {
        "qscheme": str(w.qscheme()),
        "dtype": str(w.dtype),
        "axis": w.q_per_channel_axis(),
        "scales": w.q_per_channel_scales().tolist(),
        "zero_points": w.q_per_channel_zero_points().tolist(),
        "dequantized": w.dequantize().flatten().tolist(),
    }
    (OUT / "embedding_reference.json").write_text(json.dumps(ref) + "\n")
    print(ref["qscheme"], ref["dtype"], len(ref["dequantized"]), ref["zero_points"][:3])


if __name__ == "__main__":
    main()
