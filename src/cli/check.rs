//! `quantlens check`: the CI gate.

use std::process::ExitCode;

use quantlens::report::{ReportOptions, Thresholds, build_report, check};

use super::{EXIT_FAILED, Input, load};

/// `quantlens check`: 0 when every compared tensor meets the thresholds, 1 otherwise
/// (including tensors that could not be read: the gate cannot vouch for them).
pub fn run(input: &Input, min_sqnr_db: Option<f64>, max_rmse_over_scale: Option<f64>) -> ExitCode {
    let variant = match input.selected() {
        Ok(v) => v.map(String::from),
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let thresholds = Thresholds { min_sqnr_db, max_rmse_over_scale, variant };
    if thresholds.min_sqnr_db.is_none() && thresholds.max_rmse_over_scale.is_none() {
        eprintln!("quantlens: error: give a threshold: --min-sqnr DB and/or --max-rmse-scale X");
        return ExitCode::from(EXIT_FAILED);
    }
    let (variants, data_errors) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let report = build_report(&variants, ReportOptions::default());
    let verdict = match check(&report, &thresholds) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    for f in &verdict.failures {
        println!("{f}");
    }
    let summary = format!(
        "{} of {} tensors below threshold ({})",
        verdict.failures.len(),
        verdict.checked,
        verdict.variants.join(", ")
    );
    if data_errors {
        eprintln!("quantlens: check: some tensors could not be read (see above): failing");
        return ExitCode::from(EXIT_FAILED);
    }
    if verdict.failures.is_empty() {
        eprintln!("quantlens: check passed: {summary}");
        ExitCode::SUCCESS
    } else {
        eprintln!("quantlens: check failed: {summary}");
        ExitCode::from(EXIT_FAILED)
    }
}
