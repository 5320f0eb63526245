//! The egui panels around the 3D view: top bar, layer list (left), inspector and
//! histogram (right), range overview (bottom), legend, labels over the towers, and the
//! start screen. Panels only return [`UiAction`]s; `apply_actions` turns them into
//! messages and settings changes. The 3D viewport shrinks to the area the panels leave.

use std::sync::Arc;

use bevy::camera::Viewport;
use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};

use crate::layout::{ViewMode, legend};
use crate::report::LayerReport;
use crate::report::ParamKey;
use crate::theme;
use crate::ui::histogram::{HistogramState, HistogramTab, histogram_ui};
use crate::ui::inspector::{inspector_ui, problem_ui};
use crate::ui::layer_list::{LayerListState, differences_ui, layer_list_ui};
use crate::ui::menu::{TopBar, legend_ui, start_ui, top_bar_ui};
use crate::ui::ranges::{RangesState, RowRanges, ranges_ui};
use crate::ui::{UiAction, colour};
use crate::view::{Member, inspector};

use super::camera::{AutoFrame, TowerCamera};
use super::edit::{EditHistory, EditRequest, InFloat};
use super::model::{ActScale, ActivationEntity, WeightEntity};
use super::model::{
    FrameRequest, GraphNode, LayerRow, LayerStats, OpenModel, OpenRequest, ScreenshotRequest, SelectRequest, Selection,
    Status, ViewSettings,
};
use super::open::{OpenDialogRequest, RecentFolders};
use super::run::{RunRequest, RunSettings, RunState};
use super::stats::HistogramView;
use super::towers::BlockIndex;
use crate::infer::InputSpec;
use crate::ui::run::{RunView, activations_ui, run_ui};
use crate::view::run::{activation_histogram, row_activations};

/// The panels.
pub struct PanelsPlugin;

impl Plugin for PanelsPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<UiActionMessage>()
            .init_resource::<PanelState>()
            .add_systems(EguiPrimaryContextPass, panels_ui)
            .add_systems(Update, apply_actions);
    }
}

/// A panel action, as a message.
#[derive(Message, Debug, Clone)]
pub struct UiActionMessage(pub UiAction);

/// Panel state kept between frames, and caches rebuilt only when stats change.
#[derive(Resource, Default)]
pub struct PanelState {
    pub list: LayerListState,
    pub histogram: HistogramState,
    pub ranges: RangesState,
    cache_key: Option<(Entity, usize, bool, bool)>,
    reports: Vec<Option<Arc<LayerReport>>>,
    /// Indices into the layer list's rows that the range overview shows (constants only
    /// when the list shows them), and their ranges.
    ranges_shown: Vec<usize>,
    ranges_rows: Vec<RowRanges>,
}

fn refresh_caches(state: &mut PanelState, open: &OpenModel, status: &Status, rows: &Query<(&LayerRow, &LayerStats)>) {
    let key = (open.root, status.stats_done, state.ranges.activations, state.list.query.show_constants);
    if state.cache_key == Some(key) {
        return;
    }
    state.cache_key = Some(key);
    let n = open.data.rows.len();
    state.reports = vec![None; n];
    for (r, s) in rows {
        if let Some(slot) = state.reports.get_mut(r.0) {
            *slot = Some(s.0.clone());
        }
    }
    let names: Vec<&str> = open.data.variants.iter().map(|v| v.spec.name.as_str()).collect();
    let activations = state.ranges.activations;
    let show_constants = state.list.query.show_constants;
    state.ranges_shown =
        (0..open.list.len()).filter(|&i| show_constants || open.list.get(i).is_some_and(|r| !r.constant)).collect();
    state.ranges_rows = state
        .ranges_shown
        .iter()
        .filter_map(|&i| open.list.get(i))
        .map(|lr| {
            let report = state.reports.get(lr.row).and_then(Option::as_ref);
            names
                .iter()
                .map(|name| {
                    let lv = report?.variants.iter().find(|v| v.variant == *name)?;
                    if activations { lv.activation_range() } else { lv.stats.as_ref().map(|s| (s.min, s.max)) }
                })
                .collect()
        })
        .collect();
}

