//! The searchable, sortable layer list (virtualised: only visible rows are laid out).

use crate::theme;
use crate::view::{LayerQuery, ListRow, SortBy, fmt_num, query_rows};

use super::{UiAction, colour};

/// What the list keeps between frames.
#[derive(Clone, Debug, Default)]
pub struct LayerListState {
    pub query: LayerQuery,
    /// The last query's result, for the rows' `version` (filtering 10k rows every frame
    /// would cost more than the rest of the panel).
    cached: Option<(LayerQuery, u64, Result<Vec<usize>, String>)>,
    /// The distinct ops of the rows, for their `version`.
    ops: Option<(u64, Vec<String>)>,
}

/// Draws the list; returns the user's selection as an action.
pub fn layer_list_ui(
    ui: &mut egui::Ui,
    rows: &[ListRow],
    version: u64,
    state: &mut LayerListState,
    selected: Option<usize>,
) -> Vec<UiAction> {
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        ui.label("Search");
        ui.add(egui::TextEdit::singleline(&mut state.query.text).hint_text("name or op").desired_width(120.0));
        ui.checkbox(&mut state.query.regex, "regex");
    });
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.query.show_constants, "constants")
            .on_hover_text("layers whose weight is one scalar (Mul/Add/Clip operands)");
        ui.checkbox(&mut state.query.differences_only, "differences only").on_hover_text("layers some variant lacks");
    });
    if state.ops.as_ref().is_none_or(|(v, _)| *v != version) {
        let mut ops: Vec<&str> = rows.iter().map(|r| r.op.as_str()).collect();
        ops.sort_unstable();
        ops.dedup();
        state.ops = Some((version, ops.into_iter().map(String::from).collect()));
    }
    // (a handful of names: cloned so that the filter below can change the query)
    let ops = state.ops.as_ref().map(|(_, o)| o.clone()).unwrap_or_default();
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("op_filter")
            .selected_text(state.query.op.clone().unwrap_or_else(|| "all ops".into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.query.op, None, "all ops");
                for op in &ops {
                    ui.selectable_value(&mut state.query.op, Some(op.clone()), op);
                }
            });
        egui::ComboBox::from_id_salt("sort").selected_text(format!("sort: {}", state.query.sort.label())).show_ui(
            ui,
            |ui| {
                for s in SortBy::ALL {
                    ui.selectable_value(&mut state.query.sort, s, s.label());
                }
            },
        );
    });
    let fresh = state.cached.as_ref().is_some_and(|(q, v, _)| *q == state.query && *v == version);
    if !fresh {
        state.cached = Some((state.query.clone(), version, query_rows(rows, &state.query)));
    }
    let shown: &[usize] = match state.cached.as_ref().map(|(_, _, r)| r) {
        Some(Ok(shown)) => shown,
        Some(Err(e)) => {
            ui.colored_label(colour(theme::Swatch::BAD.rgb()), format!("bad regex: {e}"));
            &[]
        }
        None => &[],
    };
    ui.label(egui::RichText::new(format!("{} of {} layers", shown.len(), rows.len())).color(colour(theme::TEXT_DIM)));
    ui.separator();
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_height, shown.len(), |ui, range| {
        for &i in shown.get(range).unwrap_or_default() {
            let Some(r) = rows.get(i) else { continue };
            let missing = if r.differs() { "  ·  not in every variant" } else { "" };
            let cost = r.cost.map(|c| format!("  ·  costs {:.0}%", 100.0 * c)).unwrap_or_default();
            let text = format!("{}  ·  {}  ·  {}{cost}{missing}", r.label, r.op, r.sqnr_text());
            let mut rich = egui::RichText::new(text);
            if let Some(s) = r.worst_sqnr {
                rich = rich.color(colour(theme::Swatch::quality((s - 10.0) / 30.0).rgb()));
            } else if r.exact {
                rich = rich.color(colour(theme::Swatch::quality(1.0).rgb()));
            }
            let resp = ui.selectable_label(selected == Some(r.row), rich);
            if resp.clicked() {
                actions.push(UiAction::SelectAndFrame(r.row));
            }
            resp.on_hover_text(format!(
                "depth {}, {} parameters\nMSE {}, max |err| {}, rmse/scale {}",
                r.depth,
                r.params,
                r.worst_mse.map_or_else(|| "–".into(), fmt_num),
                r.worst_max_abs.map_or_else(|| "–".into(), fmt_num),
                r.worst_rmse_over_scale.map_or_else(|| "–".into(), fmt_num)
            ));
        }
    });
    actions
}

/// The nodes that differ between variants: `(variant index, its differences)`. Clicking a
/// node asks for its block (`UiAction::SelectNode`).
pub fn differences_ui(
    ui: &mut egui::Ui,
    variants: &[crate::model::Variant],
    diffs: &[(usize, crate::model::NodeDiff)],
) -> Vec<UiAction> {
    let mut actions = Vec::new();
    let total: usize = diffs.iter().map(|(_, d)| d.missing.len() + d.extra.len()).sum();
    if total == 0 {
        return actions;
    }
    egui::CollapsingHeader::new(format!("Nodes not in every variant ({total})")).id_salt("node_diffs").show(ui, |ui| {
        egui::ScrollArea::vertical().id_salt("node_diffs_scroll").max_height(160.0).show(ui, |ui| {
            for (vi, d) in diffs {
                let name = variants.get(*vi).map_or("", |v| v.spec.name.as_str());
                for (sign, nodes, variant) in [("−", &d.missing, None), ("+", &d.extra, Some(*vi))] {
                    for n in nodes {
                        let text = format!("{sign} {name}: {} ({})", n.node, n.op);
                        let hover = if variant.is_some() { "only in this variant" } else { "not in this variant" };
                        if ui.selectable_label(false, text).on_hover_text(hover).clicked() {
                            actions.push(UiAction::SelectNode { variant: variant.unwrap_or(usize::MAX), node: n.id });
                        }
                    }
                }
            }
        });
    });
    actions
}
