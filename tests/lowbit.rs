//! Low-bit weights of large models, read exactly against numpy's dequantization
//! (`lowbit_golden.json`, from `scripts/make_lowbit_fixtures.py`; `MatMulNBits` in the float
//! `MatMul`'s `[K, N]` orientation): onnxruntime's `MatMulNBitsQuantizer` in its QDQ form
//! (opset 21 `DequantizeLinear` with `block_size`: int4 blocks 32 and 128, uint4 block 16)
//! and its `QOperator` form (`MatMulNBits`: 4 bits in blocks 16, 32 and 128, 8 bits, HQQ's
//! float zero points; 2 and 3 bits packed by numpy), float8 in its four types,
//! `GatherBlockQuantized` embeddings in both data forms; the worst block and the block view;
//! external data; stored-order reads; and every misfit refused with a reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{data, load, params};
use quantlens::model::graph::AttrValue;
use quantlens::model::{LayerWeight, load_model};
use quantlens::report::{ReportOptions, build_report};
use quantlens::stats::Values;

/// FNV-1a 64 over the little-endian bytes of `values` (the script's hash).
fn fnv1a64(values: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in values.iter().flat_map(|v| v.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[test]
fn low_bit_weights_dequantize_as_numpy_does() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("lowbit_golden.json")).unwrap()).unwrap();
    let (transformer, tokens) = (load("lowbit"), load("lowbit_tokens"));
    let report = build_report(&transformer, ReportOptions::default());
    let tokens_report = build_report(&tokens, ReportOptions::default());
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for (variant, weights) in golden.as_object().unwrap() {
        let (variants, report, stem) = if variant.starts_with("tokens_") {
            (&tokens, &tokens_report, variant.clone())
        } else {
            (&transformer, &report, format!("transformer_{variant}"))
        };
        let v = variants
            .iter()
            .find(|v| v.spec.path.file_stem().is_some_and(|s| s == stem.as_str()))
            .unwrap_or_else(|| panic!("no variant {stem}"));
        for (qname, g) in weights.as_object().unwrap() {
            let (p, t) = params(v, qname);
            let what = format!("{variant} {qname}");
            assert_eq!(p.dtype.name(), g["dtype"].as_str().unwrap(), "{what}");
            assert_eq!(p.block.map(|b| b as u64), g["block"].as_u64(), "{what}");
            // HQQ's zero points are floats, subtracted as floats
            assert_eq!(p.float_zero_point.is_some(), variant == "hqq", "{what}");
            if let (Some(b), Some(axis)) = (p.block, p.axis) {
                let mut blocked = t.shape.clone();
                blocked[axis] = blocked[axis].div_ceil(b as u64);
                assert_eq!(p.scale.len() as u64, blocked.iter().product::<u64>(), "{what}");
            }
            let values = common::all_values(Values::Dequantized(t, p));
            assert_eq!(values.len() as u64, g["count"].as_u64().unwrap());
            assert_eq!(fnv1a64(&values), g["fnv1a64"].as_str().unwrap(), "{what}: bit for bit");
            // statistics and SQNR through the report, as every variant gets them
            let float = g["float"].as_str().unwrap();
            let row = report
                .layers
                .iter()
                .find(|l| l.variants.iter().any(|lv| lv.initializers.iter().any(|i| i.name == *qname)))
                .unwrap_or_else(|| panic!("no row for {qname} ({float})"));
            // on its float layer's row (`q_proj_matmul_Q4` by name, embeddings by their weight)
            let f = row.variants.iter().find(|lv| lv.variant == "float").unwrap_or_else(|| panic!("{what}: unmatched"));
            assert!(f.initializers.iter().any(|i| i.name == float), "{what} beside {:?}", f.initializers);
            let lv = row.variants.iter().find(|lv| lv.variant == v.spec.name).unwrap();
            let s = lv.stats.as_ref().unwrap();
            assert_eq!((s.min, s.max), (g["min"].as_f64().unwrap(), g["max"].as_f64().unwrap()), "{what}");
            common::close(s.mean, g["mean"].as_f64().unwrap(), 1e-9, "mean");
            common::close(s.std, g["std"].as_f64().unwrap(), 1e-9, "std");
            let m = lv.metrics.as_ref().unwrap();
            assert!((m.sqnr_db - g["sqnr_db"].as_f64().unwrap()).abs() < 0.01, "{what}: {}", m.sqnr_db);
            // integer grids: the error is the rounding's (rmse/scale ≈ 0.29); float8 has no
            // uniform step
            if p.dtype.is_float8() {
                assert_eq!(m.rmse_over_scale, None, "{what}");
            } else {
                let r = m.rmse_over_scale.unwrap();
                assert!((0.2..0.4).contains(&r), "{what}: rmse/scale {r}");
            }
            // the worst block, as numpy finds it: same block, same rmse/scale
            if let Some(wb) = g["worst_block"].as_object() {
                let c = m.channels.as_ref().unwrap_or_else(|| panic!("{what}: no block errors"));
                assert_eq!(c.count as u64, wb["blocks"].as_u64().unwrap(), "{what}");
                let worst = &c.worst[0];
                assert_eq!(worst.index as u64, wb["index"].as_u64().unwrap(), "{what}");
                common::close(worst.rmse_over_scale, wb["rmse_over_scale"].as_f64().unwrap(), 1e-6, "worst block");
                assert!(c.worst.windows(2).all(|w| w[0].rmse_over_scale >= w[1].rmse_over_scale));
                let h = c.heatmap.as_ref().unwrap();
                let max = h.range().unwrap().1;
                assert!((f64::from(max) - worst.rmse_over_scale).abs() < 1e-6, "{what}: heatmap max {max}");
            }
            *checked.entry(variant.clone()).or_default() += 1;
        }
    }
    // 6 MatMul weights in each of the 16 transformer variants; 2 embeddings and 2 MatMuls in
    // each of the 4 token ones
    assert_eq!(checked.len(), 20, "{checked:?}");
    assert!(checked.iter().all(|(v, n)| *n == if v.starts_with("tokens") { 4 } else { 6 }), "{checked:?}");
}

