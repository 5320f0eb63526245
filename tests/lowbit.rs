//! Blocked low-bit weights from onnxruntime's `MatMulNBitsQuantizer`, in its QDQ form
//! (opset 21 `DequantizeLinear` with `block_size`: int4 symmetric block 32, uint4
//! asymmetric block 16) and its `QOperator` form (`MatMulNBits`: symmetric block 16 with the
//! implied midpoint, asymmetric block 32 with packed zero points), all from
//! `scripts/make_lowbit_fixtures.py`, read exactly against numpy's dequantization
//! (`lowbit_golden.json`, `MatMulNBits` in the float `MatMul`'s `[K, N]` orientation); and
//! blocked parameters that do not fit refused with a reason.
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
fn blocked_weights_dequantize_as_numpy_does() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("lowbit_golden.json")).unwrap()).unwrap();
    let variants = load("lowbit");
    let report = build_report(&variants, ReportOptions::default());
    let mut checked = 0;
    for (variant, weights) in golden.as_object().unwrap() {
        let v = variants
            .iter()
            .find(|v| &v.spec.name == variant || v.spec.name == format!("transformer_{variant}"))
            .unwrap_or_else(|| panic!("no variant {variant}"));
        for (qname, g) in weights.as_object().unwrap() {
            let (p, t) = params(v, qname);
            let block = if variant == "int4" || variant == "nbits_asym" { 32 } else { 16 };
            assert_eq!((p.block, p.axis), (Some(block), Some(0)), "{variant} {qname}");
            assert_eq!(p.scale.len() as u64, t.shape[0].div_ceil(block as u64) * t.shape[1]);
            let values = common::all_values(Values::Dequantized(t, p));
            assert_eq!(values.len() as u64, g["count"].as_u64().unwrap());
            assert_eq!(fnv1a64(&values), g["fnv1a64"].as_str().unwrap(), "{variant} {qname}: bit for bit");
            // statistics and SQNR through the report, as every variant gets them
            let float = g["float"].as_str().unwrap();
            let row = report
                .layers
                .iter()
                .find(|l| l.variants.iter().any(|lv| lv.initializers.iter().any(|i| i.name == *qname)))
                .unwrap_or_else(|| panic!("no row for {qname} ({float})"));
            let lv = row.variants.iter().find(|lv| lv.variant == v.spec.name).unwrap();
            // `q_proj_matmul_Q4` stands on `q_proj`'s row by its name
            assert_eq!(lv.matched_by, quantlens::model::MatchHow::NodeName, "{}", lv.node);
            let s = lv.stats.as_ref().unwrap();
            assert_eq!((s.min, s.max), (g["min"].as_f64().unwrap(), g["max"].as_f64().unwrap()));
            common::close(s.mean, g["mean"].as_f64().unwrap(), 1e-9, "mean");
            let m = lv.metrics.as_ref().unwrap();
            assert!((m.sqnr_db - g["sqnr_db"].as_f64().unwrap()).abs() < 0.01, "{qname}: {}", m.sqnr_db);
            // rounding to 4 bits in blocks: the error is the rounding's (rmse/scale ≈ 0.29)
            let r = m.rmse_over_scale.unwrap();
            assert!((0.2..0.4).contains(&r), "{qname}: rmse/scale {r}");
            checked += 1;
        }
    }
    assert_eq!(checked, 24, "6 MatMul weights in each of the four variants");
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
        [(1000, "does not fit axis 0 of length 64"), (-4, "does not fit"), (16, "scale shape [2, 64]")]
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
        ("bits", 3, "3-bit weights are not read yet"),
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
