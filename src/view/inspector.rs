//! What the inspector shows of one selected layer (or node) in every variant: op,
//! attributes, inputs and outputs with shapes and dtypes, quantization parameters
//! (per-tensor value or per-channel summary), folded Q/DQ nodes, statistics and metrics.

use crate::model::ActRole;
use crate::model::graph::{AttrValue, TensorKind, shape_string};
use crate::model::quant::{LayerWeight, QuantParams};
use crate::model::{NodeId, Variant};
use crate::report::{ActivationReport, InitializerReport, LayerReport};
use crate::stats::blocks::{BlockLayout, Heatmap};
use crate::stats::{ErrorMetrics, Summary};

use super::fmt_num;

/// One tensor as the inspector lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorView {
    pub name: String,
    pub shape: String,
    pub dtype: String,
    /// `input`, `initializer`, `constant`, `activation`, `output`.
    pub kind: String,
}

/// Quantization parameters in words, plus the per-channel values for a strip plot.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantView {
    pub form: String,
    /// `scale 0.0123, zero point 0` or the per-channel summary.
    pub summary: String,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
    pub problems: Vec<String>,
    /// The weight's place, for an edit of its scale, and the factor its statistics use
    /// now (1 unedited).
    pub edit: Option<ScaleEdit>,
    /// Blocked parameters: their grid and a heatmap of `|scale|` (the strip plot of
    /// `scales` is for per-channel ones; `scales` is then empty).
    pub blocks: Option<BlockView>,
}

/// The blocks of a blocked weight: `rows × blocks` (every index but the blocked axis ×
/// blocks along it), and `|scale|` as a bounded heatmap once the statistics are in.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockView {
    pub rows: usize,
    pub blocks: usize,
    pub block: usize,
    pub axis: usize,
    pub scales: Option<Heatmap>,
}

/// The block view of blocked `p` on a weight of `shape`, with the heatmap of its
/// scales the report computed (see `QuantSummary::block_scales`).
#[must_use]
pub fn block_view(shape: &[u64], p: &QuantParams, scales: Option<Heatmap>) -> Option<BlockView> {
    let layout = BlockLayout::of(shape, p)?;
    Some(BlockView { rows: layout.rows(), blocks: layout.blocks, block: p.block?, axis: p.axis?, scales })
}

/// An editable weight: `(variant, layer)`, the current factor on the file's scale, its
/// zero point (the first channel's) and whether the layer is kept in float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleEdit {
    pub variant: usize,
    pub layer: usize,
    pub factor: f64,
    pub zero_point: i32,
    pub in_float: bool,
}

/// What an edit does to the main weight of a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightEdit {
    /// Every channel's scale: this factor times the file's (1 restores it).
    ScaleFactor(f64),
    /// Every channel's zero point.
    ZeroPoint(i32),
    /// Keep the layer in float (its parameters the float variant's, its input unquantized).
    Float(bool),
}

/// One parameter tensor of the layer (weight, bias, other constant).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamView {
    pub role: String,
    pub name: String,
    pub dtype: String,
    pub shape: String,
    /// Scale/zero point in words (empty for float tensors).
    pub quant: String,
    /// `exact`, `41.20 dB` or empty.
    pub sqnr: String,
    pub rmse_over_scale: Option<f64>,
    pub problems: Vec<String>,
}

/// One statically quantized activation.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationView {
    pub tensor: String,
    pub role: String,
    pub dtype: String,
    pub scale: String,
    pub zero_point: i32,
    /// `[lo, hi]` the parameters can represent.
    pub range: String,
    /// Editable in the window: the variant, and the factor on the file's scale.
    pub edit: Option<(usize, f64)>,
}

/// The node of one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub variant: String,
    pub node: String,
    pub op_type: String,
    pub matched_by: String,
    pub attributes: Vec<(String, String)>,
    pub inputs: Vec<TensorView>,
    pub outputs: Vec<TensorView>,
    pub weight: Option<String>,
    pub quant: Option<QuantView>,
    /// Folded quantization nodes, one line each.
    pub folded: Vec<String>,
    pub stats: Option<Summary>,
    pub metrics: Option<ErrorMetrics>,
    pub problems: Vec<String>,
    /// Every parameter, the main weight first (from the report, once computed).
    pub params: Vec<ParamView>,
    pub activations: Vec<ActivationView>,
}

/// The whole inspector.
#[derive(Clone, Debug, PartialEq)]
pub struct InspectorModel {
    pub title: String,
    pub op: String,
    pub depth: u32,
    pub members: Vec<MemberView>,
}

/// One block of the selection: variant, node, its layer index and folded nodes.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    pub variant: usize,
    pub node: NodeId,
    pub layer: Option<usize>,
    pub folded: &'a [NodeId],
}

