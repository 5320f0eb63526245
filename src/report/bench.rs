//! The phases of `quantlens bench`, timed apart so that they compare with the onnx +
//! numpy reference path (`scripts/bench_numpy.py`): summaries of every layer weight of
//! every variant (dequantization included), shared-bin histograms per matched layer,
//! and — beyond what the reference computes — the error metrics.

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;

use super::build::{layer_values, reference_index};
use crate::model::{Variant, match_layers};
use crate::stats::{self, Summary};

/// Seconds per phase and what was computed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Phases {
    pub stats_s: f64,
    pub histograms_s: f64,
    pub metrics_s: f64,
    pub summaries: usize,
    pub histograms: usize,
    pub compared: usize,
}

/// Runs the phases over loaded `variants`.
#[must_use]
pub fn run_phases(variants: &[Variant], bins: usize) -> Phases {
    let jobs: Vec<(usize, usize)> =
        variants.iter().enumerate().flat_map(|(vi, v)| (0..v.layers.len()).map(move |li| (vi, li))).collect();
    let t = Instant::now();
    let summaries: HashMap<(usize, usize), Summary> = jobs
        .par_iter()
        .filter_map(|&(vi, li)| {
            let (values, _) = layer_values(variants.get(vi)?, li);
            Some(((vi, li), stats::summarize(values?).ok()?))
        })
        .collect();
    let stats_s = t.elapsed().as_secs_f64();
    let reference = reference_index(variants);
    let rows = match_layers(variants, reference);
    let t = Instant::now();
    let histograms: usize = rows
        .par_iter()
        .map(|row| {
            let sets: Vec<_> = row
                .members
                .iter()
                .enumerate()
                .filter_map(|(vi, m)| {
                    let (li, _) = (*m)?;
                    let (values, _) = layer_values(variants.get(vi)?, li);
                    Some((values?, summaries.get(&(vi, li))?))
                })
                .collect();
            stats::shared_histograms(&sets, bins).ok().flatten().map_or(0, |h| h.len())
        })
        .sum();
    let histograms_s = t.elapsed().as_secs_f64();
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
    Phases { stats_s, histograms_s, metrics_s, summaries: summaries.len(), histograms, compared }
}
