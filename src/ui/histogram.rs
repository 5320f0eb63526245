//! Histograms of a layer's weights in every variant (dequantized), over one shared set of
//! bin edges: side by side or overlaid, linear or log counts.

use egui_plot::{Bar, BarChart, Legend, Plot};

use crate::report::{ParamKey, SharedHistogram};
use crate::theme;

use super::{UiAction, colour};

/// Display choices kept between frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramState {
    pub overlay: bool,
    pub log_counts: bool,
    pub bins: usize,
    pub tab: HistogramTab,
    /// Which of the selected layer's activations.
    pub activation: usize,
}

/// What the histogram panel shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistogramTab {
    /// The selected layer's parameters (bins chosen with the slider).
    #[default]
    Weights,
    /// A run's histograms of its activations (the run's bins).
    Activations,
}

impl Default for HistogramState {
    fn default() -> Self {
        Self { overlay: true, log_counts: false, bins: 64, tab: HistogramTab::Weights, activation: 0 }
    }
}

/// Draws the histograms of `names[i]` ↔ `h.counts[i]`; `params` are the layer's
/// parameters to choose from (`current` is shown).
pub fn histogram_ui(
    ui: &mut egui::Ui,
    h: Option<&SharedHistogram>,
    names: &[String],
    params: &[(ParamKey, String)],
    current: ParamKey,
    state: &mut HistogramState,
) -> Vec<UiAction> {
    let mut actions = Vec::new();
    if params.len() > 1 {
        let label = params.iter().find(|(k, _)| *k == current).map_or("weight", |(_, l)| l.as_str());
        egui::ComboBox::from_id_salt("histogram_param").selected_text(format!("tensor: {label}")).show_ui(ui, |ui| {
            for (k, l) in params {
                if ui.selectable_label(*k == current, l).clicked() && *k != current {
                    actions.push(UiAction::SetHistogramParam(*k));
                }
            }
        });
    }
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.overlay, "overlay");
        ui.checkbox(&mut state.log_counts, "log counts");
        let mut bins = state.bins;
        if state.tab == HistogramTab::Weights
            && ui.add(egui::Slider::new(&mut bins, 8..=256).logarithmic(true).text("bins")).changed()
        {
            state.bins = bins;
            actions.push(UiAction::SetHistogramBins(bins));
        }
    });
    let Some(h) = h else {
        ui.label("no histogram for this selection (yet)");
        return actions;
    };
    let width = (h.hi - h.lo) / h.bins.max(1) as f64;
    let height = |c: u64| if state.log_counts { (c as f64 + 1.0).log10() } else { c as f64 };
    let charts: Vec<(String, Vec<Bar>, egui::Color32)> = h
        .counts
        .iter()
        .enumerate()
        .map(|(vi, counts)| {
            let n = h.counts.len().max(1) as f64;
            let bars = counts
                .iter()
                .enumerate()
                .map(|(b, &c)| {
                    let centre = h.lo + (b as f64 + 0.5) * width;
                    if state.overlay {
                        Bar::new(centre, height(c)).width(width)
                    } else {
                        Bar::new(centre - width / 2.0 + (vi as f64 + 0.5) * width / n, height(c)).width(width / n)
                    }
                })
                .collect();
            let name = names.get(vi).cloned().unwrap_or_else(|| format!("variant {vi}"));
            let mut c = colour(theme::variant_rgb(vi));
            if state.overlay {
                c = c.gamma_multiply(0.55);
            }
            (name, bars, c)
        })
        .collect();
    Plot::new("histogram")
        .height(ui.available_height().clamp(120.0, 260.0))
        .legend(Legend::default())
        .y_axis_label(if state.log_counts { "log10(count + 1)" } else { "count" })
        .allow_scroll(false)
        .show(ui, |p| {
            for (name, bars, c) in charts {
                p.bar_chart(BarChart::new(name, bars).color(c));
            }
        });
    ui.label(
        egui::RichText::new(format!("{} shared bins over [{:.4}, {:.4}]", h.bins, h.lo, h.hi))
            .color(colour(theme::TEXT_DIM)),
    );
    actions
}