fn attr_text(v: &AttrValue) -> String {
    let list = |xs: Vec<String>| {
        if xs.len() > 8 {
            format!("[{}, … ({} values)]", xs[..8].join(", "), xs.len())
        } else {
            format!("[{}]", xs.join(", "))
        }
    };
    match v {
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Float(f) => fmt_num(f64::from(*f)),
        AttrValue::Text(s) => format!("{s:?}"),
        AttrValue::Ints(xs) => list(xs.iter().map(ToString::to_string).collect()),
        AttrValue::Floats(xs) => list(xs.iter().map(|x| fmt_num(f64::from(*x))).collect()),
        AttrValue::Texts(xs) => list(xs.iter().map(|x| format!("{x:?}")).collect()),
        AttrValue::Tensor { dtype, dims } => format!("tensor {dtype} {dims:?}"),
        AttrValue::Graph(scope) => format!("subgraph {scope}"),
        AttrValue::Other => "…".into(),
    }
}

/// Per-tensor value or per-channel summary of quantization parameters.
#[must_use]
pub fn quant_summary(p: &QuantParams) -> String {
    let (smin, smax, smean) = spread(p.scale.iter().map(|&s| f64::from(s)));
    // (integer zero points as integers; HQQ's float ones as numbers)
    let (zmin, zmax) = if let Some(f) = &p.float_zero_point {
        let (lo, hi, _) = spread(f.iter().map(|&z| f64::from(z)));
        (fmt_num(lo), fmt_num(hi))
    } else {
        let (lo, hi) = (p.zero_point.iter().min(), p.zero_point.iter().max());
        (lo.map_or_else(|| "–".into(), ToString::to_string), hi.map_or_else(|| "–".into(), ToString::to_string))
    };
    let groups = match p.block {
        Some(b) if p.groups.is_some() => format!("blocked by act-order g_idx, {} blocks of {b}", p.scale.len()),
        Some(b) => format!("blocked, {} blocks of {b}", p.scale.len()),
        None if p.per_channel() => format!("per-channel, {} channels", p.scale.len()),
        None => return format!("scale {}, zero point {} ({})", fmt_num(smin), zmin, p.dtype.name()),
    };
    format!(
        "{groups} along axis {}: scale {}..{} (mean {}), zero point {}..{} ({})",
        p.axis.unwrap_or(0),
        fmt_num(smin),
        fmt_num(smax),
        fmt_num(smean),
        zmin,
        zmax,
        p.dtype.name()
    )
}

