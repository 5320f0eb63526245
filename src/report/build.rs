//! Builds the per-layer report of a set of variants: quant params, statistics, error
//! metrics and (optionally) shared-bin histograms. Layers are processed in parallel.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use crate::model::activation::{ActRole, ActivationQuant, layer_activations};
use crate::model::dtype::DType;
use crate::model::graph::{Graph, Issue, NodeId, shape_string};
use crate::model::matching::{MatchHow, MatchRow, match_layers};
use crate::model::node_diff::{NodeDiff, node_differences};
use crate::model::quant::{Layer, LayerWeight, ParamRole, QuantForm, QuantParams};
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
    /// Blocked parameters: elements per block along `axis` (`channels` then counts blocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<usize>,
    pub channels: usize,
    pub scale: Spread,
    pub zero_point: Spread,
    pub scale_tensor: Option<String>,
    pub zero_point_tensor: Option<String>,
    /// Blocked parameters: `|scale|` as a rows × blocks heatmap (computed with the
    /// statistics, on their task, not in the frame that draws it).
    #[serde(skip)]
    pub block_scales: Option<crate::stats::blocks::Heatmap>,
}

/// One layer as one variant has it. The top-level weight fields describe the main
/// weight; `initializers` lists every parameter (the main weight first).
#[derive(Clone, Debug, Serialize)]
pub struct LayerVariant {
    pub variant: String,
    pub node: String,
    /// The node in this variant's graph (names may repeat; this does not).
    #[serde(skip)]
    pub node_id: NodeId,
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
    /// Every parameter of the layer: weight, bias, other constants.
    pub initializers: Vec<InitializerReport>,
    /// Statically quantized activations around the layer (quantized variants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub activations: Vec<ActivationReport>,
}

impl LayerVariant {
    /// The metrics of every tensor compared with float.
    pub fn compared(&self) -> impl Iterator<Item = &ErrorMetrics> {
        self.initializers.iter().filter_map(|i| i.metrics.as_ref())
    }

    /// The metrics of every tensor compared with float and not reproduced exactly: what
    /// worst-of orders and gates look at.
    pub fn inexact(&self) -> impl Iterator<Item = &ErrorMetrics> {
        self.compared().filter(|m| !m.exact)
    }

    /// The lowest SQNR of this entry's tensors, exact ones counting as +∞; `None` when
    /// none was compared.
    #[must_use]
    pub fn ranked_sqnr(&self) -> Option<f64> {
        self.compared().map(ErrorMetrics::sqnr_for_ranking).min_by(f64::total_cmp)
    }

    /// The float range the layer's quantized output activation can represent (else its
    /// first quantized input's): what the range overview's *activations* mode draws.
    #[must_use]
    pub fn activation_range(&self) -> Option<(f64, f64)> {
        let output = self.activations.iter().find(|a| a.role == ActRole::Output);
        let [lo, hi] = output.or(self.activations.first())?.range?;
        Some((lo, hi))
    }

    /// The lowest SQNR among this entry's tensors that are not exact.
    #[must_use]
    pub fn worst_sqnr(&self) -> Option<f64> {
        self.inexact().map(|m| m.sqnr_db).min_by(f64::total_cmp)
    }
}

/// One parameter tensor of a layer in one variant.
#[derive(Clone, Debug, Serialize)]
pub struct InitializerReport {
    pub role: ParamRole,
    /// Its place in the row (pairs it with the other variants' counterparts).
    #[serde(skip)]
    pub key: ParamKey,
    /// The float counterpart's name (the reference variant's tensor at the same place).
    pub float: String,
    /// This variant's stored tensor.
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub quant: Option<QuantSummary>,
    pub stats: Option<Summary>,
    pub metrics: Option<ErrorMetrics>,
    /// Over bins shared by every variant's same parameter (with `--bins`).
    pub histogram: Option<Histogram1>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One histogram over edges shared with the other variants' counterparts.
#[derive(Clone, Debug, Serialize)]
pub struct Histogram1 {
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
    pub counts: Vec<u64>,
}

/// A statically quantized activation of a layer, with the float range it can represent.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationReport {
    pub tensor: String,
    pub role: ActRole,
    pub dtype: String,
    pub scale: f32,
    pub zero_point: i32,
    /// `[(qmin − zp)·s, (qmax − zp)·s]`.
    pub range: Option<[f64; 2]>,
}

