//! Real-world model shapes the import must take in its stride: constant-node weights,
//! subgraphs, weight-only Cast→Mul, scalar weights, opset 12, uint8 inside int8, int16 /
//! uint16 / int4, float16 / bfloat16, quantization annotations, duplicate names, external
//! data and bad quantization parameters.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use common::{all_values, data, f64s, first_values, golden, load_file, params};
use quantlens::model::graph::TensorKind;
use quantlens::model::{LayerWeight, QuantForm, TensorBytes, Variant};
use quantlens::report::{LayerReport, Report, ReportOptions, build_report};
use quantlens::stats::Values;
use serde_json::Value;

fn report_of(v: &Variant) -> Report {
    build_report(std::slice::from_ref(v), ReportOptions { histogram_bins: Some(16) })
}

fn row<'a>(r: &'a Report, layer: &str) -> &'a LayerReport {
    r.layers.iter().find(|l| l.layer == layer).unwrap_or_else(|| panic!("no layer {layer}"))
}

fn layer_names(r: &Report) -> Vec<&str> {
    r.layers.iter().map(|l| l.layer.as_str()).collect()
}

/// Every dequantized value equals `(q − zp) · scale` of its channel, to 1e-6.
fn assert_dequant_is_q_minus_zp_times_scale(v: &Variant, weight_q: &str) {
    let (p, q) = params(v, weight_q);
    let raw = all_values(Values::Raw(q));
    let deq = all_values(Values::Dequantized(q, p));
    assert_eq!(raw.len(), deq.len());
    assert_eq!(raw.len() as u64, q.len());
    let shape = &q.shape;
    let inner: u64 = p.axis.map_or(1, |a| shape.iter().skip(a + 1).product());
    for (i, (&r, &d)) in raw.iter().zip(&deq).enumerate() {
        let c = p.axis.map_or(0, |a| ((i as u64 / inner) % shape[a]) as usize);
        let expected = (r as i32 - p.zero_point[c]) as f32 * p.scale[c];
        assert!((d - expected).abs() <= 1e-6, "{weight_q}[{i}]: {d} vs {expected}");
    }
}

fn check_golden_entry(v: &Variant, e: &Value, what: &str) {
    let (p, q) = params(v, e["weight_q"].as_str().unwrap());
    let scales: Vec<f64> = p.scale.iter().map(|&s| f64::from(s)).collect();
    assert_eq!(scales, f64s(&e["scale"]), "{what} scales");
    if let Some(zp) = e.get("zero_point") {
        let zps: Vec<f64> = p.zero_point.iter().map(|&z| f64::from(z)).collect();
        assert_eq!(zps, f64s(zp), "{what} zero points");
    }
    if let Some(dt) = e.get("dtype") {
        assert_eq!(q.dtype.name(), dt.as_str().unwrap(), "{what} dtype");
    }
    if let Some(axis) = e.get("axis").and_then(Value::as_u64) {
        assert_eq!(p.axis, Some(axis as usize), "{what} axis");
    }
    for (i, (a, x)) in first_values(Values::Dequantized(q, p), 16).iter().zip(f64s(&e["dequant_first"])).enumerate() {
        assert!((a - x).abs() <= 1e-6, "{what} dequant[{i}]: {a} vs {x}");
    }
}

#[test]
fn constant_node_weights_are_layers() {
    let v = load_file("edge/constant_weights.onnx");
    let r = report_of(&v);
    assert_eq!(layer_names(&r), ["fc1", "fc1_bias", "fc2"]);
    let g = &v.model.graph;
    for l in &v.layers {
        let t = g.tensor(l.weight.tensor()).unwrap();
        assert_eq!(t.kind, TensorKind::Constant, "{} comes from a Constant node", t.name);
        let data = t.data.as_ref().unwrap();
        let stats = row(&r, &g.node(l.node).unwrap().name).variants[0].stats.as_ref().unwrap();
        assert_eq!(stats.count, data.len());
        assert!(stats.min < stats.max);
    }
}