fn spread(xs: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let (mut lo, mut hi, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for x in xs {
        lo = lo.min(x);
        hi = hi.max(x);
        sum += x;
        n += 1;
    }
    if n == 0 { (f64::NAN, f64::NAN, f64::NAN) } else { (lo, hi, sum / n as f64) }
}

fn tensor_view(v: &Variant, t: usize) -> Option<TensorView> {
    let g = &v.model.graph;
    let tensor = g.tensor(t)?;
    let shape = match (&tensor.data, &tensor.shape) {
        (Some(d), _) => format!("{:?}", d.shape),
        (None, Some(s)) => shape_string(s),
        (None, None) => "?".into(),
    };
    let kind = match tensor.kind {
        TensorKind::Initializer => "initializer",
        TensorKind::Constant => "constant",
        TensorKind::GraphInput => "graph input",
        TensorKind::Activation if g.outputs.contains(&t) => "graph output",
        TensorKind::Activation => "activation",
    };
    Some(TensorView {
        name: tensor.name.clone(),
        shape,
        dtype: tensor.dtype.map_or_else(|| "?".into(), |d| d.name().clone()),
        kind: kind.into(),
    })
}

/// What a folded node does: a Q/DQ node's scale and zero point, or what it passes on.
fn folded_line(v: &Variant, n: NodeId) -> Option<String> {
    let g = &v.model.graph;
    let node = g.node(n)?;
    let value = |k: usize| -> Option<String> {
        let d = g.tensor(g.input(n, k)?)?.data.as_ref()?;
        let vals = d.to_f32_vec().ok()?;
        Some(match vals.as_slice() {
            [x] => fmt_num(f64::from(*x)),
            xs => format!("{} values", xs.len()),
        })
    };
    let input = g.input(n, 0).and_then(|t| g.tensor(t)).map(|t| t.name.clone()).unwrap_or_default();
    if !crate::model::graph::is_quant_plumbing(&node.op_type) {
        // a parameter's pass-through node (`Identity` before a bias, a weight's `Transpose`)
        return Some(format!("{} of {input}", node.op_type));
    }
    Some(format!(
        "{} of {input}: scale {}, zero point {}",
        node.op_type,
        value(1).unwrap_or_else(|| "?".into()),
        value(2).unwrap_or_else(|| "0".into())
    ))
}

/// Builds the inspector for the blocks of one selection.
#[must_use]
pub fn inspector(variants: &[Variant], members: &[Member<'_>], report: Option<&LayerReport>) -> Option<InspectorModel> {
    let first = members.first()?;
    let v0 = variants.get(first.variant)?;
    let n0 = v0.model.graph.node(first.node)?;
    let mut out = InspectorModel {
        title: n0.label(first.node),
        op: crate::model::matching::op_family(&n0.op_type).to_string(),
        depth: n0.depth,
        members: Vec::new(),
    };
    for m in members {
        let Some(v) = variants.get(m.variant) else { continue };
        let g = &v.model.graph;
        let Some(node) = g.node(m.node) else { continue };
        let layer = m.layer.and_then(|li| v.layers.get(li));
        let entry = report.and_then(|r| r.variants.iter().find(|lv| lv.variant == v.spec.name));
        // the factor an edit put on the scale: the statistics' scale over the file's
        let factor = |p: &QuantParams| {
            let file = p.scale.iter().map(|&s| f64::from(s)).sum::<f64>() / p.scale.len().max(1) as f64;
            entry.and_then(|e| e.quant.as_ref()).map_or(1.0, |q| q.scale.mean / file)
        };
        let quant = layer.and_then(|l| match &l.weight {
            LayerWeight::Quantized(q) => Some(QuantView {
                edit: q.params.as_ref().zip(m.layer).map(|(p, layer)| ScaleEdit {
                    variant: m.variant,
                    layer,
                    factor: factor(p),
                    #[allow(clippy::cast_possible_truncation)]
                    zero_point: entry
                        .and_then(|e| e.quant.as_ref())
                        .map_or_else(|| p.zero_point.first().copied().unwrap_or(0), |q| q.zero_point.min as i32),
                    in_float: false,
                }),
                form: format!("{:?}", q.form),
                summary: q.params.as_ref().map_or_else(|| "unusable (see problems)".into(), quant_summary),
                scales: q.params.as_ref().filter(|p| p.block.is_none()).map(|p| p.scale.clone()).unwrap_or_default(),
                zero_points: q
                    .params
                    .as_ref()
                    .filter(|p| p.block.is_none())
                    .map(|p| p.zero_point.clone())
                    .unwrap_or_default(),
                problems: q.problems.clone(),
                blocks: q.params.as_ref().and_then(|p| {
                    let shape = &g.tensor(q.q_tensor)?.data.as_ref()?.shape;
                    let scales = entry.and_then(|e| e.quant.as_ref()?.block_scales.clone());
                    block_view(shape, p, scales)
                }),
            }),
            LayerWeight::Float(_) => None,
        });
        out.members.push(MemberView {
            variant: v.spec.name.clone(),
            node: node.label(m.node),
            op_type: node.op_type.clone(),
            matched_by: entry.map(|e| format!("{:?}", e.matched_by)).unwrap_or_default(),
            attributes: node.attributes.iter().map(|a| (a.name.clone(), attr_text(&a.value))).collect(),
            inputs: node.inputs.iter().flatten().filter_map(|&t| tensor_view(v, t)).collect(),
            outputs: node.outputs.iter().filter_map(|&t| tensor_view(v, t)).collect(),
            weight: layer.and_then(|l| g.tensor(l.weight.tensor())).map(|t| t.name.clone()),
            quant,
            folded: m.folded.iter().filter_map(|&n| folded_line(v, n)).collect(),
            stats: entry.and_then(|e| e.stats.clone()),
            metrics: entry.and_then(|e| e.metrics.clone()),
            problems: entry.map(|e| e.problems.clone()).unwrap_or_default(),
            params: entry.map(|e| e.initializers.iter().map(param_view).collect()).unwrap_or_default(),
            // from the report once it is in (no graph walk per frame); before, from the graph
            activations: match (entry, layer) {
                (Some(e), _) => e.activations.iter().map(activation_view).collect(),
                (None, Some(l)) => crate::model::layer_activations(g, l.node)
                    .iter()
                    .map(|a| activation_view(&ActivationReport::from(a)))
                    .collect(),
                (None, None) => Vec::new(),
            },
        });
    }
    Some(out)
}

/// `exact` or `41.20 dB`.
#[must_use]
pub fn sqnr_cell(m: &ErrorMetrics) -> String {
    if m.exact { "exact".into() } else { format!("{:.2} dB", m.sqnr_db) }
}

fn param_view(i: &InitializerReport) -> ParamView {
    let quant = i.quant.as_ref().map_or_else(String::new, |q| {
        if q.per_channel {
            format!(
                "{} ch: scale {}..{}, zp {}..{}",
                q.channels,
                fmt_num(q.scale.min),
                fmt_num(q.scale.max),
                q.zero_point.min,
                q.zero_point.max
            )
        } else {
            format!("scale {}, zp {}", fmt_num(q.scale.min), q.zero_point.min)
        }
    });
    ParamView {
        role: i.role.name().into(),
        name: i.name.clone(),
        dtype: i.dtype.clone(),
        shape: format!("{:?}", i.shape),
        quant,
        sqnr: i.metrics.as_ref().map_or_else(String::new, sqnr_cell),
        rmse_over_scale: i.metrics.as_ref().and_then(|m| m.rmse_over_scale),
        problems: i.problems.clone(),
    }
}

fn activation_view(a: &ActivationReport) -> ActivationView {
    ActivationView {
        tensor: a.tensor.clone(),
        role: match a.role {
            ActRole::Input => "input".into(),
            ActRole::Output => "output".into(),
        },
        dtype: a.dtype.clone(),
        scale: fmt_num(f64::from(a.scale)),
        zero_point: a.zero_point,
        range: a.range.map_or_else(|| "?".into(), |[lo, hi]| format!("[{}, {}]", fmt_num(lo), fmt_num(hi))),
        edit: None,
    }
}
