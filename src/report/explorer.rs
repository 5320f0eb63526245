//! Node data for Google's Model Explorer overlays: per graph (keyed by the ONNX graph's
//! name), a `results` map from node id (the ONNX node name, `<node_i>` for an unnamed
//! node) to `{"value": …}`, with thresholds (SQNR) or a gradient (the rest) to colour it.

use serde_json::{Map, Value, json};

use super::build::{LayerVariant, Report};
use crate::model::Variant;
use crate::stats::metrics::rmse_distance;

/// The value overlaid on each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplorerMetric {
    /// Worst SQNR of the layer's tensors (dB; exact tensors left out).
    Sqnr,
    /// Largest MSE of the layer's tensors.
    Mse,
    /// Largest max-abs error.
    MaxAbs,
    /// `rmse/scale` of the layer's tensor farthest from 0.289.
    RmseScale,
    /// Lowest cosine similarity.
    Cosine,
}

fn value(v: &LayerVariant, metric: ExplorerMetric) -> Option<f64> {
    let ms = v.initializers.iter().filter_map(|i| i.metrics.as_ref()).filter(|m| !m.exact);
    match metric {
        ExplorerMetric::Sqnr => ms.map(|m| m.sqnr_db).min_by(f64::total_cmp),
        ExplorerMetric::Mse => ms.map(|m| m.mse).max_by(f64::total_cmp),
        ExplorerMetric::MaxAbs => ms.map(|m| m.max_abs).max_by(f64::total_cmp),
        ExplorerMetric::RmseScale => {
            ms.filter_map(|m| m.rmse_over_scale).max_by(|a, b| rmse_distance(*a).total_cmp(&rmse_distance(*b)))
        }
        ExplorerMetric::Cosine => ms.map(|m| m.cosine).filter(|c| !c.is_nan()).min_by(f64::total_cmp),
    }
    .filter(|x| x.is_finite())
}

/// The node id Model Explorer's ONNX adapter gives node `n` of `v`.
fn node_id(v: &Variant, n: crate::model::NodeId) -> Option<String> {
    let node = v.model.graph.node(n)?;
    if !node.scope.is_empty() {
        return None;
    }
    Some(if node.name.is_empty() { format!("<node_{n}>") } else { node.name.clone() })
}

/// The node-data JSON of `metric` on the nodes of variant `variant` (default: the first
/// quantized one).
///
/// # Errors
/// When `variant` names no quantized variant, or there is none.
pub fn to_model_explorer(
    report: &Report,
    variants: &[Variant],
    metric: ExplorerMetric,
    variant: Option<&str>,
) -> Result<String, String> {
    let name = match variant {
        Some(n) => n.to_string(),
        None => report
            .variants
            .iter()
            .map(|v| v.name.clone())
            .find(|n| *n != report.reference)
            .ok_or("only one variant: no metrics to overlay")?,
    };
    let v = variants.iter().find(|v| v.spec.name == name).ok_or_else(|| format!("no variant named `{name}`"))?;
    if name == report.reference {
        return Err(format!("`{name}` is the reference: pick a quantized variant with --variant"));
    }
    // report entries name their node by label
    let by_label: std::collections::HashMap<String, crate::model::NodeId> =
        v.layers.iter().filter_map(|l| Some((v.model.graph.node(l.node)?.label(l.node), l.node))).collect();
    let mut results = Map::new();
    for l in &report.layers {
        for lv in l.variants.iter().filter(|lv| lv.variant == name) {
            let (Some(x), Some(&n)) = (value(lv, metric), by_label.get(&lv.node)) else { continue };
            if let Some(id) = node_id(v, n) {
                results.insert(id, json!({ "value": x }));
            }
        }
    }
    let colouring = match metric {
        // the window's SQNR bands: ≤ 10 dB red … ≥ 40 dB green
        ExplorerMetric::Sqnr => json!({ "thresholds": [
            { "value": 10.0, "bgColor": "#d32f2f", "textColor": "#ffffff" },
            { "value": 20.0, "bgColor": "#f57c00" },
            { "value": 30.0, "bgColor": "#fbc02d" },
            { "value": 40.0, "bgColor": "#c0ca33" },
            { "value": 1.0e300, "bgColor": "#388e3c", "textColor": "#ffffff" }
        ] }),
        ExplorerMetric::Cosine => json!({ "gradient": [
            { "stop": 0.0, "bgColor": "#d32f2f" }, { "stop": 0.5, "bgColor": "#fbc02d" }, { "stop": 1.0, "bgColor": "#388e3c" }
        ] }),
        _ => json!({ "gradient": [
            { "stop": 0.0, "bgColor": "#388e3c" }, { "stop": 0.5, "bgColor": "#fbc02d" }, { "stop": 1.0, "bgColor": "#d32f2f" }
        ] }),
    };
    let mut graph = Map::new();
    graph.insert("results".into(), Value::Object(results));
    if let Value::Object(c) = colouring {
        graph.extend(c);
    }
    let graph_id = if v.model.graph_name.is_empty() { "<main>".to_string() } else { v.model.graph_name.clone() };
    let mut file = Map::new();
    file.insert(graph_id, Value::Object(graph));
    serde_json::to_string_pretty(&Value::Object(file)).map_err(|e| e.to_string())
}