#[test]
fn blocked_parameters_that_do_not_fit_are_refused() {
    let mut m = load_model(&data("lowbit/transformer_int4.onnx")).unwrap();
    let dq = m.graph.nodes.iter().position(|n| n.op_type == "DequantizeLinear").unwrap();
    let problems = |m: &quantlens::model::Model| -> Vec<String> {
        quantlens::model::quant::find_layers(&m.graph, &m.topo_order)
            .into_iter()
            .filter_map(|l| match l.weight {
                LayerWeight::Quantized(q) => Some(q.problems),
                LayerWeight::Float(_) => None,
            })
            .flatten()
            .collect()
    };
    let set = |m: &mut quantlens::model::Model, v: i64| {
        let a = m.graph.nodes[dq].attributes.iter_mut().find(|a| a.name == "block_size").unwrap();
        a.value = AttrValue::Int(v);
    };
    for (block, reason) in
        [(1000, "scale shape [2, 64] does not fit blocks of 1000"), (-4, "does not fit"), (16, "scale shape [2, 64]")]
    {
        set(&mut m, block);
        let p = problems(&m);
        assert!(p.iter().any(|x| x.contains(reason)), "block_size {block}: {p:?}");
    }
    // 0 (no blocks): the block scales do not pass for per-channel ones either
    set(&mut m, 0);
    let p = problems(&m);
    assert!(p.iter().any(|x| x.contains("128 scales but the weight has 64 channels")), "{p:?}");
}