fn panels_ui(
    mut contexts: EguiContexts,
    open: Option<Res<OpenModel>>,
    status: Res<Status>,
    settings: Res<ViewSettings>,
    selection: Res<Selection>,
    hist: Res<HistogramView>,
    recent: Res<RecentFolders>,
    index: Res<BlockIndex>,
    rows: Query<(&LayerRow, &LayerStats)>,
    mut state: ResMut<PanelState>,
    mut cameras: Query<(&mut Camera, &GlobalTransform), With<TowerCamera>>,
    blocks: Query<(&GlobalTransform, &GraphNode)>,
    window: Option<Single<&Window, With<PrimaryWindow>>>,
    mut out: MessageWriter<UiActionMessage>,
    (auto_frame, mut frame): (Res<AutoFrame>, MessageWriter<FrameRequest>),
    (run, run_settings, history, floats, act_scales): (
        Res<RunState>,
        Res<RunSettings>,
        Res<EditHistory>,
        Query<&WeightEntity, With<InFloat>>,
        Query<(&ActivationEntity, &ActScale)>,
    ),
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let mut actions = Vec::new();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "root".into(),
        egui::UiBuilder::new().layer_id(egui::LayerId::background()).max_rect(ctx.viewport_rect()),
    );
    let progress = status.progress();
    let bar = TopBar {
        recent: &recent.paths,
        metric: settings.metric,
        mode: settings.mode,
        fold_quant: settings.fold_quant,
        progress: progress.clone(),
        status: status.info.clone(),
        error: status.error.clone(),
        edited: !history.is_empty(),
    };
    let top = egui::Panel::top("top").show(&mut root, |ui| actions.extend(top_bar_ui(ui, &bar))).response.rect;
    let Some(open) = open else {
        egui::CentralPanel::default().show(&mut root, |ui| actions.extend(start_ui(ui, &recent.paths)));
        if progress.is_some() {
            ctx.request_repaint();
        }
        out.write_batch(actions.into_iter().map(UiActionMessage));
        return Ok(());
    };
    let state = &mut *state;
    refresh_caches(state, &open, &status, &rows);
    let selected_row = selection.group.filter(|g| *g < open.data.rows.len());
    let left = egui::Panel::left("layers")
        .default_size(270.0)
        .resizable(true)
        .show(&mut root, |ui| {
            ui.heading("Layers");
            actions.extend(differences_ui(ui, &open.data.variants, &open.data.differences));
            actions.extend(layer_list_ui(ui, &open.list, open.list_version, &mut state.list, selected_row));
        })
        .response
        .rect;
    let right = egui::Panel::right("inspector")
        .default_size(380.0)
        .resizable(true)
        .show(&mut root, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::CollapsingHeader::new(egui::RichText::new("Run the variants").strong()).default_open(true).show(
                    ui,
                    |ui| {
                        let mut view = run_view(&run, &run_settings);
                        view.edits = history.len();
                        actions.extend(run_ui(ui, &view));
                    },
                );
                ui.separator();
                let members: Vec<Member<'_>> = selection
                    .group
                    .and_then(|g| index.by_group.get(&g))
                    .into_iter()
                    .flatten()
                    .filter_map(|e| blocks.get(*e).ok().map(|(_, n)| n.block))
                    .filter_map(|bi| open.layout.blocks.get(bi))
                    .map(|b| Member { variant: b.variant, node: b.node, layer: b.layer, folded: &b.folded })
                    .collect();
                let report = selected_row.and_then(|r| state.reports.get(r)).and_then(Option::as_deref);
                if let Some(mut model) = inspector(&open.data.variants, &members, report) {
                    for (vi, m) in model.members.iter_mut().enumerate() {
                        let variant = open.data.variants.iter().position(|v| v.spec.name == m.variant).unwrap_or(vi);
                        for a in &mut m.activations {
                            a.edit = act_scales
                                .iter()
                                .find(|(e, _)| e.variant == variant && e.tensor == a.tensor)
                                .map(|(_, s)| (variant, s.0));
                        }
                        if let Some(e) = m.quant.as_mut().and_then(|q| q.edit.as_mut()) {
                            e.in_float = floats
                                .iter()
                                .any(|w| w.variant == e.variant && w.layer == e.layer && w.key == ParamKey::WEIGHT);
                        }
                    }
                    // the run's figures of the layer first: the inspector below is long
                    let run_rows = report.map(|r| row_activations(&run.findings, r)).unwrap_or_default();
                    activations_ui(ui, &run_rows);
                    actions.extend(inspector_ui(ui, &model));
                    if run_rows.is_empty() {
                        state.histogram.tab = HistogramTab::Weights;
                    }
                    ui.separator();
                    ui.horizontal(|ui| {
                        ui.heading("Histogram");
                        ui.selectable_value(&mut state.histogram.tab, HistogramTab::Weights, "weights");
                        ui.add_enabled_ui(!run_rows.is_empty(), |ui| {
                            ui.selectable_value(&mut state.histogram.tab, HistogramTab::Activations, "activations")
                                .on_disabled_hover_text("run Activations first");
                        });
                    });
                    if state.histogram.tab == HistogramTab::Activations && !run_rows.is_empty() {
                        let pick = state.histogram.activation.min(run_rows.len() - 1);
                        if run_rows.len() > 1 {
                            egui::ComboBox::from_id_salt("activation_tensor")
                                .selected_text(format!("tensor: {}", run_rows[pick].tensor))
                                .show_ui(ui, |ui| {
                                    for (i, a) in run_rows.iter().enumerate() {
                                        ui.selectable_value(&mut state.histogram.activation, i, &a.tensor);
                                    }
                                });
                        }
                        let shared = activation_histogram(run_rows[pick]);
                        let (h, names) = shared.map_or((None, Vec::new()), |(h, n)| (Some(h), n));
                        actions.extend(histogram_ui(
                            ui,
                            h.as_ref(),
                            &names,
                            &[],
                            ParamKey::WEIGHT,
                            &mut state.histogram,
                        ));
                        return;
                    }
                    let names: Vec<String> =
                        report.map(|r| r.variants.iter().map(|v| v.variant.clone()).collect()).unwrap_or_default();
                    let mut params: Vec<(ParamKey, String)> = Vec::new();
                    for init in report.into_iter().flat_map(|r| &r.variants).flat_map(|v| &v.initializers) {
                        if !params.iter().any(|(k, _)| *k == init.key) {
                            params.push((init.key, format!("{} {}", init.role.name(), init.float)));
                        }
                    }
                    if !params.is_empty() && !params.iter().any(|(k, _)| *k == settings.histogram_param) {
                        actions.push(UiAction::SetHistogramParam(ParamKey::WEIGHT));
                    }
                    actions.extend(histogram_ui(
                        ui,
                        hist.histogram.as_deref(),
                        &names,
                        &params,
                        settings.histogram_param,
                        &mut state.histogram,
                    ));
                } else {
                    ui.heading("Inspector");
                    ui.label("Click a block or a layer in the list.");
                    model_summary_ui(ui, &open);
                }
            });
        })
        .response
        .rect;
    let bottom = egui::Panel::bottom("ranges")
        .default_size(150.0)
        .resizable(true)
        .show(&mut root, |ui| {
            let title =
                if state.ranges.activations { "Activation ranges per layer" } else { "Weight ranges per layer" };
            ui.label(egui::RichText::new(title).strong());
            actions.extend(ranges_ui(
                ui,
                &open.list,
                &state.ranges_shown,
                &state.ranges_rows,
                &mut state.ranges,
                selected_row,
            ));
        })
        .response
        .rect;
    let central =
        egui::Rect::from_min_max(egui::pos2(left.right(), top.bottom()), egui::pos2(right.left(), bottom.top()));
    egui::Area::new("legend".into()).fixed_pos(central.left_top() + egui::vec2(8.0, 8.0)).show(&ctx, |ui| {
        egui::Frame::popup(ui.style())
            .show(ui, |ui| legend_ui(ui, settings.metric, &legend(settings.metric, &open.layout.ops)));
    });
    if let Ok((mut camera, cam_t)) = cameras.single_mut() {
        let scale = window.map_or(1.0, |w| w.scale_factor());
        let target = camera.physical_target_size().unwrap_or(UVec2::new(1280, 800));
        let pos = UVec2::new((central.left() * scale) as u32, (central.top() * scale) as u32).min(target - 1);
        let size = UVec2::new((central.width() * scale) as u32, (central.height() * scale) as u32)
            .max(UVec2::ONE)
            .min(target - pos);
        let viewport = Viewport { physical_position: pos, physical_size: size, ..default() };
        if camera.viewport.as_ref().is_none_or(|v| v.physical_position != pos || v.physical_size != size) {
            camera.viewport = Some(viewport);
            if let Some(r) = auto_frame.0 {
                frame.write(r);
            }
        }
        labels(&ctx, central, &camera, cam_t, &open, &index, &blocks, selection.group, settings.mode);
    }
    if progress.is_some() {
        ctx.request_repaint();
    }
    out.write_batch(actions.into_iter().map(UiActionMessage));
    Ok(())
}

