//! Activations of the variants compared as onnxruntime's `qdq_loss_debug` does: for every
//! statically quantized activation (`QuantizeLinear` of a computed tensor `x`, then
//! `DequantizeLinear` to `y`), `qdq_err` = SQNR(x, y) within the quantized variant and
//! `xmodel_err` = SQNR(float model's `x`, y), over all samples together; with clipping
//! against the range `[(qmin − zp)·s, (qmax − zp)·s]` the parameters can represent.
//!
//! Per sample the float model runs first (summing its statistics as each tensor comes);
//! its tensors then become the references of the quantized variants' probes, which sum
//! everything in their runs while the values are in cache ([`super::fake_quant::Probe`]),
//! so no quantized tensor is kept. What a plan could not probe is captured and compared
//! after the runs.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::fake_quant::Probe;
use super::inputs::Sample;
use super::npy::NpyData;
use super::run::{Captured, ProbedPair, Runner};
use super::{InferError, Progress, TILE};
use crate::model::activation::quantize_node;
use crate::model::{ActRole, ActivationQuant, Graph, NodeId, Variant};
use crate::stats::{self, Histogram, RunningClip, RunningComparison, RunningStats, Summary};
use tract_onnx::prelude::{TValue, Tensor};

/// A `QuantizeLinear → DequantizeLinear` pair on a computed tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct QdqPair {
    /// The float tensor's name (the quantizer's `_QuantizeLinear_Input` suffix removed).
    pub key: String,
    /// The tensor quantized, and the dequantized one, in the quantized graph.
    pub pre: String,
    pub post: String,
    /// Its parameters (and representable range).
    pub quant: ActivationQuant,
}

/// Every quantized activation of `g`: a `QuantizeLinear` of a computed tensor with
/// per-tensor parameters, followed by a `DequantizeLinear`.
#[must_use]
pub fn qdq_pairs(g: &Graph) -> Vec<QdqPair> {
    let mut out = Vec::new();
    for (n, node) in g.nodes.iter().enumerate() {
        if node.op_type != "QuantizeLinear" || !node.scope.is_empty() {
            continue;
        }
        let (Some(x), Some(&q)) = (g.input(n, 0), node.outputs.first()) else { continue };
        let dq = g.tensor(q).and_then(|t| t.consumers.iter().copied().find(|&c| dq_of(g, c)));
        let Some(post) = dq.and_then(|c| g.node(c)?.outputs.first().copied()).and_then(|t| g.tensor(t)) else {
            continue;
        };
        let (Some(quant), Some(pre)) = (quantize_node(g, n, ActRole::Input, 0), g.tensor(x)) else { continue };
        out.push(QdqPair { key: quant.tensor.clone(), pre: pre.name.clone(), post: post.name.clone(), quant });
    }
    out
}

fn dq_of(g: &Graph, n: NodeId) -> bool {
    g.node(n).is_some_and(|node| node.op_type == "DequantizeLinear")
}

/// One activation tensor across the variants.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationRow {
    /// The float tensor's name.
    pub tensor: String,
    /// The float model's node producing it (its label).
    pub layer: String,
    /// The float model's values: summary and histogram (on the variants' shared bins).
    pub float: Option<TensorStats>,
    pub variants: Vec<ActivationVariant>,
}

/// A summary of a tensor over every sample, with its histogram on the row's shared bins.
#[derive(Clone, Debug, Serialize)]
pub struct TensorStats {
    pub stats: Summary,
    pub histogram: Option<Histogram>,
}

/// One activation in one quantized variant.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationVariant {
    pub variant: String,
    /// SQNR of the tensor against its own quantize-dequantize (onnxruntime's `qdq_err`).
    pub qdq_err_db: Option<f64>,
    /// SQNR of the float model's tensor against this variant's dequantized one
    /// (onnxruntime's `xmodel_err`).
    pub xmodel_err_db: Option<f64>,
    pub mse: Option<f64>,
    pub max_abs: Option<f64>,
    pub cosine: Option<f64>,
    /// Fraction of the float model's values outside the representable range.
    pub clip_fraction: Option<f64>,
    /// Fraction of the representable range the float model's values span.
    pub range_used: Option<f64>,
    /// The representable range `[(qmin − zp)·s, (qmax − zp)·s]`.
    pub range: Option<[f64; 2]>,
    /// Of this variant's dequantized values (quartiles from the running histogram).
    pub stats: Option<Summary>,
    /// Of this variant's dequantized values, on the row's shared bins.
    pub histogram: Option<Histogram>,
}

