//! The Run panel: what the variants run on, the buttons, the progress of a run with
//! Cancel, the accuracy of every variant side by side, the costliest layers of the
//! sensitivity sweep; and the selected layer's activation figures.

use egui::RichText;

use super::{UiAction, colour};
use crate::infer::ActivationRow;
use crate::theme;
use crate::view::fmt_num;
use crate::view::run::{EvalView, RunCommand, RunFindings};

/// What the Run panel shows.
#[derive(Clone, Debug, Default)]
pub struct RunView<'a> {
    /// Unlabelled inputs and labelled data, as the user would write them.
    pub inputs: String,
    pub data: Option<String>,
    pub samples: usize,
    /// The run in progress: what, samples done, samples in all (0: not known).
    pub running: Option<(RunCommand, usize, usize)>,
    pub errors: &'a [String],
    pub evaluation: Option<&'a EvalView>,
    pub findings: Option<&'a RunFindings>,
    /// Edits made in the inspector (undoable).
    pub edits: usize,
    /// An edit runs the last activations or quick evaluation again.
    pub rerun_on_edit: bool,
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// Draws the Run panel.
pub fn run_ui(ui: &mut egui::Ui, view: &RunView<'_>) -> Vec<UiAction> {
    let mut actions = Vec::new();
    let dim = |t: String| RichText::new(t).color(colour(theme::TEXT_DIM));
    ui.horizontal(|ui| {
        ui.label(dim(format!("inputs: {} ·", view.inputs)));
        let mut n = view.samples;
        let drag = egui::DragValue::new(&mut n).range(1..=100_000).suffix(" samples");
        if ui.add_enabled(view.running.is_none(), drag).on_hover_text("samples of a quick run").changed()
            && n != view.samples
        {
            actions.push(UiAction::SetRunSamples(n));
        }
    });
    ui.label(dim(format!("labelled data: {}", view.data.as_deref().unwrap_or("none (accuracy needs it)"))));
    let busy = view.running.is_some();
    if view.edits > 0 {
        ui.horizontal(|ui| {
            ui.label(format!("{} edit{} (runs take them)", view.edits, if view.edits == 1 { "" } else { "s" }));
            if ui.button("Undo").clicked() {
                actions.push(UiAction::UndoEdit);
            }
            if ui.button("Reset all").clicked() {
                actions.push(UiAction::ResetEdits);
            }
        });
    }
    let mut rerun = view.rerun_on_edit;
    if ui
        .checkbox(&mut rerun, "Re-run on edit")
        .on_hover_text("an edit runs the last activations or quick evaluation again")
        .changed()
    {
        actions.push(UiAction::SetRerunOnEdit(rerun));
    }
    ui.horizontal_wrapped(|ui| {
        for (label, command, tip) in [
            ("Activations", RunCommand::Activations, "every activation against float, with clipping"),
            ("Evaluate", RunCommand::Evaluate { full: false }, "accuracy on a stratified quick set"),
            ("Full", RunCommand::Evaluate { full: true }, "accuracy on every sample"),
            ("Sensitivity", RunCommand::Sensitivity, "each quantized layer kept in float alone"),
        ] {
            let needs_data = matches!(command, RunCommand::Evaluate { .. });
            let enabled = !busy && (!needs_data || view.data.is_some());
            if ui.add_enabled(enabled, egui::Button::new(label)).on_hover_text(tip).clicked() {
                actions.push(UiAction::Run(command));
            }
        }
    });
    if let Some((command, done, total)) = view.running {
        ui.horizontal(|ui| {
            #[allow(clippy::cast_precision_loss)]
            let bar = if total > 0 {
                egui::ProgressBar::new(done as f32 / total as f32).text(format!("{} {done}/{total}", command.label()))
            } else {
                egui::ProgressBar::new(0.0).animate(true).text(format!("{} …", command.label()))
            };
            ui.add(bar.desired_width(220.0));
            if ui.button("Cancel").clicked() {
                actions.push(UiAction::Run(RunCommand::Cancel));
            }
        });
    }
    for e in view.errors.iter().take(4) {
        super::inspector::problem_ui(ui, e);
    }
    if let Some(eval) = view.evaluation {
        evaluation_ui(ui, eval);
    }
    if let Some(f) = view.findings.filter(|f| !f.sensitivity.is_empty()) {
        let unit = if f.sensitivity_accuracy { "points, then output dB" } else { "dB" };
        ui.label(RichText::new(format!("Costliest layers (gain in float's place, {unit})")).strong());
        egui::Grid::new("sensitivity").striped(true).show(ui, |ui| {
            for s in f.sensitivity.iter().filter(|s| s.gain.is_some()).take(5) {
                ui.label(&s.variant);
                ui.label(&s.layer);
                let g = s.gain.unwrap_or(f64::NAN);
                ui.label(if f.sensitivity_accuracy { format!("{:+.1}", 100.0 * g) } else { format!("{g:+.2}") });
                if f.sensitivity_accuracy {
                    ui.label(s.sqnr_gain_db.map_or_else(|| "–".into(), |d| format!("{d:+.2} dB")));
                }
                ui.end_row();
            }
        });
    }
    actions
}

