//! Builds the per-layer report of a set of variants: quant params, statistics, error
//! metrics and (optionally) shared-bin histograms. Layers are processed in parallel.

use rayon::prelude::*;
use serde::Serialize;

use crate::model::dtype::DType;
use crate::model::graph::{Issue, shape_string};
use crate::model::matching::{MatchHow, MatchRow, match_layers};
use crate::model::quant::{LayerWeight, QuantForm, QuantParams};
use crate::model::variants::{Variant, VariantKind};
use crate::stats::{self, ErrorMetrics, Spread, Summary, Values};

/// What to compute beyond the per-layer basics.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportOptions {
    /// Shared-bin histograms with this many bins per layer.
    pub histogram_bins: Option<usize>,
}

/// Facts about one loaded variant file.
#[derive(Clone, Debug, Serialize)]
pub struct VariantInfo {
    pub name: String,
    pub kind: VariantKind,
    pub file: String,
    pub opset: i64,
    pub producer: String,
    pub nodes: usize,
    pub layers: usize,
    pub max_depth: u32,
    pub issues: Vec<Issue>,
}

/// Scale and zero point of a quantized weight, summarised.
#[derive(Clone, Debug, Serialize)]
pub struct QuantSummary {
    pub form: QuantForm,
    pub per_channel: bool,
    pub axis: Option<usize>,
    pub channels: usize,
    pub scale: Spread,
    pub zero_point: Spread,
    pub scale_tensor: Option<String>,
    pub zero_point_tensor: Option<String>,
}

/// One layer as one variant has it.
#[derive(Clone, Debug, Serialize)]
pub struct LayerVariant {
    pub variant: String,
    pub node: String,
    pub op: String,
    pub matched_by: MatchHow,
    /// The stored weight tensor (the integer one for quantized layers).
    pub weight: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub quant: Option<QuantSummary>,
    /// Statistics of the float weight, or of the dequantized weight.
    pub stats: Option<Summary>,
    /// Against the reference (float) variant's weight.
    pub metrics: Option<ErrorMetrics>,
    pub problems: Vec<String>,
}

/// Bin counts of every variant of a layer over one set of edges.
#[derive(Clone, Debug, Serialize)]
pub struct SharedHistogram {
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
    /// In the order of `LayerReport::variants`.
    pub counts: Vec<Vec<u64>>,
}

/// One row of the report: the same layer across variants.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub layer: String,
    pub op: String,
    pub depth: u32,
    pub variants: Vec<LayerVariant>,
    pub histogram: Option<SharedHistogram>,
}

