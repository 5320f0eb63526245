//! The phases of `quantlens bench`, timed apart so that they compare with the onnx +
//! numpy reference path (`scripts/bench_numpy.py`): summaries of every layer weight of
//! every variant (dequantization included), shared-bin histograms per matched layer,
//! and — beyond what the reference computes — the error metrics.

use std::time::Instant;

use rayon::prelude::*;

use super::build::{layer_values, reference_index};
use crate::model::{Variant, match_layers};
use crate::stats::{self, Values};

/// Seconds per phase and what was computed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Phases {
    /// Summaries of every layer weight and shared-bin histograms of every layer.
    pub stats_histograms_s: f64,
    /// The same work for each variant alone, in the order of the variants (a second run:
    /// the files are warm by then).
    pub by_variant_s: Vec<f64>,
    pub metrics_s: f64,
    pub summaries: usize,
    pub histograms: usize,
    pub compared: usize,
}

/// Runs the phases over loaded `variants`.
#[must_use]
pub fn run_phases(variants: &[Variant], bins: usize) -> Phases {
    let reference = reference_index(variants);
    let rows = match_layers(variants, reference);
    // summaries of every layer weight, then shared-bin histograms per matched layer: the
    // work the reference path times as its stats and histograms (here fused per layer)
    let t = Instant::now();
    let (summaries, histograms): (usize, usize) = rows
        .par_iter()
        .map(|row| {
            let sets: Vec<Values> = row
                .members
                .iter()
                .enumerate()
                .filter_map(|(vi, m)| layer_values(variants.get(vi)?, (*m)?.0).0)
                .collect();
            let got = stats::layer_stats(&sets, Some(bins));
            (got.iter().filter(|s| s.summary.is_ok()).count(), got.iter().filter(|s| s.histogram.is_some()).count())
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let stats_histograms_s = t.elapsed().as_secs_f64();
    // the same per variant alone (histograms over its own range): where the time goes
    let by_variant_s = (0..variants.len())
        .map(|vi| {
            let t = Instant::now();
            rows.par_iter().for_each(|row| {
                let sets: Vec<Values> = row
                    .members
                    .get(vi)
                    .copied()
                    .flatten()
                    .and_then(|(li, _)| layer_values(variants.get(vi)?, li).0)
                    .into_iter()
                    .collect();
                std::hint::black_box(stats::layer_stats(&sets, Some(bins)));
            });
            t.elapsed().as_secs_f64()
        })
        .collect();
    let t = Instant::now();
    let compared: usize = rows
        .par_iter()
        .map(|row| {
            let Some(Some((rli, _))) = row.members.get(reference) else { return 0 };
            let Some((Some(x), _)) = variants.get(reference).map(|v| layer_values(v, *rli)) else { return 0 };
            row.members
                .iter()
                .enumerate()
                .filter(|(vi, _)| *vi != reference)
                .filter_map(|(vi, m)| {
                    let (li, _) = (*m)?;
                    let (y, p) = layer_values(variants.get(vi)?, li);
                    let y = y?;
                    (x.len() == y.len()).then(|| stats::compare(x, y, p).ok()).flatten()
                })
                .count()
        })
        .sum();
    let metrics_s = t.elapsed().as_secs_f64();
    Phases { stats_histograms_s, by_variant_s, metrics_s, summaries, histograms, compared }
}