impl From<&ActivationQuant> for ActivationReport {
    fn from(a: &ActivationQuant) -> Self {
        Self {
            tensor: a.tensor.clone(),
            role: a.role,
            dtype: a.dtype.name(),
            scale: a.scale,
            zero_point: a.zero_point,
            range: a.range().map(|(lo, hi)| [lo, hi]),
        }
    }
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
    /// The main weight is a single value (a scalar `Mul`/`Add`/`Clip` operand): listed
    /// apart and left out of the worst-first orders.
    pub constant: bool,
    pub variants: Vec<LayerVariant>,
    /// The main weight's histograms (see each initializer's `histogram` for the rest).
    pub histogram: Option<SharedHistogram>,
}

impl LayerReport {
    /// The lowest SQNR of any tensor of any quantized variant that is not reproduced
    /// exactly (the worst one); `None` when there is none.
    #[must_use]
    pub fn worst_sqnr(&self) -> Option<f64> {
        self.variants.iter().filter_map(LayerVariant::worst_sqnr).min_by(f64::total_cmp)
    }

    /// [`LayerVariant::ranked_sqnr`] over every variant.
    #[must_use]
    pub fn ranked_sqnr(&self) -> Option<f64> {
        self.variants.iter().filter_map(LayerVariant::ranked_sqnr).min_by(f64::total_cmp)
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub reference: String,
    pub variants: Vec<VariantInfo>,
    pub layers: Vec<LayerReport>,
    /// Per variant (not the reference): nodes it lacks or adds against the reference.
    pub unmatched: BTreeMap<String, NodeDiff>,
    /// Activations of the variants run on inputs (`report --inputs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activations: Option<Vec<crate::infer::ActivationRow>>,
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
    let unmatched = node_differences(variants, reference, &rows)
        .into_iter()
        .filter_map(|(vi, d)| Some((variants.get(vi)?.spec.name.clone(), d)))
        .collect();
    Report {
        reference: variants.get(reference).map(|v| v.spec.name.clone()).unwrap_or_default(),
        variants: variants.iter().map(variant_info).collect(),
        layers,
        unmatched,
        activations: None,
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

/// The values a parameter stands for (raw float, or dequantized), with its quant params.
#[must_use]
pub fn param_values<'a>(g: &'a Graph, w: &'a LayerWeight) -> (Option<Values<'a>>, Option<&'a QuantParams>) {
    param_values_with(g, w, None)
}

/// [`param_values`] under `edited` quantization parameters instead of the file's.
#[must_use]
pub fn param_values_with<'a>(
    g: &'a Graph,
    w: &'a LayerWeight,
    edited: Option<&'a QuantParams>,
) -> (Option<Values<'a>>, Option<&'a QuantParams>) {
    let data = g.tensor(w.tensor()).and_then(|t| t.data.as_ref());
    match (w, data) {
        (LayerWeight::Float(_), Some(d)) => (Some(Values::Raw(d)), None),
        (LayerWeight::Quantized(q), Some(d)) => match edited.or(q.params.as_ref()) {
            Some(p) if q.form == QuantForm::QdqRuntime => (Some(Values::Requantized(d, p)), Some(p)),
            Some(p) => (Some(Values::Dequantized(d, p)), Some(p)),
            None => (None, None),
        },
        (_, None) => (None, None),
    }
}

/// The values a layer's main weight stands for (raw float, or dequantized), with its
/// quant params.
#[must_use]
pub fn layer_values(v: &Variant, li: usize) -> (Option<Values<'_>>, Option<&QuantParams>) {
    match v.layers.get(li) {
        Some(layer) => param_values(&v.model.graph, &layer.weight),
        None => (None, None),
    }
}

/// A parameter's place in a match row: the main weight, or a role and float-op slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamKey {
    pub role: ParamRole,
    pub slot: usize,
}

impl ParamKey {
    /// The main weight (whatever its slot).
    pub const WEIGHT: Self = Self { role: ParamRole::Weight, slot: usize::MAX };

