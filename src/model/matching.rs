//! Matching layers across variants: node name first, then the weight traced back to its
//! initializer, then graph structure, so that differently named exports still pair up.

use std::collections::HashMap;

use serde::Serialize;

use super::graph::Graph;
use super::quant::{Layer, LayerWeight};
use super::variants::Variant;

/// How a layer was paired with the reference layer of its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchHow {
    /// It is the reference variant's own layer.
    Reference,
    NodeName,
    /// The quantized initializer traced back from the layer names the float weight.
    WeightTrace,
    /// Same op family and weight size, same position among such layers.
    Structure,
    /// No counterpart in the reference variant.
    Unmatched,
}

/// One row: the same layer in every variant (`None` where a variant lacks it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MatchRow {
    /// Per variant: index into that variant's `layers`, and how it was matched.
    pub members: Vec<Option<(usize, MatchHow)>>,
}

/// The op family a layer belongs to, whatever its quantized form.
#[must_use]
pub fn op_family(op: &str) -> &str {
    match op {
        "Conv" | "QLinearConv" | "ConvInteger" => "Conv",
        "MatMul" | "QLinearMatMul" | "MatMulInteger" | "MatMulNBits" | "FusedMatMul" | "Gemm" | "QGemm" => "MatMul",
        "GatherBlockQuantized" => "Gather",
        // QLinearAdd, QLinearGlobalAveragePool, …: the float op they stand for
        other => other.strip_prefix("QLinear").filter(|s| !s.is_empty()).unwrap_or(other),
    }
}

struct Key<'a> {
    /// The node name, as a module path where it is a scoped export name.
    name: String,
    family: &'a str,
    weight_name: String,
    elems: u64,
}

fn keys<'a>(g: &'a Graph, layers: &[Layer]) -> Vec<Key<'a>> {
    layers
        .iter()
        .map(|l| {
            let node = g.node(l.node);
            let t = g.tensor(l.weight.tensor());
            let mut weight_name = t.map(|t| t.name.clone()).unwrap_or_default();
            if matches!(l.weight, LayerWeight::Quantized(_)) {
                weight_name = strip_quant_suffix(&weight_name).to_string();
            }
            Key {
                name: node.map_or_else(String::new, |n| module_path(&n.name).unwrap_or_else(|| n.name.clone())),
                family: node.map_or("", |n| op_family(&n.op_type)),
                weight_name,
                elems: t.and_then(|t| t.data.as_ref()).map_or(0, super::tensor::TensorData::len),
            }
        })
        .collect()
}

/// The module path in a node name `torch.onnx.export` scoped (`/features/features.1/conv/
/// conv.0/conv.0.0/Conv` → `features.1.conv.0.0`: an attribute starts a component, an
/// index extends the previous one; the last component is the op), so that a PyTorch
/// file's modules meet the exported model's nodes. `None` for other names.
#[must_use]
pub fn module_path(name: &str) -> Option<String> {
    let scopes = name.strip_prefix('/')?;
    let (scopes, _op) = scopes.rsplit_once('/')?;
    let mut parts = scopes.split('/').filter(|c| !c.is_empty());
    let first = parts.next()?;
    let (mut path, mut prev) = (first.to_string(), first);
    for c in parts {
        if let Some(index) = c.strip_prefix(prev).filter(|rest| rest.starts_with('.')) {
            path.push_str(index);
        } else {
            path.push('.');
            path.push_str(c);
        }
        prev = c;
    }
    Some(path)
}

