//! Accuracy of every variant on labelled samples: top-1 with a 95 % Wilson interval, top-5
//! when there are at least ten classes, and top-1 agreement with the reference (float).
//! A quick evaluation takes a subset stratified by class.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use super::inputs::{Sample, SampleStream};
use super::run::Runner;
use super::{InferError, Progress};
use crate::model::Variant;

/// Accuracy of one variant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accuracy {
    pub n: usize,
    pub top1: f64,
    pub top1_ci95: [f64; 2],
    pub top5: Option<f64>,
    /// Share of samples whose top-1 class is the reference variant's.
    pub agreement_with_float: Option<f64>,
}

/// The evaluation of every variant on the same samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub samples: usize,
    pub variants: BTreeMap<String, Accuracy>,
}

/// The 95 % Wilson score interval of `k` successes in `n`.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn wilson(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (z, n, p) = (1.959_963_984_540_054, n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// Up to `n` sample indices taken class by class in turn (each class in its own order),
/// so that a quick evaluation sees every class about equally.
#[must_use]
pub fn stratified(labels: &[i64], n: usize) -> Vec<usize> {
    let mut by_class: BTreeMap<i64, std::collections::VecDeque<usize>> = BTreeMap::new();
    for (i, &y) in labels.iter().enumerate() {
        by_class.entry(y).or_default().push_back(i);
    }
    let mut out = Vec::with_capacity(n.min(labels.len()));
    while out.len() < n && by_class.values().any(|q| !q.is_empty()) {
        for q in by_class.values_mut() {
            if out.len() < n
                && let Some(i) = q.pop_front()
            {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Classes ranked by score, best first.
fn ranked(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits.get(b).unwrap_or(&f32::NAN).total_cmp(logits.get(a).unwrap_or(&f32::NAN)));
    idx
}

/// At most `n` of a labelled stream's samples, stratified by class ([`stratified`]), and
/// their labels in the order the stream gives them (file order); all when `n` covers them.
#[must_use]
pub fn quick_set(samples: SampleStream, labels: Vec<i64>, n: usize) -> (SampleStream, Vec<i64>) {
    if n >= labels.len() {
        return (samples, labels);
    }
    let mut pick = stratified(&labels, n);
    pick.sort_unstable();
    let picked = pick.iter().filter_map(|&i| labels.get(i).copied()).collect();
    (samples.select(pick), picked)
}

/// Runs every variant on `samples` (read one at a time; each variant on a thread of its
/// own) and scores their first output against `labels` (the samples' labels, in order).
/// `progress` counts the samples done and can stop the run early; the samples done so
/// far are scored. A variant tract cannot build or run is reported and left out.
#[must_use]
pub fn evaluate(
    variants: &[Variant],
    reference: usize,
    samples: impl IntoIterator<Item = Result<Sample, InferError>>,
    labels: &[i64],
    progress: &Progress,
) -> (Evaluation, Vec<InferError>) {
    evaluate_edited(variants, reference, &HashMap::new(), samples, labels, progress)
}

/// [`evaluate`] with some variants replaced by edited models held in memory (the encoded
/// `.onnx` of [`super::apply_edits`], by variant index).
#[must_use]
#[allow(clippy::implicit_hasher)]
pub fn evaluate_edited(
    variants: &[Variant],
    reference: usize,
    edited: &HashMap<usize, Vec<u8>>,
    samples: impl IntoIterator<Item = Result<Sample, InferError>>,
    labels: &[i64],
    progress: &Progress,
) -> (Evaluation, Vec<InferError>) {
    let mut failures = Vec::new();
    let mut samples = samples.into_iter();
    let mut top5: Vec<Option<Vec<Vec<usize>>>> = vec![None; variants.len()];
    let first = match samples.next() {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            failures.push(e);
            None
        }
        None => None,
    };
    if let Some(first) = first {
        let built: Vec<Result<Runner, InferError>> = variants
            .par_iter()
            .enumerate()
            .map(|(vi, v)| Runner::of_variant(v, edited.get(&vi).map(Vec::as_slice), &first, &[]))
            .collect();
        let mut runners: Vec<(usize, Runner)> = Vec::new();
        for (vi, r) in built.into_iter().enumerate() {
            match r {
                Ok(r) => {
                    runners.push((vi, r));
                    if let Some(t) = top5.get_mut(vi) {
                        *t = Some(Vec::new());
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        super::for_each_sample(first, samples, progress, &mut failures, |sample, _, failures| {
            let ranks: Vec<(usize, Result<Vec<usize>, InferError>)> = runners
                .par_iter()
                .map(|(vi, r)| (*vi, r.output(sample).map(|o| ranked(&o).into_iter().take(5).collect())))
                .collect();
            for (vi, r) in ranks {
                match r {
                    Ok(r) => {
                        if let Some(Some(t)) = top5.get_mut(vi) {
                            t.push(r);
                        }
                    }
                    Err(e) => {
                        failures.push(e);
                        runners.retain(|(i, _)| *i != vi);
                        if let Some(t) = top5.get_mut(vi) {
                            *t = None;
                        }
                    }
                }
            }
            true
        });
    }
    let best = |ranks: &[Vec<usize>]| -> Vec<Option<usize>> { ranks.iter().map(|r| r.first().copied()).collect() };
    let reference_top1 = top5.get(reference).cloned().flatten().map(|r| best(&r));
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let done = top5.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let mut eval = Evaluation { samples: done, variants: BTreeMap::new() };
    for (v, ranks) in variants.iter().zip(&top5) {
        let Some(ranks) = ranks else { continue };
        let n = ranks.len();
        let is = |c: usize, y: i64| usize::try_from(y).is_ok_and(|y| y == c);
        let correct = ranks.iter().zip(labels).filter(|(r, y)| r.first().is_some_and(|&c| is(c, **y))).count();
        let in_top5 = ranks.iter().zip(labels).filter(|(r, y)| r.iter().any(|&c| is(c, **y))).count();
        #[allow(clippy::cast_precision_loss)]
        let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let mine = best(ranks);
        eval.variants.insert(
            v.spec.name.clone(),
            Accuracy {
                n,
                top1: share(correct),
                top1_ci95: wilson(correct, n),
                top5: (classes >= 10).then(|| share(in_top5)),
                agreement_with_float: reference_top1
                    .as_ref()
                    .map(|r| share(r.iter().zip(&mine).filter(|(a, b)| a.is_some() && a == b).count())),
            },
        );
    }
    (eval, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_the_textbook() {
        // statsmodels proportion_confint(50, 100, method="wilson") = (0.4038, 0.5962)
        let [lo, hi] = wilson(50, 100);
        assert!((lo - 0.403_831).abs() < 1e-5 && (hi - 0.596_169).abs() < 1e-5, "{lo} {hi}");
        assert_eq!(wilson(0, 0), [0.0, 1.0]);
        let [lo, hi] = wilson(100, 100);
        assert!(lo > 0.96 && hi == 1.0);
    }

    #[test]
    fn quick_subsets_are_stratified() {
        let labels: Vec<i64> = (0..1000).map(|i| if i < 900 { 0 } else { 1 + i % 3 }).collect();
        let s = stratified(&labels, 40);
        assert_eq!(s.len(), 40);
        for c in 1..=3 {
            assert_eq!(s.iter().filter(|&&i| labels[i] == c).count(), 10, "class {c}");
        }
        assert_eq!(stratified(&labels, 5000).len(), 1000);
    }
}