/// How a spec reads in the panel.
fn spec_label(spec: &InputSpec) -> String {
    match spec {
        InputSpec::Random { seed } => format!("random (seed {seed})"),
        InputSpec::Npy(p) | InputSpec::Npz(p) | InputSpec::Images(p, _) => {
            p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
        }
    }
}

fn run_view<'a>(run: &'a RunState, settings: &RunSettings) -> RunView<'a> {
    RunView {
        inputs: spec_label(settings.data.as_ref().unwrap_or(&settings.inputs)),
        data: settings.data.as_ref().map(spec_label),
        samples: settings.samples,
        running: run.running.as_ref().map(|r| (r.command, r.progress.done(), r.total)),
        errors: &run.errors,
        evaluation: run.evaluation.as_ref(),
        findings: Some(&run.findings),
        edits: 0,
        rerun_on_edit: settings.rerun_on_edit,
    }
}

fn model_summary_ui(ui: &mut egui::Ui, open: &OpenModel) {
    ui.separator();
    ui.label(egui::RichText::new(open.data.path.display().to_string()).strong());
    for (i, v) in open.data.variants.iter().enumerate() {
        ui.colored_label(
            colour(theme::variant_rgb(i)),
            format!(
                "{}: {} nodes, {} layers, opset {}{}",
                v.spec.name,
                v.model.graph.len(),
                v.layers.len(),
                v.model.opset,
                if i == open.data.reference { " (reference)" } else { "" }
            ),
        );
        let issues = &v.model.graph.issues;
        for issue in issues.iter().take(5) {
            problem_ui(ui, &issue.to_string());
        }
        if issues.len() > 5 {
            problem_ui(ui, &format!("… and {} more issues (quantlens report lists them all)", issues.len() - 5));
        }
    }
    for f in &open.data.failures {
        problem_ui(ui, &format!("not loaded: {f}"));
    }
}

