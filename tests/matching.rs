//! Layer matching across variants: by node name, by the weight traced back to its
//! initializer, and by structure when an export shares no name with the float model.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use common::{data, load};
use prost::Message as _;
use quantlens::model::variants::load_variants;
use quantlens::model::{MatchHow, VariantKind, VariantSpec};
use quantlens::report::{Report, ReportOptions, build_report};
use tract_onnx::pb;

fn spec(name: &str, kind: VariantKind, rel: &str) -> VariantSpec {
    VariantSpec { name: name.into(), kind, path: data(rel) }
}

fn report(specs: &[VariantSpec]) -> Report {
    let variants: Vec<_> = load_variants(specs).into_iter().map(Result::unwrap).collect();
    build_report(&variants, ReportOptions::default())
}

/// `(layer, variant) → (node, matched_by, sqnr)`.
fn cell<'a>(r: &'a Report, layer: &str, variant: &str) -> Option<(&'a str, MatchHow, Option<f64>)> {
    let l = r.layers.iter().find(|l| l.layer == layer)?;
    let v = l.variants.iter().find(|v| v.variant == variant)?;
    Some((v.node.as_str(), v.matched_by, v.metrics.as_ref().map(|m| m.sqnr_db)))
}

fn float_layers(r: &Report) -> Vec<String> {
    r.layers.iter().filter(|l| l.variants.iter().any(|v| v.variant == "float")).map(|l| l.layer.clone()).collect()
}

#[test]
fn qdq_fixtures_match_every_layer_by_name() {
    for folder in ["resnet8", "transformer"] {
        let variants = load(folder);
        let r = build_report(&variants, ReportOptions::default());
        assert_eq!(r.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["float", "int8", "uint8"]);
        let n_float = variants[0].layers.len();
        assert!(n_float >= 9, "{folder}: {n_float} layers");
        assert_eq!(r.layers.len(), n_float, "{folder}: no unmatched rows");
        for l in &r.layers {
            assert_eq!(l.variants.len(), 3, "{folder}/{}: all three variants", l.layer);
            for v in &l.variants[1..] {
                assert_eq!(v.matched_by, MatchHow::NodeName, "{folder}/{}/{}", l.layer, v.variant);
                assert_eq!(v.node, l.layer);
                let m = v.metrics.as_ref().unwrap();
                let sqnr = m.sqnr_db;
                if m.max_abs == 0.0 {
                    // exactly representable (qk_scale, a power of two): the ε clamp's 301 dB
                    assert!(sqnr > 300.0, "{folder}/{}/{}: {sqnr} dB", l.layer, v.variant);
                } else {
                    assert!((25.0..80.0).contains(&sqnr), "{folder}/{}/{}: {sqnr} dB", l.layer, v.variant);
                }
            }
        }
    }
}

#[test]
fn qoperator_files_match_the_float_layers() {
    let r = report(&[
        spec("float", VariantKind::Float, "resnet8/resnet8_float.onnx"),
        spec("qop", VariantKind::Int8, "qoperator/resnet8_qoperator_int8.onnx"),
        spec("dyn", VariantKind::Uint8, "qoperator/resnet8_dynamic_uint8.onnx"),
    ]);
    let layers = float_layers(&r);
    assert_eq!(layers.len(), 10, "{layers:?}");
    for layer in layers.iter().filter(|l| l.as_str() != "fc") {
        let (node, how, sqnr) = cell(&r, layer, "qop").unwrap();
        assert_eq!((node, how), (format!("{layer}_quant").as_str(), MatchHow::NodeName));
        assert!(sqnr.unwrap() > 35.0, "{layer}: QLinearConv {sqnr:?}");
        let (node, how, sqnr) = cell(&r, layer, "dyn").unwrap();
        assert_eq!((node, how), (format!("{layer}_quant").as_str(), MatchHow::NodeName));
        assert!(sqnr.unwrap() > 35.0, "{layer}: ConvInteger {sqnr:?}");
    }
    // Gemm(transB) in float, QGemm in QOperator, MatMulInteger with a [K, N] weight in dynamic
    let (node, how, sqnr) = cell(&r, "fc", "qop").unwrap();
    assert_eq!((node, how), ("fc_quant", MatchHow::NodeName));
    assert!(sqnr.unwrap() > 35.0, "QGemm {sqnr:?}");
    let (_, how, sqnr) = cell(&r, "fc", "dyn").unwrap();
    assert_eq!(how, MatchHow::WeightTrace);
    assert!(sqnr.unwrap() > 35.0, "transposed MatMulInteger weight compared in the float layout: {sqnr:?}");
    // QLinearAdd & co. carry only scales: they are not layers
    assert!(r.layers.iter().all(|l| !l.variants.iter().any(|v| v.op.starts_with("QLinearAdd"))));
}