/// A variant built for the run, with where each captured tensor sits in its results.
struct Plan {
    runner: Runner,
    slots: HashMap<String, usize>,
}

impl Plan {
    /// Whether the pair whose output is `post` sums its `qdq_err` and statistics in the run.
    fn probed(&self, post: &str) -> bool {
        self.runner.probed.iter().any(|p| p == post)
    }
}

/// The float tensors of every variant's pairs, sorted, once each: the report's rows.
fn activation_keys(pairs: &[Vec<QdqPair>]) -> Vec<String> {
    let mut keys: Vec<String> = pairs.iter().flatten().map(|p| p.key.clone()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What one sample's runs gave, by variant.
type Runs = HashMap<usize, Captured>;

/// The shape and values of the sample's f32 input `name` (an activation quantized
/// straight from a graph input).
fn f32_input<'a>(sample: &'a Sample, name: &str) -> Option<(&'a [usize], &'a [f32])> {
    let t = sample.iter().find(|t| t.name == name)?;
    match &t.data {
        NpyData::F32(v) => Some((&t.shape, v)),
        NpyData::I64(_) => None,
    }
}

/// The tensor `name` of variant `vi` in this sample: captured by its run, or a graph
/// input quantized directly (taken from the sample itself).
fn lookup<'a>(
    plans: &HashMap<usize, Plan>,
    runs: &'a Runs,
    sample: &'a Sample,
    vi: usize,
    name: &str,
) -> Option<&'a [f32]> {
    let captured = plans.get(&vi).and_then(|p| p.slots.get(name)).and_then(|&i| runs.get(&vi)?.get(i));
    captured.or_else(|| Some(f32_input(sample, name)?.1))
}

/// [`lookup`]'s tensor itself: shared when captured, copied from the sample when a graph
/// input.
fn value(plans: &HashMap<usize, Plan>, runs: &Runs, sample: &Sample, vi: usize, name: &str) -> Option<TValue> {
    let captured = plans.get(&vi).and_then(|p| p.slots.get(name)).and_then(|&i| runs.get(&vi)?.value(i));
    captured.or_else(|| {
        let (shape, v) = f32_input(sample, name)?;
        Tensor::from_shape(shape, v).ok().map(TValue::from)
    })
}

/// One quantized activation of one variant, summed over the samples so far.
struct VariantRun {
    variant: usize,
    pair: QdqPair,
    qdq: RunningComparison,
    xmodel: RunningComparison,
    post: RunningStats,
    /// Where the run sums `qdq` and `post` itself, when its plan took the probe.
    probe: Option<Probe>,
    /// Whether the run also sums `xmodel` and `clip` (the output is streamed, not
    /// captured: [`Runner::streamed`]).
    streamed: bool,
    /// Float values outside the pair's range.
    clip: RunningClip,
}

impl VariantRun {
    /// The sums its probe took in the runs, if it has one.
    fn take_probe_sums(&mut self) {
        if let Some(probe) = &self.probe {
            let sums = probe.take();
            (self.qdq, self.post) = (sums.qdq, sums.post);
            if self.streamed {
                (self.xmodel, self.clip) = (sums.xmodel, sums.clip);
            }
        }
    }
}

/// One activation row, summed over the samples so far.
struct RowRun {
    key: String,
    float: RunningStats,
    variants: Vec<VariantRun>,
}

impl RowRun {
    /// The probes that compare this row's quantized tensors in their runs (with the float
    /// model's tensor they are given).
    fn streamed_probes(&self) -> impl Iterator<Item = &Probe> {
        self.variants.iter().filter(|v| v.streamed).filter_map(|v| v.probe.as_ref())
    }