#[test]
fn matmul_nbits_that_does_not_fit_gets_an_issue() {
    use prost::Message as _;
    let bytes = std::fs::read(data("lowbit/transformer_nbits.onnx")).unwrap();
    let dir = std::env::temp_dir().join(format!("quantlens-nbits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (attr, value, reason) in [
        ("bits", 9, "bits 9 is outside 2–8"),
        ("bits", 1, "bits 1 is outside 2–8"),
        ("block_size", 0, "nothing to read"),
        ("N", 65, "is not [N, n_blocks, blob]"),
    ] {
        let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = proto.graph.as_mut().unwrap();
        let node = graph.node.iter_mut().find(|n| n.op_type == "MatMulNBits").unwrap();
        node.attribute.iter_mut().find(|a| a.name == attr).unwrap().i = value;
        let path = dir.join(format!("bad_{attr}.onnx"));
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        let m = load_model(&path).unwrap();
        let issue = m.graph.issues.iter().find(|i| i.message.starts_with("MatMulNBits")).unwrap();
        assert!(issue.message.contains(reason), "{attr} = {value}: {issue}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `file` with its first `op` node changed by `edit`, and loads it.
fn load_edited(
    file: &str,
    op: &str,
    name: &str,
    edit: impl Fn(&mut tract_onnx::pb::ModelProto),
) -> quantlens::model::Model {
    use prost::Message as _;
    let bytes = std::fs::read(data(file)).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    assert!(proto.graph.as_ref().unwrap().node.iter().any(|n| n.op_type == op));
    edit(&mut proto);
    let dir = std::env::temp_dir().join(format!("quantlens-lowbit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edited.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let m = load_model(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    m
}

/// Every problem and issue of a model, as text.
fn complaints(m: &quantlens::model::Model) -> Vec<String> {
    let mut out: Vec<String> = m.graph.issues.iter().map(ToString::to_string).collect();
    for l in quantlens::model::quant::find_layers(&m.graph, &m.topo_order) {
        if let LayerWeight::Quantized(q) = l.weight {
            out.extend(q.problems);
        }
    }
    out
}

#[test]
fn hostile_low_bit_forms_get_a_reason() {
    let first = |p: &mut tract_onnx::pb::ModelProto, op: &str| -> usize {
        p.graph.as_ref().unwrap().node.iter().position(|n| n.op_type == op).unwrap()
    };
    let set_attr = |op: &'static str, attr: &'static str, v: i64| {
        move |p: &mut tract_onnx::pb::ModelProto| {
            let n = first(p, op);
            let node = &mut p.graph.as_mut().unwrap().node[n];
            match node.attribute.iter_mut().find(|a| a.name == attr) {
                Some(a) => a.i = v,
                None => node.attribute.push(tract_onnx::pb::AttributeProto {
                    name: attr.into(),
                    r#type: 2,
                    i: v,
                    ..Default::default()
                }),
            }
        }
    };
    // embeddings: a block of 0, an axis out of range
    for (name, attr, v, reason) in [
        ("gbq-block", "block_size", 0, "block_size 0 does not fit"),
        ("gbq-axis", "quantize_axis", 5, "axis 5 is out of range"),
        ("gbq-block-shape", "block_size", 8, "does not fit blocks of 8"),
    ] {
        let m = load_edited(
            "lowbit_tokens/tokens_q4_asym.onnx",
            "GatherBlockQuantized",
            name,
            set_attr("GatherBlockQuantized", attr, v),
        );
        let c = complaints(&m);
        assert!(c.iter().any(|x| x.contains(reason)), "{name}: {c:?}");
    }
    // MatMulNBits: zero points whose packed size lies, a reordering g_idx, blocks that do
    // not fill bytes
    let m = load_edited("lowbit/transformer_nbits3.onnx", "MatMulNBits", "zp-size", |p| {
        let g = p.graph.as_mut().unwrap();
        let zp = g.node.iter().find(|n| n.op_type == "MatMulNBits").unwrap().input[3].clone();
        let t = g.initializer.iter_mut().find(|t| t.name == zp).unwrap();
        t.raw_data.truncate(t.raw_data.len() - 3);
        t.dims = vec![i64::try_from(t.raw_data.len()).unwrap()];
    });
    assert!(complaints(&m).iter().any(|x| x.contains("zero-point bytes for N 64")), "{:?}", complaints(&m));
    // g_idx naming a block that is not there, or not one entry per row
    for (what, g_idx, reason) in [
        ("g_idx-range", (0..64).map(|i| if i == 5 { 4 } else { i % 4 }).collect::<Vec<i32>>(), "row 5 block 4"),
        ("g_idx-sign", (0..64).map(|i| if i == 9 { -1 } else { i % 4 }).collect(), "row 9 block -1"),
        ("g_idx-length", (0..63).map(|i| i % 4).collect(), "g_idx holds 63 entries for K 64"),
    ] {
        let m = load_edited("lowbit/transformer_nbits.onnx", "MatMulNBits", what, |p| {
            let g = p.graph.as_mut().unwrap();
            g.initializer.push(tract_onnx::pb::TensorProto {
                name: "g_idx".into(),
                data_type: 6,
                dims: vec![i64::try_from(g_idx.len()).unwrap()],
                int32_data: g_idx.clone(),
                ..Default::default()
            });
            let n = g.node.iter_mut().find(|n| n.op_type == "MatMulNBits").unwrap();
            n.input.resize(4, String::new());
            n.input.push("g_idx".into());
        });
        assert!(complaints(&m).iter().any(|x| x.contains(reason)), "{what}: {:?}", complaints(&m));
    }
    let m = load_edited(
        "lowbit/transformer_nbits3.onnx",
        "MatMulNBits",
        "bytes",
        set_attr("MatMulNBits", "block_size", 12),
    );
    assert!(complaints(&m).iter().any(|x| x.contains("do not fill whole bytes")), "{:?}", complaints(&m));
    // float8 with a zero point that is not 0
    let m = load_edited("lowbit/transformer_fp8.onnx", "DequantizeLinear", "fp8-zp", |p| {
        let g = p.graph.as_mut().unwrap();
        let t = g.initializer.iter_mut().find(|t| t.name == "q_proj.weight_zero_point").unwrap();
        t.raw_data = vec![0x38]; // 1.0
    });
    assert!(complaints(&m).iter().any(|x| x.contains("float8e4m3fn zero point is not 0")), "{:?}", complaints(&m));
}

#[test]
fn block_view_and_worst_block_colour() {
    let variants = load("lowbit_tokens");
    let v = variants.iter().find(|v| v.spec.path.ends_with("tokens_q4_asym.onnx")).unwrap();
    // the embedding [50, 32] in blocks of 16 along axis 1: 50 rows × 2 blocks
    let (p, t) = params(v, "word_embeddings_Q4");
    // the heatmap of its scales comes with the statistics (the report), not per frame
    let report = build_report(&variants, ReportOptions::default());
    let row = report.layers.iter().find(|l| l.variants.iter().any(|lv| lv.node.starts_with("word"))).unwrap();
    let lv = row.variants.iter().find(|lv| lv.variant == v.spec.name).unwrap();
    let scales = lv.quant.as_ref().unwrap().block_scales.clone();
    let b = quantlens::view::inspector::block_view(&t.shape, p, scales).unwrap();
    assert_eq!((b.rows, b.blocks, b.block, b.axis), (50, 2, 16, 1));
    let scales = b.scales.unwrap();
    assert_eq!((scales.rows, scales.cols), (50, 2), "under the heatmap's bound: one cell per block");
    let (lo, hi) = scales.range().unwrap();
    let abs: Vec<f32> = p.scale.iter().map(|s| s.abs()).collect();
    assert_eq!(lo, abs.iter().copied().fold(f32::INFINITY, f32::min));
    assert_eq!(hi, abs.iter().copied().fold(0.0, f32::max));
    // the towers: coloured by the worst block, neutral without a quantized weight
    let worst = lv.metrics.as_ref().unwrap().channels.as_ref().unwrap().worst[0].rmse_over_scale;
    let swatch = |own| {
        quantlens::layout::colour::block_swatch(
            quantlens::layout::ColourMetric::WorstBlock,
            "Gather",
            own,
            Some(row),
            false,
            quantlens::view::run::BlockRun::default(),
        )
    };
    let expected = quantlens::theme::Swatch::quality(quantlens::layout::colour::rmse_t(worst));
    assert_eq!(swatch(Some(lv)), expected);
    let float = row.variants.iter().find(|lv| lv.variant == "float").unwrap();
    assert_eq!(swatch(Some(float)), quantlens::theme::Swatch::NEUTRAL);
    // the report's JSON carries the worst blocks, not the heatmap
    let json = serde_json::to_value(lv.metrics.as_ref().unwrap()).unwrap();
    assert_eq!(json["channels"]["worst"].as_array().unwrap().len(), 8);
    assert!(json["channels"].get("heatmap").is_none());
}

#[test]
fn matmul_nbits_in_external_data_reads_as_in_memory() {
    use prost::Message as _;
    let src = data("lowbit/transformer_nbits_asym.onnx");
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(&src).unwrap().as_slice()).unwrap();
    let dir = std::env::temp_dir().join(format!("quantlens-nbits-external-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // every packed B into one external file, 4096-aligned as onnx writes it
    let mut blob = Vec::new();
    let mut moved = 0;
    for t in &mut proto.graph.as_mut().unwrap().initializer {
        if !t.name.ends_with("_Q4") {
            continue;
        }
        blob.resize(blob.len().next_multiple_of(4096), 0);
        let (offset, len) = (blob.len(), t.raw_data.len());
        blob.extend_from_slice(&t.raw_data);
        t.raw_data.clear();
        t.data_location = Some(1);
        for (k, v) in
            [("location", "weights.bin".to_string()), ("offset", offset.to_string()), ("length", len.to_string())]
        {
            t.external_data.push(tract_onnx::pb::StringStringEntryProto { key: k.into(), value: v });
        }
        moved += 1;
    }
    assert_eq!(moved, 6);
    std::fs::write(dir.join("weights.bin"), &blob).unwrap();
    let path = dir.join("transformer_nbits_external.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let mem = load_model(&src).unwrap();
    for access in [quantlens::model::format::Access::Map, quantlens::model::format::Access::Read] {
        let ext = quantlens::model::format::load_model_with(&path, access).unwrap();
        assert!(ext.graph.issues.is_empty(), "{:?}", ext.graph.issues);
        let (lm, le) = (
            quantlens::model::quant::find_layers(&mem.graph, &mem.topo_order),
            quantlens::model::quant::find_layers(&ext.graph, &ext.topo_order),
        );
        assert_eq!(lm.len(), le.len());
        for (a, b) in lm.iter().zip(&le) {
            let (LayerWeight::Quantized(qa), LayerWeight::Quantized(qb)) = (&a.weight, &b.weight) else { continue };
            let value = |m: &quantlens::model::Model, q: &quantlens::model::quant::QuantizedWeight| {
                common::all_values(Values::Dequantized(
                    m.graph.tensors[q.q_tensor].data.as_ref().unwrap(),
                    q.params.as_ref().unwrap(),
                ))
            };
            assert_eq!(value(&mem, qa), value(&ext, qb), "{}", mem.graph.tensors[qa.q_tensor].name);
        }
    }
    // a range past the end of its file: a reason, no panic
    std::fs::write(dir.join("weights.bin"), &blob[..blob.len() / 2]).unwrap();
    let m = load_model(&path).unwrap();
    assert!(m.graph.issues.iter().any(|i| i.to_string().contains("past the end")), "{:?}", m.graph.issues);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn matmul_nbits_read_in_stored_order_holds_the_same_values() {
    let variants = load("lowbit");
    let mut checked = 0;
    for v in variants.iter().filter(|v| v.spec.path.to_string_lossy().contains("nbits") || v.spec.name.contains("hqq"))
    {
        for l in &v.layers {
            let LayerWeight::Quantized(q) = &l.weight else { continue };
            let (t, p) = (v.model.graph.tensors[q.q_tensor].data.as_ref().unwrap(), q.params.as_ref().unwrap());
            let ordered = Values::Dequantized(t, p);
            let stored = ordered.any_order();
            assert!(matches!(stored, Values::DequantizedStored(..)), "{}", v.spec.name);
            let sorted = |vals: Values<'_>| {
                let mut x = common::all_values(vals);
                x.sort_by(f32::total_cmp);
                x
            };
            assert_eq!(sorted(ordered), sorted(stored), "{} {}", v.spec.name, l.node);
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 9, "6 MatMulNBits weights in each of the 9 MatMulNBits variants");
}

#[test]
fn float8_activations_represent_plus_minus_the_largest_value() {
    let m = load_model(&data("lowbit/transformer_fp8.onnx")).unwrap();
    let layers = quantlens::model::quant::find_layers(&m.graph, &m.topo_order);
    let q_proj = layers.iter().find(|l| m.graph.nodes[l.node].name == "q_proj").unwrap();
    let acts = quantlens::model::layer_activations(&m.graph, q_proj.node);
    assert!(!acts.is_empty());
    for a in acts {
        assert_eq!(a.dtype, quantlens::model::DType::Float8E4M3FN, "{}", a.tensor);
        assert_eq!(a.zero_point, 0);
        let (lo, hi) = a.range().unwrap();
        let expected = 448.0 * f64::from(a.scale);
        assert_eq!((lo, hi), (-expected, expected), "{}", a.tensor);
    }
}

#[test]
fn the_gate_checks_the_worst_block() {
    let dir = data("lowbit_tokens");
    let dir = dir.to_str().unwrap();
    // the worst block of every weight is well within 1.0 (rounding alone is 0.289)
    let (code, _, err) = common::cli(&["check", dir, "--max-block-rmse-scale", "1.0"]);
    assert_eq!(code, 0, "{err}");
    // at 0.35 some blocks fail, each named by its row and block
    let (code, out, _) = common::cli(&["check", dir, "--max-block-rmse-scale", "0.35"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| l.contains(" row ") && l.contains(" block ") && l.contains("block_rmse_over_scale")),
        "{out}"
    );
    // the tensor's own rmse/scale stays below it: only the block gate sees them
    let (code, _, _) = common::cli(&["check", dir, "--max-rmse-scale", "0.35"]);
    assert_eq!(code, 0);
}

#[test]
fn blocked_int8_and_int16_read_like_int4() {
    // the int4 fixture's blocked weights rewritten as int8 and int16 (same values, same
    // block scales): each dequantizes to the int4 file's values exactly
    use prost::Message as _;
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("lowbit_golden.json")).unwrap()).unwrap();
    let src = std::fs::read(data("lowbit/transformer_int4.onnx")).unwrap();
    let dir = std::env::temp_dir().join(format!("quantlens-blocked-wide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (code, width) in [(3, 1usize), (5, 2)] {
        let mut proto = tract_onnx::pb::ModelProto::decode(src.as_slice()).unwrap();
        for t in &mut proto.graph.as_mut().unwrap().initializer {
            if t.data_type != 22 {
                continue; // int4 only
            }
            let n: usize = t.dims.iter().product::<i64>() as usize;
            let nibble = |i: usize| {
                let b = t.raw_data[i / 2];
                let v = if i.is_multiple_of(2) { b & 0x0f } else { b >> 4 };
                i16::from((v << 4).cast_signed() >> 4)
            };
            let values: Vec<i16> = (0..n).map(nibble).collect();
            t.raw_data = values
                .iter()
                .flat_map(|&v| if width == 1 { vec![v as u8] } else { v.to_le_bytes().to_vec() })
                .collect();
            t.data_type = code;
        }
        let path = dir.join(format!("wide_{code}.onnx"));
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        let spec = quantlens::model::VariantSpec {
            name: "wide".into(),
            kind: quantlens::model::VariantKind::Int8,
            path: path.clone(),
        };
        let v = quantlens::model::variants::load_variants(&[spec]).pop().unwrap().unwrap();
        let mut checked = 0;
        for (qname, g) in golden["int4"].as_object().unwrap() {
            let (p, t) = params(&v, qname);
            assert_eq!(p.dtype.name(), if code == 3 { "int8" } else { "int16" });
            assert_eq!(p.block, Some(32));
            let values = common::all_values(Values::Dequantized(t, p));
            assert_eq!(fnv1a64(&values), g["fnv1a64"].as_str().unwrap(), "{qname} as type {code}");
            checked += 1;
        }
        assert_eq!(checked, 6);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn act_order_g_idx_groups_rows_and_warns_where_onnxruntime_differs() {
    // (values bit for bit and the worst group are checked against numpy with the others)
    let variants = load("lowbit");
    for (stem, warned) in [("transformer_nbits_actorder", false), ("transformer_nbits_actorder_asym", true)] {
        let v = variants.iter().find(|v| v.spec.path.file_stem().is_some_and(|s| s == stem)).unwrap();
        let mut layers = 0;
        for l in &v.layers {
            let LayerWeight::Quantized(q) = &l.weight else { continue };
            let p = q.params.as_ref().unwrap();
            let g = p.groups.as_ref().unwrap_or_else(|| panic!("{stem}: no groups"));
            let t = v.model.graph.tensors[q.q_tensor].data.as_ref().unwrap();
            let (k, block) = (t.shape[0] as usize, p.block.unwrap());
            // every group holds `block` rows (the last may be short), not by position
            let mut sizes = vec![0usize; k.div_ceil(block)];
            for &b in g {
                sizes[b as usize] += 1;
            }
            assert!(sizes.iter().all(|&s| s == block.min(k)), "{stem}: {sizes:?}");
            assert!(g.iter().enumerate().any(|(i, &b)| b as usize != i / block));
            assert!(quantlens::view::inspector::quant_summary(p).contains("act-order"));
            layers += 1;
        }
        assert_eq!(layers, 6, "{stem}");
        let notes = v.model.graph.issues.iter().filter(|i| i.message.contains("ignores such zero points")).count();
        assert_eq!(notes, if warned { 6 } else { 0 }, "{stem}");
    }
}
