//! The tower layout of real fixtures: rows of variants line up, quantization folds into
//! the layer it quantizes, edges follow the flow, 2D bands never overlap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use std::collections::HashMap;

use common::load;
use quantlens::layout::{Layout, LayoutOptions, ViewMode, layout};
use quantlens::model::{Variant, match_layers};

fn towers(variants: &[Variant], mode: ViewMode, fold_quant: bool) -> Layout {
    let rows = match_layers(variants, 0);
    layout(variants, &rows, 0, LayoutOptions { mode, fold_quant })
}

#[test]
fn folded_quantized_rows_line_up_with_float() {
    for folder in ["resnet8", "transformer"] {
        let variants = load(folder);
        let l = towers(&variants, ViewMode::ThreeD, true);
        let per_variant = |v: usize| l.blocks.iter().filter(|b| b.variant == v).count();
        let ops = |v: usize, op: &str| variants[v].model.graph.nodes.iter().filter(|n| n.op_type == op).count();
        let float_nodes = variants[0].model.graph.len() - ops(0, "Constant");
        assert_eq!(per_variant(0), float_nodes, "{folder}: every float node is a block");
        // onnxruntime's quantizer fuses Conv + Relu: the quantized rows lack those Relus
        let fused = ops(0, "Relu") - ops(1, "Relu");
        assert_eq!(per_variant(1), per_variant(0) - fused, "{folder}: int8 has the float shape once Q/DQ fold");
        assert_eq!(per_variant(2), per_variant(1), "{folder}: uint8 too");
        // every group holds one block per variant (fused Relus: float only), aligned
        let mut groups: HashMap<usize, Vec<&quantlens::layout::Block>> = HashMap::new();
        for b in &l.blocks {
            groups.entry(b.group).or_default().push(b);
        }
        let mut float_only = 0;
        for (g, bs) in &groups {
            if bs.len() == 1 {
                let n = &variants[0].model.graph.nodes[bs[0].node];
                assert!(bs[0].variant == 0 && n.op_type == "Relu", "{folder}: group {g} alone: {}", n.op_type);
                float_only += 1;
                continue;
            }
            assert_eq!(
                bs.len(),
                3,
                "{folder}: group {g}: {:?}",
                bs.iter()
                    .map(|b| (
                        b.variant,
                        &variants[b.variant].model.graph.nodes[b.node].name,
                        &variants[b.variant].model.graph.nodes[b.node].op_type,
                        b.depth
                    ))
                    .collect::<Vec<_>>()
            );
            assert!(bs.iter().all(|b| b.depth == bs[0].depth && b.slot == bs[0].slot), "{folder}: group {g} aligned");
            assert!(bs.iter().all(|b| b.center[0] == bs[0].center[0] && b.center[1] == bs[0].center[1]));
            let zs: Vec<f32> = bs.iter().map(|b| b.center[2]).collect();
            assert!(zs[0] < zs[1] && zs[1] < zs[2], "{folder}: rows side by side along z: {zs:?}");
        }
        assert_eq!(float_only, fused);
        // layers carry their quantization as a badge: weight DQ (+ the activation Q/DQ pair)
        for b in l.blocks.iter().filter(|b| b.variant > 0 && b.layer.is_some() && b.params > 1000) {
            let ops: Vec<&str> =
                b.folded.iter().map(|&n| variants[b.variant].model.graph.nodes[n].op_type.as_str()).collect();
            assert!(ops.contains(&"DequantizeLinear"), "{folder}: {ops:?}");
        }
        assert!(l.blocks.iter().filter(|b| b.variant == 0).all(|b| b.folded.is_empty()));
    }
}

