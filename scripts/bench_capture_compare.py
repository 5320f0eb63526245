#!/usr/bin/env python3
"""Capture of every compared activation: `quantlens bench-infer` against onnxruntime doing
the same capture, on the same machine in one run.

    python scripts/bench_capture_compare.py DIR [--samples 5] [--dim NAME=N]... [--bin PATH]

For each variant of DIR, onnxruntime (one thread, `ORT_DISABLE_ALL`: the unfused float
Q/DQ arithmetic tract runs too) runs with the tensors quantlens captures made graph
outputs: in a quantized variant the input and the dequantized output of every activation
`QuantizeLinear → DequantizeLinear`, in the float one those activations' float tensors.
Seeded standard-normal inputs; one untimed run first, then the mean over the samples.
quantlens runs `bench-infer` on the same folder (the binary: --bin, default
target/release/quantlens). Prints JSON: per variant both times per sample, captured
tensor counts and the ratio; all variants together (each tool running the variants of a
sample side by side on as many threads as quantlens's pool has, each session on one
thread); and each side's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
import onnxruntime as ort
from bench_qdq_loss_debug import feeds  # the same seeded inputs as the report benchmark

SUFFIX = "_QuantizeLinear_Input"


def pairs(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(pre, post) of every QuantizeLinear of a computed tensor followed by a DequantizeLinear."""
    inits = {i.name for i in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    out = []
    for n in model.graph.node:
        x = n.input[0] if n.input else ""
        if n.op_type == "QuantizeLinear" and x not in inits and x not in consts and n.output[0] in dq_of:
            out.append((x, dq_of[n.output[0]]))
    return out


def with_outputs(model: onnx.ModelProto, names: list[str]) -> bytes:
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    return model.SerializeToString()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=N")
    ap.add_argument("--bin", default="target/release/quantlens")
    a = ap.parse_args()
    dims = {k: int(v) for k, v in (d.split("=", 1) for d in a.dim)}
    files = sorted(a.dir.glob("*.onnx"))
    models = {p: onnx.load(str(p)) for p in files}
    name = lambda p: next((v for v in ("uint8", "int8", "float") if v in p.name.lower()), p.stem)
    keys = sorted({pre.removesuffix(SUFFIX) for m in models.values() for pre, _ in pairs(m)})
    samples = feeds(files[0], a.samples, 0, dims)
    theirs = {}
    sessions = []
    for p, m in models.items():
        ps = pairs(m)
        names = [t for pr in ps for t in pr] if ps else keys
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(with_outputs(m, names), opts, providers=["CPUExecutionProvider"])
        sess.run(None, samples[0])
        t = time.perf_counter()
        for s in samples:
            sess.run(None, s)
        theirs[name(p)] = {"per_sample_s": (time.perf_counter() - t) / len(samples), "captured": len(names)}
        sessions.append(sess)
    dim_args = [x for d in a.dim for x in ("--dim", d)]
    ours = json.loads(subprocess.run([a.bin, "bench-infer", str(a.dir), "--samples", str(a.samples), *dim_args],
                                     check=True, capture_output=True, text=True).stdout)
    # every variant of a sample side by side (onnxruntime releases the GIL while it runs)
    threads = ours["together"]["threads"]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        t = time.perf_counter()
        for s in samples:
            list(pool.map(lambda sess: sess.run(None, s), sessions))
        together = (time.perf_counter() - t) / len(samples)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "samples": a.samples,
        "variants": {v: {"quantlens_s": ours["variants"][v]["per_sample_s"],
                         "quantlens_captured": ours["variants"][v]["captured"],
                         "onnxruntime_s": t["per_sample_s"], "onnxruntime_captured": t["captured"],
                         "ratio": round(ours["variants"][v]["per_sample_s"] / t["per_sample_s"], 2)}
                     for v, t in theirs.items() if v in ours["variants"]},
        "together": {"threads": threads, "quantlens_s": ours["together"]["per_sample_s"], "onnxruntime_s": together,
                     "ratio": round(ours["together"]["per_sample_s"] / together, 2)},
        "peak_rss_mb": {"quantlens": ours["peak_rss_mb"], "onnxruntime": round(rss, 1)},
    }, indent=1))


if __name__ == "__main__":
    main()
