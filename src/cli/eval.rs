//! `quantlens eval` (accuracy of every variant on labelled data) and `sensitivity` (each
//! layer kept in float alone).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use quantlens::infer::{
    InferError, InputSpec, Progress, SampleStream, evaluate, labelled_samples, quick_set, samples as make_samples,
    sensitivity as sweep,
};
use quantlens::report::reference_index;

use super::{EXIT_DATA_ERRORS, EXIT_FAILED, Input, TableOrJson, load};

/// Evaluates on `n` samples (stratified by class; all when `n` is at least their number).
pub fn run(input: &Input, data: &InputSpec, n: usize, format: TableOrJson, dims: &HashMap<String, usize>) -> ExitCode {
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let reference = reference_index(&variants);
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return ExitCode::from(EXIT_FAILED) };
    let (samples, labels) = match quick(graph, data, n, dims) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (eval, failures) = evaluate(&variants, reference, samples, &labels, &Progress::default());
    for f in &failures {
        eprintln!("quantlens: error: {f}");
    }
    match format {
        TableOrJson::Json => println!("{:#}", serde_json::json!(eval)),
        TableOrJson::Table => {
            let mut out = format!(
                "{} samples\n{:<10} {:>7} {:>17} {:>7} {:>10}\n",
                eval.samples, "VARIANT", "TOP-1", "95% CI", "TOP-5", "AGREEMENT"
            );
            for (name, a) in &eval.variants {
                let pct = |v: f64| format!("{:.1}%", 100.0 * v);
                let _ = writeln!(
                    out,
                    "{name:<10} {:>7} {:>17} {:>7} {:>10}",
                    pct(a.top1),
                    format!("{}–{}", pct(a.top1_ci95[0]), pct(a.top1_ci95[1])),
                    a.top5.map_or_else(|| "–".into(), pct),
                    a.agreement_with_float.map_or_else(|| "–".into(), pct)
                );
            }
            print!("{out}");
        }
    }
    if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DATA_ERRORS) }
}

/// Up to `n` labelled samples of `data`, stratified by class (read as they are run), and
/// their labels in the same order.
fn quick(
    graph: &quantlens::model::Graph,
    data: &InputSpec,
    n: usize,
    dims: &HashMap<String, usize>,
) -> Result<(SampleStream, Vec<i64>), InferError> {
    let (samples, labels) = labelled_samples(graph, data, dims)?;
    Ok(quick_set(samples, labels, n))
}

/// `quantlens sensitivity`.
pub fn sensitivity(
    input: &Input,
    data: Option<&InputSpec>,
    spec: &InputSpec,
    n: usize,
    format: TableOrJson,
    dims: &HashMap<String, usize>,
) -> ExitCode {
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let reference = reference_index(&variants);
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return ExitCode::from(EXIT_FAILED) };
    let loaded = match data {
        Some(d) => quick(graph, d, n, dims).and_then(|(s, y)| Ok((s.collect::<Result<Vec<_>, _>>()?, Some(y)))),
        None => make_samples(graph, spec, n.max(1), dims).map(|s| (s, None)),
    };
    let (samples, labels) = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (rows, failures) = sweep(&variants, reference, &samples, labels.as_deref());
    for f in &failures {
        eprintln!("quantlens: error: {f}");
    }
    match format {
        TableOrJson::Json => println!("{:#}", serde_json::json!({ "samples": samples.len(), "layers": rows })),
        TableOrJson::Table => {
            let what = if labels.is_some() { "top-1" } else { "output SQNR" };
            let mut out = format!("{} samples; each layer kept in float alone, {what}\n", samples.len());
            let _ = writeln!(out, "{:<8} {:<28} {:>12} {:>10}", "VARIANT", "LAYER", what.to_uppercase(), "GAIN");
            for r in &rows {
                let value =
                    r.top1.map(|t| format!("{:.1}%", 100.0 * t)).or(r.output_sqnr_db.map(|s| format!("{s:.2} dB")));
                let gain =
                    r.gain.map(|g| if labels.is_some() { format!("{:+.1}", 100.0 * g) } else { format!("{g:+.2}") });
                let _ = writeln!(
                    out,
                    "{:<8} {:<28} {:>12} {:>10}{}",
                    r.variant,
                    r.layer,
                    value.unwrap_or_else(|| "–".into()),
                    gain.unwrap_or_else(|| "–".into()),
                    r.problem.as_ref().map(|p| format!("  ! {p}")).unwrap_or_default()
                );
            }
            print!("{out}");
        }
    }
    if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DATA_ERRORS) }
}
