//! What a run of the variants says about each layer: its activations' figures (through the
//! activation tensors the layer's quantized variants read and write), the accuracy it
//! costs (the sensitivity sweep), and the figures the towers are coloured by. No egui.

use crate::infer::{ActivationRow, SensitivityRow};
use crate::model::ActRole;
use crate::report::{LayerReport, SharedHistogram};

/// What the user asks a run of the variants for (the window's Run panel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunCommand {
    /// Activations of every variant against float, with clipping.
    Activations,
    /// Accuracy on the labelled data: a quick stratified subset, or all of it.
    Evaluate { full: bool },
    /// Each quantized layer kept in float alone.
    Sensitivity,
    /// Stop the run in progress.
    Cancel,
}

impl RunCommand {
    /// What the progress bar calls it.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Activations => "activations",
            Self::Evaluate { full: false } => "quick evaluation",
            Self::Evaluate { full: true } => "full evaluation",
            Self::Sensitivity => "sensitivity sweep",
            Self::Cancel => "cancel",
        }
    }
}

/// One variant's accuracy as the Evaluate panel shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRow {
    pub variant: String,
    pub accuracy: crate::infer::Accuracy,
    /// The variant ran with the window's edits.
    pub edited: bool,
    /// An edited variant's accuracy without the edits (from an earlier run on the same
    /// samples), for the change the edits made.
    pub unedited: Option<crate::infer::Accuracy>,
}

/// The latest evaluation: every variant side by side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalView {
    pub samples: usize,
    pub full: bool,
    pub rows: Vec<EvalRow>,
    /// Taken from the cache (nothing ran).
    pub cached: bool,
}

/// The latest results of running the variants (empty until a run finished).
#[derive(Clone, Debug, Default)]
pub struct RunFindings {
    pub activations: Vec<ActivationRow>,
    pub sensitivity: Vec<SensitivityRow>,
    /// What the sensitivity gains are in: accuracy points (labels) or dB.
    pub sensitivity_accuracy: bool,
}

/// The figures one block is coloured by.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockRun {
    /// The lowest `xmodel_err` (dB) of the layer's activations.
    pub activation_sqnr: Option<f64>,
    /// The largest share of float values outside an activation's representable range.
    pub clip: Option<f64>,
    /// The layer's sensitivity gain over the model's largest (0 = costs nothing, 1 = the
    /// costliest layer).
    pub cost: Option<f64>,
}

/// The activations of the layer of `row` (the tensors its quantized variants quantize
/// around it), its output first, then its inputs.
#[must_use]
pub fn row_activations<'a>(findings: &'a RunFindings, row: &LayerReport) -> Vec<&'a ActivationRow> {
    let mut tensors: Vec<(ActRole, &str)> = Vec::new();
    for a in row.variants.iter().flat_map(|v| &v.activations) {
        if !tensors.iter().any(|(_, t)| *t == a.tensor) {
            tensors.push((a.role, &a.tensor));
        }
    }
    tensors.sort_by_key(|(role, _)| *role != ActRole::Output);
    tensors.iter().filter_map(|(_, t)| findings.activations.iter().find(|a| a.tensor == *t)).collect()
}

/// Sensitivity costs normalised against the costliest layer: by accuracy gain when any
/// layer moved the accuracy, else (a small quick set) by output-SQNR gain.
#[derive(Debug, Clone, Copy)]
pub struct Costs<'a> {
    sweep: &'a [SensitivityRow],
    by_accuracy: bool,
    most: f64,
}

impl<'a> Costs<'a> {
    /// Scans the sweep once for its scale.
    #[must_use]
    pub fn of(findings: &'a RunFindings) -> Self {
        let sweep = findings.sensitivity.as_slice();
        let by_accuracy = sweep.iter().any(|s| s.gain.is_some_and(|g| g > 0.0));
        let mut costs = Self { sweep, by_accuracy, most: 0.0 };
        costs.most = sweep.iter().filter_map(|s| costs.gain(s)).fold(0.0f64, f64::max);
        costs
    }

    fn gain(&self, s: &SensitivityRow) -> Option<f64> {
        if self.by_accuracy { s.gain } else { s.sqnr_gain_db }
    }

