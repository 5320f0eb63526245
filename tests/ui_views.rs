//! The egui view functions, driven with `egui_kittest`: the inspector shows a per-tensor
//! scale and a per-channel summary, the layer search narrows the list, a click selects.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures

mod common;

use common::{load, load_file};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use quantlens::layout::{LayoutOptions, layout};
use quantlens::model::{Variant, match_layers};
use quantlens::ui::UiAction;
use quantlens::ui::inspector::inspector_ui;
use quantlens::ui::layer_list::{LayerListState, layer_list_ui};
use quantlens::view::{InspectorModel, Member, fmt_num, inspector, list_rows};

/// The inspector model of the layer named `name` (all its counterparts), with its report
/// row when `with_report`.
fn inspect_with(variants: &[Variant], name: &str, with_report: bool) -> InspectorModel {
    let rows = match_layers(variants, 0);
    let l = layout(variants, &rows, 0, LayoutOptions::default());
    let block = l.blocks.iter().find(|b| b.variant == 0 && variants[0].model.graph.nodes[b.node].name == name).unwrap();
    let report = block
        .row
        .filter(|_| with_report)
        .map(|ri| quantlens::report::layer_report(variants, 0, &rows[ri], quantlens::report::ReportOptions::default()));
    let members: Vec<Member<'_>> = l
        .blocks
        .iter()
        .filter(|b| b.group == block.group)
        .map(|b| Member { variant: b.variant, node: b.node, layer: b.layer, folded: &b.folded })
        .collect();
    inspector(variants, &members, report.as_ref()).unwrap()
}

fn inspect(variants: &[Variant], name: &str) -> InspectorModel {
    inspect_with(variants, name, false)
}

#[test]
fn inspector_shows_a_per_tensor_scale() {
    let variants = vec![load_file("edge/opset12_qdq.onnx")];
    let model = inspect(&variants, "fc1");
    let (p, _) = common::params(&variants[0], "fc1.weight_quantized");
    let mut harness = Harness::new_ui(|ui| {
        inspector_ui(ui, &model);
    });
    harness.run();
    let expected = format!("scale {}, zero point {} (int8)", fmt_num(f64::from(p.scale[0])), p.zero_point[0]);
    assert!(harness.query_by_label_contains(&expected).is_some(), "{expected}");
    assert!(harness.query_by_label_contains("per-channel").is_none());
    assert!(harness.query_by_label_contains("fc1.weight_quantized").is_some(), "the inputs are listed");
}

#[test]
fn inspector_shows_the_channel_summary_per_variant() {
    let variants = load("resnet8");
    let model = inspect(&variants, "s1_conv1");
    assert_eq!(model.members.len(), 3);
    let mut harness = Harness::new_ui(|ui| {
        inspector_ui(ui, &model);
    });
    harness.run();
    for v in &variants[1..] {
        let (p, _) = common::params(v, "s1_conv1.weight_quantized");
        let lo = p.scale.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = p.scale.iter().copied().fold(0.0, f32::max);
        let expected = format!(
            "per-channel, {} channels along axis 0: scale {}..{}",
            p.scale.len(),
            fmt_num(f64::from(lo)),
            fmt_num(f64::from(hi))
        );
        // int8 and uint8 may share their scales (then both labels match)
        assert!(harness.query_all_by_label_contains(&expected).next().is_some(), "{}: {expected}", v.spec.name);
    }
    assert_eq!(harness.query_all_by_label_contains("16 channels along axis 0").count(), 2, "int8 and uint8");
}

struct ListHarnessState {
    list: LayerListState,
    actions: Vec<UiAction>,
}

#[test]
fn search_narrows_the_layer_list_and_a_click_selects() {
    let variants = load("resnet8");
    let rows = match_layers(&variants, 0);
    let list = list_rows(&variants, 0, &rows, &vec![None; rows.len()]);
    let mut harness = Harness::new_ui_state(
        |ui, s: &mut ListHarnessState| {
            let a = layer_list_ui(ui, &list, 1, &mut s.list, None);
            s.actions.extend(a);
        },
        ListHarnessState { list: LayerListState::default(), actions: Vec::new() },
    );
    harness.run();
    assert!(harness.query_by_label_contains("10 of 10 layers").is_some());
    harness.state_mut().list.query.text = "s2_".into();
    harness.run();
    assert!(harness.query_by_label_contains("3 of 10 layers").is_some());
    assert!(harness.query_by_label_contains("stem_conv").is_none(), "filtered out");
    harness.get_by_label_contains("s2_proj").click();
    harness.run();
    let s2_proj = list.iter().find(|r| r.label == "s2_proj").unwrap().row;
    assert!(harness.state().actions.contains(&UiAction::SelectAndFrame(s2_proj)), "{:?}", harness.state().actions);
}