    /// The values of this sample when the row's tensor is a graph input.
    fn add_input(&mut self, sample: &Sample) {
        if let Some((_, x)) = f32_input(sample, &self.key) {
            x.chunks(TILE).for_each(|tile| self.float.add(tile));
        }
    }

    /// The comparisons of this sample that the runs did not sum themselves.
    fn add_variants<'a>(&mut self, plans: &HashMap<usize, Plan>, runs: &'a Runs, sample: &'a Sample, reference: usize) {
        let x = lookup(plans, runs, sample, reference, &self.key);
        for v in self.variants.iter_mut().filter(|v| !v.streamed) {
            let Some(post) = lookup(plans, runs, sample, v.variant, &v.pair.post) else { continue };
            // a probed pair's qdq_err and statistics were summed in the run
            let probed = v.probe.is_some();
            let pre = if probed { None } else { lookup(plans, runs, sample, v.variant, &v.pair.pre) };
            // tile by tile, so that the passes over a tile find it in the cache
            let (pre, x) = (pre.filter(|p| p.len() == post.len()), x.filter(|x| x.len() == post.len()));
            let range = v.pair.quant.range();
            for start in (0..post.len()).step_by(TILE) {
                let end = (start + TILE).min(post.len());
                let tile = |a: &'a [f32]| -> &'a [f32] { a.get(start..end).unwrap_or_default() };
                if !probed {
                    v.post.add(tile(post));
                }
                if let Some(pre) = pre {
                    v.qdq.add(tile(pre), tile(post));
                }
                if let Some(x) = x {
                    v.xmodel.add(tile(x), tile(post));
                    if let Some(range) = range {
                        v.clip.add(tile(x), range);
                    }
                }
            }
        }
    }

    fn finish(self, variants: &[Variant], layer: String, bins: usize) -> ActivationRow {
        let mut streams = vec![self.float.histogram()];
        streams.extend(self.variants.iter().map(|v| v.post.histogram()));
        let mut nonfinite = vec![self.float.nonfinite()];
        nonfinite.extend(self.variants.iter().map(|v| v.post.nonfinite()));
        let mut hists = stats::shared_grid_histograms(&streams, &nonfinite, bins).map(Vec::into_iter);
        let mut next_hist = || hists.as_mut().and_then(Iterator::next);
        let float_summary = self.float.summary();
        let seen = float_summary.count > 0;
        let float = seen.then(|| TensorStats { stats: float_summary.clone(), histogram: next_hist() });
        let mut out = Vec::new();
        for v in self.variants {
            let histogram = next_hist();
            let (qdq, xmodel) = (v.qdq.metrics(), v.xmodel.metrics());
            let range = v.pair.quant.range();
            let (clip_fraction, range_used) = match (range, v.clip.fraction()) {
                (Some(r), Some(f)) => (Some(f), range_used((float_summary.min, float_summary.max), r)),
                _ => (None, None),
            };
            let post = v.post.summary();
            out.push(ActivationVariant {
                variant: variants.get(v.variant).map(|v| v.spec.name.clone()).unwrap_or_default(),
                qdq_err_db: qdq.as_ref().map(|m| m.sqnr_db),
                xmodel_err_db: xmodel.as_ref().map(|m| m.sqnr_db),
                mse: xmodel.as_ref().map(|m| m.mse),
                max_abs: xmodel.as_ref().map(|m| m.max_abs),
                cosine: xmodel.as_ref().map(|m| m.cosine).filter(|c| !c.is_nan()),
                clip_fraction,
                range_used,
                range: range.map(|(lo, hi)| [lo, hi]),
                stats: (post.count > 0).then_some(post),
                histogram,
            });
        }
        ActivationRow { tensor: self.key, layer, float, variants: out }
    }
}