/// Names over the towers: variant rows, the reference's layers (where they fit without
/// overlapping) and the selection.
fn labels(
    ctx: &egui::Context,
    central: egui::Rect,
    camera: &Camera,
    cam_t: &GlobalTransform,
    open: &OpenModel,
    index: &BlockIndex,
    blocks: &Query<(&GlobalTransform, &GraphNode)>,
    selected: Option<usize>,
    mode: ViewMode,
) {
    let painter =
        ctx.layer_painter(egui::LayerId::new(egui::Order::Background, "labels".into())).with_clip_rect(central);
    let font = egui::FontId::proportional(12.0);
    // logical coordinates of the render target (the viewport offset is included)
    let project = |p: Vec3| camera.world_to_viewport(cam_t, p).ok().map(|v| egui::pos2(v.x, v.y));
    let l = &open.layout;
    for (vi, v) in open.data.variants.iter().enumerate() {
        let z = l.row_offsets.get(vi).copied().unwrap_or(0.0);
        let at = match mode {
            ViewMode::ThreeD => Vec3::new(l.min[0] - 1.0, 0.4, z),
            ViewMode::TwoD => Vec3::new(l.min[0] - 1.0, 0.0, z),
        };
        if let Some(p) = project(at) {
            painter.text(
                p,
                egui::Align2::RIGHT_CENTER,
                &v.spec.name,
                egui::FontId::proportional(15.0),
                colour(theme::variant_rgb(vi)),
            );
        }
    }
    let mut placed: Vec<egui::Rect> = Vec::new();
    // the selection first, then the reference's layers, walked lazily: the loop below
    // stops after a few hundred tries, long before the end of a 60,000-block layout
    let selected_blocks = selected
        .and_then(|g| index.by_group.get(&g))
        .into_iter()
        .flatten()
        .filter_map(|e| blocks.get(*e).ok().map(|(_, n)| n.block));
    let reference_layers = l
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.variant == open.data.reference && b.layer.is_some())
        .map(|(i, _)| i);
    let candidates = selected_blocks.chain(reference_layers);
    // labels of a column need room: when columns stand closer than a short name, label
    // only the selection (the rest would overlap anyway)
    let column_px = match (project(Vec3::ZERO), project(Vec3::X * crate::layout::DEPTH_SPACING)) {
        (Some(a), Some(b)) => (b - a).length(),
        _ => 0.0,
    };
    let selection_only = column_px < 12.0;
    let n_selected = selected.and_then(|g| index.by_group.get(&g)).map_or(0, Vec::len);
    // text layout is the expensive part: overlap is tested on an estimate first, and the
    // number of tries is bounded
    let mut tries = 0;
    for (k, bi) in candidates.enumerate() {
        if placed.len() >= 150 || tries >= 300 || (selection_only && k >= n_selected) {
            break;
        }
        let (Some(b), Some(e)) = (l.blocks.get(bi), index.by_block.get(bi)) else { continue };
        let Ok((t, _)) = blocks.get(*e) else { continue };
        // above the block in 3D, below it (towards the viewer's bottom) in 2D
        let (anchor, align) = match mode {
            ViewMode::ThreeD => (t.translation() + Vec3::Y * (b.size[1] / 2.0 + 0.15), egui::Align2::CENTER_BOTTOM),
            ViewMode::TwoD => (t.translation() + Vec3::Z * (b.size[2] / 2.0 + 0.05), egui::Align2::CENTER_TOP),
        };
        let Some(p) = project(anchor) else { continue };
        if !central.contains(p) {
            continue;
        }
        let Some(v) = open.data.variants.get(b.variant) else { continue };
        tries += 1;
        let name = v.model.graph.node(b.node).map(|n| n.label(b.node)).unwrap_or_default();
        let estimate = align.anchor_size(p, egui::vec2(6.5 * name.len() as f32, 14.0)).expand(2.0);
        if placed.iter().any(|r| r.intersects(estimate)) {
            continue;
        }
        let galley = painter.layout_no_wrap(name, font.clone(), colour(theme::TEXT));
        let rect = align.anchor_size(p, galley.size()).expand(2.0);
        if placed.iter().any(|r| r.intersects(rect)) {
            continue;
        }
        painter.rect_filled(rect, 3.0, egui::Color32::from_black_alpha(150));
        painter.galley(rect.min + egui::vec2(2.0, 2.0), galley, colour(theme::TEXT));
        placed.push(rect);
    }
}