#[test]
fn unfolded_quantization_gets_blocks_of_its_own() {
    let variants = load("resnet8");
    let folded = towers(&variants, ViewMode::ThreeD, true);
    let unfolded = towers(&variants, ViewMode::ThreeD, false);
    let count = |l: &Layout, v| l.blocks.iter().filter(|b| b.variant == v).count();
    let qdq = variants[1]
        .model
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        .count();
    assert!(qdq > 20);
    assert_eq!(count(&unfolded, 1), count(&folded, 1) + qdq);
    assert_eq!(count(&unfolded, 0), count(&folded, 0), "float has nothing to unfold");
}

#[test]
fn edges_follow_the_flow_through_folded_nodes() {
    let variants = load("resnet8");
    let l = towers(&variants, ViewMode::ThreeD, true);
    assert!(!l.edges.is_empty());
    for &(a, b) in &l.edges {
        let (pa, pb) = (&l.blocks[a], &l.blocks[b]);
        assert_eq!(pa.variant, pb.variant, "no edge between variants");
        assert!(pa.depth < pb.depth && pa.center[0] < pb.center[0], "edge {a}->{b} goes forward");
    }
    let per_variant: Vec<usize> =
        (0..3).map(|v| l.edges.iter().filter(|(a, _)| l.blocks[*a].variant == v).count()).collect();
    // each fused Relu removes one node and so one edge of the chain
    let relus = variants[0].model.graph.nodes.iter().filter(|n| n.op_type == "Relu").count();
    assert_eq!(per_variant[1], per_variant[0] - relus, "int8 edges run through Q/DQ");
    assert_eq!(per_variant[1], per_variant[2]);
    // the float graph's own producer→consumer pairs between non-constant nodes
    let g = &variants[0].model.graph;
    let mut pairs = std::collections::BTreeSet::new();
    for (id, n) in g.nodes.iter().enumerate() {
        for t in n.inputs.iter().flatten() {
            if let Some(p) = g.tensors[*t].producer
                && g.nodes[p].op_type != "Constant"
            {
                pairs.insert((p, id));
            }
        }
    }
    assert_eq!(per_variant[0], pairs.len());
}

#[test]
fn flat_mode_puts_variants_in_disjoint_bands() {
    let variants = load("transformer");
    let l = towers(&variants, ViewMode::TwoD, true);
    assert!(l.blocks.iter().all(|b| b.center[1] == 0.0));
    assert!(l.max_slots >= 3, "q/k/v projections share a depth");
    let band = |v: usize| {
        let zs = l.blocks.iter().filter(|b| b.variant == v).map(|b| b.center[2]);
        zs.fold((f32::MAX, f32::MIN), |(lo, hi), z| (lo.min(z), hi.max(z)))
    };
    let (b0, b1, b2) = (band(0), band(1), band(2));
    assert!(b0.1 < b1.0 && b1.1 < b2.0, "{b0:?} {b1:?} {b2:?}");
    // no two blocks of one variant overlap
    for v in 0..3 {
        let mut cells: Vec<(i64, i64)> = l
            .blocks
            .iter()
            .filter(|b| b.variant == v)
            .map(|b| ((b.center[0] * 10.0) as i64, (b.center[2] * 10.0) as i64))
            .collect();
        let n = cells.len();
        cells.sort_unstable();
        cells.dedup();
        assert_eq!(cells.len(), n, "variant {v}: blocks overlap");
    }
    for k in 0..3 {
        assert!(l.min[k] <= l.max[k]);
    }
}

#[test]
fn parameter_count_sets_the_footprint() {
    let variants = load("resnet8");
    let l = towers(&variants, ViewMode::ThreeD, true);
    let conv = l.blocks.iter().find(|b| b.variant == 0 && b.params == 16 * 16 * 9).unwrap();
    let big = l.blocks.iter().filter(|b| b.variant == 0).max_by_key(|b| b.params).unwrap();
    let relu = l.blocks.iter().find(|b| b.variant == 0 && b.params == 0).unwrap();
    assert!(relu.size[0] < conv.size[0] && conv.size[0] < big.size[0]);
    assert_eq!(conv.size[0], quantlens::layout::footprint(2304));
}