/// Runs every variant on the samples, one sample at a time (memory bounded by one
/// sample's activations, whatever the number of samples), and compares their activations
/// with the reference's; histograms get at most `bins` shared bins. A variant tract cannot
/// build or run is reported in the second list and left out; a sample that cannot be read
/// ends the run there. `progress` counts the samples done and can stop the run early.
#[must_use]
pub fn activation_report(
    variants: &[Variant],
    reference: usize,
    samples: impl IntoIterator<Item = Result<Sample, InferError>>,
    bins: usize,
    progress: &Progress,
) -> (Vec<ActivationRow>, Vec<InferError>) {
    activation_report_edited(variants, reference, &HashMap::new(), samples, bins, progress)
}

/// [`activation_report`] with some variants replaced by edited models held in memory (the
/// encoded `.onnx` of [`super::apply_edits`], by variant index): the window's edits reach
/// its activation runs this way.
#[must_use]
#[allow(clippy::implicit_hasher)]
pub fn activation_report_edited(
    variants: &[Variant],
    reference: usize,
    edited: &HashMap<usize, Vec<u8>>,
    samples: impl IntoIterator<Item = Result<Sample, InferError>>,
    bins: usize,
    progress: &Progress,
) -> (Vec<ActivationRow>, Vec<InferError>) {
    let mut failures = Vec::new();
    // an edited model's pairs are its own (an activation scale changed, a layer in float)
    let pairs: Vec<Vec<QdqPair>> = variants
        .iter()
        .enumerate()
        .map(|(vi, v)| {
            let model = edited.get(&vi).and_then(|b| crate::model::onnx::model_from_bytes(b, &v.spec.path).ok());
            qdq_pairs(model.as_ref().map_or(&v.model.graph, |m| &m.graph))
        })
        .collect();
    let Some(refv) = variants.get(reference) else { return (Vec::new(), failures) };
    let keys = activation_keys(&pairs);
    let mut samples = samples.into_iter();
    let first = match samples.next() {
        Some(Ok(s)) => s,
        Some(Err(e)) => return (Vec::new(), vec![e]),
        None => return (Vec::new(), failures),
    };
    // one probe per quantized pair (as `pairs`): its qdq_err and statistics are summed in
    // the run
    let probed: Vec<Vec<ProbedPair>> = pairs
        .iter()
        .map(|ps| {
            ps.iter()
                .map(|p| ProbedPair {
                    pre: p.pre.clone(),
                    post: p.post.clone(),
                    probe: Probe::with_range(p.quant.range()),
                })
                .collect()
        })
        .collect();
    // each variant's plan, built on threads of their own (the quantized ones, the slowest,
    // first); the float model's plan, the quickest, runs the first sample while the others
    // still build
    let build_quantized = || -> Vec<(usize, Result<Runner, InferError>)> {
        variants
            .par_iter()
            .enumerate()
            .filter(|(vi, _)| *vi != reference)
            .filter_map(|(vi, v)| {
                let ps = probed.get(vi).filter(|p| !p.is_empty())?;
                Some((vi, Runner::probed(v, edited.get(&vi).map(Vec::as_slice), &first, &[], ps)))
            })
            .collect()
    };
    // the float model's statistics, summed in its runs (one at a time, in sample order)
    // while each tensor is in cache, by its index among the captured
    let float_stats: std::sync::Mutex<Vec<RunningStats>> = std::sync::Mutex::default();
    let float_run = |runner: &Runner, sample: &Sample| {
        let mut stats = float_stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stats.resize_with(runner.captured.len(), RunningStats::default);
        runner.run_observed(sample, |i, xs| {
            if let Some(s) = stats.get_mut(i) {
                xs.chunks(TILE).for_each(|tile| s.add(tile));
            }
        })
    };
    let build_reference = || {
        let runner = Runner::of_variant(refv, edited.get(&reference).map(Vec::as_slice), &first, &keys);
        let run = runner.as_ref().ok().map(|r| float_run(r, &first));
        (runner, run)
    };
    let (built, (reference_runner, mut float_ahead)) = rayon::join(build_quantized, build_reference);
    let mut plans: HashMap<usize, Plan> = HashMap::new();
    for (vi, built) in std::iter::once((reference, reference_runner)).chain(built) {
        match built {
            Ok(runner) => {
                let slots = runner.captured.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
                plans.insert(vi, Plan { runner, slots });
            }
            Err(e) => failures.push(e),
        }
    }
    if !plans.contains_key(&reference) {
        return (Vec::new(), failures);
    }
    let mut rows: Vec<RowRun> = keys
        .iter()
        .map(|key| RowRun {
            key: key.clone(),
            float: RunningStats::default(),
            variants: pairs
                .iter()
                .enumerate()
                .filter(|(vi, _)| *vi != reference)
                .filter_map(|(vi, ps)| Some((vi, plans.get(&vi)?, ps.iter().position(|p| &p.key == key)?)))
                .map(|(variant, plan, j)| {
                    let pair = &pairs[variant][j];
                    let probe = plan.probed(&pair.post).then(|| probed[variant][j].probe.clone());
                    VariantRun {
                        variant,
                        pair: pair.clone(),
                        qdq: RunningComparison::default(),
                        xmodel: RunningComparison::default(),
                        post: RunningStats::default(),
                        streamed: probe.is_some() && plan.runner.streamed.contains(&pair.post),
                        probe,
                        clip: RunningClip::default(),
                    }
                })
                .collect(),
        })
        .collect();
    super::for_each_sample(first, samples, progress, &mut failures, |sample, next, failures| {
        // the float model's run first (done beside the sample before): the streamed pairs
        // compare with its tensors in theirs
        let float = match (float_ahead.take(), plans.get(&reference)) {
            (Some(run), _) => run,
            (None, Some(p)) => float_run(&p.runner, sample),
            (None, None) => return false,
        };
        let mut runs = Runs::new();
        match float {
            Ok(values) => runs.insert(reference, values),
            Err(e) => {
                failures.push(e);
                return false;
            }
        };
        for r in &rows {
            let mut probes = r.streamed_probes().peekable();
            if probes.peek().is_some() {
                let x = value(&plans, &runs, sample, reference, &r.key);
                probes.for_each(|probe| probe.set_reference(x.clone()));
            }
        }
        // the other variants on threads of their own (tract runs one thread), beside the
        // float model's run of the next sample: started in the order given (FIFO), that
        // longest one first
        let results = std::sync::Mutex::new(Vec::new());
        let mut next_run = None;
        rayon::scope_fifo(|s| {
            // (not when cancelled: the float statistics would count a sample the others lack)
            if let (Some(next), Some(p), false) = (next, plans.get(&reference), progress.cancelled()) {
                let next_run = &mut next_run;
                let float_run = &float_run;
                s.spawn_fifo(move |_| *next_run = Some(float_run(&p.runner, next)));
            }
            for (&vi, p) in plans.iter().filter(|(vi, _)| **vi != reference) {
                let results = &results;
                s.spawn_fifo(move |_| {
                    let r = p.runner.run(sample);
                    results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((vi, r));
                });
            }
        });
        // (a graph input quantized directly: its statistics from the sample)
        for r in rows.iter_mut().filter(|r| !plans.get(&reference).is_some_and(|p| p.slots.contains_key(&r.key))) {
            r.add_input(sample);
        }
        let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        results.sort_by_key(|(vi, _)| *vi);
        float_ahead = next_run;
        rows.iter().flat_map(RowRun::streamed_probes).for_each(|probe| probe.set_reference(None));
        for (vi, r) in results {
            match r {
                Ok(values) => {
                    runs.insert(vi, values);
                }
                Err(e) => {
                    failures.push(e);
                    plans.remove(&vi);
                }
            }
        }
        rows.par_iter_mut().for_each(|r| r.add_variants(&plans, &runs, sample, reference));
        true
    });
    // the sums the runs took
    let mut float_stats = float_stats.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = plans.get(&reference) {
        for r in &mut rows {
            if let Some(s) = p.slots.get(&r.key).and_then(|&i| float_stats.get_mut(i)) {
                r.float = std::mem::take(s);
            }
        }
    }
    rows.iter_mut().flat_map(|r| &mut r.variants).for_each(VariantRun::take_probe_sums);
    let producer_label = |name: &str| -> String {
        let g = &refv.model.graph;
        g.tensor_by_name(name)
            .and_then(|t| g.tensor(t)?.producer)
            .and_then(|p| g.node(p).map(|n| n.label(p)))
            .unwrap_or_default()
    };
    // (in parallel: each row coarsens its histograms and finds its quartiles; the order
    // is kept)
    let rows = rows
        .into_par_iter()
        .filter(|r| r.float.count() > 0 && r.variants.iter().any(|v| v.post.count() > 0))
        .map(|r| {
            let layer = producer_label(&r.key);
            r.finish(variants, layer, bins)
        })
        .collect();
    (rows, failures)
}

