//! Writes a [`Report`] as a text table, JSON or CSV, and sorts its layers.

use std::fmt::Write as _;

use super::build::{InitializerReport, LayerReport, LayerVariant, Report};
use crate::stats::ErrorMetrics;
use crate::stats::metrics::rmse_distance;

/// Layer order of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// Topological order of the reference variant (the default).
    Graph,
    /// Worst (lowest) SQNR first; layers without metrics last.
    Sqnr,
    /// Largest MSE first.
    Mse,
    /// rmse/scale farthest from 0.289 (healthy rounding) first.
    RmseScale,
    Name,
}

/// Sorts the layers of `report` by `key` (stable). Worst-first orders put layers whose
/// weight is a scalar constant after the others, and rank exact tensors as lossless.
pub fn sort_layers(report: &mut Report, key: SortKey) {
    let worst = |l: &LayerReport, f: &dyn Fn(&ErrorMetrics) -> Option<f64>| {
        l.variants.iter().flat_map(LayerVariant::inexact).filter_map(f).max_by(f64::total_cmp)
    };
    let desc = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    let by = |f: &dyn Fn(&ErrorMetrics) -> Option<f64>, layers: &mut Vec<LayerReport>| {
        layers.sort_by(|a, b| a.constant.cmp(&b.constant).then_with(|| desc(worst(a, f), worst(b, f))));
    };
    match key {
        SortKey::Graph => {}
        SortKey::Name => report.layers.sort_by(|a, b| a.layer.cmp(&b.layer)),
        SortKey::Sqnr => by(&|m| Some(-m.sqnr_db), &mut report.layers),
        SortKey::Mse => by(&|m| Some(m.mse), &mut report.layers),
        SortKey::RmseScale => by(&|m| m.rmse_over_scale.map(rmse_distance), &mut report.layers),
    }
}

/// Pretty JSON of the whole report.
///
/// # Errors
/// Never in practice (plain data); kept for the serializer's signature.
pub fn to_json(report: &Report) -> serde_json::Result<String> {
    serde_json::to_string_pretty(report)
}

/// CSV columns, one row per (layer, variant, parameter). Documented in README.md.
pub const CSV_COLUMNS: &[&str] = &[
    "layer",
    "op",
    "depth",
    "variant",
    "node",
    "node_op",
    "matched_by",
    "role",
    "float",
    "weight",
    "dtype",
    "shape",
    "quant_form",
    "per_channel",
    "axis",
    "channels",
    "scale_min",
    "scale_max",
    "scale_mean",
    "zero_point_min",
    "zero_point_max",
    "count",
    "nan",
    "inf",
    "min",
    "max",
    "mean",
    "std",
    "q25",
    "q50",
    "q75",
    "sqnr_db",
    "mse",
    "max_abs",
    "cosine",
    "norm_l2",
    "rmse_over_scale",
    "exact",
    "constant",
    "problems",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// CSV of the report (RFC 4180 quoting): one row per (layer, variant, parameter), the
/// main weight first.
#[must_use]
pub fn to_csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for l in &report.layers {
        for v in &l.variants {
            for init in &v.initializers {
                let row: Vec<String> = csv_row(l, v, init).iter().map(|f| csv_field(f)).collect();
                out.push_str(&row.join(","));
                out.push('\n');
            }
        }
    }
    out
}

fn csv_row(l: &LayerReport, v: &LayerVariant, init: &InitializerReport) -> Vec<String> {
    let q = init.quant.as_ref();
    let s = init.stats.as_ref();
    let m = init.metrics.as_ref();
    let shape: Vec<String> = init.shape.iter().map(ToString::to_string).collect();
    let text = |v: serde_json::Result<serde_json::Value>| v.ok().and_then(|j| j.as_str().map(String::from));
    vec![
        l.layer.clone(),
        l.op.clone(),
        l.depth.to_string(),
        v.variant.clone(),
        v.node.clone(),
        v.op.clone(),
        text(serde_json::to_value(v.matched_by)).unwrap_or_default(),
        init.role.name().to_string(),
        init.float.clone(),
        init.name.clone(),
        init.dtype.clone(),
        shape.join("x"),
        q.and_then(|q| text(serde_json::to_value(q.form))).unwrap_or_default(),
        q.map(|q| q.per_channel.to_string()).unwrap_or_default(),
        q.and_then(|q| q.axis).map(|a| a.to_string()).unwrap_or_default(),
        q.map(|q| q.channels.to_string()).unwrap_or_default(),
        num(q.map(|q| q.scale.min)),
        num(q.map(|q| q.scale.max)),
        num(q.map(|q| q.scale.mean)),
        num(q.map(|q| q.zero_point.min)),
        num(q.map(|q| q.zero_point.max)),
        s.map(|s| s.count.to_string()).unwrap_or_default(),
        s.map(|s| s.nan.to_string()).unwrap_or_default(),
        s.map(|s| s.inf.to_string()).unwrap_or_default(),
        num(s.map(|s| s.min)),
        num(s.map(|s| s.max)),
        num(s.map(|s| s.mean)),
        num(s.map(|s| s.std)),
        num(s.map(|s| s.q25)),
        num(s.map(|s| s.q50)),
        num(s.map(|s| s.q75)),
        num(m.map(|m| m.sqnr_db)),
        num(m.map(|m| m.mse)),
        num(m.map(|m| m.max_abs)),
        num(m.map(|m| m.cosine).filter(|c| !c.is_nan())),
        num(m.map(|m| m.norm_l2).filter(|c| !c.is_nan())),
        num(m.and_then(|m| m.rmse_over_scale)),
        m.map(|m| m.exact.to_string()).unwrap_or_default(),
        l.constant.to_string(),
        init.problems.join("; "),
    ]
}

