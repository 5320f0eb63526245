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
    GraphNode, LayerRow, LayerStats, ModelRoot, OpenModel, OpenRequest, Quant, SelectRequest, Selection, Status,
    VariantEntity, ViewSettings, WeightEntity,
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
    // every parameter is a weight entity under its variant; quantized ones carry the
    // file's quant params
    let table = quantlens::model::weights(&variants);
    assert_eq!(count::<WeightEntity>(&mut app), table.len());
    let mut q = app.world_mut().query::<(&WeightEntity, Option<&Quant>, &ChildOf)>();
    let weights: Vec<_> = q.iter(app.world()).map(|(w, q, c)| (*w, q.cloned(), c.parent())).collect();
    let mut with_params = 0;
    for (w, quant, parent) in weights {
        let row = table.get(w.id.0).unwrap();
        assert_eq!((row.variant, row.layer), (w.variant, w.layer));
        assert_eq!(app.world().get::<VariantEntity>(parent).unwrap().index, w.variant);
        let layer = &variants[w.variant].layers[w.layer];
        match (w.key.find(layer).unwrap(), quant) {
            (LayerWeight::Quantized(q), Some(p)) => {
                assert_eq!(q.params.as_ref(), Some(&p.0));
                with_params += 1;
            }
            (LayerWeight::Float(_), None) => {}
            (w, p) => panic!("{w:?} with {p:?}"),
        }
    }
    assert_eq!(with_params, 2 * 10 * 2, "int8 and uint8: 10 weights and 10 biases");
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

#[test]
fn editing_a_weight_scale_recomputes_only_its_row() {
    let mut app = app();
    open(&mut app, "resnet8");
    let (rows, variants) = {
        let m = app.world().resource::<OpenModel>();
        (m.data.rows.clone(), m.data.variants.clone())
    };
    let int8 = variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let stats_of = |app: &mut App, ri: usize| {
        let mut q = app.world_mut().query::<(&LayerRow, &LayerStats)>();
        q.iter(app.world()).find(|(r, _)| r.0 == ri).map(|(_, s)| s.0.clone()).unwrap()
    };
    // the int8 weight of s2_proj
    let mut q = app.world_mut().query::<(Entity, &WeightEntity, &Quant)>();
    let (entity, w, quant) = q
        .iter(app.world())
        .find(|(_, w, _)| {
            w.variant == int8
                && w.key == quantlens::report::ParamKey::WEIGHT
                && variants[int8].model.graph.nodes[variants[int8].layers[w.layer].node].name == "s2_proj"
        })
        .map(|(e, w, q)| (e, *w, q.0.clone()))
        .unwrap();
    let ri = w.row.unwrap();
    let before = stats_of(&mut app, ri);
    let sqnr = |r: &quantlens::report::LayerReport| {
        r.variants.iter().find(|v| v.variant == "int8").unwrap().metrics.as_ref().unwrap().sqnr_db
    };
    let spawned = app.world().resource::<StatsWork>().tasks_spawned;
    // halve every channel's scale: the dequantized weight halves, the error grows
    let mut halved = quant.clone();
    halved.scale.iter_mut().for_each(|s| *s *= 0.5);
    app.world_mut().get_mut::<Quant>(entity).unwrap().0 = halved.clone();
    settle(&mut app);
    assert_eq!(app.world().resource::<StatsWork>().tasks_spawned, spawned + 1, "only the edited row");
    let after = stats_of(&mut app, ri);
    assert!(sqnr(&after) < sqnr(&before) - 3.0, "{} → {}", sqnr(&before), sqnr(&after));
    let int8_after = after.variants.iter().find(|v| v.variant == "int8").unwrap();
    let q = int8_after.quant.as_ref().unwrap();
    assert!((q.scale.max - f64::from(quant.scale.iter().copied().fold(0.0, f32::max)) * 0.5).abs() < 1e-12);
    // the same numbers as the headless report under the same edit
    let mut overrides = quantlens::report::QuantOverrides::default();
    overrides.0.insert((int8, w.layer, w.key), halved);
    let expected = quantlens::report::layer_report_with(
        &variants,
        0,
        &rows[ri],
        quantlens::report::ReportOptions { histogram_bins: Some(64) },
        &overrides,
    );
    assert_eq!(sqnr(&after), sqnr(&expected));
    // the float variant is untouched; putting the file's value back restores the numbers
    assert_eq!(after.variants[0].stats, before.variants[0].stats);
    app.world_mut().get_mut::<Quant>(entity).unwrap().0 = quant;
    settle(&mut app);
    assert_eq!(sqnr(&stats_of(&mut app, ri)), sqnr(&before));
}

#[test]
fn an_edit_request_scales_a_weight_and_recomputes_its_row() {
    let mut app = app();
    open(&mut app, "resnet8");
    let variants = app.world().resource::<OpenModel>().data.variants.clone();
    let int8 = variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let li = variants[int8].layers.iter().position(|l| variants[int8].model.graph.nodes[l.node].name == "fc").unwrap();
    let spawned = app.world().resource::<StatsWork>().tasks_spawned;
    let double = |app: &mut App| {
        app.world_mut().write_message(quantlens::app::edit::EditRequest::Weight {
            variant: int8,
            layer: li,
            edit: quantlens::app::edit::WeightEdit::ScaleFactor(2.0),
        })
    };
    double(&mut app);
    settle(&mut app);
    assert_eq!(app.world().resource::<StatsWork>().tasks_spawned, spawned + 1);
    let LayerWeight::Quantized(q) = &variants[int8].layers[li].weight else { panic!() };
    let file = q.params.as_ref().unwrap();
    let mut q = app.world_mut().query::<(&WeightEntity, &Quant)>();
    let (_, quant) = q
        .iter(app.world())
        .find(|(w, _)| w.variant == int8 && w.layer == li && w.key == quantlens::report::ParamKey::WEIGHT)
        .unwrap();
    assert!(quant.0.scale.iter().zip(&file.scale).all(|(e, f)| *e == f * 2.0));
    // the row's statistics see it: the int8 scale summary doubled
    let mut q = app.world_mut().query::<&LayerStats>();
    let row = q.iter(app.world()).find(|s| s.0.layer == "fc").unwrap();
    let int8_entry = row.0.variants.iter().find(|v| v.variant == "int8").unwrap();
    let mean = file.scale.iter().map(|&s| f64::from(s)).sum::<f64>() / file.scale.len() as f64;
    assert!((int8_entry.quant.as_ref().unwrap().scale.mean / mean - 2.0).abs() < 1e-6);
    // the same factor again changes nothing
    double(&mut app);
    settle(&mut app);
    assert_eq!(app.world().resource::<StatsWork>().tasks_spawned, spawned + 1);
}