impl LayerReport {
    /// The lowest SQNR among the quantized variants (the worst one).
    #[must_use]
    pub fn worst_sqnr(&self) -> Option<f64> {
        self.variants.iter().filter_map(|v| v.metrics.as_ref().map(|m| m.sqnr_db)).min_by(f64::total_cmp)
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub reference: String,
    pub variants: Vec<VariantInfo>,
    pub layers: Vec<LayerReport>,
}

/// Index of the reference variant: the first float one, else the first.
#[must_use]
pub fn reference_index(variants: &[Variant]) -> usize {
    variants.iter().position(|v| v.spec.kind == VariantKind::Float).unwrap_or(0)
}

/// Builds the report of `variants`.
#[must_use]
pub fn build_report(variants: &[Variant], options: ReportOptions) -> Report {
    let reference = reference_index(variants);
    let rows = match_layers(variants, reference);
    let layers = rows.par_iter().map(|row| layer_report(variants, reference, row, options)).collect();
    Report {
        reference: variants.get(reference).map(|v| v.spec.name.clone()).unwrap_or_default(),
        variants: variants.iter().map(variant_info).collect(),
        layers,
    }
}

fn variant_info(v: &Variant) -> VariantInfo {
    VariantInfo {
        name: v.spec.name.clone(),
        kind: v.spec.kind,
        file: v.spec.path.display().to_string(),
        opset: v.model.opset,
        producer: v.model.producer.clone(),
        nodes: v.model.graph.len(),
        layers: v.layers.len(),
        max_depth: v.model.graph.max_depth(),
        issues: v.model.graph.issues.clone(),
    }
}

/// The values a layer's weight stands for (raw float, or dequantized), with its quant params.
#[must_use]
pub fn layer_values(v: &Variant, li: usize) -> (Option<Values<'_>>, Option<&QuantParams>) {
    let Some(layer) = v.layers.get(li) else { return (None, None) };
    let g = &v.model.graph;
    let data = g.tensor(layer.weight.tensor()).and_then(|t| t.data.as_ref());
    match (&layer.weight, data) {
        (LayerWeight::Float(_), Some(d)) => (Some(Values::Raw(d)), None),
        (LayerWeight::Quantized(q), Some(d)) => match &q.params {
            Some(p) => (Some(Values::Dequantized(d, p)), Some(p)),
            None => (None, None),
        },
        (_, None) => (None, None),
    }
}

fn quant_summary(form: QuantForm, p: &QuantParams) -> Option<QuantSummary> {
    Some(QuantSummary {
        form,
        per_channel: p.per_channel(),
        axis: p.axis,
        channels: p.scale.len(),
        scale: stats::spread(p.scale.iter().map(|&s| f64::from(s)))?,
        zero_point: stats::spread(p.zero_point.iter().map(|&z| f64::from(z)))?,
        scale_tensor: p.scale_tensor.clone(),
        zero_point_tensor: p.zero_point_tensor.clone(),
    })
}

/// The report row of one match row (what the window computes per layer, on a task).
#[must_use]
pub fn layer_report(variants: &[Variant], reference: usize, row: &MatchRow, options: ReportOptions) -> LayerReport {
    let ref_member = row.members.get(reference).copied().flatten();
    let ref_variant = variants.get(reference);
    let (ref_values, _) = match (ref_variant, ref_member) {
        (Some(v), Some((li, _))) => layer_values(v, li),
        _ => (None, None),
    };
    let ref_is_float = ref_member
        .and_then(|(li, _)| ref_variant?.layers.get(li))
        .is_some_and(|l| matches!(l.weight, LayerWeight::Float(_)));
    let members: Vec<_> = reported_members(variants, row).collect();
    // every member's summary and the shared-bin histograms, in one go per layer
    let member_values: Vec<Option<Values>> =
        members.iter().map(|&(vi, li, _)| variants.get(vi).and_then(|v| layer_values(v, li).0)).collect();
    let present: Vec<Values> = member_values.iter().flatten().copied().collect();
    let mut computed = stats::layer_stats(&present, options.histogram_bins).into_iter();
    let mut set_stats: Vec<Option<stats::SetStats>> =
        member_values.iter().map(|v| v.and_then(|_| computed.next())).collect();
    let mut out = Vec::new();
    let mut histograms = Vec::new();
    let mut head: Option<(String, String, u32)> = None;
    for (i, &(vi, li, how)) in members.iter().enumerate() {
        let (Some(v), Some(layer)) = (variants.get(vi), variants.get(vi).and_then(|v| v.layers.get(li))) else {
            continue;
        };
        let g = &v.model.graph;
        let Some(node) = g.node(layer.node) else { continue };
        let label = node.label(layer.node);
        if head.is_none() || vi == reference {
            head = Some((label.clone(), crate::model::matching::op_family(&node.op_type).to_string(), node.depth));
        }
        let tensor = g.tensor(layer.weight.tensor());
        let mut problems = Vec::new();
        let quant = match &layer.weight {
            LayerWeight::Quantized(q) => {
                problems.extend(q.problems.iter().cloned());
                q.params.as_ref().and_then(|p| quant_summary(q.form, p))
            }
            LayerWeight::Float(_) => None,
        };
        if tensor.and_then(|t| t.data.as_ref()).is_none() {
            problems.push("weight data is unavailable (see the variant's issues)".into());
        }
        let (values, params) = (member_values.get(i).copied().flatten(), layer_values(v, li).1);
        let stats = match set_stats.get_mut(i).and_then(Option::take) {
            Some(stats::SetStats { summary: Ok(s), histogram }) => {
                histograms.push((out.len(), histogram));
                Some(s)
            }
            Some(stats::SetStats { summary: Err(e), .. }) => {
                problems.push(e.to_string());
                None
            }
            None => None,
        };
        if let Some(s) = &stats
            && s.nan + s.inf > 0
        {
            problems.push(format!("{} NaN and {} infinite value(s)", s.nan, s.inf));
        }
        let metrics = match (vi != reference && ref_is_float, ref_values, values) {
            (true, Some(x), Some(y)) if x.shape() == y.shape() || is_transpose(&x.shape(), &y.shape()) => {
                let compared = if x.shape() == y.shape() {
                    stats::compare(x, y, params)
                } else {
                    transposed(x).and_then(|xt| stats::compare(Values::Slice(&xt), y, params))
                };
                match compared {
                    Ok(m) => Some(m),
                    Err(e) => {
                        problems.push(e.to_string());
                        None
                    }
                }
            }
            (true, Some(x), Some(y)) => {
                problems.push(format!(
                    "weight layout differs from the reference ({} vs {}); metrics skipped",
                    shape_string(&to_dims(&x.shape())),
                    shape_string(&to_dims(&y.shape()))
                ));
                None
            }
            _ => None,
        };
        out.push(LayerVariant {
            variant: v.spec.name.clone(),
            node: label,
            op: node.op_type.clone(),
            matched_by: how,
            weight: tensor.map(|t| t.name.clone()).unwrap_or_default(),
            dtype: tensor.and_then(|t| t.dtype).map(DType::name).unwrap_or_default(),
            shape: tensor.and_then(|t| t.data.as_ref()).map(|d| d.shape.clone()).unwrap_or_default(),
            quant,
            stats,
            metrics,
            problems,
        });
    }
    let histogram = options
        .histogram_bins
        .and_then(|bins| laid_out(histograms.iter().filter_map(|(i, h)| Some((*i, h.as_ref()?))), out.len(), bins));
    let (layer, op, depth) = head.unwrap_or_default();
    LayerReport { layer, op, depth, variants: out, histogram }
}

/// The members of `row` that get an entry in [`LayerReport::variants`], in its order:
/// `(variant, layer, how it matched)`.
fn reported_members<'a>(
    variants: &'a [Variant],
    row: &'a MatchRow,
) -> impl Iterator<Item = (usize, usize, crate::model::MatchHow)> + 'a {
    row.members.iter().enumerate().filter_map(|(vi, m)| {
        let (li, how) = (*m)?;
        let layer = variants.get(vi)?.layers.get(li)?;
        variants.get(vi)?.model.graph.node(layer.node)?;
        Some((vi, li, how))
    })
}

