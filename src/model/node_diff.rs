//! Nodes that one variant has and another lacks, beyond the quantization plumbing the
//! quantizer adds (Q/DQ, the weights' pass-through nodes): fused activations, removed or
//! added ops. Layers pair through the layer matching; the other nodes by unique name
//! (`QOperator`'s `_quant` suffix stripped), then by op family in topological order.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::graph::{NodeId, is_quant_plumbing};
use super::matching::{MatchRow, op_family};
use super::variants::Variant;

/// A node named in a difference list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeRef {
    /// The node's label (its name, or `Op#id` when unnamed).
    pub node: String,
    pub op: String,
    /// The node in its variant's graph.
    #[serde(skip)]
    pub id: NodeId,
}

/// How one variant's nodes differ from the reference's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeDiff {
    /// Reference nodes without a counterpart here (fused or removed).
    pub missing: Vec<NodeRef>,
    /// Nodes of this variant without a counterpart in the reference (added).
    pub extra: Vec<NodeRef>,
}

impl NodeDiff {
    /// True when both lists are empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// The nodes that count: compute nodes, not the quantization plumbing.
fn counted(v: &Variant) -> Vec<NodeId> {
    v.model
        .topo_order
        .iter()
        .copied()
        .filter(|n| {
            !v.plumbing.contains(n)
                && v.model
                    .graph
                    .node(*n)
                    .is_some_and(|node| !is_quant_plumbing(&node.op_type) && node.op_type != "Constant")
        })
        .collect()
}

/// `(variant index, its differences)` for every variant but the reference.
#[must_use]
pub fn node_differences(variants: &[Variant], reference: usize, rows: &[MatchRow]) -> Vec<(usize, NodeDiff)> {
    let Some(refv) = variants.get(reference) else { return Vec::new() };
    let ref_nodes = counted(refv);
    variants
        .iter()
        .enumerate()
        .filter(|(vi, _)| *vi != reference)
        .map(|(vi, v)| (vi, diff(refv, reference, &ref_nodes, v, vi, rows)))
        .collect()
}

fn diff(refv: &Variant, reference: usize, ref_nodes: &[NodeId], v: &Variant, vi: usize, rows: &[MatchRow]) -> NodeDiff {
    let (rg, g) = (&refv.model.graph, &v.model.graph);
    let nodes = counted(v);
    // reference node → its counterpart
    let mut pairs: HashMap<NodeId, NodeId> = HashMap::new();
    let mut paired: HashSet<NodeId> = HashSet::new();
    // 1. layers, through the layer matching
    for row in rows {
        let member = |i: usize, var: &Variant| {
            let (li, _) = row.members.get(i).copied().flatten()?;
            var.layers.get(li).map(|l| l.node)
        };
        if let (Some(r), Some(o)) = (member(reference, refv), member(vi, v)) {
            pairs.insert(r, o);
            paired.insert(o);
        }
    }
    // 2. unique names of one op family
    let unique = |g: &super::Graph, ns: &[NodeId]| {
        let mut by: HashMap<String, Vec<NodeId>> = HashMap::new();
        for &n in ns {
            if let Some(node) = g.node(n).filter(|n| !n.name.is_empty()) {
                let name = node.name.strip_suffix("_quant").unwrap_or(&node.name);
                by.entry(name.to_string()).or_default().push(n);
            }
        }
        by.into_iter().filter_map(|(k, ns)| match ns.as_slice() {
            [n] => Some((k, *n)),
            _ => None,
        })
    };
    let ref_names: HashMap<String, NodeId> = unique(rg, ref_nodes).collect();
    for (name, o) in unique(g, &nodes) {
        if paired.contains(&o) {
            continue;
        }
        if let Some(&r) = ref_names.get(&name)
            && !pairs.contains_key(&r)
            && family(rg, r) == family(g, o)
        {
            pairs.insert(r, o);
            paired.insert(o);
        }
    }
    // 3. through paired neighbours, in topological order: a node whose producer is paired
    // pairs with that counterpart's consumer of its family (so a quantizer that fused one
    // of two `Relu`s leaves the other paired, whatever the names)
    for &r in ref_nodes {
        if pairs.contains_key(&r) {
            continue;
        }
        let want = family(rg, r);
        let found = rg.node(r).into_iter().flat_map(|n| n.inputs.iter().flatten()).find_map(|&t| {
            let counterpart = *pairs.get(&rg.tensor(t)?.producer?)?;
            consumers_through_plumbing(v, counterpart)
                .into_iter()
                .find(|&c| !paired.contains(&c) && family(g, c) == want)
        });
        if let Some(o) = found {
            pairs.insert(r, o);
            paired.insert(o);
        }
    }
    // 4. the rest by op family, in topological order
    let mut queues: HashMap<&str, VecDeque<NodeId>> = HashMap::new();
    for &o in nodes.iter().filter(|o| !paired.contains(o)) {
        queues.entry(family(g, o)).or_default().push_back(o);
    }
    let mut missing = Vec::new();
    for &r in ref_nodes.iter().filter(|r| !pairs.contains_key(r)) {
        match queues.get_mut(family(rg, r)).and_then(VecDeque::pop_front) {
            Some(o) => {
                paired.insert(o);
            }
            None => missing.extend(node_ref(refv, r)),
        }
    }
    let extra = nodes.iter().filter(|o| !paired.contains(o)).filter_map(|&o| node_ref(v, o)).collect();
    NodeDiff { missing, extra }
}

/// The nodes that consume node `n`'s outputs, looking through Q/DQ and parameter plumbing
/// (a few hops).
fn consumers_through_plumbing(v: &Variant, n: NodeId) -> Vec<NodeId> {
    let g = &v.model.graph;
    let mut out = Vec::new();
    let mut frontier = vec![n];
    for _ in 0..4 {
        let mut next = Vec::new();
        for id in frontier {
            for t in g.node(id).map(|node| node.outputs.as_slice()).unwrap_or_default() {
                for &c in g.tensor(*t).map(|t| t.consumers.as_slice()).unwrap_or_default() {
                    let plumbing =
                        v.plumbing.contains(&c) || g.node(c).is_some_and(|node| is_quant_plumbing(&node.op_type));
                    if plumbing { next.push(c) } else { out.push(c) }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    out
}

/// The op family of node `n` (`""` when absent).
fn family(g: &super::Graph, n: NodeId) -> &str {
    g.node(n).map_or("", |n| op_family(&n.op_type))
}

fn node_ref(v: &Variant, n: NodeId) -> Option<NodeRef> {
    let node = v.model.graph.node(n)?;
    Some(NodeRef { node: node.label(n), op: node.op_type.clone(), id: n })
}