fn evaluation_ui(ui: &mut egui::Ui, eval: &EvalView) {
    let how = if eval.full { "all" } else { "quick" };
    let cached = if eval.cached { " (cached)" } else { "" };
    ui.label(RichText::new(format!("Accuracy, {how}: {} samples{cached}", eval.samples)).strong());
    egui::Grid::new("evaluation").striped(true).show(ui, |ui| {
        for h in ["variant", "top-1", "95% CI", "top-5", "agrees"] {
            ui.label(RichText::new(h).color(colour(theme::TEXT_DIM)));
        }
        ui.end_row();
        for r in &eval.rows {
            let a = &r.accuracy;
            ui.label(if r.edited { format!("{} (edited)", r.variant) } else { r.variant.clone() });
            // an edited variant: the change its edits made, when the unedited run is known
            let delta = r.unedited.as_ref().map(|u| {
                let d = 100.0 * (a.top1 - u.top1);
                let agree = a.agreement_with_float.zip(u.agreement_with_float).map(|(x, y)| 100.0 * (x - y));
                let agree = agree.map(|g| format!(", agreement {g:+.1}")).unwrap_or_default();
                (format!(" ({d:+.1})"), format!("unedited {}; change {d:+.1} points{agree}", pct(u.top1)))
            });
            let (suffix, tip) = delta.unwrap_or_default();
            let cell = ui.label(format!("{}{suffix}", pct(a.top1)));
            if !tip.is_empty() {
                cell.on_hover_text(tip);
            }
            ui.label(format!("{}–{}", pct(a.top1_ci95[0]), pct(a.top1_ci95[1])));
            ui.label(a.top5.map_or_else(|| "–".into(), pct));
            ui.label(a.agreement_with_float.map_or_else(|| "–".into(), pct));
            ui.end_row();
        }
    });
}

/// The selected layer's activations: per tensor and variant, `xmodel_err`, `qdq_err`,
/// clipping and the share of the range used.
pub fn activations_ui(ui: &mut egui::Ui, rows: &[&ActivationRow]) {
    if rows.is_empty() {
        return;
    }
    ui.label(RichText::new("This layer's activations (run)").strong());
    egui::Grid::new("run_activations").striped(true).show(ui, |ui| {
        for h in ["tensor", "variant", "SQNR vs float", "SQNR own Q/DQ", "clipped", "range used"] {
            ui.label(RichText::new(h).color(colour(theme::TEXT_DIM)));
        }
        ui.end_row();
        for a in rows {
            for v in &a.variants {
                ui.label(&a.tensor);
                ui.label(&v.variant);
                let db = |d: Option<f64>| d.map_or_else(|| "–".into(), |d| format!("{d:.2} dB"));
                ui.label(db(v.xmodel_err_db));
                ui.label(db(v.qdq_err_db));
                let clip = v.clip_fraction.map_or_else(|| "–".into(), |c| format!("{}%", fmt_num(100.0 * c)));
                let bad = v.clip_fraction.is_some_and(|c| c >= 0.01);
                ui.label(if bad {
                    RichText::new(clip).color(colour(theme::Swatch::BAD.rgb()))
                } else {
                    RichText::new(clip)
                });
                ui.label(v.range_used.map_or_else(|| "–".into(), pct));
                ui.end_row();
            }
        }
    });
}