/// What [`time_capture`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureTimes {
    /// Per variant: its name, seconds to build its tract plan, seconds per sample to run
    /// it alone (one thread) with every activation `qdq_loss_debug` compares captured, and
    /// how many tensors were captured.
    pub variants: Vec<(String, f64, f64, usize)>,
    /// Seconds per sample to run every variant, each on a task of its own (rayon's
    /// threads).
    pub together_s: f64,
}

/// Times the capture of every variant on `samples`, after one untimed run each (the first
/// touches every page its tensors take): alone, then all together.
///
/// # Errors
/// When a variant cannot be run.
#[allow(clippy::cast_precision_loss)]
pub fn time_capture(variants: &[Variant], samples: &[Sample]) -> Result<CaptureTimes, InferError> {
    let Some(first) = samples.first() else { return Ok(CaptureTimes { variants: Vec::new(), together_s: 0.0 }) };
    let pairs: Vec<Vec<QdqPair>> = variants.iter().map(|v| qdq_pairs(&v.model.graph)).collect();
    let keys = activation_keys(&pairs);
    let mut runners = Vec::new();
    let mut out = Vec::new();
    for (v, pairs) in variants.iter().zip(&pairs) {
        let names: Vec<String> = if pairs.is_empty() {
            keys.clone()
        } else {
            pairs.iter().flat_map(|p| [p.pre.clone(), p.post.clone()]).collect()
        };
        let t = std::time::Instant::now();
        let runner = Runner::new(&v.spec.path, &v.spec.name, first, &names)?;
        let build_s = t.elapsed().as_secs_f64();
        runner.run(first)?;
        let t = std::time::Instant::now();
        for s in samples {
            runner.run(s)?;
        }
        let per_sample = t.elapsed().as_secs_f64() / samples.len() as f64;
        out.push((v.spec.name.clone(), build_s, per_sample, runner.captured.len()));
        runners.push(runner);
    }
    // (one untimed round first: the threads' own allocator arenas fill)
    let together = |s: &Sample| runners.par_iter().map(|r| r.run(s).map(drop)).collect::<Result<(), _>>();
    together(first)?;
    let t = std::time::Instant::now();
    for s in samples {
        together(s)?;
    }
    let together_s = t.elapsed().as_secs_f64() / samples.len() as f64;
    Ok(CaptureTimes { variants: out, together_s })
}

/// The fraction of `[lo, hi]` that the values' own range `[min, max]` covers.
fn range_used((min, max): (f64, f64), (lo, hi): (f64, f64)) -> Option<f64> {
    (hi > lo && min <= max).then(|| ((max.min(hi) - min.max(lo)) / (hi - lo)).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::range_used;

    #[test]
    fn range_used_is_the_covered_fraction() {
        assert_eq!(range_used((-2.0, 3.0), (-1.0, 1.0)), Some(1.0));
        assert_eq!(range_used((0.0, 0.25), (-1.0, 1.0)), Some(0.125));
        assert_eq!(range_used((2.0, 3.0), (-1.0, 1.0)), Some(0.0), "all clipped: nothing of the range used");
        assert_eq!(range_used((0.0, 1.0), (1.0, 1.0)), None);
    }
}