    /// The place of a parameter with this role and slot.
    #[must_use]
    pub fn of(role: ParamRole, slot: usize) -> Self {
        if role == ParamRole::Weight { Self::WEIGHT } else { Self { role, slot } }
    }

    /// The parameter of `layer` at this place.
    #[must_use]
    pub fn find(self, layer: &Layer) -> Option<&LayerWeight> {
        layer.params().find(|(r, s, _)| Self::of(*r, *s) == self).map(|(_, _, w)| w)
    }
}

fn quant_summary(g: &Graph, form: QuantForm, p: &QuantParams, shape: &[u64]) -> Option<QuantSummary> {
    let name = |t: Option<usize>| g.tensor(t?).map(|t| t.name.clone());
    Some(QuantSummary {
        form,
        per_channel: p.per_channel(),
        axis: p.axis,
        block: p.block,
        channels: p.scale.len(),
        scale: stats::spread(p.scale.iter().map(|&s| f64::from(s)))?,
        zero_point: stats::spread(p.zero_point.iter().map(|&z| f64::from(z)))?,
        scale_tensor: name(p.scale_tensor),
        zero_point_tensor: name(p.zero_point_tensor),
        block_scales: crate::stats::blocks::scale_heatmap(shape, p, stats::metrics::HEATMAP_SIDE),
    })
}

/// Quantization parameters that replace the file's (edits), by `(variant, layer index,
/// parameter)`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantOverrides(pub HashMap<(usize, usize, ParamKey), QuantParams>);

/// The report row of one match row (what the window computes per layer, on a task).
#[must_use]
pub fn layer_report(variants: &[Variant], reference: usize, row: &MatchRow, options: ReportOptions) -> LayerReport {
    layer_report_with(variants, reference, row, options, &QuantOverrides::default())
}

