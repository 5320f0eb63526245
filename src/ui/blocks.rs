//! The block view of a blocked (4-bit) weight in the inspector: heatmaps of `|scale|` and
//! of each block's `rmse/scale` (rows × blocks, pooled to a bounded grid), the worst
//! blocks, and the share of blocks far from healthy rounding.

use egui::{Color32, Mesh, Rect, RichText, Sense, Vec2, pos2, vec2};

use super::colour;
use crate::layout::colour::rmse_t;
use crate::stats::blocks::Heatmap;
use crate::stats::metrics::ChannelErrors;
use crate::theme;
use crate::view::fmt_num;
use crate::view::inspector::BlockView;

/// Side of a heatmap on screen, in points.
const SIDE: f32 = 150.0;

/// Draws the block view of one variant's weight.
pub fn blocks_ui(ui: &mut egui::Ui, b: &BlockView, errors: Option<&ChannelErrors>) {
    ui.label(format!("{} rows × {} blocks of {} along axis {}", b.rows, b.blocks, b.block, b.axis));
    let pooled = |h: &Heatmap| {
        if h.row_step * h.col_step > 1 { format!(" (cells of {}×{})", h.row_step, h.col_step) } else { String::new() }
    };
    ui.horizontal(|ui| {
        if let Some(scales) = &b.scales {
            ui.vertical(|ui| {
                ui.label(RichText::new(format!("|scale|{}", pooled(scales))).small());
                let (lo, hi) = scales.range().unwrap_or((1.0, 1.0));
                let (llo, lhi) = (lo.max(f32::MIN_POSITIVE).log10(), hi.max(f32::MIN_POSITIVE).log10());
                heatmap_ui(ui, scales, |v| {
                    let t = if lhi > llo { (v.max(f32::MIN_POSITIVE).log10() - llo) / (lhi - llo) } else { 0.5 };
                    colour(theme::magnitude_rgb(t))
                });
                ui.label(RichText::new(format!("{} … {}", fmt_num(f64::from(lo)), fmt_num(f64::from(hi)))).small());
            });
        }
        if let Some(h) = errors.and_then(|e| e.heatmap.as_ref()) {
            ui.vertical(|ui| {
                ui.label(RichText::new(format!("rmse/scale, worst per cell{}", pooled(h))).small());
                #[allow(clippy::cast_possible_truncation)]
                heatmap_ui(ui, h, |v| colour(theme::quality_rgb(rmse_t(f64::from(v)) as f32)));
                ui.label(RichText::new("green ≈ 0.289 (rounding only)").small());
            });
        }
    });
    let Some(e) = errors else { return };
    ui.label(format!("{:.1}% of {} blocks over twice rounding's error", 100.0 * e.off_share, e.count));
    egui::Grid::new(("worst blocks", b.rows, b.blocks)).striped(true).num_columns(4).show(ui, |ui| {
        for h in ["row", "block", "rmse/scale", "scale"] {
            ui.label(RichText::new(h).color(colour(theme::TEXT_DIM)));
        }
        ui.end_row();
        for w in &e.worst {
            ui.label(w.row.map_or_else(|| "–".into(), |r| r.to_string()));
            ui.label(w.block.map_or_else(|| w.index.to_string(), |b| b.to_string()));
            ui.label(format!("{:.3}", w.rmse_over_scale));
            ui.label(fmt_num(f64::from(w.scale)));
            ui.end_row();
        }
    });
}

/// One heatmap as a mesh of cells (one quad each, at most 96² of them), with the cell
/// under the pointer named on hover.
fn heatmap_ui(ui: &mut egui::Ui, h: &Heatmap, colour_of: impl Fn(f32) -> Color32) {
    #[allow(clippy::cast_precision_loss)]
    let (rows, cols) = (h.rows.max(1) as f32, h.cols.max(1) as f32);
    // cells as square as the grid allows within SIDE × SIDE, but never a sliver
    let cell = (SIDE / rows.max(cols)).max(1.0);
    let size = vec2((cell * cols).clamp(SIDE / 2.0, SIDE), (cell * rows).clamp(SIDE / 4.0, SIDE));
    let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
    let mut mesh = Mesh::default();
    let (w, hgt) = (rect.width() / cols, rect.height() / rows);
    for (i, &v) in h.cells.iter().enumerate() {
        let (r, c) = (i / h.cols.max(1), i % h.cols.max(1));
        #[allow(clippy::cast_precision_loss)]
        let min = pos2(rect.left() + c as f32 * w, rect.top() + r as f32 * hgt);
        let fill = if v.is_finite() { colour_of(v) } else { colour(theme::TEXT_DIM).gamma_multiply(0.2) };
        mesh.add_colored_rect(Rect::from_min_size(min, Vec2::new(w, hgt)), fill);
    }
    ui.painter().add(mesh);
    if let Some(p) = response.hover_pos() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (c, r) = (((p.x - rect.left()) / w) as usize, ((p.y - rect.top()) / hgt) as usize);
        if let Some(v) = h.cells.get(r * h.cols + c) {
            let (r0, c0) = (r * h.row_step, c * h.col_step);
            response.on_hover_text_at_pointer(format!(
                "rows {r0}..{}, blocks {c0}..{}: {}",
                r0 + h.row_step,
                c0 + h.col_step,
                fmt_num(f64::from(*v))
            ));
        }
    }
}