#[test]
fn dynamic_transformer_matches_by_name() {
    let r = report(&[
        spec("float", VariantKind::Float, "transformer/transformer_float.onnx"),
        spec("dyn", VariantKind::Uint8, "qoperator/transformer_dynamic_uint8.onnx"),
    ]);
    for layer in ["q_proj", "k_proj", "v_proj", "out_proj", "mlp_fc1", "mlp_fc2"] {
        let (node, how, sqnr) = cell(&r, layer, "dyn").unwrap();
        assert_eq!((node, how), (format!("{layer}_quant").as_str(), MatchHow::NodeName));
        assert!((35.0..60.0).contains(&sqnr.unwrap()), "{layer}: {sqnr:?}");
    }
}

#[test]
fn renamed_export_matches_by_structure_with_the_same_numbers() {
    let by_name = build_report(&load("resnet8"), ReportOptions::default());
    let renamed = build_report(&load("edge/renamed"), ReportOptions::default());
    assert_eq!(renamed.layers.len(), by_name.layers.len(), "no unmatched rows");
    for l in &by_name.layers {
        let (_, _, expected) = cell(&by_name, &l.layer, "int8").unwrap();
        let (node, how, sqnr) = cell(&renamed, &l.layer, "int8").unwrap();
        assert_eq!(how, MatchHow::Structure, "{}", l.layer);
        assert!(node.starts_with('n'), "{node}");
        assert_eq!(sqnr, expected, "{}: paired with the right layer", l.layer);
    }
}

#[test]
fn node_names_differ_but_weights_trace_back() {
    // The int8 file with every node renamed but tensor names kept: the quantized
    // initializer `W_quantized` traced from each layer names the float weight `W`.
    let bytes = std::fs::read(data("resnet8/resnet8_int8.onnx")).unwrap();
    let mut proto = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    for (i, n) in proto.graph.as_mut().unwrap().node.iter_mut().enumerate() {
        n.name = format!("exported_{i}");
    }
    let dir = std::env::temp_dir().join(format!("quantlens-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other_int8.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let specs = [
        spec("float", VariantKind::Float, "resnet8/resnet8_float.onnx"),
        VariantSpec { name: "int8".into(), kind: VariantKind::Int8, path: path.clone() },
    ];
    let r = report(&specs);
    let by_name = build_report(&load("resnet8"), ReportOptions::default());
    assert_eq!(r.layers.len(), by_name.layers.len());
    for l in &by_name.layers {
        let (node, how, sqnr) = cell(&r, &l.layer, "int8").unwrap();
        assert_eq!(how, MatchHow::WeightTrace, "{}", l.layer);
        assert!(node.starts_with("exported_"));
        assert_eq!(sqnr, cell(&by_name, &l.layer, "int8").unwrap().2);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unmatched_layers_are_listed_not_dropped() {
    // float transformer against the int8 resnet: nothing in common but some MatMul sizes
    let r = report(&[
        spec("float", VariantKind::Float, "transformer/transformer_float.onnx"),
        spec("int8", VariantKind::Int8, "resnet8/resnet8_int8.onnx"),
    ]);
    let resnet_layers = load("resnet8")[1].layers.len();
    let listed: usize = r.layers.iter().flat_map(|l| &l.variants).filter(|v| v.variant == "int8").count();
    assert_eq!(listed, resnet_layers, "every int8 layer appears once");
    let unmatched = r.layers.iter().flat_map(|l| &l.variants).filter(|v| v.matched_by == MatchHow::Unmatched).count();
    assert!(unmatched >= resnet_layers - 1, "{unmatched}");
}
