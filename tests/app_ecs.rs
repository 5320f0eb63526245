//! Headless ECS tests of the window's plugins (`MinimalPlugins` + [`CorePlugins`], no
//! renderer): opening spawns the entities, stats tasks finish, recolouring follows change
//! detection only, selection spans variants, a failed load keeps the model, a second
//! model replaces the first.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use bevy::prelude::*;
use common::data;
use quantlens::app::CorePlugins;
use quantlens::app::model::{
    GraphNode, LayerRow, LayerStats, ModelRoot, OpenModel, OpenRequest, QuantParamsComponent, SelectRequest, Selection,
    Status, VariantEntity, ViewSettings,
};
use quantlens::app::stats::StatsWork;
use quantlens::app::towers::{BlockIndex, RecolourWork};
use quantlens::layout::ColourMetric;
use quantlens::model::LayerWeight;

fn app() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CorePlugins));
    app
}

/// Updates until loading and statistics are done (bounded; tasks run on the pool).
fn settle(app: &mut App) {
    for _ in 0..20_000 {
        app.update();
        let s = app.world().resource::<Status>();
        if s.loading.is_none() && s.stats_done >= s.stats_total && app.world().get_resource::<OpenModel>().is_some() {
            // one more frame so the last stats are seen by change detection
            app.update();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("loading did not finish");
}

fn open(app: &mut App, rel: &str) {
    app.world_mut().write_message(OpenRequest(data(rel)));
    settle(app);
}

fn count<C: Component>(app: &mut App) -> usize {
    app.world_mut().query::<&C>().iter(app.world()).count()
}

#[test]
fn opening_a_fixture_spawns_its_entities_and_stats() {
    let mut app = app();
    open(&mut app, "resnet8");
    let open_model = app.world().resource::<OpenModel>();
    let (root, n_rows, n_blocks) = (open_model.root, open_model.data.rows.len(), open_model.layout.blocks.len());
    let variants = open_model.data.variants.clone();
    assert_eq!(count::<VariantEntity>(&mut app), 3);
    assert_eq!(count::<LayerRow>(&mut app), n_rows);
    assert_eq!(count::<LayerStats>(&mut app), n_rows, "every row got its stats");
    assert_eq!(count::<GraphNode>(&mut app), n_blocks);
    assert_eq!(count::<ModelRoot>(&mut app), 1);
    // everything hangs under the model root
    let mut q = app.world_mut().query_filtered::<&ChildOf, With<GraphNode>>();
    assert!(q.iter(app.world()).all(|c| c.parent() == root));
    // a quantized block carries the quant params of its layer
    let mut q = app.world_mut().query::<(&GraphNode, &QuantParamsComponent)>();
    let with_params: Vec<_> = q.iter(app.world()).collect();
    assert!(with_params.len() >= 2 * 9, "int8 and uint8 layers: {}", with_params.len());
    for (node, p) in with_params {
        let v = &variants[node.variant];
        let layer = v.layers.iter().find(|l| l.node == node.node).unwrap();
        let LayerWeight::Quantized(q) = &layer.weight else { panic!("float layer with quant params") };
        assert_eq!(q.params.as_ref().unwrap().scale, p.0.scale);
    }
    // the stats equal the headless report's
    let report =
        quantlens::report::build_report(&variants, quantlens::report::ReportOptions { histogram_bins: Some(64) });
    let mut q = app.world_mut().query::<(&LayerRow, &LayerStats)>();
    for (row, stats) in q.iter(app.world()) {
        let expected = &report.layers[row.0];
        assert_eq!(stats.0.layer, expected.layer);
        for (a, b) in stats.0.variants.iter().zip(&expected.variants) {
            assert_eq!(a.metrics.as_ref().map(|m| m.sqnr_db), b.metrics.as_ref().map(|m| m.sqnr_db));
        }
        assert_eq!(stats.0.histogram.as_ref().unwrap().counts, expected.histogram.as_ref().unwrap().counts);
    }
}

#[test]
fn recolouring_follows_changes_and_idles_otherwise() {
    let mut app = app();
    open(&mut app, "resnet8");
    let n_blocks = app.world().resource::<OpenModel>().layout.blocks.len() as u64;
    let spawned = app.world().resource::<StatsWork>().tasks_spawned;
    let before = *app.world().resource::<RecolourWork>();
    for _ in 0..5 {
        app.update();
    }
    assert_eq!(*app.world().resource::<RecolourWork>(), before, "an unchanged frame recolours nothing");
    assert_eq!(app.world().resource::<StatsWork>().tasks_spawned, spawned, "no stats recomputed");
    // new stats for one row recolour exactly that row's blocks (one per variant)
    let mut q = app.world_mut().query::<(Entity, &LayerRow, &LayerStats)>();
    let (e, row, stats) = q.iter(app.world()).find(|(_, r, _)| r.0 == 0).map(|(e, r, s)| (e, *r, s.clone())).unwrap();
    app.world_mut().entity_mut(e).insert(stats);
    app.update();
    let after = *app.world().resource::<RecolourWork>();
    let row_blocks = app.world().resource::<BlockIndex>().by_row[&row.0].len() as u64;
    assert_eq!(row_blocks, 3);
    assert_eq!(after.evaluated - before.evaluated, row_blocks);
    assert_eq!(after.changed, before.changed, "same stats, same colours: no material swapped");
    // another metric recolours every block
    app.world_mut().resource_mut::<ViewSettings>().metric = ColourMetric::OpType;
    app.update();
    let metric = *app.world().resource::<RecolourWork>();
    assert_eq!(metric.evaluated - after.evaluated, n_blocks);
    assert!(metric.changed > after.changed, "SQNR colours became op colours");
}

#[test]
fn selection_covers_counterparts_in_every_variant() {
    let mut app = app();
    open(&mut app, "transformer");
    let row = app.world().resource::<OpenModel>().list.iter().find(|r| r.label == "q_proj").unwrap().row;
    app.world_mut().write_message(SelectRequest { group: Some(row), frame: false });
    app.update();
    assert_eq!(app.world().resource::<Selection>().group, Some(row));
    let members = app.world().resource::<BlockIndex>().by_group[&row].clone();
    let mut variants: Vec<usize> = members.iter().map(|e| app.world().get::<GraphNode>(*e).unwrap().variant).collect();
    variants.sort_unstable();
    assert_eq!(variants, [0, 1, 2]);
    let om = app.world().resource::<OpenModel>();
    for e in members {
        let n = app.world().get::<GraphNode>(e).unwrap();
        let v = &om.data.variants[n.variant];
        assert_eq!(v.model.graph.nodes[n.node].name, "q_proj");
    }
}

#[test]
fn failed_load_keeps_the_model_and_a_new_one_replaces_it() {
    let mut app = app();
    open(&mut app, "resnet8");
    let root = app.world().resource::<OpenModel>().root;
    let blocks = count::<GraphNode>(&mut app);
    open(&mut app, "broken/not_protobuf.onnx");
    let status = app.world().resource::<Status>();
    assert!(status.error.as_deref().unwrap().contains("not_protobuf.onnx"), "{:?}", status.error);
    assert_eq!(app.world().resource::<OpenModel>().root, root, "the previous model stays open");
    assert_eq!(count::<GraphNode>(&mut app), blocks);
    open(&mut app, "transformer");
    let new_root = app.world().resource::<OpenModel>().root;
    assert_ne!(new_root, root);
    assert!(app.world().get_entity(root).is_err(), "the first model was despawned");
    assert_eq!(count::<ModelRoot>(&mut app), 1);
    assert_eq!(count::<GraphNode>(&mut app), app.world().resource::<OpenModel>().layout.blocks.len());
    assert!(app.world().resource::<Status>().error.is_none());
}
