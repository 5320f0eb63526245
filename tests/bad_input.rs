//! Every class of bad input yields a clear message naming the file, a non-zero exit code
//! from the CLI, and never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use common::{cli, data};
use quantlens::model::{Severity, load_model};

#[track_caller]
fn fatal(rel: &str, needle: &str) {
    let path = data(rel);
    let err = load_model(&path).unwrap_err().to_string();
    assert!(err.contains(needle), "{rel}: {err}");
    assert!(err.contains(&path.display().to_string()), "message names the file: {err}");
    let (code, _, stderr) = cli(&["report", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{rel}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains(needle) && lines[0].contains("error"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn fatal_inputs_fail_with_one_line() {
    fatal("broken/empty.onnx", "file is empty");
    fatal("broken/not_protobuf.onnx", "not an ONNX model");
    fatal("broken/truncated.onnx", "not an ONNX model");
    fatal("broken/empty_graph.onnx", "graph is empty");
}

#[test]
fn bad_arguments_exit_with_1_not_the_data_error_code() {
    let folder = data("resnet8");
    for bins in ["0", "4097", "lots"] {
        let (code, stdout, stderr) = cli(&["report", folder.to_str().unwrap(), "--bins", bins]);
        assert_eq!(code, 1, "--bins {bins}: {stderr}");
        assert!(stdout.is_empty() && stderr.contains("bins"), "{stderr}");
    }
    let (code, stdout, _) = cli(&["report", folder.to_str().unwrap(), "--bins", "4096", "--format", "json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let counts = &report["layers"][0]["histogram"]["counts"][0];
    assert_eq!(counts.as_array().unwrap().len(), 4096);
    let (code, stdout, _) = cli(&["--help"]);
    assert!(code == 0 && stdout.contains("report"));
}

#[track_caller]
fn per_tensor(rel: &str, subject_has: &str, needle: &str, severity: Severity) {
    let path = data(rel);
    let m = load_model(&path).unwrap_or_else(|e| panic!("{rel} should still load: {e}"));
    let issue = m
        .graph
        .issues
        .iter()
        .find(|i| i.message.contains(needle))
        .unwrap_or_else(|| panic!("{rel}: no issue with {needle:?} in {:?}", m.graph.issues));
    assert!(issue.subject.contains(subject_has), "{rel}: {issue}");
    assert_eq!(issue.severity, severity, "{rel}: {issue}");
    let (code, stdout, stderr) = cli(&["report", path.to_str().unwrap()]);
    assert_eq!(code, if severity == Severity::Error { 2 } else { 0 }, "{rel}: {stderr}");
    assert!(stderr.contains(needle) && stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stdout.contains("LAYER"), "the report is still printed: {stdout}");
}

#[test]
fn per_tensor_problems_keep_the_rest_loaded() {
    per_tensor("broken/raw_size_mismatch.onnx", "", "needs", Severity::Error);
    per_tensor("broken/huge_dims.onnx", "", "overflows", Severity::Error);
    per_tensor("broken/unknown_dtype.onnx", "", "unsupported data type 999", Severity::Error);
    per_tensor("broken/escape_external.onnx", "", "leaves the model folder; refused", Severity::Error);
    per_tensor("broken/absolute_external.onnx", "", "is absolute; refused", Severity::Error);
    per_tensor("broken/missing_external.onnx", "", "cannot be read", Severity::Error);
    per_tensor("broken/cycle.onnx", "", "cycle", Severity::Error);
}

#[test]
fn unknown_dtype_leaves_the_valid_layer_usable() {
    let m = load_model(&data("broken/unknown_dtype.onnx")).unwrap();
    let layers = quantlens::model::quant::find_layers(&m.graph, &m.topo_order);
    assert!(!layers.is_empty(), "the valid MatMul weight still loads");
}

#[test]
fn folder_without_onnx_and_missing_paths() {
    let dir = std::env::temp_dir().join(format!("quantlens-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, _, stderr) = cli(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no model file (.onnx, .pt, .pth) in folder"), "{stderr}");
    let (code, _, stderr) = cli(&["report", "/nonexistent/quantlens/x.onnx"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/quantlens/x.onnx"), "{stderr}");
    let (code, _, stderr) = cli(&["report", "--variant", "no-equals-sign"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("NAME=PATH"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nan_and_inf_are_counted_not_fatal() {
    let (code, stdout, _) = cli(&["report", data("edge/nan_inf.onnx").to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let stats = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["variants"].as_array().unwrap())
        .find_map(|lv| lv["stats"].as_object().filter(|s| s["nan"].as_u64() == Some(3)).cloned())
        .expect("a layer with 3 NaN");
    assert_eq!(stats["inf"].as_u64(), Some(3));
}

#[test]
fn report_output_never_overwrites_an_input_model() {
    let src = data("resnet8/resnet8_float.onnx");
    let dir = std::env::temp_dir().join(format!("quantlens-ow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m_float.onnx");
    std::fs::copy(&src, &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let (code, _, stderr) = cli(&["report", dir.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let out = dir.join("r.csv");
    let (code, _, _) = cli(&["report", dir.to_str().unwrap(), "--format", "csv", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("layer,op,depth,variant"));
    std::fs::remove_dir_all(&dir).unwrap();
}