    /// The cost in `[0, 1]` of keeping `layer` of `variant` in float; `None` when not swept.
    #[must_use]
    pub fn layer(&self, variant: &str, layer: &str) -> Option<f64> {
        let g = self.sweep.iter().find(|s| s.variant == variant && s.layer == layer).and_then(|s| self.gain(s))?;
        Some(if self.most > 0.0 { (g / self.most).clamp(0.0, 1.0) } else { 0.0 })
    }
}

/// The figures of the block of variant `variant` in `row` (the reference's block: the
/// worst over every variant).
#[must_use]
pub fn block_run(
    findings: &RunFindings,
    costs: &Costs,
    row: Option<&LayerReport>,
    variant: &str,
    is_reference: bool,
) -> BlockRun {
    let Some(row) = row else { return BlockRun::default() };
    let mine = |v: &str| is_reference || v == variant;
    let acts = row_activations(findings, row);
    let entries = || acts.iter().flat_map(|a| &a.variants).filter(|v| mine(&v.variant));
    let activation_sqnr = entries().filter_map(|v| v.xmodel_err_db).min_by(f64::total_cmp);
    let clip = entries().filter_map(|v| v.clip_fraction).max_by(f64::total_cmp);
    let cost = row
        .variants
        .iter()
        .filter(|lv| mine(&lv.variant))
        .filter_map(|lv| costs.layer(&lv.variant, &lv.node))
        .max_by(f64::total_cmp);
    BlockRun { activation_sqnr, clip, cost }
}

/// Per match row, its cost in the sensitivity sweep (the largest over its variants'
/// layers, against the costliest layer; `None` when none was swept): the layer list's
/// `cost`.
#[must_use]
pub fn row_costs(
    findings: &RunFindings,
    variants: &[crate::model::Variant],
    rows: &[crate::model::MatchRow],
) -> Vec<Option<f64>> {
    let costs = Costs::of(findings);
    rows.iter()
        .map(|row| {
            row.members
                .iter()
                .enumerate()
                .filter_map(|(vi, m)| {
                    let (li, _) = (*m)?;
                    let v = variants.get(vi)?;
                    let layer = v.layers.get(li)?;
                    costs.layer(&v.spec.name, &v.model.graph.node(layer.node)?.label(layer.node))
                })
                .max_by(f64::total_cmp)
        })
        .collect()
}

