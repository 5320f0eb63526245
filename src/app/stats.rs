//! Statistics on tasks: every new [`LayerRow`] gets a task computing its report row
//! (stats, metrics, shared-bin histogram); finished rows get a [`LayerStats`] component.
//! The selected row's histogram is recomputed at another bin count on request.

use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{AsyncComputeTaskPool, Task};

use crate::report::{LayerReport, ReportOptions, SharedHistogram, layer_report, rebin};

use super::model::{LayerRow, LayerStats, OpenModel, Selection, Status, ViewSettings};

/// Computes layer statistics in the background.
pub struct StatsPlugin;

impl Plugin for StatsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<StatsWork>().init_resource::<HistogramView>().add_systems(
            Update,
            (spawn_stats_tasks, poll_stats_tasks, refresh_list, rebin_selected_histogram).chain().in_set(StatsSystems),
        );
    }
}

/// The statistics systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatsSystems;

/// Counts of work done, for tests and the bench (nothing recomputes when nothing changed).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsWork {
    pub tasks_spawned: u64,
    pub rows_finished: u64,
}

#[derive(Component)]
struct StatsTask(Task<LayerReport>);

/// The histogram of the selected row at the chosen bin count.
#[derive(Resource, Default)]
pub struct HistogramView {
    /// `(row, bins)` the histogram below belongs to.
    pub key: Option<(usize, usize)>,
    pub histogram: Option<Arc<SharedHistogram>>,
    task: Option<(usize, usize, Task<Option<SharedHistogram>>)>,
}

fn spawn_stats_tasks(
    mut commands: Commands,
    rows: Query<(Entity, &LayerRow), (Added<LayerRow>, Without<LayerStats>)>,
    open: Option<Res<OpenModel>>,
    settings: Res<ViewSettings>,
    mut work: ResMut<StatsWork>,
) {
    let Some(open) = open else { return };
    let pool = AsyncComputeTaskPool::get();
    for (e, row) in &rows {
        let (variants, matches, reference, ri) =
            (open.data.variants.clone(), open.data.rows.clone(), open.data.reference, row.0);
        let options = ReportOptions { histogram_bins: Some(settings.histogram_bins) };
        let task = pool.spawn(async move {
            let row = matches.get(ri).cloned().unwrap_or(crate::model::MatchRow { members: Vec::new() });
            layer_report(&variants, reference, &row, options)
        });
        commands.entity(e).insert(StatsTask(task));
        work.tasks_spawned += 1;
    }
}

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
fn refresh_list(
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
    let list = crate::view::list_rows(&open.data.variants, &open.data.rows, &reports);
    open.list = list;
    open.list_version += 1;
}

fn rebin_selected_histogram(
    selection: Res<Selection>,
    settings: Res<ViewSettings>,
    open: Option<Res<OpenModel>>,
    rows: Query<(&LayerRow, &LayerStats)>,
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
    let key = (row, settings.histogram_bins);
    if let Some((r, b, task)) = &mut view.task {
        let (r, b) = (*r, *b);
        if let Some(h) = check_ready(task) {
            view.task = None;
            if (r, b) == key {
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
    let Some((_, stats)) = rows.iter().find(|(r, _)| r.0 == row) else { return };
    // the stats task already computed this bin count
    if stats.0.histogram.as_ref().is_some_and(|h| h.bins == settings.histogram_bins) {
        view.key = Some(key);
        view.histogram = stats.0.histogram.clone().map(Arc::new);
        return;
    }
    let report = Arc::clone(&stats.0);
    let (variants, matches) = (open.data.variants.clone(), open.data.rows.clone());
    let bins = settings.histogram_bins;
    let task = AsyncComputeTaskPool::get().spawn(async move { rebin(&variants, matches.get(row)?, &report, bins) });
    view.task = Some((row, bins, task));
}
