//! Activations of the variants compared as onnxruntime's `qdq_loss_debug` does: for every
//! statically quantized activation (`QuantizeLinear` of a computed tensor `x`, then
//! `DequantizeLinear` to `y`), `qdq_err` = SQNR(x, y) within the quantized variant and
//! `xmodel_err` = SQNR(float model's `x`, y), over all samples together; with clipping
//! against the range `[(qmin − zp)·s, (qmax − zp)·s]` the parameters can represent.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::InferError;
use super::inputs::Sample;
use super::run::Runner;
use crate::model::activation::quantize_node;
use crate::model::{ActRole, ActivationQuant, Graph, NodeId, Variant};
use crate::stats::{self, Summary, Values};

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
    pub variants: Vec<ActivationVariant>,
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
    /// Of this variant's dequantized values.
    pub stats: Option<Summary>,
}

/// What every variant's run captured, by tensor name, all samples concatenated.
type Captured = HashMap<String, Vec<f32>>;

fn capture(v: &Variant, samples: &[Sample], names: &[String]) -> Result<Captured, InferError> {
    let Some(first) = samples.first() else { return Ok(Captured::new()) };
    let runner = Runner::new(&v.spec.path, &v.spec.name, first, names)?;
    let mut out: Captured = runner.captured.iter().map(|n| (n.clone(), Vec::new())).collect();
    // a graph input quantized directly is captured from the samples themselves
    let inputs: Vec<usize> =
        (0..first.len()).filter(|&i| first.get(i).is_some_and(|t| names.contains(&t.name))).collect();
    for s in samples {
        for (name, values) in runner.captured.iter().zip(runner.run(s)?) {
            if let Some(all) = out.get_mut(name) {
                all.extend_from_slice(&values);
            }
        }
        for t in inputs.iter().filter_map(|&i| s.get(i)) {
            if let super::npy::NpyData::F32(v) = &t.data {
                out.entry(t.name.clone()).or_default().extend_from_slice(v);
            }
        }
    }
    Ok(out)
}

/// Per variant: seconds to build its tract plan, seconds per sample to run it with every
/// activation `qdq_loss_debug` compares captured, and how many tensors were captured.
///
/// # Errors
/// When a variant cannot be run.
pub fn time_capture(variants: &[Variant], samples: &[Sample]) -> Result<Vec<(String, f64, f64, usize)>, InferError> {
    let keys: Vec<String> = variants.iter().flat_map(|v| qdq_pairs(&v.model.graph)).map(|p| p.key).collect();
    let mut out = Vec::new();
    for v in variants {
        let pairs = qdq_pairs(&v.model.graph);
        let names: Vec<String> = if pairs.is_empty() {
            keys.clone()
        } else {
            pairs.iter().flat_map(|p| [p.pre.clone(), p.post.clone()]).collect()
        };
        let Some(first) = samples.first() else { break };
        let t = std::time::Instant::now();
        let runner = Runner::new(&v.spec.path, &v.spec.name, first, &names)?;
        let build_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        for s in samples {
            runner.run(s)?;
        }
        #[allow(clippy::cast_precision_loss)]
        let per_sample = t.elapsed().as_secs_f64() / samples.len() as f64;
        out.push((v.spec.name.clone(), build_s, per_sample, runner.captured.len()));
    }
    Ok(out)
}

