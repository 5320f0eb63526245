//! Statistics on tasks: every new [`LayerRow`], and every row whose weights' [`Quant`]
//! changed, gets a task computing its report row (stats, metrics, shared-bin histogram);
//! finished rows get a [`LayerStats`] component.
//! The selected row's histogram is recomputed at another bin count on request.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bevy::prelude::*;

use super::AppSystems;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{AsyncComputeTaskPool, Task};

use crate::model::QuantParams;
use crate::report::{LayerReport, ParamKey, QuantOverrides, ReportOptions, SharedHistogram, layer_report_with, rebin};

use super::model::{LayerRow, LayerStats, OpenModel, Quant, Selection, Status, ViewSettings, WeightEntity};

/// Computes layer statistics in the background.
pub struct StatsPlugin;

impl Plugin for StatsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<StatsWork>().init_resource::<HistogramView>().add_systems(
            Update,
            (spawn_stats_tasks, poll_stats_tasks, refresh_list, rebin_selected_histogram)
                .chain()
                .in_set(AppSystems::Compute),
        );
    }
}

/// Counts of work done, for tests and the bench (nothing recomputes when nothing changed).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsWork {
    pub tasks_spawned: u64,
    pub rows_finished: u64,
}

#[derive(Component)]
struct StatsTask(Task<LayerReport>);

/// The histogram of the selected row's chosen parameter at the chosen bin count.
#[derive(Resource, Default)]
pub struct HistogramView {
    /// `(row, bins, parameter)` the histogram below belongs to.
    pub key: Option<HistogramKey>,
    pub histogram: Option<Arc<SharedHistogram>>,
    task: Option<(HistogramKey, Task<Option<SharedHistogram>>)>,
}

/// What a histogram is of: match row, bin count, parameter.
pub type HistogramKey = (usize, usize, ParamKey);

/// Starts a statistics task for every new row and for every row one of whose weights'
/// `Quant` changed (an edit): the task computes under the current `Quant` values where they
/// differ from the file's.
fn spawn_stats_tasks(
    mut commands: Commands,
    added: Query<(), Added<LayerRow>>,
    changed: Query<&WeightEntity, Changed<Quant>>,
    rows: Query<(Entity, &LayerRow, Has<LayerStats>)>,
    quants: Query<(&WeightEntity, &Quant)>,
    open: Option<Res<OpenModel>>,
    settings: Res<ViewSettings>,
    mut status: ResMut<Status>,
    mut work: ResMut<StatsWork>,
) {
    let Some(open) = open else { return };
    if added.is_empty() && changed.is_empty() {
        return;
    }
    let edited: HashSet<usize> = changed.iter().filter_map(|w| w.row).collect();
    let mut overrides: HashMap<usize, QuantOverrides> = HashMap::new();
    for (w, q) in &quants {
        let Some(row) = w.row.filter(|r| edited.contains(r)) else { continue };
        if file_params(&open.data.variants, w) != Some(&q.0) {
            overrides.entry(row).or_default().0.insert((w.variant, w.layer, w.key), q.0.clone());
        }
    }
    let pool = AsyncComputeTaskPool::get();
    for (e, row, had_stats) in &rows {
        if !added.contains(e) && !edited.contains(&row.0) {
            continue;
        }
        if had_stats {
            // computed again: the progress counts it as pending until it is back
            status.stats_done = status.stats_done.saturating_sub(1);
        }
        let row_overrides = Arc::new(overrides.remove(&row.0).unwrap_or_default());
        let (variants, matches, reference, ri) =
            (open.data.variants.clone(), open.data.rows.clone(), open.data.reference, row.0);
        let options = ReportOptions { histogram_bins: Some(settings.histogram_bins) };
        let task_overrides = Arc::clone(&row_overrides);
        let task = pool.spawn(async move {
            let row = matches.get(ri).cloned().unwrap_or(crate::model::MatchRow { members: Vec::new() });
            layer_report_with(&variants, reference, &row, options, &task_overrides)
        });
        commands.entity(e).insert((StatsTask(task), RowQuant(row_overrides)));
        work.tasks_spawned += 1;
    }
}

/// The file's quantization parameters of weight `w`.
fn file_params<'a>(variants: &'a [crate::model::Variant], w: &WeightEntity) -> Option<&'a QuantParams> {
    w.key.find(variants.get(w.variant)?.layers.get(w.layer)?)?.params()
}

