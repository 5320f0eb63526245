//! Running the variants with tract: activations compared as onnxruntime's `qdq_loss_debug`
//! does, checked against what onnxruntime itself gives on the same samples
//! (`scripts/make_infer_fixtures.py` → `tests/data/infer_golden.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{assert_db_close, cli, data, load};
use quantlens::infer::activations::qdq_pairs;
use quantlens::infer::fake_quant::fuse_fake_quant;
use quantlens::infer::{InputSpec, Progress, activation_report, samples};
use tract_onnx::prelude::*;

#[test]
fn activation_errors_match_onnxruntime_qdq_loss_debug() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("infer_golden.json")).unwrap()).unwrap();
    let variants = load("resnet8");
    let spec = InputSpec::Npy(data(golden["inputs"].as_str().unwrap()));
    let s = samples(&variants[0].model.graph, &spec, 100, &HashMap::new()).unwrap();
    assert_eq!(s.len(), 4, "the .npy's four rows");
    let (rows, failures) = activation_report(&variants, 0, s.into_iter().map(Ok), 64, &Progress::default());
    assert!(failures.is_empty(), "{failures:?}");
    let mut checked = 0;
    for (variant, tensors) in golden["variants"].as_object().unwrap() {
        for (tensor, e) in tensors.as_object().unwrap() {
            let row = rows.iter().find(|r| &r.tensor == tensor).unwrap_or_else(|| panic!("no activation {tensor}"));
            let v = row.variants.iter().find(|v| &v.variant == variant).unwrap();
            for (ours, key) in [(v.qdq_err_db, "qdq_err"), (v.xmodel_err_db, "xmodel_err")] {
                assert_db_close(ours.unwrap(), e[key].as_f64().unwrap(), &format!("{variant} {tensor} {key}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 32, "16 activations in int8 and uint8");
    // the ReLU fused into the stem's quantization: its range starts at 0 and the float
    // model's (post-ReLU) values fit it but for a few calibration outliers
    let stem = rows.iter().find(|r| r.tensor == "stem_relu_out").unwrap();
    let [lo, _] = stem.variants[0].range.unwrap();
    assert_eq!(lo, 0.0, "ReLU fused: zero point at qmin");
    assert!(stem.variants.iter().all(|v| v.clip_fraction.is_some_and(|c| (0.0..0.01).contains(&c))));
}

/// A run hands every captured tensor to its observer as tract computes it: the values it
/// then returns, once each (the report sums the float model's statistics this way).
#[test]
fn observed_runs_see_every_captured_tensor_once() {
    use quantlens::infer::run::Runner;
    let variants = load("resnet8");
    let s = samples(&variants[0].model.graph, &InputSpec::Random { seed: 9 }, 1, &HashMap::new()).unwrap();
    let int8 = variants.iter().find(|v| v.spec.name == "int8").unwrap();
    let keys: Vec<String> = qdq_pairs(&int8.model.graph).into_iter().map(|p| p.key).collect();
    let float = variants.iter().find(|v| v.spec.name == "float").unwrap();
    let runner = Runner::of_variant(float, None, &s[0], &keys).unwrap();
    assert!(runner.captured.len() >= 10, "{:?}", runner.captured);
    let mut seen: Vec<Vec<Vec<f32>>> = vec![Vec::new(); runner.captured.len()];
    let got = runner.run_observed(&s[0], |i, xs| seen[i].push(xs.to_vec())).unwrap();
    for (i, name) in runner.captured.iter().enumerate() {
        assert_eq!(seen[i].len(), 1, "{name} seen once");
        assert_eq!(seen[i][0].as_slice(), got.get(i).unwrap(), "{name}");
    }
}

/// Every activation's `QuantizeLinear → DequantizeLinear` as one `FakeQuant` pass: the
/// captured tensors and outputs equal tract's own two ops bit for bit (resnet8; the
/// digits CNN, whose pairs follow each other through reshapes).
#[test]
fn fused_fake_quant_gives_tracts_values_bit_for_bit() {
    for folder in ["resnet8", "digits"] {
        let variants = load(folder);
        let sample = samples(&variants[0].model.graph, &InputSpec::Random { seed: 3 }, 1, &HashMap::new()).unwrap();
        let x = &sample[0][0];
        let quantlens::infer::npy::NpyData::F32(input) = &x.data else { panic!("f32 inputs") };
        for v in variants.iter().filter(|v| v.spec.name != "float") {
            let pairs = qdq_pairs(&v.model.graph);
            let names: Vec<String> = pairs.iter().flat_map(|p| [p.pre.clone(), p.post.clone()]).collect();
            let mut model = tract_onnx::onnx().with_ignore_value_info(true).model_for_path(&v.spec.path).unwrap();
            model = model.with_input_fact(0, f32::fact(&x.shape).into()).unwrap();
            let out = model.output_outlets().unwrap()[0];
            let first = model.outlet_label(out).unwrap().to_string();
            model.select_outputs_by_name(std::iter::once(&first).chain(&names)).unwrap();
            // as quantlens builds its plans: fused once typed, then optimised
            let typed = model.into_typed().unwrap();
            let mut fused = typed.clone();
            let what = format!("{folder} {}", v.spec.name);
            assert_eq!(
                fuse_fake_quant(&mut fused, &HashMap::new()).unwrap(),
                pairs.len(),
                "{what}: every activation pair fused"
            );
            let (typed, fused) = (typed.into_optimized().unwrap(), fused.into_optimized().unwrap());
            let ops = |m: &TypedModel| -> Vec<String> {
                m.eval_order().unwrap().iter().map(|&n| m.node(n).op.name().to_string()).collect()
            };
            assert_eq!(ops(&fused).iter().filter(|n| *n == "FakeQuant").count(), pairs.len(), "{what}");
            assert!(!ops(&fused).iter().any(|n| n.starts_with("DequantizeLinear")), "{what}: no pair run in two");
            let run = |m: TypedModel| {
                let t = Tensor::from_shape(&x.shape, input).unwrap();
                m.into_runnable().unwrap().run(tvec![t.into()]).unwrap()
            };
            let (want, got) = (run(typed), run(fused));
            assert_eq!((want.len(), got.len()), (1 + names.len(), 1 + names.len()));
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                let f = |t: &TValue| t.as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
                let (w, g) = (f(w), f(g));
                assert!(w.iter().zip(&g).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: output {i} differs");
            }
        }
    }
}

/// A probed pair sums `qdq_err` and its output's statistics inside the run: the same
/// figures as comparing the captured input and output afterwards, with the input not kept;
/// a pair tract cannot probe keeps its input captured instead.
#[test]
fn probed_pairs_sum_in_the_run_what_the_captures_give() {
    use quantlens::infer::fake_quant::Probe;
    use quantlens::infer::run::{ProbedPair, Runner};
    use quantlens::stats::{RunningClip, RunningComparison, RunningStats};
    use tract_onnx::prelude::{TValue, Tensor};
    let variants = load("resnet8");
    let s = samples(&variants[0].model.graph, &InputSpec::Random { seed: 5 }, 2, &HashMap::new()).unwrap();
    let v = variants.iter().find(|v| v.spec.name == "int8").unwrap();
    let pairs = qdq_pairs(&v.model.graph);
    let probed: Vec<ProbedPair> = pairs
        .iter()
        .map(|p| ProbedPair { pre: p.pre.clone(), post: p.post.clone(), probe: Probe::with_range(p.quant.range()) })
        .collect();
    // every pair is one node before tract types the model
    let mut onnx = tract_onnx::onnx().model_for_path(&v.spec.path).unwrap();
    assert_eq!(quantlens::infer::fake_quant::join_pairs(&mut onnx, &HashMap::new()).unwrap(), pairs.len());
    let runner = Runner::probed(v, None, &s[0], &[], &probed).unwrap();
    assert_eq!(runner.probed.len(), pairs.len(), "every pair probed");
    assert_eq!(runner.streamed.len(), pairs.len(), "every pair streamed: {:?}", runner.streamed);
    assert!(runner.captured.is_empty(), "nothing kept: {:?}", runner.captured);
    let names: Vec<String> = pairs.iter().flat_map(|p| [p.pre.clone(), p.post.clone()]).collect();
    let plain = Runner::of_variant(v, None, &s[0], &names).unwrap();
    let mut want: Vec<(RunningComparison, RunningStats, RunningClip)> =
        pairs.iter().map(|_| Default::default()).collect();
    for sample in &s {
        let got = plain.run(sample).unwrap();
        let slot = |name: &str| plain.captured.iter().position(|n| n == name);
        // the input may be the graph's own (the sample), as the report reads it
        let quantlens::infer::npy::NpyData::F32(input) = &sample[0].data else { panic!() };
        let pre_of = |p: &quantlens::infer::activations::QdqPair| -> (&[f32], TValue) {
            match slot(&p.pre) {
                Some(i) => (got.get(i).unwrap(), got.value(i).unwrap()),
                None => (input.as_slice(), Tensor::from_shape(&sample[0].shape, input).unwrap().into()),
            }
        };
        // the streamed pairs compare their output in the run with the reference they are
        // given: here their own input, so that xmodel_err is qdq_err
        for (p, pp) in pairs.iter().zip(&probed) {
            pp.probe.set_reference(Some(pre_of(p).1));
        }
        runner.run(sample).unwrap();
        for (p, (qdq, post, clip)) in pairs.iter().zip(&mut want) {
            let pre = pre_of(p).0;
            for (x, y) in pre
                .chunks(quantlens::infer::TILE)
                .zip(got.get(slot(&p.post).unwrap()).unwrap().chunks(quantlens::infer::TILE))
            {
                qdq.add(x, y);
                post.add(y);
                clip.add(x, p.quant.range().unwrap());
            }
        }
    }
    for ((p, pp), (qdq, post, clip)) in pairs.iter().zip(&probed).zip(&want) {
        let sums = pp.probe.take();
        assert_eq!(sums.qdq.metrics(), qdq.metrics(), "{} qdq_err", p.key);
        assert_eq!(sums.xmodel.metrics(), qdq.metrics(), "{} xmodel_err against the input", p.key);
        assert_eq!(sums.clip, *clip, "{} clipping", p.key);
        assert!(clip.finite > 0);
        // the probe counts its output's levels: the same summary, the moments to rounding
        let (got, want) = (sums.post.summary(), post.summary());
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(want.std);
        assert!(close(got.mean, want.mean) && close(got.std, want.std), "{} moments: {got:?} vs {want:?}", p.key);
        assert_eq!(quantlens::stats::Summary { mean: want.mean, std: want.std, ..got }, want, "{} statistics", p.key);
        assert_eq!(sums.post.histogram(), post.histogram(), "{} histogram", p.key);
    }
    // a pair whose output tract does not know gets no probe: its input is captured
    let odd = [ProbedPair { pre: pairs[1].pre.clone(), post: "no such tensor".into(), probe: Probe::default() }];
    let runner = Runner::probed(v, None, &s[0], &[], &odd).unwrap();
    assert!(runner.probed.is_empty() && runner.streamed.is_empty());
    assert!(runner.captured.contains(&pairs[1].pre));
}

#[test]
fn report_with_inputs_adds_activations_and_refuses_bad_specs() {
    let dir = data("resnet8");
    let npy = data("infer/resnet8_inputs.npy");
    let (code, out, err) = cli(&[
        "report",
        dir.to_str().unwrap(),
        "--format",
        "json",
        "--inputs",
        npy.to_str().unwrap(),
        "--samples",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let acts = json["activations"].as_array().unwrap();
    assert_eq!(acts.len(), 16);
    let first = &acts[0]["variants"][0];
    for k in [
        "variant",
        "qdq_err_db",
        "xmodel_err_db",
        "mse",
        "max_abs",
        "cosine",
        "clip_fraction",
        "range_used",
        "stats",
        "histogram",
    ] {
        assert!(!first[k].is_null(), "{k}");
    }
    // random inputs: the same numbers twice (seeded)
    let run = |seed: &str| {
        let (code, out, err) = cli(&["report", dir.to_str().unwrap(), "--format", "json", "--inputs", seed]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["activations"].clone()
    };
    // the table and the Markdown summary list them too, worst first
    for (format, header) in [("table", "ACTIVATION"), ("md", "activations by SQNR against float")] {
        let (code, out, err) =
            cli(&["report", dir.to_str().unwrap(), "--format", format, "--inputs", npy.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(header), "{format}: {out}");
    }
    assert_eq!(run("random:5"), run("random:5"));
    assert_ne!(run("random:5"), run("random:6"));
    let (code, _, err) = cli(&["report", dir.to_str().unwrap(), "--inputs", "pictures/"]);
    assert_eq!(code, 1);
    assert!(err.contains("random:SEED"), "{err}");
}

#[test]
fn accuracy_matches_onnxruntime_on_the_digits() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("digits_golden.json")).unwrap()).unwrap();
    let dir = data("digits");
    let npz = data("digits/digits.npz");
    let (code, out, err) =
        cli(&["eval", dir.to_str().unwrap(), "--data", npz.to_str().unwrap(), "--full", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["samples"], golden["samples"]);
    for (variant, g) in golden["variants"].as_object().unwrap() {
        let ours = &json["variants"][variant];
        for k in ["top1", "top5", "agreement_with_float"] {
            let (a, b) = (ours[k].as_f64().unwrap(), g[k].as_f64().unwrap());
            assert!((a - b).abs() <= 0.01, "{variant} {k}: {a} vs onnxruntime's {b}");
        }
        let [lo, hi] = [ours["top1_ci95"][0].as_f64().unwrap(), ours["top1_ci95"][1].as_f64().unwrap()];
        assert!(lo < ours["top1"].as_f64().unwrap() && ours["top1"].as_f64().unwrap() < hi);
    }
    // quick evaluation: 100 samples, ten of each digit
    let variants = load("digits");
    let (samples, labels) =
        quantlens::infer::labelled_samples(&variants[0].model.graph, &InputSpec::Npz(npz.clone()), &HashMap::new())
            .unwrap();
    assert_eq!((samples.len(), labels.len()), (360, 360));
    let pick = quantlens::infer::stratified(&labels, 100);
    for digit in 0..10 {
        assert_eq!(pick.iter().filter(|&&i| labels[i] == digit).count(), 10, "digit {digit}");
    }
    let (code, out, _) = cli(&["eval", dir.to_str().unwrap(), "--data", npz.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["variants"]["int8"]["n"], 100);
    // an array without labels is refused, saying where labels come from
    let npy = data("infer/resnet8_inputs.npy");
    let (code, _, err) = cli(&["eval", dir.to_str().unwrap(), "--data", npy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("labelled data is a .npz with `x` and `y`"), "{err}");
}

#[test]
fn exported_edits_reload_and_never_overwrite_an_input() {
    let dir = std::env::temp_dir().join(format!("quantlens-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("edited_int8.onnx");
    let src = data("resnet8");
    let (code, _, err) = cli(&[
        "export",
        src.to_str().unwrap(),
        "--variant",
        "int8",
        "--set",
        "s2_proj.weight_scale*=0.5",
        "--set",
        "stem_conv.input_scale*=2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // reloaded: the edited scales, and only they, changed
    let original = load("resnet8").into_iter().find(|v| v.spec.name == "int8").unwrap();
    let spec = quantlens::model::VariantSpec {
        name: "q".into(),
        kind: quantlens::model::VariantKind::Int8,
        path: out.clone(),
    };
    let edited = quantlens::model::variants::load_variant(&spec, quantlens::model::Access::Read).unwrap();
    let scales = |v: &quantlens::model::Variant, name: &str| -> Vec<f32> {
        let l = v.layers.iter().find(|l| v.model.graph.nodes[l.node].name == name).unwrap();
        let quantlens::model::LayerWeight::Quantized(q) = &l.weight else { panic!() };
        q.params.as_ref().unwrap().scale.clone()
    };
    let halved: Vec<f32> = scales(&original, "s2_proj").iter().map(|s| s * 0.5).collect();
    assert_eq!(scales(&edited, "s2_proj"), halved);
    assert_eq!(scales(&edited, "s1_conv1"), scales(&original, "s1_conv1"));
    let act = |v: &quantlens::model::Variant| {
        let l = v.layers.iter().find(|l| v.model.graph.nodes[l.node].name == "stem_conv").unwrap();
        quantlens::model::layer_activations(&v.model.graph, l.node)[0].scale
    };
    assert_eq!(act(&edited), act(&original) * 2.0);
    // tract runs it, and the outputs moved
    let s =
        samples(&original.model.graph, &InputSpec::Npy(data("infer/resnet8_inputs.npy")), 1, &HashMap::new()).unwrap();
    let run = |path: &std::path::Path| {
        quantlens::infer::run::Runner::new(path, "v", &s[0], &[]).unwrap().output(&s[0]).unwrap()
    };
    let (a, b) = (run(&original.spec.path), run(&out));
    let moved = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "the edit reached the outputs: {moved}");
    // an input file is never the output, and a bad edit writes nothing
    let export = |edit: &str, out: &std::path::Path| {
        cli(&["export", src.to_str().unwrap(), "--variant", "int8", "--set", edit, "--out", out.to_str().unwrap()])
    };
    let input = data("resnet8/resnet8_int8.onnx");
    let before = std::fs::read(&input).unwrap();
    let (code, _, err) = export("fc.weight_scale*=2", &input);
    assert_eq!(code, 1);
    assert!(err.contains("refusing to overwrite an input"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    let nothing = dir.join("nothing.onnx");
    let (code, _, err) = export("nope.weight_scale*=2", &nothing);
    assert_eq!(code, 1);
    assert!(err.contains("no layer `nope`"), "{err}");
    assert!(!nothing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keeping_layers_in_float_and_the_sensitivity_sweep() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("infer_golden.json")).unwrap()).unwrap();
    let variants = load("resnet8");
    let s = samples(&variants[0].model.graph, &InputSpec::Npy(data("infer/resnet8_inputs.npy")), 4, &HashMap::new())
        .unwrap();
    let (rows, failures) = quantlens::infer::sensitivity(&variants, 0, &s, None);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(rows.len(), 2 * 10, "every quantized layer of int8 and uint8");
    for r in &rows {
        assert!(r.problem.is_none(), "{r:?}");
        // the fully quantized variant's output SQNR is onnxruntime's xmodel_err of `output`
        let base = r.output_sqnr_db.unwrap() - r.gain.unwrap();
        let ort = golden["variants"][&r.variant]["output"]["xmodel_err"].as_f64().unwrap();
        assert!((base - ort).abs() < 0.5, "{} {}: {base} vs {ort}", r.variant, r.layer);
    }
    let int8: Vec<_> = rows.iter().filter(|r| r.variant == "int8").collect();
    assert!(int8.windows(2).all(|w| w[0].gain >= w[1].gain), "largest gain first");
    assert!(int8[0].gain.unwrap() > 0.5, "some layer matters: {:?}", int8[0]);
    // every layer in float: closer to the float model than the quantized variant
    let int8_index = variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let all: Vec<quantlens::infer::Edit> = variants[int8_index]
        .layers
        .iter()
        .map(|l| format!("{}.float", variants[int8_index].model.graph.nodes[l.node].name).parse().unwrap())
        .collect();
    let bytes = quantlens::infer::apply_edits(&variants, 0, int8_index, &all).unwrap();
    let run = |r: quantlens::infer::run::Runner| -> Vec<f32> { s.iter().flat_map(|x| r.output(x).unwrap()).collect() };
    let float = run(quantlens::infer::run::Runner::new(&variants[0].spec.path, "f", &s[0], &[]).unwrap());
    let quant = run(quantlens::infer::run::Runner::new(&variants[int8_index].spec.path, "q", &s[0], &[]).unwrap());
    let kept = run(quantlens::infer::run::Runner::from_bytes(&bytes, "k", &s[0], &[]).unwrap());
    let sqnr = |y: &[f32]| {
        quantlens::stats::compare(quantlens::stats::Values::Slice(&float), quantlens::stats::Values::Slice(y), None)
            .unwrap()
            .sqnr_db
    };
    assert!(sqnr(&kept) > sqnr(&quant) + 1.0, "{} vs {}", sqnr(&kept), sqnr(&quant));
}

#[test]
fn every_layer_kept_in_float_gives_the_float_outputs() {
    // the digits network: every tensor between its layers is a layer's input or output
    // (Flatten carries its own), so with every layer in float nothing is quantized
    let variants = load("digits");
    let (stream, _) = quantlens::infer::labelled_samples(
        &variants[0].model.graph,
        &InputSpec::Npz(data("digits/digits.npz")),
        &HashMap::new(),
    )
    .unwrap();
    let s: Vec<_> = stream.take_at_most(20).collect::<Result<_, _>>().unwrap();
    let run = |r: quantlens::infer::run::Runner| -> Vec<f32> { s.iter().flat_map(|x| r.output(x).unwrap()).collect() };
    let float = run(quantlens::infer::run::Runner::new(&variants[0].spec.path, "f", &s[0], &[]).unwrap());
    for vi in 1..variants.len() {
        let v = &variants[vi];
        let all: Vec<quantlens::infer::Edit> = v
            .layers
            .iter()
            .map(|l| format!("{}.float", v.model.graph.nodes[l.node].label(l.node)).parse().unwrap())
            .collect();
        assert_eq!(all.len(), 3);
        let bytes = quantlens::infer::apply_edits(&variants, 0, vi, &all).unwrap();
        let kept = run(quantlens::infer::run::Runner::from_bytes(&bytes, "k", &s[0], &[]).unwrap());
        let quant = run(quantlens::infer::run::Runner::new(&v.spec.path, "q", &s[0], &[]).unwrap());
        let scale = float.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = float.iter().zip(&kept).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 1e-4 * scale, "{}: {worst} off (logits up to {scale})", v.spec.name);
        let quant_off = float.iter().zip(&quant).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(quant_off > 100.0 * worst, "the quantized variant is off by {quant_off}");
    }
}

#[test]
fn qoperator_layers_kept_in_float_run_their_float_op() {
    // the digits CNN as onnxruntime's QOperator int8 (QLinearConv ×2) beside its float
    let specs = vec![
        quantlens::model::VariantSpec {
            name: "float".into(),
            kind: quantlens::model::VariantKind::Float,
            path: data("digits/digits_float.onnx"),
        },
        quantlens::model::VariantSpec {
            name: "qop".into(),
            kind: quantlens::model::VariantKind::Int8,
            path: data("qoperator/digits_qlinearconv_int8.onnx"),
        },
    ];
    let variants: Vec<_> = quantlens::model::variants::load_variants(&specs).into_iter().map(Result::unwrap).collect();
    let (stream, _) = quantlens::infer::labelled_samples(
        &variants[0].model.graph,
        &InputSpec::Npz(data("digits/digits.npz")),
        &HashMap::new(),
    )
    .unwrap();
    let s: Vec<_> = stream.take_at_most(20).collect::<Result<_, _>>().unwrap();
    let v = &variants[1];
    let qop: Vec<quantlens::infer::Edit> = v
        .layers
        .iter()
        .filter(|l| v.model.graph.nodes[l.node].op_type == "QLinearConv")
        .map(|l| format!("{}.float", v.model.graph.nodes[l.node].label(l.node)).parse().unwrap())
        .collect();
    assert_eq!(qop.len(), 2);
    let run = |r: quantlens::infer::run::Runner| -> Vec<f32> { s.iter().flat_map(|x| r.output(x).unwrap()).collect() };
    let float = run(quantlens::infer::run::Runner::new(&variants[0].spec.path, "f", &s[0], &[]).unwrap());
    let quant = run(quantlens::infer::run::Runner::new(&v.spec.path, "q", &s[0], &[]).unwrap());
    let sqnr = |y: &[f32]| {
        quantlens::stats::compare(quantlens::stats::Values::Slice(&float), quantlens::stats::Values::Slice(y), None)
            .unwrap()
            .sqnr_db
    };
    // each layer alone, then both: the rewritten model runs, and both in float come closer
    // to float (only the activations at the layers' inputs and outputs stay quantized)
    for e in &qop {
        let bytes = quantlens::infer::apply_edits(&variants, 0, 1, std::slice::from_ref(e)).unwrap();
        let y = run(quantlens::infer::run::Runner::from_bytes(&bytes, "k", &s[0], &[]).unwrap());
        // (one layer alone may land either side: its weight error can offset another's)
        assert!(y != quant && (sqnr(&y) - sqnr(&quant)).abs() < 10.0, "{e}: {} vs {}", sqnr(&y), sqnr(&quant));
    }
    let bytes = quantlens::infer::apply_edits(&variants, 0, 1, &qop).unwrap();
    let kept = run(quantlens::infer::run::Runner::from_bytes(&bytes, "k", &s[0], &[]).unwrap());
    assert!(sqnr(&kept) > sqnr(&quant) + 1.0, "{} vs {}", sqnr(&kept), sqnr(&quant));
    // each QLinearConv became DequantizeLinear → Conv (float weights) → QuantizeLinear
    let dir = std::env::temp_dir().join(format!("quantlens-qop-float-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kept.onnx"), &bytes).unwrap();
    let m = quantlens::model::load_model(&dir.join("kept.onnx")).unwrap();
    let ops: Vec<&str> = m.graph.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert!(!ops.contains(&"QLinearConv"), "{ops:?}");
    assert_eq!(ops.iter().filter(|o| **o == "Conv").count(), 2, "{ops:?}");
    // with the float model's weights, bit for bit
    let kept_model = quantlens::model::variants::load_variants(&[quantlens::model::VariantSpec {
        name: "kept".into(),
        kind: quantlens::model::VariantKind::Int8,
        path: dir.join("kept.onnx"),
    }])
    .pop()
    .unwrap()
    .unwrap();
    let weights = |v: &quantlens::model::Variant| -> Vec<Vec<f32>> {
        v.layers
            .iter()
            .filter(|l| v.model.graph.nodes[l.node].op_type == "Conv")
            .map(|l| v.model.graph.tensors[l.weight.tensor()].data.as_ref().unwrap().to_f32_vec().unwrap())
            .collect()
    };
    assert_eq!(weights(&kept_model), weights(&variants[0]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_infer_times_each_variant_and_all_together() {
    let dir = data("resnet8");
    let (code, out, err) = cli(&["bench-infer", dir.to_str().unwrap(), "--samples", "2"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pairs = qdq_pairs(&load("resnet8").iter().find(|v| v.spec.name == "int8").unwrap().model.graph).len();
    assert_eq!(j["samples"], 2);
    // every pair's tensors but the graph's input (quantized directly: the sample holds it)
    for (v, captured) in [("float", pairs - 1), ("int8", 2 * pairs - 1), ("uint8", 2 * pairs - 1)] {
        assert_eq!(j["variants"][v]["captured"], captured, "{v}: {out}");
        assert!(j["variants"][v]["per_sample_s"].as_f64().unwrap() > 0.0, "{v}");
    }
    assert!(j["together"]["per_sample_s"].as_f64().unwrap() > 0.0, "{out}");
}

/// A pair tract reads with per-channel parameters is joined into one node all the same,
/// and wired as tract's own two ops: its values are `QuantizeLinear` then
/// `DequantizeLinear` channel by channel.
#[test]
fn per_channel_activation_pairs_run_as_tracts_two_ops() {
    use quantlens::infer::fake_quant::join_pairs;
    use quantlens::infer::npy::NpyData;
    use quantlens::infer::run::Runner;
    let path = data("infer/per_axis_activation.onnx");
    let mut onnx = tract_onnx::onnx().model_for_path(&path).unwrap();
    assert_eq!(join_pairs(&mut onnx, &HashMap::new()).unwrap(), 1);
    let x: Vec<f32> = (0..48).map(|i| ((i * 37 % 48) as f32 - 20.0) * 0.173).collect();
    let sample = vec![quantlens::infer::InputTensor {
        name: "x".into(),
        shape: vec![1, 3, 4, 4],
        data: NpyData::F32(x.clone()),
    }];
    let runner = Runner::new(&path, "int8", &sample, &["x_dq".to_string()]).unwrap();
    let got = runner.run(&sample).unwrap();
    let (scale, zp) = ([0.02f32, 0.05, 0.1], [128.0f32, 100.0, 140.0]);
    for (i, (&v, &y)) in x.iter().zip(got.get(0).unwrap()).enumerate() {
        let c = i / 16;
        let q = ((v / scale[c]).round_ties_even() + zp[c]).clamp(0.0, 255.0);
        let want = (q - zp[c]) * scale[c];
        assert!((y - want).abs() <= 1e-6 * want.abs().max(1.0), "x {v} channel {c}: {y} vs {want}");
    }
}

/// A member of the depthwise fixture's onnxruntime record.
fn depthwise_ref(name: &str) -> quantlens::infer::npy::NpyArray {
    quantlens::infer::npy::RowReader::open_npz(&data("infer/depthwise_ref.npz"), name).unwrap().read_all().unwrap()
}

#[test]
fn strided_depthwise_and_out_of_place_ops_give_onnxruntimes_values() {
    use quantlens::infer::npy::NpyData;
    use quantlens::infer::ops::depthwise::swap_depthwise;
    use quantlens::infer::run::Runner;
    let path = data("infer/depthwise.onnx");
    // every strided depthwise convolution of the file is one quantlens runs (a 1×1 too)
    let mut typed = tract_onnx::onnx().model_for_path(&path).unwrap().into_typed().unwrap();
    assert_eq!(swap_depthwise(&mut typed).unwrap(), 5);
    let x = depthwise_ref("x");
    let NpyData::F32(xs) = x.data else { panic!("x is f32") };
    let sample = vec![quantlens::infer::InputTensor {
        name: "x".into(),
        shape: x.shape.clone(),
        data: NpyData::F32(xs.clone()),
    }];
    // every tensor captured: the element-wise ops' inputs are kept, so they run out of place
    let every = ["d1", "d2", "d3", "d4", "d5", "m", "a", "clipped", "hs", "y1", "y3"].map(String::from);
    let runner = Runner::new(&path, "float", &sample, &every).unwrap();
    assert_eq!(runner.captured, every);
    let got = runner.run(&sample).unwrap();
    for (i, name) in every.iter().enumerate() {
        let NpyData::F32(want) = depthwise_ref(name).data else { panic!("{name} is f32") };
        let got = got.get(i).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}[{k}]: {g} vs onnxruntime {w}");
        }
    }
    // tract's own plan (its depthwise kernel, its ops in place) gives the same bits
    let own = tract_onnx::onnx().model_for_path(&path).unwrap().into_optimized().unwrap().into_runnable().unwrap();
    let outputs = own.run(tvec!(Tensor::from_shape(&x.shape, &xs).unwrap().into())).unwrap();
    for (name, theirs) in ["y1", "d2", "y3", "d4", "d5"].iter().zip(outputs) {
        let ours = got.get(every.iter().position(|n| n == name).unwrap()).unwrap();
        let theirs = theirs.as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert_eq!(
            ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            theirs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
    // nothing captured: the same outputs, the ops then working in place
    let plain = Runner::new(&path, "float", &sample, &[]).unwrap().output(&sample).unwrap();
    let NpyData::F32(y1) = depthwise_ref("y1").data else { panic!("y1 is f32") };
    for (g, w) in plain.iter().zip(&y1) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs onnxruntime {w}");
    }
}
