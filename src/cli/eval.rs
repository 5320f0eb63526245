//! `quantlens eval`: accuracy of every variant on labelled data.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use quantlens::infer::{evaluate, labelled_samples, stratified};
use quantlens::report::reference_index;

use super::{EXIT_DATA_ERRORS, EXIT_FAILED, Input, TableOrJson, load};

/// Evaluates on `n` samples (stratified by class; all when `n` is at least their number).
pub fn run(input: &Input, data: &Path, n: usize, format: TableOrJson, dims: &HashMap<String, usize>) -> ExitCode {
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let reference = reference_index(&variants);
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return ExitCode::from(EXIT_FAILED) };
    let (samples, labels) = match labelled_samples(graph, data, dims) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (samples, labels) = if n < samples.len() {
        let pick = stratified(&labels, n);
        let labels = pick.iter().filter_map(|&i| labels.get(i).copied()).collect::<Vec<_>>();
        (pick.into_iter().filter_map(|i| samples.get(i).cloned()).collect::<Vec<_>>(), labels)
    } else {
        (samples, labels)
    };
    let (eval, failures) = evaluate(&variants, reference, &samples, &labels);
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