/// A node name less what quantizers append: onnxruntime's `QOperator` `_quant`, its
/// `MatMulNBits` quantizer's `_matmul_Q4` / `_MatMul_Q4` / `_Q4` (and the 8-bit forms).
fn quantizer_base(name: &str) -> &str {
    ["_matmul_Q4", "_MatMul_Q4", "_matmul_Q8", "_MatMul_Q8", "_Q4", "_Q8", "_quant"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// `W_quantized` → `W` (onnxruntime and common exporters).
pub(crate) fn strip_quant_suffix(name: &str) -> &str {
    for s in ["_quantized", "_quant", "_QuantizeLinear", "_q", "_int8", "_uint8"] {
        if let Some(base) = name.strip_suffix(s) {
            return base;
        }
    }
    name
}

/// Matches every variant's layers against the reference variant `reference`.
/// Rows follow the reference's layer order; layers left unmatched in other variants get
/// rows of their own at the end (listed, not dropped).
#[must_use]
pub fn match_layers(variants: &[Variant], reference: usize) -> Vec<MatchRow> {
    let Some(refv) = variants.get(reference) else { return Vec::new() };
    let rkeys = keys(&refv.model.graph, &refv.layers);
    let mut rows: Vec<MatchRow> = (0..refv.layers.len())
        .map(|i| {
            let mut members = vec![None; variants.len()];
            if let Some(m) = members.get_mut(reference) {
                *m = Some((i, MatchHow::Reference));
            }
            MatchRow { members }
        })
        .collect();
    let mut extra = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        if vi == reference {
            continue;
        }
        let okeys = keys(&v.model.graph, &v.layers);
        let pairs = pair(&rkeys, &okeys);
        let mut used = vec![false; okeys.len()];
        for (ri, (oi, how)) in pairs.into_iter().enumerate().filter_map(|(ri, p)| Some((ri, p?))) {
            if let Some(row) = rows.get_mut(ri)
                && let Some(m) = row.members.get_mut(vi)
            {
                *m = Some((oi, how));
                if let Some(u) = used.get_mut(oi) {
                    *u = true;
                }
            }
        }
        for (oi, _) in used.iter().enumerate().filter(|(_, u)| !**u) {
            let mut members = vec![None; variants.len()];
            if let Some(m) = members.get_mut(vi) {
                *m = Some((oi, MatchHow::Unmatched));
            }
            extra.push(MatchRow { members });
        }
    }
    rows.extend(extra);
    rows
}

/// For each reference layer, its counterpart among `other` and how it was found.
fn pair(reference: &[Key], other: &[Key]) -> Vec<Option<(usize, MatchHow)>> {
    let mut result: Vec<Option<(usize, MatchHow)>> = vec![None; reference.len()];
    let mut taken = vec![false; other.len()];
    let compatible = |r: &Key, o: &Key| r.family == o.family && r.elems == o.elems;

    // 1. node name (unique on both sides; less what quantizers append, see
    //    `quantizer_base`)
    let mut rnames: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in reference.iter().enumerate().filter(|(_, k)| !k.name.is_empty()) {
        rnames.entry(k.name.as_str()).or_default().push(i);
    }
    let mut onames: HashMap<&str, usize> = HashMap::new();
    for k in other.iter().filter(|k| !k.name.is_empty()) {
        *onames.entry(k.name.as_str()).or_default() += 1;
    }
    for (oi, o) in other.iter().enumerate() {
        if o.name.is_empty() || onames.get(o.name.as_str()) != Some(&1) {
            continue;
        }
        let base = quantizer_base(&o.name);
        let hit = [o.name.as_str(), base].into_iter().find_map(|n| match rnames.get(n).map(Vec::as_slice) {
            Some([ri]) => Some(*ri),
            _ => None,
        });
        if let Some(ri) = hit
            && result.get(ri).is_some_and(Option::is_none)
            && reference.get(ri).is_some_and(|r| compatible(r, o))
        {
            result[ri] = Some((oi, MatchHow::NodeName));
            taken[oi] = true;
        }
    }
    // 2. weight traced back to the float initializer's name
    let mut rweights: HashMap<&str, usize> = HashMap::new();
    for (i, k) in reference.iter().enumerate() {
        if result[i].is_none() && !k.weight_name.is_empty() {
            rweights.insert(k.weight_name.as_str(), i);
        }
    }
    for (oi, o) in other.iter().enumerate() {
        if taken[oi] {
            continue;
        }
        if let Some(&ri) = rweights.get(o.weight_name.as_str())
            && result[ri].is_none()
            && compatible(&reference[ri], o)
        {
            result[ri] = Some((oi, MatchHow::WeightTrace));
            taken[oi] = true;
        }
    }
    // 3. structure: same family and weight size, paired in topological order
    let mut queues: HashMap<(&str, u64), std::collections::VecDeque<usize>> = HashMap::new();
    for (oi, o) in other.iter().enumerate().filter(|(oi, _)| !taken[*oi]) {
        queues.entry((o.family, o.elems)).or_default().push_back(oi);
    }
    for (ri, r) in reference.iter().enumerate() {
        if result[ri].is_some() {
            continue;
        }
        if let Some(oi) = queues.get_mut(&(r.family, r.elems)).and_then(std::collections::VecDeque::pop_front) {
            result[ri] = Some((oi, MatchHow::Structure));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::module_path;

    #[test]
    fn scoped_export_names_become_module_paths() {
        assert_eq!(
            module_path("/features/features.1/conv/conv.0/conv.0.0/Conv").as_deref(),
            Some("features.1.conv.0.0")
        );
        assert_eq!(module_path("/layer1/layer1.0/conv1/Conv").as_deref(), Some("layer1.0.conv1"));
        assert_eq!(module_path("/fc/Gemm").as_deref(), Some("fc"));
        assert_eq!(module_path("/classifier/classifier.1/MatMul").as_deref(), Some("classifier.1"));
        assert_eq!(module_path("stem_conv"), None);
        assert_eq!(module_path("/Conv"), None, "no module scope");
    }
}