#[test]
fn layers_inside_nested_if_branches_use_outer_initializers() {
    let v = load_file("edge/subgraph_if.onnx");
    let r = report_of(&v);
    let mut names = layer_names(&r);
    names.sort_unstable();
    assert_eq!(names, ["else_conv", "else_matmul", "inner_else_conv", "inner_then_matmul", "then_conv"]);
    let g = &v.model.graph;
    let weight_of = |node: &str| {
        let l = v.layers.iter().find(|l| g.node(l.node).unwrap().name == node).unwrap();
        l.weight.tensor()
    };
    // both branches read one outer-scope initializer: the same tensor, not a copy
    assert_eq!(weight_of("then_conv"), weight_of("else_conv"));
    assert_eq!(weight_of("else_matmul"), weight_of("inner_then_matmul"));
    let inner = v.layers.iter().find(|l| g.node(l.node).unwrap().name == "inner_then_matmul").unwrap();
    let scope = &g.node(inner.node).unwrap().scope;
    assert_eq!(scope.matches('/').count(), 3, "nested two If levels deep: {scope}");
}

#[test]
fn weight_only_cast_mul_is_found_without_dequantize_linear() {
    let v = load_file("edge/weight_only_cast_mul.onnx");
    let gold = golden();
    for (name, e) in gold["edge"]["edge/weight_only_cast_mul.onnx"].as_object().unwrap() {
        check_golden_entry(&v, e, name);
        let (p, _) = params(&v, e["weight_q"].as_str().unwrap());
        let scale_name = p.scale_tensor.map(|t| v.model.graph.tensors[t].name.as_str());
        assert_eq!(scale_name, e["scale_tensor"].as_str());
        assert_dequant_is_q_minus_zp_times_scale(&v, e["weight_q"].as_str().unwrap());
    }
    assert!(v.layers.iter().all(|l| matches!(&l.weight, LayerWeight::Quantized(q) if q.form == QuantForm::CastMul)));
    assert_eq!(v.layers.len(), 2, "the Cast and Mul are plumbing, not layers");
}

#[test]
fn scalar_weights_have_empty_shapes() {
    let v = load_file("edge/scalar_weight.onnx");
    let r = report_of(&v);
    let f = &row(&r, "mul_by_scalar").variants[0];
    assert_eq!(f.shape, Vec::<u64>::new());
    let s = f.stats.as_ref().unwrap();
    assert_eq!((s.count, s.min, s.max), (1, 1.5, 1.5));
    let q = &row(&r, "mul_by_dq_scalar").variants[0];
    assert_eq!(q.dtype, "int8");
    let qs = q.quant.as_ref().unwrap();
    assert_eq!((qs.scale.min, qs.zero_point.min), (f64::from(0.05f32), 3.0));
    let s = q.stats.as_ref().unwrap();
    // stored q = -42: (-42 - 3) * 0.05
    assert_eq!(s.count, 1);
    assert!((s.min - (-45.0 * f64::from(0.05f32))).abs() < 1e-6, "{}", s.min);
}

#[test]
fn opset12_per_tensor_qdq_dequantizes_exactly() {
    let v = load_file("edge/opset12_qdq.onnx");
    assert_eq!(v.model.opset, 12);
    for w in ["fc1.weight_quantized", "fc2.weight_quantized"] {
        let (p, _) = params(&v, w);
        assert_eq!(p.axis, None);
        assert!(!p.per_channel());
        assert_dequant_is_q_minus_zp_times_scale(&v, w);
    }
}