/// SQNR as people should read it: `exact` for a tensor reproduced exactly.
#[must_use]
pub fn sqnr_text(m: &ErrorMetrics) -> String {
    if m.exact { "exact".into() } else { format!("{:.2}", m.sqnr_db) }
}

fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn scale_text(q: Option<&super::build::QuantSummary>) -> String {
    match q {
        None => "-".into(),
        Some(q) if !q.per_channel => format!("{} zp {}", short(q.scale.min), q.zero_point.min),
        Some(q) if q.block.is_some() => format!(
            "{}..{} ({}×{} ax{}) zp {}..{}",
            short(q.scale.min),
            short(q.scale.max),
            q.channels,
            q.block.unwrap_or(0),
            q.axis.unwrap_or(0),
            q.zero_point.min,
            q.zero_point.max
        ),
        Some(q) => format!(
            "{}..{} ({}ch ax{}) zp {}..{}",
            short(q.scale.min),
            short(q.scale.max),
            q.channels,
            q.axis.unwrap_or(0),
            q.zero_point.min,
            q.zero_point.max
        ),
    }
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A human-readable table: one line per (layer, variant), the layer named once.
#[must_use]
pub fn to_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "reference: {}", report.reference);
    for v in &report.variants {
        let _ = writeln!(
            out,
            "variant {:<8} {} (opset {}, {} nodes, {} layers)",
            v.name, v.file, v.opset, v.nodes, v.layers
        );
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:<8} {:<8} {:<7} {:<34} {:<21} {:>8} {:>10} {:>9} {:>8} {:>7}",
        "LAYER",
        "OP",
        "VARIANT",
        "DTYPE",
        "SCALE / ZERO POINT",
        "RANGE",
        "SQNR dB",
        "MSE",
        "MAX|ERR|",
        "COSINE",
        "RMSE/S"
    );
    for l in &report.layers {
        for (i, v) in l.variants.iter().enumerate() {
            let (name, op) = if i == 0 {
                (truncate(&l.layer, 28), if l.constant { format!("{} (c)", l.op) } else { l.op.clone() })
            } else {
                (String::new(), String::new())
            };
            for (k, init) in v.initializers.iter().enumerate() {
                let (name, op, variant) = if k == 0 {
                    (name.clone(), truncate(&op, 8), truncate(&v.variant, 8))
                } else {
                    (format!("  {} {}", init.role.name(), truncate(&init.float, 18)), String::new(), String::new())
                };
                let _ = writeln!(out, "{}", table_line(&name, &op, &variant, init));
            }
            for init in &v.initializers {
                for p in &init.problems {
                    let _ = writeln!(out, "{:<28} ! {} {} {}: {p}", "", v.variant, init.role.name(), init.name);
                }
            }
        }
    }
    if let Some(acts) = report.activations.as_deref().filter(|a| !a.is_empty()) {
        let _ = writeln!(
            out,
            "\n{:<28} {:<28} {:<8} {:>12} {:>12} {:>9} {:>9}",
            "ACTIVATION", "LAYER", "VARIANT", "SQNR dB", "OWN Q/DQ dB", "CLIPPED", "RANGE USED"
        );
        for (a, v) in worst_activations(acts) {
            let db = |d: Option<f64>| d.map_or_else(|| "-".into(), |d| format!("{d:.2}"));
            let pct = |f: Option<f64>| f.map_or_else(|| "-".into(), |f| format!("{:.3}%", 100.0 * f));
            let _ = writeln!(
                out,
                "{:<28} {:<28} {:<8} {:>12} {:>12} {:>9} {:>9}",
                truncate(&a.tensor, 28),
                truncate(&a.layer, 28),
                truncate(&v.variant, 8),
                db(v.xmodel_err_db),
                db(v.qdq_err_db),
                pct(v.clip_fraction),
                pct(v.range_used)
            );
        }
    }
    out
}

/// Every activation of every variant, the lowest SQNR against float first (those without
/// one last).
#[must_use]
pub fn worst_activations(
    acts: &[crate::infer::ActivationRow],
) -> Vec<(&crate::infer::ActivationRow, &crate::infer::ActivationVariant)> {
    let mut all: Vec<_> = acts.iter().flat_map(|a| a.variants.iter().map(move |v| (a, v))).collect();
    all.sort_by(|x, y| {
        let key = |v: &crate::infer::ActivationVariant| v.xmodel_err_db.unwrap_or(f64::INFINITY);
        key(x.1).total_cmp(&key(y.1))
    });
    all
}

fn table_line(name: &str, op: &str, variant: &str, init: &InitializerReport) -> String {
    let range = init.stats.as_ref().map_or_else(|| "-".into(), |s| format!("[{}, {}]", short(s.min), short(s.max)));
    let m = init.metrics.as_ref();
    let cell = |f: Option<f64>| f.map_or_else(|| "-".to_string(), short);
    format!(
        "{:<28} {:<8} {:<8} {:<7} {:<34} {:<21} {:>8} {:>10} {:>9} {:>8} {:>7}",
        truncate(name, 28),
        op,
        variant,
        init.dtype,
        truncate(&scale_text(init.quant.as_ref()), 34),
        range,
        m.map_or_else(|| "-".into(), sqnr_text),
        cell(m.map(|m| m.mse)),
        cell(m.map(|m| m.max_abs)),
        m.map_or_else(|| "-".into(), |m| if m.cosine.is_nan() { "-".into() } else { format!("{:.5}", m.cosine) }),
        m.and_then(|m| m.rmse_over_scale).map_or_else(|| "-".into(), |r| format!("{r:.3}")),
    )
}