fn apply_actions(
    mut actions: MessageReader<UiActionMessage>,
    mut settings: ResMut<ViewSettings>,
    model: Option<Res<OpenModel>>,
    mut open: MessageWriter<OpenRequest>,
    mut dialog: MessageWriter<OpenDialogRequest>,
    mut select: MessageWriter<SelectRequest>,
    mut frame: MessageWriter<FrameRequest>,
    mut shot: MessageWriter<ScreenshotRequest>,
    mut edits: MessageWriter<EditRequest>,
    (mut run, mut export, mut run_settings): (
        MessageWriter<RunRequest>,
        MessageWriter<super::export::ExportRequest>,
        ResMut<RunSettings>,
    ),
) {
    for UiActionMessage(a) in actions.read() {
        match a {
            UiAction::OpenDialog => {
                dialog.write(OpenDialogRequest);
            }
            UiAction::Open(p) => {
                open.write(OpenRequest(p.clone()));
            }
            UiAction::Select(g) => {
                select.write(SelectRequest { group: *g, frame: false });
            }
            UiAction::SelectAndFrame(g) => {
                select.write(SelectRequest { group: Some(*g), frame: true });
            }
            UiAction::FrameAll => {
                frame.write(FrameRequest::All);
            }
            UiAction::SetMetric(m) => settings.metric = *m,
            UiAction::SetViewMode(m) => settings.mode = *m,
            UiAction::SetFoldQuant(f) => settings.fold_quant = *f,
            UiAction::SetHistogramBins(b) => settings.histogram_bins = *b,
            UiAction::SetHistogramParam(k) => settings.histogram_param = *k,
            UiAction::EditWeight { variant, layer, edit } => {
                edits.write(EditRequest::Weight { variant: *variant, layer: *layer, edit: *edit });
            }
            UiAction::EditActivation { variant, tensor, factor } => {
                edits.write(EditRequest::Activation { variant: *variant, tensor: tensor.clone(), factor: *factor });
            }
            UiAction::UndoEdit => {
                edits.write(EditRequest::Undo);
            }
            UiAction::ResetEdits => {
                edits.write(EditRequest::ResetAll);
            }
            UiAction::ExportEdits => {
                export.write(super::export::ExportRequest { folder: None });
            }
            UiAction::SelectNode { variant, node } => {
                let Some(m) = &model else { continue };
                let variant = if *variant == usize::MAX { m.data.reference } else { *variant };
                let block = m.layout.blocks.iter().find(|b| b.variant == variant && b.node == *node);
                if let Some(b) = block {
                    select.write(SelectRequest { group: Some(b.group), frame: true });
                }
            }
            UiAction::Screenshot => {
                shot.write(ScreenshotRequest(None));
            }
            UiAction::Run(c) => {
                run.write(RunRequest(*c));
            }
            UiAction::SetRunSamples(n) => run_settings.samples = (*n).max(1),
            UiAction::SetRerunOnEdit(on) => run_settings.rerun_on_edit = *on,
        }
    }
}
