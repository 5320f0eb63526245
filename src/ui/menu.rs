//! The top bar (open, recent, view mode, colour metric, screenshot), the legend and the
//! start screen shown before any model is open.

use std::path::PathBuf;

use crate::layout::{ColourMetric, LegendEntry, ViewMode};
use crate::theme;

use super::{UiAction, colour};

/// What the top bar shows.
#[derive(Clone, Debug, Default)]
pub struct TopBar<'a> {
    pub recent: &'a [PathBuf],
    pub metric: ColourMetric,
    pub mode: ViewMode,
    pub fold_quant: bool,
    /// `(what, fraction done)` of work in progress.
    pub progress: Option<(String, f32)>,
    pub status: Option<String>,
    pub error: Option<String>,
    /// Some variant is edited (File → Export).
    pub edited: bool,
}

/// Draws the top bar.
pub fn top_bar_ui(ui: &mut egui::Ui, bar: &TopBar<'_>) -> Vec<UiAction> {
    let mut actions = Vec::new();
    ui.horizontal_wrapped(|ui| {
        ui.menu_button("File", |ui| {
            if ui.button("Open folder…").clicked() {
                actions.push(UiAction::OpenDialog);
            }
            ui.menu_button("Recent", |ui| {
                if bar.recent.is_empty() {
                    ui.label("(none yet)");
                }
                for p in bar.recent {
                    if ui.button(p.display().to_string()).clicked() {
                        actions.push(UiAction::Open(p.clone()));
                    }
                }
            });
            if ui
                .add_enabled(bar.edited, egui::Button::new("Export edited variants…"))
                .on_disabled_hover_text("edit a layer in the inspector first")
                .clicked()
            {
                actions.push(UiAction::ExportEdits);
            }
            if ui.button("Save screenshot (F12)").clicked() {
                actions.push(UiAction::Screenshot);
            }
        });
        ui.separator();
        let mut mode = bar.mode;
        ui.selectable_value(&mut mode, ViewMode::ThreeD, "3D towers");
        ui.selectable_value(&mut mode, ViewMode::TwoD, "2D top-down");
        if mode != bar.mode {
            actions.push(UiAction::SetViewMode(mode));
        }
        ui.separator();
        let mut metric = bar.metric;
        egui::ComboBox::from_id_salt("metric").selected_text(format!("colour: {}", metric.label())).show_ui(ui, |ui| {
            for m in ColourMetric::ALL {
                ui.selectable_value(&mut metric, m, m.label());
            }
        });
        if metric != bar.metric {
            actions.push(UiAction::SetMetric(metric));
        }
        let mut fold = bar.fold_quant;
        if ui.checkbox(&mut fold, "fold Q/DQ").changed() {
            actions.push(UiAction::SetFoldQuant(fold));
        }
        if ui.button("Frame all (Home)").clicked() {
            actions.push(UiAction::FrameAll);
        }
        if let Some((what, f)) = &bar.progress {
            ui.separator();
            ui.add(egui::ProgressBar::new(*f).desired_width(140.0).text(what.as_str()));
        }
        if let Some(s) = &bar.status {
            ui.label(egui::RichText::new(s).color(colour(theme::TEXT_DIM)));
        }
        if let Some(e) = &bar.error {
            crate::ui::inspector::problem_ui(ui, e);
        }
    });
    actions
}

/// Draws the legend of the colour metric.
pub fn legend_ui(ui: &mut egui::Ui, metric: ColourMetric, entries: &[LegendEntry]) {
    ui.label(egui::RichText::new(format!("colour: {}", metric.label())).strong());
    for e in entries {
        ui.horizontal(|ui| {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, colour(e.rgb));
            ui.label(egui::RichText::new(&e.label).small());
        });
    }
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
        ui.painter().rect_stroke(rect, 2.0, egui::Stroke::new(2.0, colour(theme::UNMATCHED)), egui::StrokeKind::Inside);
        ui.label(egui::RichText::new("unmatched layer").small());
    });
}

/// The empty start screen.
pub fn start_ui(ui: &mut egui::Ui, recent: &[PathBuf]) -> Vec<UiAction> {
    let mut actions = Vec::new();
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() * 0.25);
        ui.heading("quantlens");
        ui.label("See what quantization did to your network.");
        ui.add_space(12.0);
        if ui.button(egui::RichText::new("Open folder…").size(18.0)).clicked() {
            actions.push(UiAction::OpenDialog);
        }
        ui.label(
            egui::RichText::new("or drop a folder of *float*.onnx / *int8*.onnx / *uint8*.onnx here")
                .color(colour(theme::TEXT_DIM)),
        );
        if !recent.is_empty() {
            ui.add_space(12.0);
            ui.label("Recent");
            for p in recent {
                if ui.link(p.display().to_string()).clicked() {
                    actions.push(UiAction::Open(p.clone()));
                }
            }
        }
    });
    actions
}