#[test]
fn inspector_lists_parameters_and_activation_quantization() {
    let variants: Vec<Variant> = ["pt_style/model_float.onnx", "pt_style/model_int8.onnx"]
        .iter()
        .zip([quantlens::model::VariantKind::Float, quantlens::model::VariantKind::Int8])
        .map(|(rel, kind)| {
            let spec = quantlens::model::VariantSpec {
                name: format!("{kind:?}").to_lowercase(),
                kind,
                path: common::data(rel),
            };
            quantlens::model::variants::load_variant(&spec, quantlens::model::Access::Read).unwrap()
        })
        .collect();
    let model = inspect_with(&variants, "conv2", true);
    let mut harness = Harness::new_ui(|ui| {
        inspector_ui(ui, &model);
    });
    harness.run();
    // the bias left in float behind its Identity: exact, folded into the layer
    assert!(harness.query_all_by_label("onnx::Conv_conv2").count() >= 2, "float and int8 bias rows");
    let bias = &model.members[1].params[1];
    assert_eq!((bias.role.as_str(), bias.name.as_str(), bias.sqnr.as_str()), ("bias", "onnx::Conv_conv2", "exact"));
    assert_eq!(harness.query_all_by_label("exact").count(), 1, "the float bias copy is exact, shown once");
    assert_eq!(harness.query_all_by_label("Identity of onnx::Conv_conv2").count(), 2, "folded in both variants");
    // the input activation's scale, zero point and representable range
    let act = model.members[1].activations.iter().find(|a| a.tensor == "relu6_out").unwrap();
    assert_eq!(act.role, "input");
    assert!(harness.query_by_label_contains("activation quantization").is_some());
    assert!(harness.query_by_label_contains(&act.range).is_some(), "{}", act.range);
    // after the fused Clip(0, 6) the calibrated range starts at 0: zero point at qmin
    assert_eq!(act.zero_point, -128);
    assert!(act.range.starts_with("[0, "), "{}", act.range);
}

#[test]
fn histogram_panel_offers_every_parameter_of_the_layer() {
    use quantlens::report::{ParamKey, SharedHistogram};
    use quantlens::ui::histogram::{HistogramState, histogram_ui};
    let bias = ParamKey { role: quantlens::model::ParamRole::Bias, slot: 2 };
    let params = vec![(ParamKey::WEIGHT, "weight conv.weight".to_string()), (bias, "bias conv.bias".to_string())];
    let h = SharedHistogram { lo: -1.0, hi: 1.0, bins: 4, counts: vec![vec![1, 2, 3, 4], vec![4, 3, 2, 1]] };
    let names = vec!["float".to_string(), "int8".to_string()];
    let mut state = HistogramState::default();
    let mut actions = Vec::new();
    let mut harness =
        Harness::new_ui(|ui| actions.extend(histogram_ui(ui, Some(&h), &names, &params, bias, &mut state)));
    harness.run();
    // the selector shows the current one
    harness.get_by_value("tensor: bias conv.bias").click();
    harness.run();
    harness.get_by_label("weight conv.weight").click();
    harness.run();
    drop(harness);
    assert_eq!(actions, vec![UiAction::SetHistogramParam(ParamKey::WEIGHT)]);
}

#[test]
fn the_inspector_edits_a_weight_scale() {
    let variants = load("resnet8");
    let model = inspect_with(&variants, "s2_proj", true);
    let int8 = variants.iter().position(|v| v.spec.name == "int8").unwrap();
    let edit = model.members[int8].quant.as_ref().unwrap().edit.unwrap();
    assert_eq!(edit.variant, int8);
    assert!((edit.factor - 1.0).abs() < 1e-6, "unedited: {}", edit.factor);
    let mut actions = Vec::new();
    let mut harness = Harness::new_ui(|ui| actions.extend(inspector_ui(ui, &model)));
    harness.run();
    assert_eq!(harness.query_all_by_label("edit: weight scale ×").count(), 2, "int8 and uint8");
    assert!(harness.query_all_by_label("reset").next().is_none(), "nothing to reset");
    assert_eq!(harness.query_all_by_label("zero point").count(), 2);
    harness.get_all_by_label("keep in float").next().unwrap().click();
    harness.run();
    drop(harness);
    let first_quantized =
        model.members.iter().position(|m| m.quant.as_ref().is_some_and(|q| q.edit.is_some())).unwrap();
    let layer = model.members[first_quantized].quant.as_ref().unwrap().edit.unwrap().layer;
    assert_eq!(
        actions,
        vec![UiAction::EditWeight {
            variant: first_quantized,
            layer,
            edit: quantlens::view::inspector::WeightEdit::Float(true)
        }]
    );
}