#[test]
fn uint8_table_inside_an_int8_model_does_not_wrap_around() {
    let v = load_file("edge/uint8_in_int8.onnx");
    let gold = golden();
    let e = &gold["edge"]["edge/uint8_in_int8.onnx"];
    check_golden_entry(&v, e, "embed");
    let r = report_of(&v);
    let embed = &row(&r, "embed").variants[0];
    assert_eq!(embed.dtype, "uint8");
    let s = embed.stats.as_ref().unwrap();
    let g = &e["dequant_stats"];
    assert_eq!(s.count, g["count"].as_u64().unwrap());
    // (0 − 128) · 0.01: a uint8 subtraction would have wrapped to a positive value
    assert!((s.min - g["min"].as_f64().unwrap()).abs() < 1e-6 && s.min < -1.27, "{}", s.min);
    assert!((s.mean - g["mean"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(row(&r, "fc").variants[0].dtype, "int8");
    assert_dequant_is_q_minus_zp_times_scale(&v, "embed.weight_quantized");
}

#[test]
fn int16_uint16_and_int4_weights_dequantize() {
    let v = load_file("edge/int16_qdq.onnx");
    let gold = golden();
    for (name, e) in gold["edge"]["edge/int16_qdq.onnx"].as_object().unwrap() {
        check_golden_entry(&v, e, name);
        assert_dequant_is_q_minus_zp_times_scale(&v, e["weight_q"].as_str().unwrap());
    }
}

#[test]
fn float16_and_bfloat16_weights_are_decoded() {
    let v = load_file("edge/fp16_bf16.onnx");
    let r = report_of(&v);
    for (layer, dtype) in [("fc_fp16", "float16"), ("fc_bf16", "bfloat16")] {
        let lv = &row(&r, layer).variants[0];
        assert_eq!(lv.dtype, dtype);
        let s = lv.stats.as_ref().unwrap();
        assert_eq!(s.count, lv.shape.iter().product::<u64>());
        assert_eq!((s.nan, s.inf), (0, 0));
        assert!(s.min < 0.0 && s.max > 0.0 && s.max < 2.0, "{s:?}");
    }
}

#[test]
fn quantization_annotation_supplies_params() {
    let v = load_file("edge/quant_annotation.onnx");
    let embed = v
        .layers
        .iter()
        .find_map(|l| match &l.weight {
            LayerWeight::Quantized(q) if v.model.graph.node(l.node).unwrap().name == "embed" => Some(q),
            _ => None,
        })
        .unwrap();
    assert_eq!(embed.form, QuantForm::Annotation);
    let p = embed.params.as_ref().unwrap();
    assert_eq!(p.scale.len(), 8);
    assert!(p.scale.iter().all(|&s| s > 0.0));
    let name = v.model.graph.tensor(embed.q_tensor).unwrap().name.clone();
    assert_dequant_is_q_minus_zp_times_scale(&v, &name);
}

#[test]
fn duplicate_and_empty_node_names_stay_distinct() {
    let v = load_file("edge/dup_names.onnx");
    let r = report_of(&v);
    assert_eq!(v.model.graph.len(), 5, "every node is kept");
    let names = layer_names(&r);
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "layer labels are unique: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("MatMul#")), "an unnamed node gets Op#index: {names:?}");
}

#[test]
fn external_data_is_streamed_from_the_model_folder() {
    let v = load_file("edge/external/model.onnx");
    let g = &v.model.graph;
    assert!(g.issues.is_empty(), "{:?}", g.issues);
    let weights = std::fs::read(data("edge/external/weights.bin")).unwrap();
    for l in &v.layers {
        let t = g.tensor(l.weight.tensor()).unwrap();
        let d = t.data.as_ref().unwrap();
        let TensorBytes::External { offset, len, .. } = &d.bytes else { panic!("{} is not external", t.name) };
        let (start, end) = (*offset as usize, (*offset + *len) as usize);
        let expected: Vec<f32> =
            weights[start..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(all_values(Values::Raw(d)), expected, "{}", t.name);
    }
    assert_eq!(v.layers.len(), 3);
}

#[test]
fn bad_quant_params_are_reported_per_layer() {
    let v = load_file("edge/bad_quant_params.onnx");
    let r = report_of(&v);
    let problems = |layer: &str| row(&r, layer).variants[0].problems.join("; ");
    assert_eq!(problems("good"), "");
    assert!(row(&r, "good").variants[0].stats.is_some());
    assert!(problems("scale_count_mismatch").contains("7 scales but the weight has 8 channels"));
    assert!(problems("zero_point_length_mismatch").contains("5 zero points for 8 scales"));
    assert!(problems("zero_point_dtype_mismatch").contains("zero point is uint8"));
    assert!(problems("zero_scale").contains("zero, negative or not finite"));
    assert!(problems("negative_scale").contains("zero, negative or not finite"));
    assert_eq!(r.layers.len(), 6, "every layer is still listed");
}

#[test]
fn main_graph_payloads_are_ranges_of_one_file_buffer() {
    let m = quantlens::model::load_model(&data("resnet8/resnet8_float.onnx")).unwrap();
    let bufs: Vec<_> = m
        .graph
        .tensors
        .iter()
        .filter_map(|t| match &t.data.as_ref()?.bytes {
            TensorBytes::Memory { buf, .. } | TensorBytes::Transposed { buf, .. } => Some(std::sync::Arc::clone(buf)),
            TensorBytes::External { .. } => None,
        })
        .collect();
    let initializers = m.graph.tensors.iter().filter(|t| t.data.is_some()).count();
    assert!(bufs.len() >= 20 && bufs.len() == initializers, "{} of {initializers} shared", bufs.len());
    assert!(bufs.iter().all(|b| std::sync::Arc::ptr_eq(b, &bufs[0])), "one buffer, not copies");
    assert_eq!(bufs[0].len() as u64, std::fs::metadata(data("resnet8/resnet8_float.onnx")).unwrap().len());
}

#[test]
fn rebinning_a_row_equals_computing_it_at_that_bin_count() {
    use quantlens::model::match_layers;
    use quantlens::report::{layer_report, rebin};
    let variants = common::load("resnet8");
    let rows = match_layers(&variants, 0);
    let mut compared = 0;
    for row in &rows {
        let at64 = layer_report(&variants, 0, row, ReportOptions { histogram_bins: Some(64) });
        let at16 = layer_report(&variants, 0, row, ReportOptions { histogram_bins: Some(16) });
        let rebinned = rebin(
            &variants,
            row,
            &at64,
            quantlens::report::ParamKey::WEIGHT,
            16,
            &quantlens::report::QuantOverrides::default(),
        );
        assert_eq!(
            rebinned.as_ref().map(|h| (&h.counts, h.lo, h.hi)),
            at16.histogram.as_ref().map(|h| (&h.counts, h.lo, h.hi))
        );
        if let Some(h) = rebinned {
            assert_eq!(h.counts.len(), 3, "float, int8, uint8");
            let totals: Vec<u64> = h.counts.iter().map(|c| c.iter().sum()).collect();
            assert!(totals.iter().all(|&t| t > 0 && t == totals[0]), "{totals:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 10, "every resnet8 layer");
}

#[test]
fn mapped_files_give_the_same_report_as_read_ones() {
    use quantlens::model::variants::{discover, load_variants_with};
    use quantlens::model::{Access, FileBytes};
    let specs = discover(&data("resnet8")).unwrap();
    let load = |access| -> Vec<_> { load_variants_with(&specs, access).into_iter().map(Result::unwrap).collect() };
    let (read, mapped) = (load(Access::Read), load(Access::Map));
    // (payloads decoded from typed protobuf fields are owned either way)
    let mapped_payloads = |v: &quantlens::model::Variant| {
        v.model
            .graph
            .tensors
            .iter()
            .filter_map(|t| t.data.as_ref())
            .filter(|d| match &d.bytes {
                TensorBytes::Memory { buf, .. } | TensorBytes::Transposed { buf, .. } => {
                    matches!(**buf, FileBytes::Mapped(_))
                }
                TensorBytes::External { .. } => false,
            })
            .count()
    };
    assert!(mapped.iter().all(|v| mapped_payloads(v) >= 20), "initializers are ranges of the mapped file");
    assert!(read.iter().all(|v| mapped_payloads(v) == 0));
    let options = ReportOptions { histogram_bins: Some(32) };
    let json = |v: &[quantlens::model::Variant]| serde_json::to_string(&build_report(v, options).layers).unwrap();
    assert_eq!(json(&read), json(&mapped));
}
