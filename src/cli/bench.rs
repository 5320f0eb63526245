//! `quantlens bench` and `bench-kernels`: timings and peak RSS as JSON.

use std::process::ExitCode;
use std::time::Instant;

use quantlens::model::Access;
use quantlens::model::variants::load_variants_with;
use quantlens::report::bench::{peak_rss_mb, reset_peak_rss};
use quantlens::report::{ReportOptions, build_report};

use super::{Input, load, specs};

/// `bench-kernels`: ns per value of the statistics kernels.
pub fn kernels(reps: usize) -> ExitCode {
    let ns: serde_json::Map<String, serde_json::Value> =
        quantlens::report::bench::kernels(reps).into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
    println!("{:#}", serde_json::json!({ "ns_per_value": ns }));
    ExitCode::SUCCESS
}

/// `quantlens bench`: import, statistics and the full report of a folder, timed, with
/// peak RSS per phase.
pub fn run(input: &Input, bins: usize) -> ExitCode {
    let total = Instant::now();
    // the window's import (files read into memory), timed apart and dropped
    let t = Instant::now();
    let read_ok = specs(input).map(|s| load_variants_with(&s, Access::Read).iter().all(Result::is_ok));
    let import_read_s = t.elapsed().as_secs_f64();
    reset_peak_rss();
    let t = Instant::now();
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let import_s = t.elapsed().as_secs_f64();
    let import_rss = peak_rss_mb();
    reset_peak_rss();
    let phases = quantlens::report::bench::run_phases(&variants, bins);
    let phases_rss = peak_rss_mb();
    reset_peak_rss();
    let t = Instant::now();
    let with_hist = build_report(&variants, ReportOptions { histogram_bins: Some(bins) });
    let report_s = t.elapsed().as_secs_f64();
    let report_rss = peak_rss_mb();
    let file_bytes: u64 = variants.iter().map(|v| std::fs::metadata(&v.spec.path).map_or(0, |m| m.len())).sum();
    let external: u64 = variants
        .iter()
        .flat_map(|v| v.model.graph.tensors.iter())
        .filter_map(|t| match &t.data.as_ref()?.bytes {
            quantlens::model::TensorBytes::External { len, .. } => Some(*len),
            quantlens::model::TensorBytes::Memory { .. } | quantlens::model::TensorBytes::Transposed { .. } => None,
        })
        .sum();
    let json = serde_json::json!({
        "variants": variants.len(),
        "layers": with_hist.layers.len(),
        "histogrammed_layers": with_hist.layers.iter().filter(|l| l.histogram.is_some()).count(),
        "files_mb": file_bytes as f64 / 1e6,
        "external_data_mb": external as f64 / 1e6,
        "import_s": import_s,
        "import_read_s": if read_ok == Ok(true) { Some(import_read_s) } else { None },
        "stats_histograms_s": phases.stats_histograms_s,
        "stats_histograms_by_variant_s": variants
            .iter()
            .zip(&phases.by_variant_s)
            .map(|(v, s)| (v.spec.name.clone(), serde_json::json!(s)))
            .collect::<serde_json::Map<_, _>>(),
        "import_stats_histograms_s": import_s + phases.stats_histograms_s,
        "metrics_s": phases.metrics_s,
        "summaries": phases.summaries,
        "histograms": phases.histograms,
        "compared": phases.compared,
        "full_report_s": report_s,
        "wall_s": total.elapsed().as_secs_f64(),
        "peak_rss_import_mb": import_rss,
        "peak_rss_phases_mb": phases_rss,
        "peak_rss_report_mb": report_rss,
        "threads": rayon::current_num_threads(),
    });
    println!("{json:#}");
    ExitCode::SUCCESS
}

/// `quantlens bench-infer`.
pub fn infer(
    input: &Input,
    spec: &quantlens::infer::InputSpec,
    n: usize,
    dims: &std::collections::HashMap<String, usize>,
) -> ExitCode {
    let (variants, _) = match load(input) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let reference = quantlens::report::reference_index(&variants);
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else {
        return ExitCode::from(super::EXIT_FAILED);
    };
    let timed = quantlens::infer::samples(graph, spec, n.max(1), dims)
        .and_then(|s| Ok((s.len(), quantlens::infer::activations::time_capture(&variants, &s)?)));
    let (n, timings) = match timed {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quantlens: error: {e}");
            return ExitCode::from(super::EXIT_FAILED);
        }
    };
    let per_variant: serde_json::Map<String, serde_json::Value> = timings
        .variants
        .into_iter()
        .map(|(name, build_s, per_sample_s, captured)| {
            (name, serde_json::json!({ "build_s": build_s, "per_sample_s": per_sample_s, "captured": captured }))
        })
        .collect();
    println!(
        "{:#}",
        serde_json::json!({
            "samples": n,
            "threads": 1,
            "variants": per_variant,
            "together": { "per_sample_s": timings.together_s, "threads": rayon::current_num_threads() },
            "peak_rss_mb": peak_rss_mb(),
        })
    );
    ExitCode::SUCCESS
}
