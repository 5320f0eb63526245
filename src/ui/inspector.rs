//! The inspector of the selected layer: one collapsible section per variant.

use egui_plot::{Legend, Plot, Points};

use crate::theme;
use crate::view::inspector::WeightEdit;
use crate::view::{InspectorModel, MemberView, TensorView, fmt_num};

use super::{UiAction, colour};

/// Draws the inspector; returns the edits asked for.
pub fn inspector_ui(ui: &mut egui::Ui, model: &InspectorModel) -> Vec<UiAction> {
    let mut actions = Vec::new();
    ui.heading(&model.title);
    ui.label(egui::RichText::new(format!("{} · depth {}", model.op, model.depth)).color(colour(theme::TEXT_DIM)));
    for (i, m) in model.members.iter().enumerate() {
        ui.separator();
        egui::CollapsingHeader::new(
            egui::RichText::new(format!("{} — {} ({})", m.variant, m.node, m.op_type))
                .strong()
                .color(colour(theme::variant_rgb(i))),
        )
        .id_salt(("member", i))
        .default_open(true)
        .show(ui, |ui| member_ui(ui, m, i, &mut actions));
    }
    actions
}

fn tensors_ui(ui: &mut egui::Ui, id: &str, title: &str, tensors: &[TensorView]) {
    if tensors.is_empty() {
        return;
    }
    ui.label(egui::RichText::new(title).strong());
    egui::Grid::new(id).striped(true).num_columns(3).show(ui, |ui| {
        for t in tensors {
            ui.label(&t.name).on_hover_text(&t.kind);
            ui.label(&t.shape);
            ui.label(&t.dtype);
            ui.end_row();
        }
    });
}

fn member_ui(ui: &mut egui::Ui, m: &MemberView, i: usize, actions: &mut Vec<UiAction>) {
    if !m.matched_by.is_empty() {
        ui.label(format!("matched by: {}", m.matched_by));
    }
    if let Some(q) = &m.quant {
        ui.label(egui::RichText::new(format!("weight quantization ({})", q.form)).strong());
        ui.label(&q.summary);
        if let Some(edit) = q.edit {
            // the statistics are computed again with the edited parameters, accuracy runs
            // take them (the file is untouched)
            let (variant, layer) = (edit.variant, edit.layer);
            let mut push = |e: WeightEdit| actions.push(UiAction::EditWeight { variant, layer, edit: e });
            ui.horizontal(|ui| {
                let mut factor = edit.factor;
                ui.label("edit: weight scale ×");
                let drag = egui::DragValue::new(&mut factor).range(0.01..=100.0).speed(0.01).max_decimals(3);
                if ui.add(drag).changed() && factor != edit.factor {
                    push(WeightEdit::ScaleFactor(factor));
                }
                if (edit.factor - 1.0).abs() > 1e-9 && ui.button("reset").clicked() {
                    push(WeightEdit::ScaleFactor(1.0));
                }
            });
            ui.horizontal(|ui| {
                let mut zp = edit.zero_point;
                ui.label("zero point");
                if ui.add(egui::DragValue::new(&mut zp).range(-128..=255)).changed() && zp != edit.zero_point {
                    push(WeightEdit::ZeroPoint(zp));
                }
                let mut float = edit.in_float;
                if ui.checkbox(&mut float, "keep in float").on_hover_text("for accuracy runs").changed() {
                    push(WeightEdit::Float(float));
                }
            });
        }
        if q.scales.len() > 1 {
            let pts: Vec<[f64; 2]> = q.scales.iter().enumerate().map(|(c, &s)| [c as f64, f64::from(s)]).collect();
            Plot::new(("scales", i)).height(80.0).legend(Legend::default()).allow_scroll(false).show(ui, |p| {
                p.points(Points::new("scale per channel", pts).radius(2.0).color(colour(theme::variant_rgb(i))));
            });
        }
        if let Some(b) = &q.blocks {
            super::blocks::blocks_ui(ui, b, m.metrics.as_ref().and_then(|e| e.channels.as_ref()));
        }
        for p in &q.problems {
            ui.colored_label(colour(theme::Swatch::BAD.rgb()), p);
        }
    }
    params_ui(ui, m, i);
    activations_ui(ui, m, i, actions);
    if !m.folded.is_empty() {
        ui.label(egui::RichText::new(format!("folded nodes ({})", m.folded.len())).strong());
        for f in &m.folded {
            ui.label(egui::RichText::new(f).small());
        }
    }
    if let Some(s) = &m.stats {
        ui.label(egui::RichText::new("weight statistics").strong());
        egui::Grid::new(("stats", i)).num_columns(4).show(ui, |ui| {
            let cells = [
                ("count", s.count.to_string()),
                ("NaN/Inf", format!("{}/{}", s.nan, s.inf)),
                ("min", fmt_num(s.min)),
                ("max", fmt_num(s.max)),
                ("mean", fmt_num(s.mean)),
                ("std", fmt_num(s.std)),
                ("q25", fmt_num(s.q25)),
                ("median", fmt_num(s.q50)),
                ("q75", fmt_num(s.q75)),
            ];
            for (k, (name, value)) in cells.iter().enumerate() {
                ui.label(egui::RichText::new(*name).color(colour(theme::TEXT_DIM)));
                ui.label(value);
                if k % 2 == 1 {
                    ui.end_row();
                }
            }
        });
    }
    if let Some(e) = &m.metrics {
        ui.label(egui::RichText::new("weight error against float").strong());
        egui::Grid::new(("metrics", i)).num_columns(4).show(ui, |ui| {
            let cells = [
                ("SQNR", crate::view::inspector::sqnr_cell(e)),
                ("MSE", fmt_num(e.mse)),
                ("max |err|", fmt_num(e.max_abs)),
                ("cosine", if e.cosine.is_nan() { "–".into() } else { format!("{:.6}", e.cosine) }),
                ("norm L2", fmt_num(e.norm_l2)),
                ("rmse/scale", e.rmse_over_scale.map_or_else(|| "–".into(), |r| format!("{r:.3}"))),
            ];
            for (k, (name, value)) in cells.iter().enumerate() {
                ui.label(egui::RichText::new(*name).color(colour(theme::TEXT_DIM)));
                ui.label(value);
                if k % 2 == 1 {
                    ui.end_row();
                }
            }
        });
    }
    // the node itself: attributes, inputs, outputs
    if !m.attributes.is_empty() {
        egui::Grid::new(("attrs", i)).num_columns(2).show(ui, |ui| {
            for (k, v) in &m.attributes {
                ui.label(egui::RichText::new(k).color(colour(theme::TEXT_DIM)));
                ui.label(v);
                ui.end_row();
            }
        });
    }
    tensors_ui(ui, &format!("in{i}"), "inputs", &m.inputs);
    tensors_ui(ui, &format!("out{i}"), "outputs", &m.outputs);
    for p in &m.problems {
        problem_ui(ui, p);
    }
}

