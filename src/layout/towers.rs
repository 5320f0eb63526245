//! Block placement: folding of quantization plumbing, counterpart groups, tower slots,
//! positions and sizes, and the edges between blocks.

use std::collections::HashMap;

use crate::model::graph::is_quant_plumbing;
use crate::model::matching::{MatchRow, op_family};
use crate::model::{NodeId, TensorData, Variant};

/// Distance between two depths along the flow axis.
pub const DEPTH_SPACING: f32 = 2.4;
/// Distance between two slots of a tower.
pub const SLOT_SPACING: f32 = 1.1;
/// Height of a block (3D).
pub const BLOCK_HEIGHT: f32 = 0.8;
/// Gap between two variant rows.
const ROW_GAP: f32 = 2.5;

/// 3D towers or the flat top-down view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ViewMode {
    #[default]
    ThreeD,
    TwoD,
}

/// What to lay out and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutOptions {
    pub mode: ViewMode,
    /// Fold `QuantizeLinear`/`DequantizeLinear` (and `Constant`) into the block they feed.
    pub fold_quant: bool,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        Self { mode: ViewMode::ThreeD, fold_quant: true }
    }
}

/// One drawn node.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub variant: usize,
    pub node: NodeId,
    /// Blocks of one group are the same layer in different variants.
    pub group: usize,
    /// The match row (for nodes that are layers).
    pub row: Option<usize>,
    /// Index into the variant's `layers`.
    pub layer: Option<usize>,
    /// Column along the flow axis: the node's layer depth, moved right where needed so
    /// that a matched layer stands in its reference layer's column (a quantizer that
    /// fused `Conv + Relu` leaves the rest of the row aligned).
    pub depth: u32,
    /// Position in its tower (0 at the bottom / front).
    pub slot: u32,
    pub center: [f32; 3],
    pub size: [f32; 3],
    /// Elements of the layer's weight (0 for nodes without one).
    pub params: u64,
    /// Quantization nodes folded into this block (its badge).
    pub folded: Vec<NodeId>,
    /// No counterpart in the reference variant.
    pub unmatched: bool,
}

/// All blocks and edges of a set of variants.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub blocks: Vec<Block>,
    /// Block index pairs (producer, consumer).
    pub edges: Vec<(usize, usize)>,
    /// Axis-aligned bounds of all blocks.
    pub min: [f32; 3],
    pub max: [f32; 3],
    /// Per variant: the centre of its row on the row axis (z), for labels.
    pub row_offsets: Vec<f32>,
    /// Tallest tower (slots).
    pub max_slots: u32,
    /// Blocks of unmatched layers (outlined).
    pub unmatched: Vec<usize>,
    /// Distinct op types drawn (for the legend), sorted.
    pub ops: Vec<String>,
}

impl Layout {
    /// Index of the block of `(variant, node)`.
    #[must_use]
    pub fn find(&self, variant: usize, node: NodeId) -> Option<usize> {
        self.blocks.iter().position(|b| b.variant == variant && b.node == node)
    }
}

/// Nodes that carry a weight, or quantization, into another node.
fn is_foldable(op: &str) -> bool {
    is_quant_plumbing(op) || op == "Constant"
}

/// Node `n` of `v` folds into the layer it serves: Q/DQ, constants, and what only carries
/// a parameter there (an `Identity` before a bias, a weight's `Transpose`, a weight-only
/// `Cast`/`Mul`).
fn folds(v: &Variant, n: NodeId) -> bool {
    v.plumbing.contains(&n) || v.model.graph.node(n).is_some_and(|node| is_foldable(&node.op_type))
}

/// Side length of a block's footprint for a weight of `params` elements (log scale).
#[must_use]
pub fn footprint(params: u64) -> f32 {
    if params == 0 { 0.45 } else { (0.5 + 0.16 * (params as f32).log10()).clamp(0.5, 1.6) }
}