/// Runs every variant on `samples` and compares their activations with the reference's.
/// A variant tract cannot run is reported in the second list and left out.
#[must_use]
pub fn activation_report(
    variants: &[Variant],
    reference: usize,
    samples: &[Sample],
) -> (Vec<ActivationRow>, Vec<InferError>) {
    let mut failures = Vec::new();
    let pairs: Vec<Vec<QdqPair>> = variants.iter().map(|v| qdq_pairs(&v.model.graph)).collect();
    let Some(refv) = variants.get(reference) else { return (Vec::new(), failures) };
    let keys: Vec<String> = {
        let mut k: Vec<String> = pairs.iter().flatten().map(|p| p.key.clone()).collect();
        k.sort();
        k.dedup();
        k
    };
    // every variant on a thread of its own (tract runs one thread per plan)
    let runs: Vec<(usize, Result<Captured, InferError>)> = variants
        .par_iter()
        .enumerate()
        .filter_map(|(vi, v)| {
            let names: Vec<String> = if vi == reference {
                keys.clone()
            } else {
                let ps = pairs.get(vi).filter(|p| !p.is_empty())?;
                ps.iter().flat_map(|p| [p.pre.clone(), p.post.clone()]).collect()
            };
            Some((vi, capture(v, samples, &names)))
        })
        .collect();
    let mut float = None;
    let mut per_variant: Vec<(usize, Captured)> = Vec::new();
    for (vi, run) in runs {
        match run {
            Ok(c) if vi == reference => float = Some(c),
            Ok(c) => per_variant.push((vi, c)),
            Err(e) => failures.push(e),
        }
    }
    let Some(float) = float else { return (Vec::new(), failures) };
    let producer_label = |name: &str| -> String {
        let g = &refv.model.graph;
        g.tensor_by_name(name)
            .and_then(|t| g.tensor(t)?.producer)
            .and_then(|p| g.node(p).map(|n| n.label(p)))
            .unwrap_or_default()
    };
    let mut rows: Vec<ActivationRow> = Vec::new();
    for key in keys.iter().filter(|k| float.contains_key(*k)) {
        let x = float.get(key).map(Vec::as_slice);
        let mut row = ActivationRow { tensor: key.clone(), layer: producer_label(key), variants: Vec::new() };
        for (vi, captured) in &per_variant {
            let Some(pair) = pairs.get(*vi).and_then(|ps| ps.iter().find(|p| &p.key == key)) else { continue };
            let (pre, post) = (captured.get(&pair.pre), captured.get(&pair.post));
            let metric = |a: Option<&[f32]>, b: Option<&Vec<f32>>| {
                let (a, b) = (a?, b?);
                stats::compare(Values::Slice(a), Values::Slice(b), None).ok()
            };
            let qdq = metric(pre.map(Vec::as_slice), post);
            let xmodel = metric(x, post);
            let range = pair.quant.range();
            let (clip_fraction, range_used) = match (x, range) {
                (Some(x), Some(r)) => clipping(x, r),
                _ => (None, None),
            };
            row.variants.push(ActivationVariant {
                variant: variants.get(*vi).map(|v| v.spec.name.clone()).unwrap_or_default(),
                qdq_err_db: qdq.as_ref().map(|m| m.sqnr_db),
                xmodel_err_db: xmodel.as_ref().map(|m| m.sqnr_db),
                mse: xmodel.as_ref().map(|m| m.mse),
                max_abs: xmodel.as_ref().map(|m| m.max_abs),
                cosine: xmodel.as_ref().map(|m| m.cosine).filter(|c| !c.is_nan()),
                clip_fraction,
                range_used,
                range: range.map(|(lo, hi)| [lo, hi]),
                stats: post.and_then(|p| stats::summarize(Values::Slice(p)).ok()),
            });
        }
        if !row.variants.is_empty() {
            rows.push(row);
        }
    }
    (rows, failures)
}

/// The fraction of `x` outside `[lo, hi]`, and the fraction of `[lo, hi]` that the
/// values' own range covers.
#[allow(clippy::cast_precision_loss)]
fn clipping(x: &[f32], (lo, hi): (f64, f64)) -> (Option<f64>, Option<f64>) {
    let finite: Vec<f64> = x.iter().map(|&v| f64::from(v)).filter(|v| v.is_finite()).collect();
    if finite.is_empty() || hi <= lo {
        return (None, None);
    }
    let outside = finite.iter().filter(|&&v| v < lo || v > hi).count();
    let (min, max) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let used = ((max.min(hi) - min.max(lo)) / (hi - lo)).clamp(0.0, 1.0);
    (Some(outside as f64 / finite.len() as f64), Some(used))
}

#[cfg(test)]
mod tests {
    use super::clipping;

    #[test]
    fn clipping_counts_values_outside_the_range() {
        let (clip, used) = clipping(&[-2.0, -0.5, 0.0, 0.5, 3.0], (-1.0, 1.0));
        assert_eq!(clip, Some(0.4));
        assert_eq!(used, Some(1.0));
        let (clip, used) = clipping(&[0.0, 0.25], (-1.0, 1.0));
        assert_eq!((clip, used), (Some(0.0), Some(0.125)));
    }
}