/// The shared-bin histogram of `report`'s row at another bin count, from the summaries
/// the report already holds (no statistics or metrics recomputed).
#[must_use]
pub fn rebin(variants: &[Variant], row: &MatchRow, report: &LayerReport, bins: usize) -> Option<SharedHistogram> {
    let sets: Vec<(usize, Values, &Summary)> = reported_members(variants, row)
        .zip(&report.variants)
        .enumerate()
        .filter_map(|(i, ((vi, li, _), lv))| {
            let (values, _) = layer_values(variants.get(vi)?, li);
            Some((i, values?, lv.stats.as_ref()?))
        })
        .collect();
    shared_histogram(&sets, report.variants.len(), bins)
}

/// Histograms of `(entry index, values, summary)` over shared bins, laid out for `n` entries.
fn shared_histogram(sets: &[(usize, Values, &Summary)], n: usize, bins: usize) -> Option<SharedHistogram> {
    let pairs: Vec<(Values, &Summary)> = sets.iter().map(|(_, v, s)| (*v, *s)).collect();
    let hs = stats::shared_histograms(&pairs, bins).ok()??;
    laid_out(sets.iter().map(|(i, _, _)| *i).zip(&hs), n, bins)
}

/// `(entry index, histogram)` pairs over one set of edges, as the counts of `n` entries
/// (empty for an entry without one). `None` without any histogram.
fn laid_out<'h>(
    hs: impl Iterator<Item = (usize, &'h stats::Histogram)>,
    n: usize,
    bins: usize,
) -> Option<SharedHistogram> {
    let mut counts = vec![Vec::new(); n];
    let mut range = None;
    for (i, h) in hs {
        range.get_or_insert((h.lo, h.hi));
        if let Some(c) = counts.get_mut(i) {
            c.clone_from(&h.counts);
        }
    }
    let (lo, hi) = range?;
    Some(SharedHistogram { lo, hi, bins, counts })
}

/// True when `a` and `b` are the two layouts of one matrix (`Gemm` with `transB` against
/// `MatMulInteger`'s `[K, N]` weight, say).
fn is_transpose(a: &[u64], b: &[u64]) -> bool {
    matches!((a, b), ([r, c], [c2, r2]) if r == r2 && c == c2 && r != c)
}

/// The values of a 2-D tensor in transposed order.
fn transposed(x: Values<'_>) -> Result<Vec<f32>, crate::model::tensor::ReadError> {
    let [rows, cols] = x.shape()[..] else { return Ok(Vec::new()) };
    let (rows, cols) = (rows as usize, cols as usize);
    let mut flat = Vec::with_capacity(rows * cols);
    let mut reader = x.reader()?;
    let mut buf = Vec::new();
    while reader.next_chunk(&mut buf)?.is_some() {
        flat.extend_from_slice(&buf);
    }
    let mut out = vec![0.0; flat.len()];
    for (i, &v) in flat.iter().enumerate() {
        if let Some(o) = out.get_mut((i % cols) * rows + i / cols) {
            *o = v;
        }
    }
    Ok(out)
}

fn to_dims(shape: &[u64]) -> Vec<crate::model::graph::Dim> {
    shape.iter().map(|&d| crate::model::graph::Dim::Known(d)).collect()
}
