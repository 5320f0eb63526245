//! Shared helpers for the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures
#![allow(dead_code)]

use std::path::PathBuf;

use quantlens::model::variants::{Variant, discover, load_variants};

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
