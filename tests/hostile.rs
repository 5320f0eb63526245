//! Hostile and pathological graphs built in code: deep chains, cycles, absurd shapes,
//! external-data paths that try to leave the model folder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

use std::path::Path;

use prost::Message;
use quantlens::model::ImportError;
use quantlens::model::onnx::model_from_bytes;
use quantlens::model::quant::find_layers;
use quantlens::model::{Severity, load_model};
use tract_onnx::pb;

fn tensor_f32(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(ToString::to_string).collect(),
        output: outputs.iter().map(ToString::to_string).collect(),
        ..Default::default()
    }
}

fn model(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(pb::GraphProto { node: nodes, initializer: inits, name: "g".into(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn chain_of_20000_nodes_does_not_overflow_the_stack() {
    let n = 20_000;
    let mut nodes = Vec::with_capacity(n);
    let mut inits = Vec::new();
    for i in 0..n {
        let input = if i == 0 { "x".to_string() } else { format!("t{}", i - 1) };
        let out = format!("t{i}");
        if i % 1000 == 0 {
            let w = format!("w{i}");
            inits.push(tensor_f32(&w, &[2, 2], &[1.0, 0.0, 0.0, 1.0]));
            nodes.push(node("MatMul", &format!("mm{i}"), &[&input, &w], &[&out]));
        } else {
            nodes.push(node("Relu", &format!("relu{i}"), &[&input], &[&out]));
        }
    }
    let bytes = model(nodes, inits).encode_to_vec();
    // run on a small stack, as a UI task would
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let m = model_from_bytes(&bytes, Path::new("chain.onnx")).unwrap();
            let layers = find_layers(&m.graph, &m.topo_order);
            (m.graph.len(), m.graph.max_depth(), layers.len(), m.topo_order.len())
        })
        .unwrap();
    let (nodes, depth, layers, order) = handle.join().unwrap();
    assert_eq!(nodes, 20_000);
    assert_eq!(depth, 19_999);
    assert_eq!(layers, 20);
    assert_eq!(order, 20_000);
}

#[test]
fn cycle_is_reported_and_the_rest_still_ordered() {
    let nodes = vec![
        node("Relu", "ok", &["x"], &["y"]),
        node("Add", "a", &["y", "c"], &["b"]),
        node("Relu", "c_node", &["b"], &["c"]),
    ];
    let m = model_from_bytes(&model(nodes, vec![]).encode_to_vec(), Path::new("cyc.onnx")).unwrap();
    assert_eq!(m.topo_order.len(), 3);
    let cyc: Vec<bool> = m.graph.nodes.iter().map(|n| n.in_cycle).collect();
    assert_eq!(cyc, vec![false, true, true]);
    let issue = m.graph.issues.iter().find(|i| i.message.contains("cycle")).unwrap();
    assert_eq!(issue.severity, Severity::Error);
    assert!(issue.message.contains("2 node(s)"), "{issue}");
}

#[test]
fn absurd_dims_are_refused_without_allocating() {
    let t = pb::TensorProto {
        name: "huge".into(),
        dims: vec![1 << 40, 1 << 40],
        data_type: 1,
        raw_data: vec![0; 16],
        ..Default::default()
    };
    let t2 = pb::TensorProto { name: "neg".into(), dims: vec![-3, 4], data_type: 1, ..Default::default() };
    let t3 = pb::TensorProto { name: "big".into(), dims: vec![1 << 20, 1 << 20], data_type: 1, ..Default::default() };
    let nodes = vec![node("MatMul", "mm", &["x", "huge"], &["y"]), node("Add", "add", &["y", "neg"], &["z"])];
    let m = model_from_bytes(&model(nodes, vec![t, t2, t3]).encode_to_vec(), Path::new("h.onnx")).unwrap();
    let msgs: Vec<String> = m.graph.issues.iter().map(ToString::to_string).collect();
    assert!(msgs.iter().any(|m| m.contains("huge") && m.contains("overflows")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("neg") && m.contains("negative dimension")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("big") && m.contains("needs 4398046511104")), "{msgs:?}");
    assert!(m.graph.tensors.iter().all(|t| t.data.is_none()));
}

fn external(name: &str, location: &str) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![2],
        data_type: 1,
        data_location: Some(1),
        external_data: vec![pb::StringStringEntryProto { key: "location".into(), value: location.into() }],
        ..Default::default()
    }
}

#[test]
fn external_paths_cannot_leave_the_model_folder() {
    let dir = std::env::temp_dir().join(format!("quantlens-ext-{}", std::process::id()));
    let inner = dir.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(dir.join("secret.bin"), [0u8; 8]).unwrap();
    std::fs::write(inner.join("ok.bin"), 1.5f32.to_le_bytes().repeat(2)).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("secret.bin"), inner.join("link.bin")).unwrap();
    let inits = vec![
        external("dotdot", "../secret.bin"),
        external("absolute", &dir.join("secret.bin").display().to_string()),
        external("link", "link.bin"),
        external("missing", "nowhere.bin"),
        external("good", "ok.bin"),
    ];
    let nodes = vec![node("Add", "a", &["dotdot", "absolute"], &["s"]), node("Add", "b", &["link", "good"], &["t"])];
    let path = inner.join("m.onnx");
    std::fs::write(&path, model(nodes, inits).encode_to_vec()).unwrap();
    let m = load_model(&path).unwrap();
    let msg =
        |name: &str| m.graph.issues.iter().find(|i| i.subject == name).map(|i| i.message.clone()).unwrap_or_default();
    assert!(msg("dotdot").contains("leaves the model folder"), "{}", msg("dotdot"));
    assert!(msg("absolute").contains("absolute"), "{}", msg("absolute"));
    #[cfg(unix)]
    assert!(msg("link").contains("outside the model folder"), "{}", msg("link"));
    assert!(msg("missing").contains("cannot be read"), "{}", msg("missing"));
    let good = &m.graph.tensors[m.graph.tensor_by_name("good").unwrap()];
    assert_eq!(good.data.as_ref().unwrap().to_f32_vec().unwrap(), vec![1.5, 1.5]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_graph_and_empty_graph_are_errors() {
    // A default ModelProto encodes to zero bytes: give it a field so it is a real, graph-less model.
    let none = pb::ModelProto { ir_version: 8, producer_name: "x".into(), ..Default::default() }.encode_to_vec();
    assert!(!none.is_empty());
    assert!(matches!(model_from_bytes(&none, Path::new("a.onnx")), Err(ImportError::NoGraph(_))));
    assert!(matches!(model_from_bytes(&[], Path::new("e.onnx")), Err(ImportError::Empty(_))));
    let empty = model(vec![], vec![]).encode_to_vec();
    assert!(matches!(model_from_bytes(&empty, Path::new("b.onnx")), Err(ImportError::EmptyGraph(_))));
    let garbage = b"this is not a protobuf at all \xff\xff\xff\xff";
    let err = model_from_bytes(garbage, Path::new("c.onnx")).unwrap_err();
    assert!(err.to_string().contains("c.onnx"), "{err}");
}