/// [`layer_report`] with some quantization parameters replaced by `overrides`.
#[must_use]
pub fn layer_report_with(
    variants: &[Variant],
    reference: usize,
    row: &MatchRow,
    options: ReportOptions,
    overrides: &QuantOverrides,
) -> LayerReport {
    let members: Vec<_> = reported_members(variants, row).collect();
    let ref_layer =
        row.members.get(reference).copied().flatten().and_then(|(li, _)| variants.get(reference)?.layers.get(li));
    // every parameter any member has, the main weight first, then by slot
    let mut keys: Vec<ParamKey> = vec![ParamKey::WEIGHT];
    for &(vi, li, _) in &members {
        let Some(layer) = variants.get(vi).and_then(|v| v.layers.get(li)) else { continue };
        for (role, slot, _) in layer.params() {
            let key = ParamKey::of(role, slot);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys[1..].sort_by_key(|k| (k.slot, k.role == ParamRole::Other));
    let mut inits: Vec<Vec<InitializerReport>> = vec![Vec::new(); members.len()];
    let mut histogram = None;
    for key in keys {
        let (entries, shared) = param_row(variants, reference, ref_layer, &members, key, options, overrides);
        if key == ParamKey::WEIGHT {
            histogram = shared;
        }
        for (slot, entry) in inits.iter_mut().zip(entries) {
            slot.extend(entry);
        }
    }
    let mut out = Vec::new();
    let mut head: Option<(String, String, u32)> = None;
    for (&(vi, li, how), initializers) in members.iter().zip(inits) {
        let (Some(v), Some(layer)) = (variants.get(vi), variants.get(vi).and_then(|v| v.layers.get(li))) else {
            continue;
        };
        let g = &v.model.graph;
        let Some(node) = g.node(layer.node) else { continue };
        let label = node.label(layer.node);
        if head.is_none() || vi == reference {
            head = Some((label.clone(), crate::model::matching::op_family(&node.op_type).to_string(), node.depth));
        }
        let main = initializers.first().filter(|i| i.role == ParamRole::Weight);
        out.push(LayerVariant {
            variant: v.spec.name.clone(),
            node: label,
            node_id: layer.node,
            op: node.op_type.clone(),
            matched_by: how,
            weight: main.map(|m| m.name.clone()).unwrap_or_default(),
            dtype: main.map(|m| m.dtype.clone()).unwrap_or_default(),
            shape: main.map(|m| m.shape.clone()).unwrap_or_default(),
            quant: main.and_then(|m| m.quant.clone()),
            stats: main.and_then(|m| m.stats.clone()),
            metrics: main.and_then(|m| m.metrics.clone()),
            problems: main.map(|m| m.problems.clone()).unwrap_or_default(),
            activations: layer_activations(g, layer.node).iter().map(ActivationReport::from).collect(),
            initializers,
        });
    }
    let constant = row_is_constant(variants, reference, row);
    let (layer, op, depth) = head.unwrap_or_default();
    LayerReport { layer, op, depth, constant, variants: out, histogram }
}

/// Every member's entry for the parameter at `key` (`None` where a member lacks it), and
/// their histograms laid out over shared bins.
fn param_row(
    variants: &[Variant],
    reference: usize,
    ref_layer: Option<&Layer>,
    members: &[(usize, usize, MatchHow)],
    key: ParamKey,
    options: ReportOptions,
    overrides: &QuantOverrides,
) -> (Vec<Option<InitializerReport>>, Option<SharedHistogram>) {
    let ref_graph = variants.get(reference).map(|v| &v.model.graph);
    let ref_w = ref_layer.and_then(|l| key.find(l));
    let ref_values = ref_graph.zip(ref_w).and_then(|(g, w)| param_values(g, w).0);
    let ref_is_float = matches!(ref_w, Some(LayerWeight::Float(_)));
    let float_name = ref_graph.zip(ref_w).and_then(|(g, w)| g.tensor(w.tensor())).map(|t| t.name.clone());
    let found: Vec<Option<Found>> = members
        .iter()
        .map(|&(vi, li, _)| {
            let v = variants.get(vi)?;
            let layer = v.layers.get(li)?;
            let edited = overrides.0.get(&(vi, li, key));
            Some(Found { vi, g: &v.model.graph, w: key.find(layer)?, weight_slot: layer.weight_slot, edited })
        })
        .collect();
    let values: Vec<Option<Values>> =
        found.iter().map(|f| f.as_ref().and_then(|f| param_values_with(f.g, f.w, f.edited).0)).collect();
    let present: Vec<Values> = values.iter().flatten().copied().collect();
    let mut computed = stats::layer_stats(&present, options.histogram_bins).into_iter();
    let set_stats: Vec<Option<stats::SetStats>> = values.iter().map(|v| v.and_then(|_| computed.next())).collect();
    let mut out = Vec::with_capacity(members.len());
    let mut histograms = Vec::new();
    for (i, ((f, y), st)) in found.into_iter().zip(&values).zip(set_stats).enumerate() {
        let Some(Found { vi, g, w, weight_slot, edited }) = f else {
            out.push(None);
            continue;
        };
        let tensor = g.tensor(w.tensor());
        let mut problems = Vec::new();
        let quant = match w {
            LayerWeight::Quantized(q) => {
                problems.extend(q.problems.iter().cloned());
                let shape = tensor.and_then(|t| t.data.as_ref()).map(|d| d.shape.as_slice()).unwrap_or_default();
                edited.or(q.params.as_ref()).and_then(|p| quant_summary(g, q.form, p, shape))
            }
            LayerWeight::Float(_) => None,
        };
        if tensor.and_then(|t| t.data.as_ref()).is_none() {
            problems.push("weight data is unavailable (see the variant's issues)".into());
        }
        let (stats, histogram) = match st {
            Some(stats::SetStats { summary: Ok(s), histogram }) => (Some(s), histogram),
            Some(stats::SetStats { summary: Err(e), .. }) => {
                problems.push(e.to_string());
                (None, None)
            }
            None => (None, None),
        };
        if let Some(s) = &stats
            && s.nan + s.inf > 0
        {
            problems.push(format!("{} NaN and {} infinite value(s)", s.nan, s.inf));
        }
        // main weights at different inputs are different tensors (a quantizer that could
        // not quantize the first one leaves the next largest as the layer's weight)
        let ref_slot = ref_layer.map(|l| l.weight_slot);
        let same_place = key != ParamKey::WEIGHT || ref_slot.is_none_or(|s| s == weight_slot);
        let metrics = match (vi != reference && ref_is_float, ref_values, *y) {
            (true, Some(_), Some(_)) if !same_place => {
                problems.push(format!(
                    "the weight is input {weight_slot} here but input {} in the reference; not compared",
                    ref_slot.unwrap_or_default()
                ));
                None
            }
            (true, Some(x), Some(y)) => compare_to_reference(x, y, param_values_with(g, w, edited).1, &mut problems),
            _ => None,
        };
        if let Some(h) = &histogram {
            histograms.push((i, h.clone()));
        }
        let name = tensor.map(|t| t.name.clone()).unwrap_or_default();
        out.push(Some(InitializerReport {
            role: key.role,
            key,
            float: float_name.clone().unwrap_or_else(|| crate::model::matching::strip_quant_suffix(&name).to_string()),
            dtype: tensor.and_then(|t| t.dtype).map(DType::name).unwrap_or_default(),
            shape: tensor.and_then(|t| t.data.as_ref()).map(|d| d.shape.clone()).unwrap_or_default(),
            name,
            quant,
            stats,
            metrics,
            histogram: histogram.map(|h| Histogram1 { lo: h.lo, hi: h.hi, bins: h.counts.len(), counts: h.counts }),
            problems,
        }));
    }
    let shared =
        options.histogram_bins.and_then(|bins| laid_out(histograms.iter().map(|(i, h)| (*i, h)), members.len(), bins));
    (out, shared)
}

/// A member's parameter at one key, with its edited quantization parameters if any.
struct Found<'a> {
    vi: usize,
    g: &'a Graph,
    w: &'a LayerWeight,
    weight_slot: usize,
    edited: Option<&'a QuantParams>,
}

/// Metrics of `y` against the reference's `x`, through a transpose when the layouts are
/// the two of one matrix; a problem (and `None`) otherwise.
fn compare_to_reference(
    x: Values<'_>,
    y: Values<'_>,
    params: Option<&QuantParams>,
    problems: &mut Vec<String>,
) -> Option<ErrorMetrics> {
    let compared = if x.shape() == y.shape() {
        stats::compare(x, y, params)
    } else if is_transpose(&x.shape(), &y.shape()) {
        transposed(x).and_then(|xt| stats::compare(Values::Slice(&xt), y, params))
    } else {
        problems.push(format!(
            "layout differs from the reference ({} vs {}); metrics skipped",
            shape_string(&to_dims(&x.shape())),
            shape_string(&to_dims(&y.shape()))
        ));
        return None;
    };
    compared.map_err(|e| problems.push(e.to_string())).ok()
}

/// True when the row's main weight is a single value (the reference's, else the first
/// member's): a scalar `Mul`/`Add`/`Clip` operand, listed apart from the layers.
#[must_use]
pub fn row_is_constant(variants: &[Variant], reference: usize, row: &MatchRow) -> bool {
    let len = |vi: usize, li: usize| {
        let v = variants.get(vi)?;
        v.model.graph.tensor(v.layers.get(li)?.weight.tensor())?.data.as_ref().map(crate::model::TensorData::len)
    };
    let member = row
        .members
        .get(reference)
        .copied()
        .flatten()
        .map(|(li, _)| (reference, li))
        .or_else(|| row.members.iter().enumerate().find_map(|(vi, m)| m.map(|(li, _)| (vi, li))));
    member.and_then(|(vi, li)| len(vi, li)).is_some_and(|n| n <= 1)
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

/// The shared-bin histogram of the parameter at `key` of `report`'s row at another bin
/// count, from the summaries the report already holds (no statistics or metrics
/// recomputed).
#[must_use]
pub fn rebin(
    variants: &[Variant],
    row: &MatchRow,
    report: &LayerReport,
    key: ParamKey,
    bins: usize,
    overrides: &QuantOverrides,
) -> Option<SharedHistogram> {
    let sets: Vec<(usize, Values, &Summary)> = reported_members(variants, row)
        .zip(&report.variants)
        .enumerate()
        .filter_map(|(i, ((vi, li, _), lv))| {
            let v = variants.get(vi)?;
            let w = key.find(v.layers.get(li)?)?;
            let (values, _) = param_values_with(&v.model.graph, w, overrides.0.get(&(vi, li, key)));
            let stats = lv.initializers.iter().find(|p| p.key == key)?.stats.as_ref()?;
            Some((i, values?, stats))
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
