//! `quantlens check`: the CI gate.

use std::process::ExitCode;

use quantlens::report::{ReportOptions, Thresholds, build_report, check};

use super::{EXIT_FAILED, Input, load};

/// `quantlens check`: 0 when every compared tensor meets the thresholds, 1 otherwise
/// (including tensors that could not be read: the gate cannot vouch for them).
pub fn run(
    input: &Input,
    min_sqnr_db: Option<f64>,
    max_rmse_over_scale: Option<f64>,
    max_block_rmse_over_scale: Option<f64>,
) -> ExitCode {
    let variant = match input.selected() {
        Ok(v) => v.map(String::from),
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let thresholds = Thresholds { min_sqnr_db, max_rmse_over_scale, max_block_rmse_over_scale, variant };
    if let Err(e) = thresholds.validate() {
        eprintln!("quantlens: error: {e}");
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
        "{} failing of {} tensors compared ({})",
        verdict.failures.len(),
        verdict.checked,
        verdict.variants.join(", ")
    );
    if verdict.failures.is_empty() && !data_errors {
        eprintln!("quantlens: check passed: {summary}");
        return ExitCode::SUCCESS;
    }
    if data_errors {
        // (a refused tensor may be no layer's: the gate cannot vouch for the file)
        eprintln!("quantlens: check: the files hold tensors that could not be read (see above)");
    }
    eprintln!("quantlens: check failed: {summary}");
    ExitCode::from(EXIT_FAILED)
}
