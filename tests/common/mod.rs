//! Shared helpers for the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures
#![allow(dead_code)]

use std::path::PathBuf;

use quantlens::model::quant::QuantParams;
use quantlens::model::variants::{Variant, discover, load_variant, load_variants};
use quantlens::model::{LayerWeight, TensorData, VariantKind, VariantSpec};
use quantlens::stats::Values;

/// Runs the quantlens binary: `(exit code, stdout, stderr)`.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quantlens")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tests/data/<rel>`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// Loads every variant of a folder (or file) under `tests/data`, all of which must load.
pub fn load(rel: &str) -> Vec<Variant> {
    let specs = discover(&data(rel)).unwrap();
    load_variants(&specs).into_iter().map(Result::unwrap).collect()
}

/// The golden values written by `scripts/make_fixtures.py`.
pub fn golden() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("golden.json")).unwrap()).unwrap()
}

/// Relative closeness with a tiny absolute floor (for values near zero).
#[track_caller]
pub fn close(actual: f64, expected: f64, rel: f64, what: &str) {
    let tol = rel * actual.abs().max(expected.abs()) + 1e-9;
    assert!((actual - expected).abs() <= tol, "{what}: got {actual}, expected {expected} (tol {tol})");
}

/// The JSON value as f64 list.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Loads one file under `tests/data` as a variant named `q`.
pub fn load_file(rel: &str) -> Variant {
    load_variant(
        &VariantSpec { name: "q".into(), kind: VariantKind::Other, path: data(rel) },
        quantlens::model::Access::Read,
    )
    .unwrap()
}

/// The quant params and integer tensor of the layer whose quantized weight is `weight_q`.
pub fn params<'a>(v: &'a Variant, weight_q: &str) -> (&'a QuantParams, &'a TensorData) {
    let g = &v.model.graph;
    for l in &v.layers {
        if let LayerWeight::Quantized(q) = &l.weight
            && g.tensors[q.q_tensor].name == weight_q
        {
            return (q.params.as_ref().unwrap(), g.tensors[q.q_tensor].data.as_ref().unwrap());
        }
    }
    panic!("no layer with quantized weight {weight_q} in {}", v.spec.name)
}

/// The first `n` values (first chunk) of a value source.
pub fn first_values(values: Values<'_>, n: usize) -> Vec<f64> {
    let mut r = values.reader().unwrap();
    let mut buf = Vec::new();
    r.next_chunk(&mut buf).unwrap();
    buf.iter().take(n).map(|&v| f64::from(v)).collect()
}

/// All values of a value source.
pub fn all_values(values: Values<'_>) -> Vec<f32> {
    let mut r = values.reader().unwrap();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.next_chunk(&mut buf).unwrap().is_some() {
        out.extend_from_slice(&buf);
    }
    out
}

/// An SQNR of ours against onnxruntime's: within 0.5 dB, or both past 100 dB (a tensor
/// reproduced next to exactly: the number is then ε's, not the tensor's).
#[track_caller]
pub fn assert_db_close(ours: f64, theirs: f64, what: &str) {
    if theirs > 100.0 {
        assert!(ours > 100.0, "{what}: {ours} vs {theirs}");
    } else {
        assert!((ours - theirs).abs() < 0.5, "{what}: {ours} vs {theirs}");
    }
}