/// A problem, boxed in red so that it cannot be missed.
pub fn problem_ui(ui: &mut egui::Ui, text: &str) {
    egui::Frame::new()
        .fill(colour(theme::Swatch::BAD.rgb()).gamma_multiply(0.25))
        .stroke(egui::Stroke::new(1.0, colour(theme::Swatch::BAD.rgb())))
        .inner_margin(4.0)
        .corner_radius(3.0)
        .show(ui, |ui| {
            ui.label(egui::RichText::new(format!("⚠ {text}")).color(egui::Color32::WHITE));
        });
}

/// Every parameter of the layer: role, tensor, type, quantization and SQNR.
fn params_ui(ui: &mut egui::Ui, m: &MemberView, i: usize) {
    if m.params.is_empty() {
        return;
    }
    ui.label(egui::RichText::new("parameters").strong());
    egui::Grid::new(("params", i)).striped(true).num_columns(4).show(ui, |ui| {
        for p in &m.params {
            ui.label(egui::RichText::new(&p.role).color(colour(theme::TEXT_DIM)));
            ui.label(&p.name).on_hover_text(format!("{} {}", p.dtype, p.shape));
            ui.label(if p.quant.is_empty() { p.dtype.clone() } else { format!("{} · {}", p.dtype, p.quant) });
            let rmse = p.rmse_over_scale.map_or_else(String::new, |r| format!("rmse/scale {r:.3}"));
            let cell = ui.label(&p.sqnr);
            if !rmse.is_empty() {
                cell.on_hover_text(rmse);
            }
            ui.end_row();
        }
    });
    for p in m.params.iter().skip(1) {
        for problem in &p.problems {
            problem_ui(ui, &format!("{} {}: {problem}", p.role, p.name));
        }
    }
}

/// The statically quantized activations: scale, zero point and representable range.
fn activations_ui(ui: &mut egui::Ui, m: &MemberView, i: usize, actions: &mut Vec<UiAction>) {
    if m.activations.is_empty() {
        return;
    }
    ui.label(egui::RichText::new("activation quantization").strong());
    let editable = m.activations.iter().any(|a| a.edit.is_some());
    egui::Grid::new(("acts", i)).striped(true).num_columns(6).show(ui, |ui| {
        for h in ["", "tensor", "scale / zp", "dtype", "range", if editable { "scale ×" } else { "" }] {
            ui.label(egui::RichText::new(h).color(colour(theme::TEXT_DIM)));
        }
        ui.end_row();
        for a in &m.activations {
            ui.label(&a.role);
            ui.label(&a.tensor);
            ui.label(format!("{} / {}", a.scale, a.zero_point));
            ui.label(&a.dtype);
            ui.label(&a.range);
            if let Some((variant, was)) = a.edit {
                // for accuracy runs: the activation's QuantizeLinear and DequantizeLinears
                let mut factor = was;
                let drag = egui::DragValue::new(&mut factor).range(0.01..=100.0).speed(0.01).max_decimals(3);
                if ui.add(drag).on_hover_text("activation scale × (accuracy runs)").changed() && factor != was {
                    actions.push(UiAction::EditActivation { variant, tensor: a.tensor.clone(), factor });
                }
            }
            ui.end_row();
        }
    });
}