/// An activation's histograms (float first, then each variant, on their shared bins) in
/// the histogram panel's form, with the series' names.
#[must_use]
pub fn activation_histogram(a: &ActivationRow) -> Option<(SharedHistogram, Vec<String>)> {
    let float = a.float.as_ref()?.histogram.as_ref()?;
    let mut counts = vec![float.counts.clone()];
    let mut names = vec!["float".to_string()];
    for v in &a.variants {
        let h = v.histogram.as_ref()?;
        if h.counts.len() != float.counts.len() {
            return None;
        }
        counts.push(h.counts.clone());
        names.push(v.variant.clone());
    }
    Some((SharedHistogram { lo: float.lo, hi: float.hi, bins: float.counts.len(), counts }, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::ActivationVariant;
    use crate::infer::activations::TensorStats;
    use crate::report::{ActivationReport, LayerVariant};

    fn act(tensor: &str, figures: &[(&str, f64, f64)]) -> ActivationRow {
        ActivationRow {
            tensor: tensor.into(),
            layer: String::new(),
            float: None,
            variants: figures
                .iter()
                .map(|&(variant, sqnr, clip)| ActivationVariant {
                    variant: variant.into(),
                    qdq_err_db: None,
                    xmodel_err_db: Some(sqnr),
                    mse: None,
                    max_abs: None,
                    cosine: None,
                    clip_fraction: Some(clip),
                    range_used: None,
                    range: None,
                    stats: None,
                    histogram: None,
                })
                .collect(),
        }
    }

    fn member(variant: &str, node: &str, acts: &[(&str, ActRole)]) -> LayerVariant {
        LayerVariant {
            variant: variant.into(),
            node: node.into(),
            node_id: 0,
            op: "Conv".into(),
            matched_by: crate::model::MatchHow::Reference,
            weight: String::new(),
            dtype: String::new(),
            shape: Vec::new(),
            quant: None,
            stats: None,
            metrics: None,
            problems: Vec::new(),
            initializers: Vec::new(),
            activations: acts
                .iter()
                .map(|&(t, role)| ActivationReport {
                    tensor: t.into(),
                    role,
                    dtype: "int8".into(),
                    scale: 0.1,
                    zero_point: 0,
                    range: None,
                })
                .collect(),
        }
    }

    #[test]
    fn blocks_take_their_layers_activations_and_cost() {
        let row = LayerReport {
            layer: "conv".into(),
            op: "Conv".into(),
            depth: 0,
            constant: false,
            variants: vec![
                member("float", "conv", &[]),
                member("int8", "conv_q", &[("x", ActRole::Input), ("y", ActRole::Output)]),
                member("uint8", "conv_q", &[("y", ActRole::Output)]),
            ],
            histogram: None,
        };
        let findings = RunFindings {
            activations: vec![
                act("x", &[("int8", 30.0, 0.0), ("uint8", 35.0, 0.001)]),
                act("y", &[("int8", 20.0, 0.02), ("uint8", 25.0, 0.0)]),
                act("elsewhere", &[("int8", 1.0, 0.9)]),
            ],
            sensitivity: vec![
                SensitivityRow {
                    variant: "int8".into(),
                    layer: "conv_q".into(),
                    top1: None,
                    output_sqnr_db: None,
                    gain: Some(2.0),
                    sqnr_gain_db: Some(1.0),
                    problem: None,
                },
                SensitivityRow {
                    variant: "int8".into(),
                    layer: "other".into(),
                    top1: None,
                    output_sqnr_db: None,
                    gain: Some(8.0),
                    sqnr_gain_db: Some(9.0),
                    problem: None,
                },
            ],
            sensitivity_accuracy: false,
        };
        let tensors: Vec<&str> = row_activations(&findings, &row).iter().map(|a| a.tensor.as_str()).collect();
        assert_eq!(tensors, ["y", "x"], "output first; other layers' activations left out");
        let int8 = block_run(&findings, &Costs::of(&findings), Some(&row), "int8", false);
        assert_eq!((int8.activation_sqnr, int8.clip, int8.cost), (Some(20.0), Some(0.02), Some(0.25)));
        let uint8 = block_run(&findings, &Costs::of(&findings), Some(&row), "uint8", false);
        assert_eq!((uint8.activation_sqnr, uint8.clip, uint8.cost), (Some(25.0), Some(0.001), None));
        let float = block_run(&findings, &Costs::of(&findings), Some(&row), "float", true);
        assert_eq!((float.activation_sqnr, float.clip, float.cost), (Some(20.0), Some(0.02), Some(0.25)));
        assert_eq!(
            block_run(&RunFindings::default(), &Costs::of(&RunFindings::default()), Some(&row), "int8", false),
            BlockRun::default()
        );
        // no accuracy moved: the output SQNR gains rank the layers
        let mut flat = findings.clone();
        flat.sensitivity.iter_mut().for_each(|s| s.gain = Some(0.0));
        assert_eq!(block_run(&flat, &Costs::of(&flat), Some(&row), "int8", false).cost, Some(1.0 / 9.0));
    }

    #[test]
    fn activation_histograms_keep_their_shared_bins() {
        let h = |counts: Vec<u64>| crate::stats::Histogram { lo: -1.0, hi: 1.0, counts, outside: 0, nonfinite: 0 };
        let mut a = act("y", &[("int8", 20.0, 0.0)]);
        a.float = Some(TensorStats {
            stats: crate::stats::summarize(crate::stats::Values::Slice(&[0.0])).unwrap(),
            histogram: Some(h(vec![1, 2])),
        });
        a.variants[0].histogram = Some(h(vec![3, 0]));
        let (shared, names) = activation_histogram(&a).unwrap();
        assert_eq!((shared.lo, shared.hi, shared.bins), (-1.0, 1.0, 2));
        assert_eq!(shared.counts, vec![vec![1, 2], vec![3, 0]]);
        assert_eq!(names, ["float", "int8"]);
        a.variants[0].histogram = Some(h(vec![3, 0, 1]));
        assert!(activation_histogram(&a).is_none(), "bins that do not line up are not drawn together");
    }
}