/// The host of a folded node: the first non-foldable node downstream (breadth-first), or
/// upstream when nothing consumes it.
fn host_of(v: &Variant, n: NodeId) -> Option<NodeId> {
    let g = &v.model.graph;
    let mut frontier = vec![n];
    for _ in 0..8 {
        let mut next = Vec::new();
        for id in frontier {
            for &t in &g.node(id)?.outputs {
                for &c in &g.tensor(t)?.consumers {
                    if folds(v, c) { next.push(c) } else { return Some(c) }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    let node = g.node(n)?;
    node.inputs.iter().flatten().find_map(|&t| g.tensor(t)?.producer.filter(|&p| g.node(p).is_some() && !folds(v, p)))
}

/// Lays out `variants` whose layers are matched by `rows` (from
/// [`crate::model::match_layers`]); `reference` is the reference variant.
#[must_use]
pub fn layout(variants: &[Variant], rows: &[MatchRow], reference: usize, options: LayoutOptions) -> Layout {
    // (variant, layer index) → match row
    let mut row_of: HashMap<(usize, usize), usize> = HashMap::new();
    for (ri, row) in rows.iter().enumerate() {
        for (vi, m) in row.members.iter().enumerate() {
            if let Some((li, _)) = m {
                row_of.insert((vi, *li), ri);
            }
        }
    }
    let mut state = Grouping { n_rows: rows.len(), ..Grouping::default() };
    let mut blocks: Vec<Block> = Vec::new();
    let mut index: HashMap<(usize, NodeId), usize> = HashMap::new();
    // the reference first: the others align to it
    let order = std::iter::once(reference).chain((0..variants.len()).filter(|&v| v != reference));
    for vi in order {
        let Some(v) = variants.get(vi) else { continue };
        let g = &v.model.graph;
        let layer_of: HashMap<NodeId, usize> = v.layers.iter().enumerate().map(|(li, l)| (l.node, li)).collect();
        // counterparts in the reference: matched layers, and other nodes of the same name and op
        let counterpart = |n: NodeId| -> Option<NodeId> {
            if vi == reference {
                return None;
            }
            if let Some(li) = layer_of.get(&n) {
                let (rli, _) = (*rows.get(*row_of.get(&(vi, *li))?)?.members.get(reference)?)?;
                return Some(variants.get(reference)?.layers.get(rli)?.node);
            }
            let node = g.node(n)?;
            state.reference_names.get(&(node.name.clone(), op_family(&node.op_type).to_string())).copied().flatten()
        };
        let pairs: HashMap<NodeId, NodeId> = (0..g.len()).filter_map(|n| Some((n, counterpart(n)?))).collect();
        let reference_graph = variants.get(reference).map(|r| &r.model.graph);
        let anchors: HashMap<NodeId, u32> =
            pairs.iter().filter_map(|(&n, &r)| Some((n, reference_graph?.node(r)?.depth))).collect();
        let column = columns(v, &anchors);
        let mut rank: HashMap<(u32, &str), usize> = HashMap::new();
        for &n in &v.model.topo_order {
            let Some(node) = g.node(n) else { continue };
            if vi == reference && !node.name.is_empty() {
                let key = (node.name.clone(), op_family(&node.op_type).to_string());
                // a name used twice pairs nothing
                let unique = !state.reference_names.contains_key(&key);
                state.reference_names.insert(key, unique.then_some(n));
            }
            if options.fold_quant && folds(v, n) {
                continue;
            }
            let col = column.get(n).copied().unwrap_or(node.depth);
            let layer = layer_of.get(&n).copied();
            let row = layer.and_then(|li| row_of.get(&(vi, li)).copied());
            let group = if let Some(r) = row {
                r
            } else if let Some(g) = pairs.get(&n).and_then(|r| state.reference_group.get(r)) {
                *g
            } else {
                let family = op_family(&node.op_type);
                let k = rank.entry((col, family)).or_insert(0);
                let key = (col, family.to_string(), *k);
                *k += 1;
                let next = state.n_rows + state.other_groups.len();
                *state.other_groups.entry(key).or_insert(next)
            };
            if vi == reference {
                state.reference_group.insert(n, group);
            }
            let params = layer
                .and_then(|li| v.layers.get(li))
                .and_then(|l| g.tensor(l.weight.tensor())?.data.as_ref())
                .map_or(0, TensorData::len);
            let unmatched = vi != reference
                && row.is_some_and(|r| {
                    rows.get(r).is_some_and(|row| row.members.get(reference).is_none_or(Option::is_none))
                });
            index.insert((vi, n), blocks.len());
            blocks.push(Block {
                variant: vi,
                node: n,
                group,
                row,
                layer,
                depth: col,
                slot: 0,
                center: [0.0; 3],
                size: [0.0; 3],
                params,
                folded: Vec::new(),
                unmatched,
            });
        }
        if options.fold_quant {
            for &n in &v.model.topo_order {
                if (v.plumbing.contains(&n) || g.node(n).is_some_and(|node| is_quant_plumbing(&node.op_type)))
                    && let Some(h) = host_of(v, n)
                    && let Some(&b) = index.get(&(vi, h))
                {
                    blocks[b].folded.push(n);
                }
            }
        }
    }
    assign_slots(&mut blocks);
    let edges = edges(variants, &blocks, &index, options.fold_quant);
    // (borrowed while de-duplicated: one string per distinct op, not per block)
    let ops: Vec<String> = blocks
        .iter()
        .filter_map(|b| variants.get(b.variant)?.model.graph.node(b.node).map(|n| n.op_type.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(String::from)
        .collect();
    place(blocks, edges, variants.len(), options.mode, ops)
}

/// Counterpart groups being assigned.
#[derive(Default)]
struct Grouping {
    n_rows: usize,
    /// Groups of nodes that are no layers, by (column, op family, rank in that column).
    other_groups: HashMap<(u32, String, usize), usize>,
    /// Reference nodes by (name, op family); `None` where the name is not unique.
    reference_names: HashMap<(String, String), Option<NodeId>>,
    /// Group of each reference node.
    reference_group: HashMap<NodeId, usize>,
}

/// Columns of a variant's nodes in topological order: one past the furthest producer
/// (quantization plumbing adds none, like [`crate::model::Graph::compute_depths`]), a
/// control-flow node past its subgraphs, and no further left than its anchor.
fn columns(v: &Variant, anchors: &HashMap<NodeId, u32>) -> Vec<u32> {
    let g = &v.model.graph;
    let mut col: Vec<u32> = g.nodes.iter().map(|n| n.depth).collect();
    let mut children: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (id, n) in g.nodes.iter().enumerate() {
        if let Some(p) = n.parent {
            children.entry(p).or_default().push(id);
        }
    }
    let step = |p: NodeId| u32::from(g.node(p).is_some_and(|n| !is_quant_plumbing(&n.op_type)));
    for &n in &v.model.topo_order {
        let Some(node) = g.node(n) else { continue };
        if node.in_cycle {
            continue;
        }
        let mut c = node
            .inputs
            .iter()
            .flatten()
            .filter_map(|&t| g.tensor(t)?.producer)
            .fold(0, |acc, p| acc.max(col.get(p).copied().unwrap_or(0) + step(p)));
        for &k in children.get(&n).into_iter().flatten() {
            c = c.max(col.get(k).copied().unwrap_or(0) + step(k));
        }
        if let Some(&a) = anchors.get(&n) {
            c = c.max(a);
        }
        if let Some(slot) = col.get_mut(n) {
            *slot = c;
        }
    }
    col
}

/// Slots per depth, shared by all variants: every group present at a depth gets one slot,
/// in order of first appearance (reference first), so counterparts line up.
fn assign_slots(blocks: &mut [Block]) {
    let mut slots: HashMap<(u32, usize), u32> = HashMap::new();
    let mut used: HashMap<u32, u32> = HashMap::new();
    for b in blocks.iter_mut() {
        b.slot = *slots.entry((b.depth, b.group)).or_insert_with(|| {
            let n = used.entry(b.depth).or_insert(0);
            *n += 1;
            *n - 1
        });
    }
}

/// Producer → consumer edges between blocks, through folded nodes.
fn edges(
    variants: &[Variant],
    blocks: &[Block],
    index: &HashMap<(usize, NodeId), usize>,
    fold: bool,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (bi, b) in blocks.iter().enumerate() {
        let Some(v) = variants.get(b.variant) else { continue };
        let g = &v.model.graph;
        let Some(node) = g.node(b.node) else { continue };
        let mut stack: Vec<NodeId> =
            node.inputs.iter().flatten().filter_map(|&t| g.tensor(t).and_then(|t| t.producer)).collect();
        let mut seen = 0;
        while let Some(p) = stack.pop() {
            seen += 1;
            if seen > 64 {
                break;
            }
            if let Some(&pb) = index.get(&(b.variant, p)) {
                out.push((pb, bi));
            } else if fold && let Some(pn) = g.node(p) {
                stack.extend(pn.inputs.iter().flatten().filter_map(|&t| g.tensor(t).and_then(|t| t.producer)));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Positions and sizes from depth, slot and variant.
fn place(
    mut blocks: Vec<Block>,
    edges: Vec<(usize, usize)>,
    n_variants: usize,
    mode: ViewMode,
    ops: Vec<String>,
) -> Layout {
    let max_slots = blocks.iter().map(|b| b.slot + 1).max().unwrap_or(0);
    let widest = blocks.iter().map(|b| footprint(b.params)).fold(0.0f32, f32::max);
    let row_pitch = match mode {
        ViewMode::ThreeD => widest + ROW_GAP,
        ViewMode::TwoD => max_slots as f32 * SLOT_SPACING + ROW_GAP,
    };
    let row_offsets: Vec<f32> = (0..n_variants).map(|v| v as f32 * row_pitch).collect();
    let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
    for b in &mut blocks {
        let f = footprint(b.params);
        let x = b.depth as f32 * DEPTH_SPACING;
        let row = row_offsets.get(b.variant).copied().unwrap_or(0.0);
        let slot = b.slot as f32 * SLOT_SPACING;
        (b.center, b.size) = match mode {
            ViewMode::ThreeD => ([x, slot + BLOCK_HEIGHT / 2.0, row], [f, BLOCK_HEIGHT, f]),
            ViewMode::TwoD => ([x, 0.0, row + slot], [f, 0.1, f.min(SLOT_SPACING * 0.9)]),
        };
        for k in 0..3 {
            min[k] = min[k].min(b.center[k] - b.size[k] / 2.0);
            max[k] = max[k].max(b.center[k] + b.size[k] / 2.0);
        }
    }
    if blocks.is_empty() {
        (min, max) = ([0.0; 3], [0.0; 3]);
    }
    let row_offsets = match mode {
        ViewMode::ThreeD => row_offsets,
        ViewMode::TwoD => {
            row_offsets.iter().map(|r| r + (max_slots.saturating_sub(1)) as f32 * SLOT_SPACING / 2.0).collect()
        }
    };
    let unmatched = blocks.iter().enumerate().filter(|(_, b)| b.unmatched).map(|(i, _)| i).collect();
    Layout { blocks, edges, min, max, row_offsets, max_slots, unmatched, ops }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_grows_with_log_params() {
        assert!(footprint(0) < footprint(10));
        assert!(footprint(100) < footprint(10_000));
        assert!((footprint(10_000) - footprint(1000) - 0.16).abs() < 1e-5, "one decade = 0.16");
        assert_eq!(footprint(u64::MAX), 1.6);
    }
}
