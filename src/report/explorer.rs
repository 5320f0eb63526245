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
    let ms = v.inexact();
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

/// The node id Model Explorer's ONNX adapter gives node `n` of `v`: its name, or
/// `<node_i>` with `i` its index in the main graph (whose nodes are imported first, so
/// `i` is `n`); subgraph nodes have none.
pub(crate) fn node_id(v: &Variant, n: crate::model::NodeId) -> Option<String> {
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
    let mut results = Map::new();
    for l in &report.layers {
        for lv in l.variants.iter().filter(|lv| lv.variant == name) {
            let Some(x) = value(lv, metric) else { continue };
            if let Some(id) = node_id(v, lv.node_id) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Variant, VariantKind, VariantSpec, load_model};

    fn variant(rel: &str) -> Variant {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel);
        let spec = VariantSpec { name: "q".into(), kind: VariantKind::Other, path: path.clone() };
        Variant::new(spec, load_model(&path).unwrap())
    }

    #[test]
    fn node_ids_follow_the_onnx_adapter() {
        // onnx.load: [(0, 'dup', MatMul), (1, 'dup', Relu), (2, '', MatMul), (3, '', Relu), (4, 'last', MatMul)]
        let v = variant("edge/dup_names.onnx");
        let ids: Vec<String> = (0..v.model.graph.nodes.len()).filter_map(|n| node_id(&v, n)).collect();
        assert_eq!(ids, ["dup", "dup", "<node_2>", "<node_3>", "last"]);
        // subgraph nodes have no id of the main graph (onnx.load: one main node, `outer_if`)
        let v = variant("edge/subgraph_if.onnx");
        let ids: Vec<String> = (0..v.model.graph.nodes.len()).filter_map(|n| node_id(&v, n)).collect();
        assert_eq!(ids, ["outer_if"]);
    }
}
