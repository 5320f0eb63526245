//! Activation shapes and dtypes inferred by quantlens equal those of onnx's own shape
//! inference (`tests/data/shapes_golden.json`, `scripts/make_shape_golden.py`): the
//! float and QDQ fixtures declare no `value_info`, so their shapes here were all inferred.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use quantlens::model::graph::{Dim, TensorKind};

#[test]
fn inferred_activation_shapes_equal_onnx_shape_inference() {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::data("shapes_golden.json")).unwrap()).unwrap();
    let mut total = 0;
    for (rel, shapes) in golden.as_object().unwrap() {
        let model = quantlens::model::load_model(&common::data(rel)).unwrap();
        let g = &model.graph;
        let mut checked = 0;
        for (name, expected) in shapes.as_object().unwrap() {
            let t = g.tensor(g.tensor_by_name(name).unwrap_or_else(|| panic!("{rel}: no tensor {name}"))).unwrap();
            assert_eq!(t.kind, TensorKind::Activation, "{rel}: {name}");
            let dims: Vec<Dim> =
                expected["shape"].as_array().unwrap().iter().map(|d| Dim::Known(d.as_u64().unwrap())).collect();
            assert_eq!(t.shape.as_ref(), Some(&dims), "{rel}: shape of {name}");
            assert_eq!(
                t.dtype.map(quantlens::model::DType::name).as_deref(),
                expected["dtype"].as_str(),
                "{rel}: dtype of {name}"
            );
            checked += 1;
        }
        assert!(checked >= 5, "{rel}: only {checked} shapes compared");
        total += checked;
    }
    assert!(total >= 500, "{total} shapes compared");
}

#[test]
fn qoperator_activations_get_shapes_too() {
    // com.microsoft ops (QLinearAdd, QLinearGlobalAveragePool, QGemm) are beyond onnx's
    // inference; every activation feeding a known op still gets a shape here
    let model = quantlens::model::load_model(&common::data("qoperator/resnet8_qoperator_int8.onnx")).unwrap();
    let g = &model.graph;
    let conv = g.nodes.iter().find(|n| n.op_type == "QLinearConv" && n.name.starts_with("s2_conv1")).unwrap();
    let out = g.tensor(conv.outputs[0]).unwrap();
    assert_eq!(out.shape, Some(vec![Dim::Known(1), Dim::Known(32), Dim::Known(16), Dim::Known(16)]));
    assert_eq!(out.dtype.map(quantlens::model::DType::name).as_deref(), Some("int8"));
}
