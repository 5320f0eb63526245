//! `quantlens report`: the per-layer report as a table, JSON, CSV, Markdown or Model
//! Explorer node data.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;

use quantlens::infer::{ActivationRow, InferError, InputSpec, Progress, activation_report, open_samples};
use quantlens::model::Variant;
use quantlens::report::{
    ExplorerMetric, ReportOptions, SortKey, build_report, reference_index, sort_layers, to_csv, to_json, to_markdown,
    to_model_explorer, to_table,
};

use super::{EXIT_DATA_ERRORS, EXIT_FAILED, Format, Input, load};
use quantlens::write::write_atomically;

/// Bins of the activation histograms when --bins is not given.
const DEFAULT_ACTIVATION_BINS: usize = 64;

/// What `--inputs` asks to run.
pub struct RunInputs {
    pub spec: InputSpec,
    pub samples: usize,
    pub dims: HashMap<String, usize>,
}

/// `quantlens report`.
pub fn run(
    input: &Input,
    format: Format,
    sort: SortKey,
    bins: Option<usize>,
    metric: ExplorerMetric,
    run_inputs: Option<&RunInputs>,
    out: Option<&Path>,
) -> ExitCode {
    let selected = match input.selected() {
        Ok(None) => None,
        Ok(Some(name)) if format == Format::ModelExplorer => Some(name),
        Ok(Some(name)) => {
            eprintln!(
                "quantlens: error: `--variant {name}` picks a variant for --format model-explorer only \
                 (name a variant file with --variant NAME=PATH)"
            );
            return ExitCode::from(EXIT_FAILED);
        }
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (variants, data_errors) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    // the runs (when asked for) beside the static report: its weight statistics fill the
    // threads the variants' plans leave idle
    let runs = |variants: &[Variant]| -> Result<Option<(Vec<ActivationRow>, Vec<InferError>)>, ExitCode> {
        let Some(r) = run_inputs else { return Ok(None) };
        let reference = reference_index(variants);
        let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else {
            return Err(ExitCode::from(EXIT_FAILED));
        };
        let samples = open_samples(graph, &r.spec, r.samples.max(1), &r.dims).map_err(|e| {
            eprintln!("quantlens: error: {e}");
            ExitCode::from(EXIT_FAILED)
        })?;
        let bins = bins.unwrap_or(DEFAULT_ACTIVATION_BINS);
        Ok(Some(activation_report(variants, reference, samples, bins, &Progress::default())))
    };
    let (mut report, runs) =
        rayon::join(|| build_report(&variants, ReportOptions { histogram_bins: bins }), || runs(&variants));
    sort_layers(&mut report, sort);
    let mut data_errors = data_errors;
    match runs {
        Err(code) => return code,
        Ok(None) => {}
        Ok(Some((rows, failures))) => {
            for f in &failures {
                // the static report stands; the variant's activations are left out
                eprintln!("quantlens: error: {f}");
            }
            data_errors |= !failures.is_empty();
            report.activations = Some(rows);
        }
    }
    let text = match format {
        Format::Table => Ok(to_table(&report)),
        Format::Csv => Ok(to_csv(&report)),
        Format::Md => Ok(to_markdown(&report)),
        Format::Json => to_json(&report).map_err(|e| format!("cannot write JSON: {e}")),
        Format::ModelExplorer => to_model_explorer(&report, &variants, metric, selected),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let written = match out {
        Some(path) => write_atomically(path, text.as_bytes(), &variants),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    if let Err(e) = written {
        eprintln!("quantlens: error: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    if data_errors { ExitCode::from(EXIT_DATA_ERRORS) } else { ExitCode::SUCCESS }
}
