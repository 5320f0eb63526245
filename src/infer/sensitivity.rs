//! Which layer costs the most: for every quantized layer of every quantized variant, the
//! variant is run with only that layer kept in float (`LAYER.float`), and its accuracy
//! (with labels) or its outputs' SQNR against the float model (without) is set beside the
//! fully quantized variant's, as AIMET's `QuantAnalyzer` does per layer.

use rayon::prelude::*;
use serde::Serialize;

use super::InferError;
use prost::Message as _;

use super::edit::{Change, Edit, Field, edit_proto, read_proto};
use super::inputs::Sample;
use super::run::Runner;
use crate::model::{LayerWeight, Variant};
use crate::stats::{self, Values};

/// One layer kept in float.
#[derive(Clone, Debug, Serialize)]
pub struct SensitivityRow {
    pub variant: String,
    pub layer: String,
    /// Top-1 accuracy with the layer in float (with labels).
    pub top1: Option<f64>,
    /// SQNR of the outputs against the float model's.
    pub output_sqnr_db: Option<f64>,
    /// How much keeping it in float recovers over the fully quantized variant (accuracy
    /// points, or dB): the largest first.
    pub gain: Option<f64>,
    /// What it recovers in output SQNR (dB), with labels too: it orders layers whose
    /// accuracy gains tie (a small quick set often moves no prediction).
    pub sqnr_gain_db: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Outputs of a model for every sample (first output, concatenated) and its top-1 classes.
fn outputs(runner: &Runner, samples: &[Sample]) -> Result<(Vec<f32>, Vec<usize>), InferError> {
    let mut all = Vec::new();
    let mut top1 = Vec::new();
    for s in samples {
        let o = runner.output(s)?;
        top1.push(
            (0..o.len())
                .max_by(|&a, &b| o.get(a).unwrap_or(&f32::NAN).total_cmp(o.get(b).unwrap_or(&f32::NAN)))
                .unwrap_or(0),
        );
        all.extend(o);
    }
    Ok((all, top1))
}

#[allow(clippy::cast_precision_loss)]
fn score(out: &(Vec<f32>, Vec<usize>), float: &[f32], labels: Option<&[i64]>) -> (Option<f64>, Option<f64>) {
    let top1 = labels.map(|y| {
        let hits = out.1.iter().zip(y).filter(|(p, y)| usize::try_from(**y).is_ok_and(|y| y == **p)).count();
        hits as f64 / out.1.len().max(1) as f64
    });
    let sqnr = stats::compare(Values::Slice(float), Values::Slice(&out.0), None).ok().map(|m| m.sqnr_db);
    (top1, sqnr)
}

/// The sweep over every quantized layer of every quantized variant, each variant's rows
/// sorted by gain (largest first). A variant tract cannot run is reported instead.
#[must_use]
pub fn sensitivity(
    variants: &[Variant],
    reference: usize,
    samples: &[Sample],
    labels: Option<&[i64]>,
) -> (Vec<SensitivityRow>, Vec<InferError>) {
    let mut failures = Vec::new();
    let (Some(first), Some(refv)) = (samples.first(), variants.get(reference)) else { return (Vec::new(), failures) };
    let float = match Runner::new(&refv.spec.path, &refv.spec.name, first, &[]).and_then(|r| outputs(&r, samples)) {
        Ok((o, _)) => o,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let matching = crate::model::match_layers(variants, reference);
    let mut rows = Vec::new();
    for (vi, v) in variants.iter().enumerate().filter(|(vi, _)| *vi != reference) {
        let base = match Runner::new(&v.spec.path, &v.spec.name, first, &[]).and_then(|r| outputs(&r, samples)) {
            Ok(o) => score(&o, &float, labels),
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        // the file decoded once; each layer edits a copy
        let proto = match read_proto(v) {
            Ok(p) => p,
            Err(e) => {
                failures.push(InferError::Input(e));
                continue;
            }
        };
        let layers: Vec<&crate::model::Layer> =
            v.layers.iter().filter(|l| matches!(l.weight, LayerWeight::Quantized(_))).collect();
        // the layers on threads of their own (each builds its own plan)
        let mut mine: Vec<SensitivityRow> = layers
            .par_iter()
            .filter_map(|l| {
                let name = v.model.graph.node(l.node).map(|n| n.label(l.node))?;
                let edit = Edit { layer: name.clone(), field: Field::Float, change: Change::Set(1.0) };
                let mut edited = proto.clone();
                let run = edit_proto(variants, reference, vi, &matching, &[edit], &mut edited)
                    .map_err(InferError::Input)
                    .and_then(|()| {
                        let r = Runner::from_bytes(&edited.encode_to_vec(), &v.spec.name, first, &[])?;
                        outputs(&r, samples)
                    });
                let mut row = SensitivityRow {
                    variant: v.spec.name.clone(),
                    layer: name,
                    top1: None,
                    output_sqnr_db: None,
                    gain: None,
                    sqnr_gain_db: None,
                    problem: None,
                };
                match run {
                    Ok(o) => {
                        let (top1, sqnr) = score(&o, &float, labels);
                        // accuracy points with labels, else dB
                        let (now, before) = if top1.is_some() { (top1, base.0) } else { (sqnr, base.1) };
                        row.gain = now.zip(before).map(|(a, b)| a - b);
                        row.sqnr_gain_db = sqnr.zip(base.1).map(|(a, b)| a - b);
                        (row.top1, row.output_sqnr_db) = (top1, sqnr);
                    }
                    Err(e) => row.problem = Some(e.to_string()),
                }
                Some(row)
            })
            .collect();
        let order =
            |r: &SensitivityRow| (r.gain.unwrap_or(f64::NEG_INFINITY), r.sqnr_gain_db.unwrap_or(f64::NEG_INFINITY));
        mine.sort_by(|a, b| {
            let ((ga, sa), (gb, sb)) = (order(a), order(b));
            gb.total_cmp(&ga).then(sb.total_cmp(&sa))
        });
        rows.extend(mine);
    }
    (rows, failures)
}