#[test]
fn the_run_panel_asks_for_runs_and_shows_accuracy_side_by_side() {
    use quantlens::infer::Accuracy;
    use quantlens::ui::run::{RunView, run_ui};
    use quantlens::view::run::{EvalRow, EvalView, RunCommand};
    let accuracy = |top1: f64| Accuracy {
        n: 100,
        top1,
        top1_ci95: quantlens::infer::wilson((top1 * 100.0) as usize, 100),
        top5: Some(1.0),
        agreement_with_float: Some(0.97),
    };
    let eval = EvalView {
        samples: 100,
        full: false,
        rows: vec![
            EvalRow { variant: "float".into(), accuracy: accuracy(0.99), edited: false, unedited: None },
            EvalRow { variant: "int8".into(), accuracy: accuracy(0.95), edited: true, unedited: Some(accuracy(0.97)) },
        ],
        cached: true,
    };
    let mut view = RunView {
        inputs: "digits.npz".into(),
        data: Some("digits.npz".into()),
        samples: 100,
        evaluation: Some(&eval),
        ..RunView::default()
    };
    let mut actions = Vec::new();
    let mut harness = Harness::new_ui(|ui| actions.extend(run_ui(ui, &view)));
    harness.get_by_label("Evaluate").click();
    harness.run();
    harness.get_by_label("int8 (edited)");
    harness.get_by_label("95.0% (-2.0)");
    harness.get_by_label_contains("100 samples (cached)");
    drop(harness);
    assert_eq!(actions, vec![UiAction::Run(RunCommand::Evaluate { full: false })]);
    // running: a progress bar and Cancel; the buttons wait
    view.running = Some((RunCommand::Activations, 3, 16));
    let mut actions = Vec::new();
    let mut harness = Harness::new_ui(|ui| actions.extend(run_ui(ui, &view)));
    harness.get_by_label("Cancel").click();
    harness.get_by_label("Activations").click();
    harness.run();
    drop(harness);
    assert_eq!(actions, vec![UiAction::Run(RunCommand::Cancel)], "disabled while running");
}

#[test]
fn the_inspector_shows_the_blocks_of_a_4_bit_weight() {
    let variants = load("lowbit_tokens");
    let model = inspect_with(&variants, "dense", true);
    let v = variants.iter().find(|v| v.spec.path.ends_with("tokens_q4_asym.onnx")).unwrap();
    let member = model.members.iter().find(|m| m.variant == v.spec.name).unwrap();
    let q = member.quant.as_ref().unwrap();
    // blocks are summarised: no per-block strip plot, a block view instead
    assert!(q.scales.is_empty());
    let b = q.blocks.as_ref().unwrap();
    assert_eq!((b.rows, b.blocks, b.block), (64, 2, 16), "dense [32, 64] in blocks of 16 along K");
    // integer zero points read as integers
    let (p, _) = common::params(v, "dense.weight_Q4");
    let (zmin, zmax) = (p.zero_point.iter().min().unwrap(), p.zero_point.iter().max().unwrap());
    assert!(q.summary.contains(&format!("zero point {zmin}..{zmax} (uint4)")), "{}", q.summary);
    let worst = member.metrics.as_ref().unwrap().channels.as_ref().unwrap().worst[0].clone();
    let mut harness = Harness::new_ui(|ui| {
        inspector_ui(ui, &model);
    });
    harness.run();
    assert!(harness.query_all_by_label_contains("64 rows × 2 blocks of 16 along axis 0").next().is_some());
    assert!(harness.query_all_by_label_contains("of 128 blocks over twice rounding's error").next().is_some());
    // the worst block's row, block and rmse/scale are listed
    assert!(harness.query_all_by_label(&format!("{:.3}", worst.rmse_over_scale)).next().is_some());
    assert!(harness.query_all_by_label(&worst.row.unwrap().to_string()).next().is_some());
}

#[test]
fn the_run_panel_switches_rerun_on_edit() {
    use quantlens::ui::run::{RunView, run_ui};
    let view = RunView { inputs: "random".into(), samples: 16, rerun_on_edit: true, ..RunView::default() };
    let mut actions = Vec::new();
    let mut harness = Harness::new_ui(|ui| actions.extend(run_ui(ui, &view)));
    harness.get_by_label("Re-run on edit").click();
    harness.run();
    drop(harness);
    assert_eq!(actions, vec![UiAction::SetRerunOnEdit(false)]);
}