/// The edited parameters a row's statistics were computed with (empty: the file's).
#[derive(Component, Debug, Clone, Default)]
pub struct RowQuant(pub Arc<QuantOverrides>);

fn poll_stats_tasks(
    mut commands: Commands,
    mut tasks: Query<(Entity, &mut StatsTask)>,
    mut status: ResMut<Status>,
    mut work: ResMut<StatsWork>,
) {
    for (e, mut task) in &mut tasks {
        if let Some(report) = check_ready(&mut task.0) {
            commands.entity(e).remove::<StatsTask>().insert(LayerStats(Arc::new(report)));
            status.stats_done += 1;
            work.rows_finished += 1;
        }
    }
}

/// Refreshes the layer list's metric columns when stats arrive.
/// Rebuilds the layer list's rows when statistics arrive.
pub(crate) fn refresh_list(
    changed: Query<(), Changed<LayerStats>>,
    all: Query<(&LayerRow, &LayerStats)>,
    open: Option<ResMut<OpenModel>>,
) {
    let Some(mut open) = open else { return };
    if changed.is_empty() {
        return;
    }
    let mut reports: Vec<Option<&LayerReport>> = vec![None; open.data.rows.len()];
    for (row, stats) in &all {
        if let Some(slot) = reports.get_mut(row.0) {
            *slot = Some(&stats.0);
        }
    }
    let list = crate::view::list_rows(&open.data.variants, open.data.reference, &open.data.rows, &reports);
    open.list = list;
    open.list_version += 1;
}

fn rebin_selected_histogram(
    selection: Res<Selection>,
    settings: Res<ViewSettings>,
    open: Option<Res<OpenModel>>,
    rows: Query<(&LayerRow, &LayerStats, Option<&RowQuant>)>,
    mut view: ResMut<HistogramView>,
) {
    let Some(open) = open else { return };
    // the selected group is a match row when it is below the row count
    let row = selection.group.filter(|g| *g < open.data.rows.len());
    let Some(row) = row else {
        view.key = None;
        view.histogram = None;
        return;
    };
    let key = (row, settings.histogram_bins, settings.histogram_param);
    if let Some((k, task)) = &mut view.task {
        let k = *k;
        if let Some(h) = check_ready(task) {
            view.task = None;
            if k == key {
                view.key = Some(key);
                view.histogram = h.map(Arc::new);
            }
        }
        return;
    }
    if view.key == Some(key) {
        return;
    }
    // rebinning needs the row's summaries: wait for its stats
    let Some((_, stats, quant)) = rows.iter().find(|(r, _, _)| r.0 == row) else { return };
    // the stats task already computed this bin count
    if let Some(h) = computed(&stats.0, settings.histogram_param, settings.histogram_bins) {
        view.key = Some(key);
        view.histogram = Some(Arc::new(h));
        return;
    }
    let report = Arc::clone(&stats.0);
    let (variants, matches) = (open.data.variants.clone(), open.data.rows.clone());
    let (bins, param) = (settings.histogram_bins, settings.histogram_param);
    let overrides = quant.map(|q| Arc::clone(&q.0)).unwrap_or_default();
    let task = AsyncComputeTaskPool::get()
        .spawn(async move { rebin(&variants, matches.get(row)?, &report, param, bins, &overrides) });
    view.task = Some((key, task));
}

/// The histogram of `param` at `bins` bins when the stats task already computed it.
fn computed(report: &LayerReport, param: ParamKey, bins: usize) -> Option<SharedHistogram> {
    if param == ParamKey::WEIGHT {
        return report.histogram.clone().filter(|h| h.bins == bins);
    }
    let hs: Vec<Option<&crate::report::build::Histogram1>> = report
        .variants
        .iter()
        .map(|v| v.initializers.iter().find(|i| i.key == param).and_then(|i| i.histogram.as_ref()))
        .collect();
    let first = hs.iter().flatten().next()?;
    if first.bins != bins {
        return None;
    }
    Some(SharedHistogram {
        lo: first.lo,
        hi: first.hi,
        bins,
        counts: hs.iter().map(|h| h.map(|h| h.counts.clone()).unwrap_or_default()).collect(),
    })
}
