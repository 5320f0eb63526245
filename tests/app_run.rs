//! Running the variants from the window's ECS (`MinimalPlugins` + `CorePlugins`, no
//! renderer): accuracy on the digits matches `quantlens eval` on the same quick set, asking
//! again is answered from the cache, an edit of a weight scale runs the edited variant;
//! activations and the sensitivity sweep colour the towers.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bevy::prelude::*;
use common::{cli, data};
use quantlens::app::CorePlugins;
use quantlens::app::edit::{EditRequest, WeightEdit};
use quantlens::app::model::{OpenModel, OpenRequest, Status, ViewSettings};
use quantlens::app::run::{RunRequest, RunSettings, RunState};
use quantlens::app::towers::BlockSwatch;
use quantlens::layout::ColourMetric;
use quantlens::model::LayerWeight;
use quantlens::theme::Swatch;
use quantlens::view::run::RunCommand;

fn opened(rel: &str) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CorePlugins));
    app.world_mut().write_message(OpenRequest(data(rel)));
    for _ in 0..20_000 {
        app.update();
        let s = app.world().resource::<Status>();
        if s.loading.is_none() && s.stats_done >= s.stats_total && app.world().get_resource::<OpenModel>().is_some() {
            app.update();
            return app;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("loading did not finish");
}

/// Asks for `command` and updates until the run is over (bounded).
fn run(app: &mut App, command: RunCommand) {
    let finished = app.world().resource::<RunState>().finished;
    app.world_mut().write_message(RunRequest(command));
    settle(app, finished);
}

/// Updates until a run has ended since `finished_before` and none is in progress or due
/// (bounded).
fn settle(app: &mut App, finished_before: u64) {
    for _ in 0..30_000 {
        app.update();
        let s = app.world().resource::<RunState>();
        if s.finished > finished_before && s.running.is_none() && !s.stale {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    panic!("the run did not finish");
}

#[test]
fn evaluation_matches_the_cli_and_is_cached_per_edits() {
    let mut app = opened("digits");
    // the folder's labelled .npz was found
    let settings = app.world().resource::<RunSettings>().clone();
    assert_eq!(settings.data, Some(quantlens::infer::InputSpec::Npz(data("digits/digits.npz"))));
    run(&mut app, RunCommand::Evaluate { full: false });
    let state = app.world().resource::<RunState>();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let eval = state.evaluation.clone().unwrap();
    assert_eq!((eval.samples, eval.cached, eval.rows.len()), (settings.samples, false, 3));
    // the same quick set as the command line's
    let dir = data("digits");
    let n = settings.samples.to_string();
    let (code, out, err) = cli(&[
        "eval",
        dir.to_str().unwrap(),
        "--data",
        data("digits/digits.npz").to_str().unwrap(),
        "--samples",
        &n,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    for r in &eval.rows {
        assert_eq!(r.accuracy.top1, json["variants"][&r.variant]["top1"].as_f64().unwrap(), "{}", r.variant);
        assert!(!r.edited);
    }
    // asked again: answered from the cache, no task
    app.world_mut().write_message(RunRequest(RunCommand::Evaluate { full: false }));
    app.update();
    let state = app.world().resource::<RunState>();
    assert!(state.running.is_none());
    assert!(state.evaluation.as_ref().unwrap().cached);
    // an edit of int8's first layer: int8 runs edited (and is not taken from the cache)
    let open = app.world().resource::<OpenModel>();
    let int8 = open.data.variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let layer =
        open.data.variants[int8].layers.iter().position(|l| matches!(l.weight, LayerWeight::Quantized(_))).unwrap();
    app.world_mut().write_message(EditRequest::Weight { variant: int8, layer, edit: WeightEdit::ScaleFactor(8.0) });
    app.update();
    run(&mut app, RunCommand::Evaluate { full: false });
    let eval = app.world().resource::<RunState>().evaluation.clone().unwrap();
    assert!(!eval.cached);
    let edited = eval.rows.iter().find(|r| r.variant == "int8").unwrap();
    assert!(edited.edited);
    // beside the unedited run of the same samples: the panel shows the change
    let file_int8 = json["variants"]["int8"]["top1"].as_f64().unwrap();
    assert_eq!(edited.unedited.as_ref().map(|a| a.top1), Some(file_int8));
    let float = eval.rows.iter().find(|r| r.variant == "float").unwrap();
    assert!(!float.edited);
    // eight times the scale: the first layer's weights saturate, and the outputs no longer
    // agree with float on every sample
    assert!(edited.accuracy.agreement_with_float.unwrap() < 1.0, "{:?}", edited.accuracy);
    // undone: int8 is the file's again, answered from the cache
    app.world_mut().write_message(EditRequest::Undo);
    app.update();
    assert!(app.world().resource::<quantlens::app::edit::EditHistory>().is_empty());
    app.world_mut().write_message(RunRequest(RunCommand::Evaluate { full: false }));
    app.update();
    let eval = app.world().resource::<RunState>().evaluation.clone().unwrap();
    assert!(eval.cached && eval.rows.iter().all(|r| !r.edited));
    // kept in float: int8's first layer runs with the float weights
    app.world_mut().write_message(EditRequest::Weight { variant: int8, layer, edit: WeightEdit::Float(true) });
    app.update();
    run(&mut app, RunCommand::Evaluate { full: false });
    let eval = app.world().resource::<RunState>().evaluation.clone().unwrap();
    let state = app.world().resource::<RunState>();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert!(!eval.cached && eval.rows.iter().find(|r| r.variant == "int8").unwrap().edited);
    app.world_mut().write_message(EditRequest::ResetAll);
    app.update();
    assert!(app.world().resource::<quantlens::app::edit::EditHistory>().is_empty());
}

#[test]
fn activations_and_sensitivity_colour_the_towers() {
    let mut app = opened("digits");
    app.world_mut().resource_mut::<ViewSettings>().metric = ColourMetric::ActivationSqnr;
    app.update();
    let neutral = |app: &mut App| {
        let mut q = app.world_mut().query::<&BlockSwatch>();
        q.iter(app.world()).filter(|s| s.0 != Swatch::NEUTRAL).count()
    };
    assert_eq!(neutral(&mut app), 0, "nothing ran yet: every block neutral");
    run(&mut app, RunCommand::Activations);
    app.update();
    let state = app.world().resource::<RunState>();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert!(state.findings.activations.len() >= 4, "{}", state.findings.activations.len());
    assert!(neutral(&mut app) > 0, "activation SQNR coloured the blocks");
    app.world_mut().resource_mut::<ViewSettings>().metric = ColourMetric::Sensitivity;
    run(&mut app, RunCommand::Sensitivity);
    app.update();
    let state = app.world().resource::<RunState>();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    assert_eq!(state.findings.sensitivity.len(), 6, "3 layers × 2 quantized variants");
    assert!(state.findings.sensitivity_accuracy);
    assert!(neutral(&mut app) > 0, "sensitivity coloured the blocks");
    // the layer list sorts by it: the costliest layer first, at 100 %
    let open = app.world().resource::<OpenModel>();
    let q = quantlens::view::LayerQuery { sort: quantlens::view::SortBy::Sensitivity, ..Default::default() };
    let order = quantlens::view::query_rows(&open.list, &q).unwrap();
    let first = &open.list[order[0]];
    assert_eq!(first.cost, Some(1.0), "{first:?}");
    assert!(order.windows(2).all(|w| open.list[w[0]].cost >= open.list[w[1]].cost || open.list[w[1]].cost.is_none()));
}

#[test]
fn file_export_writes_the_edited_variant() {
    let mut app = opened("digits");
    let open = app.world().resource::<OpenModel>();
    let int8 = open.data.variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let v = &open.data.variants[int8];
    let layer = v.layers.iter().position(|l| matches!(l.weight, LayerWeight::Quantized(_))).unwrap();
    let file_scales = v.layers[layer].weight.params().unwrap().scale.clone();
    app.world_mut().write_message(EditRequest::Weight { variant: int8, layer, edit: WeightEdit::ScaleFactor(0.5) });
    app.update();
    let dir = std::env::temp_dir().join(format!("quantlens-window-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    app.world_mut().write_message(quantlens::app::export::ExportRequest { folder: Some(dir.clone()) });
    let out = dir.join("digits_int8_edited.onnx");
    for _ in 0..5_000 {
        app.update();
        if app.world().resource::<Status>().info.as_deref().is_some_and(|i| i.starts_with("exported")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(out.exists(), "{:?}", app.world().resource::<Status>());
    let spec = quantlens::model::VariantSpec {
        name: "edited".into(),
        kind: quantlens::model::VariantKind::Int8,
        path: out.clone(),
    };
    let edited = quantlens::model::variants::load_variants(std::slice::from_ref(&spec)).pop().unwrap().unwrap();
    let scales = edited.layers[layer].weight.params().unwrap().scale.clone();
    for (a, b) in scales.iter().zip(&file_scales) {
        assert!((a - b * 0.5).abs() <= f32::EPSILON * b, "{a} vs half of {b}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn activation_scale_edits_reach_the_run_and_undo() {
    let mut app = opened("digits");
    let int8 = app.world().resource::<OpenModel>().data.variants.iter().position(|v| v.spec.name == "int8").unwrap();
    // every quantized activation of every variant is an entity
    let mut q = app.world_mut().query::<&quantlens::app::model::ActivationEntity>();
    let tensors: Vec<String> = q.iter(app.world()).filter(|a| a.variant == int8).map(|a| a.tensor.clone()).collect();
    assert!(tensors.contains(&"relu1_out".to_string()), "{tensors:?}");
    run(&mut app, RunCommand::Evaluate { full: false });
    let before = app.world().resource::<RunState>().evaluation.clone().unwrap();
    // a tenth of the scale: conv1's output saturates at a tenth of its range
    app.world_mut().write_message(EditRequest::Activation { variant: int8, tensor: "relu1_out".into(), factor: 0.1 });
    app.update();
    assert_eq!(app.world().resource::<quantlens::app::edit::EditHistory>().len(), 1);
    run(&mut app, RunCommand::Evaluate { full: false });
    let state = app.world().resource::<RunState>();
    assert!(state.errors.is_empty(), "{:?}", state.errors);
    let after = state.evaluation.clone().unwrap();
    let (b, a) = (
        before.rows.iter().find(|r| r.variant == "int8").unwrap(),
        after.rows.iter().find(|r| r.variant == "int8").unwrap(),
    );
    assert!(a.edited && !b.edited);
    assert!(a.accuracy.agreement_with_float < b.accuracy.agreement_with_float, "{a:?} vs {b:?}");
    app.world_mut().write_message(EditRequest::Undo);
    app.update();
    let mut q = app.world_mut().query::<(&quantlens::app::model::ActivationEntity, &quantlens::app::model::ActScale)>();
    assert!(q.iter(app.world()).all(|(_, s)| s.0 == 1.0), "undone");
}

#[test]
fn an_edit_runs_the_activations_again_with_it() {
    let mut app = opened("digits");
    run(&mut app, RunCommand::Activations);
    let figure = |app: &App, tensor: &str| {
        let state = app.world().resource::<RunState>();
        assert!(state.errors.is_empty(), "{:?}", state.errors);
        let row = state.findings.activations.iter().find(|r| r.tensor == tensor).unwrap();
        let v = row.variants.iter().find(|v| v.variant == "int8").unwrap();
        (v.xmodel_err_db.unwrap(), v.clip_fraction)
    };
    let (sqnr, clip) = figure(&app, "relu1_out");
    let int8 = app.world().resource::<OpenModel>().data.variants.iter().position(|v| v.spec.name == "int8").unwrap();
    // a tenth of relu1_out's scale: no run asked for, the edit runs the activations again
    let finished = app.world().resource::<RunState>().finished;
    app.world_mut().write_message(EditRequest::Activation { variant: int8, tensor: "relu1_out".into(), factor: 0.1 });
    settle(&mut app, finished);
    let (edited_sqnr, edited_clip) = figure(&app, "relu1_out");
    // the clipping is the edited scale's: most values now fall outside a tenth of the range
    assert!(edited_clip.unwrap() > clip.unwrap() + 0.1, "{clip:?} → {edited_clip:?}");
    assert!(edited_sqnr < sqnr - 3.0, "{sqnr} → {edited_sqnr}");
    // undone: the file's figures again, exactly (same samples, same models)
    let finished = app.world().resource::<RunState>().finished;
    app.world_mut().write_message(EditRequest::Undo);
    settle(&mut app, finished);
    assert_eq!(figure(&app, "relu1_out"), (sqnr, clip));
    // switched off: an edit asks for nothing
    app.world_mut().resource_mut::<RunSettings>().rerun_on_edit = false;
    let finished = app.world().resource::<RunState>().finished;
    app.world_mut().write_message(EditRequest::Activation { variant: int8, tensor: "relu1_out".into(), factor: 0.5 });
    for _ in 0..20 {
        app.update();
    }
    let state = app.world().resource::<RunState>();
    assert!(state.stale && state.running.is_none() && state.finished == finished);
}

#[test]
fn the_worst_block_colours_4_bit_towers() {
    // GatherBlockQuantized and MatMulNBits variants: their statistics come in like any
    // variant's, and the towers colour by each weight's worst block
    let mut app = opened("lowbit_tokens");
    let count = |app: &mut App| {
        let mut q = app.world_mut().query::<&BlockSwatch>();
        q.iter(app.world()).filter(|s| s.0 != Swatch::NEUTRAL).count()
    };
    app.world_mut().resource_mut::<ViewSettings>().metric = ColourMetric::WorstBlock;
    app.update();
    app.update();
    // 4 quantized variants × 4 blocked weights (2 embeddings, 2 MatMuls)
    assert_eq!(count(&mut app), 16);
    let open = app.world().resource::<OpenModel>();
    assert_eq!(open.data.variants.len(), 5);
    assert!(open.data.variants.iter().all(|v| v.model.graph.issues.is_empty()));
}
