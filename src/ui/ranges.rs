//! Whole-model range overview: one row per layer, one thin [min, max] bar per variant,
//! on an axis shared by the whole model or per layer. Clicking a row selects the layer.

use crate::theme;
use crate::view::ListRow;

use super::{UiAction, colour};

/// Per-variant `(min, max)` of a layer's (dequantized) weight.
pub type RowRanges = Vec<Option<(f64, f64)>>;

/// Display choices kept between frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangesState {
    /// One axis for the whole model (else each row is scaled to its own largest |w|).
    pub shared_axis: bool,
    /// Show each quantized layer's representable output (else input) activation range
    /// instead of its weight's [min, max].
    pub activations: bool,
}

/// Draws the overview of `rows[shown[i]]`, whose ranges are `ranges[i]`.
pub fn ranges_ui(
    ui: &mut egui::Ui,
    rows: &[ListRow],
    shown: &[usize],
    ranges: &[RowRanges],
    state: &mut RangesState,
    selected: Option<usize>,
) -> Vec<UiAction> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        ui.selectable_value(&mut state.activations, false, "weights");
        ui.selectable_value(&mut state.activations, true, "activations");
        ui.checkbox(&mut state.shared_axis, "one axis for all layers");
        let what = if state.activations {
            "bars: representable range [(qmin−zp)·s, (qmax−zp)·s] of the output (else input) per variant"
        } else {
            "bars: weight [min, max] per variant"
        };
        ui.label(egui::RichText::new(what).color(colour(theme::TEXT_DIM)));
    });
    let global = ranges.iter().flatten().flatten().map(|(lo, hi)| lo.abs().max(hi.abs())).fold(0.0, f64::max);
    let row_h = 6.0 + 4.0 * ranges.first().map_or(1, Vec::len) as f32;
    egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_h, shown.len(), |ui, range| {
        for i in range {
            let (Some(r), Some(rr)) = (shown.get(i).and_then(|&k| rows.get(k)), ranges.get(i)) else { continue };
            let (rect, resp) = ui.allocate_exact_size(egui::vec2(ui.available_width(), row_h), egui::Sense::click());
            let painter = ui.painter_at(rect);
            if selected == Some(r.row) {
                painter.rect_filled(rect, 2.0, egui::Color32::from_white_alpha(28));
            }
            let label_w = (rect.width() * 0.35).min(160.0);
            painter.text(
                rect.left_center() + egui::vec2(2.0, 0.0),
                egui::Align2::LEFT_CENTER,
                &r.label,
                egui::FontId::proportional(10.0),
                colour(theme::TEXT),
            );
            let track = egui::Rect::from_min_max(rect.min + egui::vec2(label_w, 2.0), rect.max - egui::vec2(4.0, 2.0));
            let scale = if state.shared_axis {
                global
            } else {
                rr.iter().flatten().map(|(lo, hi)| lo.abs().max(hi.abs())).fold(0.0, f64::max)
            };
            let x = |v: f64| {
                let t = if scale > 0.0 { (v / scale * 0.5 + 0.5) as f32 } else { 0.5 };
                track.left() + t.clamp(0.0, 1.0) * track.width()
            };
            painter.line_segment(
                [egui::pos2(x(0.0), track.top()), egui::pos2(x(0.0), track.bottom())],
                egui::Stroke::new(1.0, colour(theme::TEXT_DIM)),
            );
            for (vi, m) in rr.iter().enumerate() {
                let Some((lo, hi)) = m else { continue };
                let y = track.top() + 2.0 + 4.0 * vi as f32;
                painter.line_segment(
                    [egui::pos2(x(*lo), y), egui::pos2(x(*hi).max(x(*lo) + 1.0), y)],
                    egui::Stroke::new(3.0, colour(theme::variant_rgb(vi))),
                );
            }
            let resp = resp.on_hover_text(
                rr.iter()
                    .enumerate()
                    .filter_map(|(vi, m)| m.map(|(lo, hi)| format!("variant {vi}: [{lo:.5}, {hi:.5}]")))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            if resp.clicked() {
                actions.push(UiAction::SelectAndFrame(r.row));
            }
        }
    });
    actions
}
