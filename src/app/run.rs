//! Running the variants from the window: activations, accuracy and the sensitivity sweep,
//! each on a task (the window never waits; a progress bar counts samples and Cancel stops
//! after the current one). Accuracy runs with the window's edits (the weights' `Quant`
//! components that differ from the file, as `quantlens export` would write them) and is
//! cached per (variant, edits): asking again is instant. Finished runs become
//! [`RunState::findings`], which the towers and panels read.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{AsyncComputeTaskPool, Task};

use super::AppSystems;
use super::edit::InFloat;
use super::model::{ActScale, ActivationEntity, OpenModel, Quant, WeightEntity};
use crate::infer::{
    self, Accuracy, ActivationRow, Change, Edit, Field, InputSpec, Progress, SensitivityRow, labelled_samples,
    open_samples,
};
use crate::model::Variant;
use crate::report::ParamKey;
use crate::view::run::{EvalRow, EvalView, RunCommand, RunFindings};

/// Runs of the variants on tasks.
pub struct RunPlugin;

impl Plugin for RunPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<RunRequest>().init_resource::<RunSettings>().init_resource::<RunState>().add_systems(
            Update,
            (follow_model, follow_edits, start_runs, poll_run, cost_in_list)
                .chain()
                .in_set(AppSystems::Compute)
                .after(super::stats::refresh_list),
        );
    }
}

/// Asks for a run (or for the one in progress to stop).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRequest(pub RunCommand);

/// What runs take as input.
#[derive(Resource, Debug, Clone)]
pub struct RunSettings {
    /// Unlabelled inputs (activations, and sensitivity without labels).
    pub inputs: InputSpec,
    /// Labelled data (accuracy); found in the model's folder when not given.
    pub data: Option<InputSpec>,
    /// Samples of a quick run.
    pub samples: usize,
    pub dims: HashMap<String, usize>,
    /// `data` was given by the user (not looked up in the folder).
    pub data_given: bool,
    /// An edit runs the last activations or quick evaluation again (sensitivity and full
    /// runs are long: they are run again on request).
    pub rerun_on_edit: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            inputs: InputSpec::Random { seed: 0 },
            data: None,
            samples: 16,
            dims: HashMap::new(),
            data_given: false,
            rerun_on_edit: true,
        }
    }
}

/// The run in progress and what finished runs found.
#[derive(Resource, Default)]
pub struct RunState {
    pub findings: Arc<RunFindings>,
    /// Changes whenever `findings` does (the towers recolour).
    pub version: u64,
    pub evaluation: Option<EvalView>,
    pub running: Option<Running>,
    /// Why the last run failed or left a variant out.
    pub errors: Vec<String>,
    /// Runs asked for that are over (finished, failed, cancelled or answered from the
    /// cache): what a scripted picture waits on.
    pub finished: u64,
    /// The last activations or quick evaluation started, with the edits it took (every
    /// variant's, as one key): what an edit runs again.
    pub ran_with: Option<(RunCommand, String)>,
    /// Edits changed since `ran_with` started: it runs again once the run in progress ends.
    pub stale: bool,
    /// Accuracy per (variant, its edits, full or quick, samples of a quick run).
    cache: HashMap<CacheKey, Accuracy>,
    model: Option<Entity>,
}

impl RunState {
    /// Sets each edited row's accuracy without edits, where a run on the same samples
    /// gave it.
    fn compare_with_file(&self, rows: &mut [EvalRow], full: bool, samples: usize) {
        for r in rows.iter_mut().filter(|r| r.edited) {
            r.unedited = self.cache.get(&(r.variant.clone(), String::new(), full, samples)).cloned();
        }
    }
}

/// What an accuracy depends on: the variant, its edits, full or quick, and the samples
/// of a quick run.
type CacheKey = (String, String, bool, usize);

/// A run on its task.
pub struct Running {
    pub command: RunCommand,
    pub progress: Arc<Progress>,
    /// Samples it will run (0 when not known).
    pub total: usize,
    task: Task<(Outcome, Vec<String>)>,
}

/// What a finished task hands back.
enum Outcome {
    Activations(Vec<ActivationRow>),
    /// `samples`: of the quick run asked for (the cache's key).
    Evaluation {
        view: EvalView,
        keys: Vec<(String, String)>,
        samples: usize,
    },
    Sensitivity {
        rows: Vec<SensitivityRow>,
        accuracy: bool,
    },
    Failed,
}

/// Forgets the previous model's runs when another opens (its task is dropped), and looks
/// for labelled data in the new model's folder.
fn follow_model(open: Option<Res<OpenModel>>, mut state: ResMut<RunState>, mut settings: ResMut<RunSettings>) {
    let root = open.as_ref().map(|o| o.root);
    if state.model == root {
        return;
    }
    *state = RunState { model: root, version: state.version + 1, finished: state.finished, ..RunState::default() };
    if !settings.data_given {
        settings.data = open.and_then(|o| labelled_data_beside(&o.data.path));
    }
}

/// A `.npz` holding `y` in the model's folder (the bundled digits ship theirs), or a
/// folder of class sub-folders named `images`.
#[must_use]
pub fn labelled_data_beside(path: &std::path::Path) -> Option<InputSpec> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let mut entries: Vec<std::path::PathBuf> =
        std::fs::read_dir(dir).ok()?.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    let npz = entries.iter().find(|p| {
        p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
            && infer::npy::npz_names(p).is_ok_and(|names| names.iter().any(|n| n == "y"))
    });
    if let Some(p) = npz {
        return Some(InputSpec::Npz(p.clone()));
    }
    let images = dir.join("images");
    images.is_dir().then(|| InputSpec::Images(images, infer::ImageOptions::default()))
}

/// The window's edits of variant `vi`, as `quantlens export` takes them: a layer kept in
/// float, else a factor on its weight scale and a new zero point where its `Quant` differs
/// from the file's.
pub fn edits_of(
    variants: &[Variant],
    vi: usize,
    quants: &Query<(&WeightEntity, &Quant, Has<InFloat>)>,
    activations: &Query<(&ActivationEntity, &ActScale)>,
) -> Vec<Edit> {
    let Some(v) = variants.get(vi) else { return Vec::new() };
    let mut edits: Vec<Edit> = Vec::new();
    // an activation's scale: through a layer it feeds or leaves (the pair is shared)
    for (a, scale) in activations.iter().filter(|(a, s)| a.variant == vi && (s.0 - 1.0).abs() > 1e-12) {
        let via = v.layers.iter().find_map(|l| {
            let acts = crate::model::layer_activations(&v.model.graph, l.node);
            let hit = acts.iter().find(|x| x.tensor == a.tensor)?;
            let field = if hit.role == crate::model::ActRole::Output { Field::OutputScale } else { Field::InputScale };
            Some((v.model.graph.node(l.node)?.label(l.node), field))
        });
        if let Some((layer, field)) = via {
            edits.push(Edit { layer, field, change: Change::Times(scale.0) });
        }
    }
    for (w, q, float) in quants.iter().filter(|(w, _, _)| w.variant == vi && w.key == ParamKey::WEIGHT) {
        let (Some(layer), Some(file)) = (v.layers.get(w.layer), v.layers.get(w.layer).and_then(|l| l.weight.params()))
        else {
            continue;
        };
        let name = v.model.graph.node(layer.node).map(|n| n.label(layer.node)).unwrap_or_default();
        let edit = |field, change| Edit { layer: name.clone(), field, change };
        if float {
            edits.push(edit(Field::Float, Change::Set(1.0)));
            continue;
        }
        if let (Some(now), Some(was)) = (q.0.scale.first(), file.scale.first())
            && q.0.scale != file.scale
            && *was != 0.0
        {
            edits.push(edit(Field::WeightScale, Change::Times(f64::from(*now) / f64::from(*was))));
        }
        if let Some(&z) = q.0.zero_point.first()
            && q.0.zero_point != file.zero_point
        {
            edits.push(edit(Field::WeightZeroPoint, Change::Set(f64::from(z))));
        }
    }
    edits.sort_by_key(ToString::to_string);
    edits
}

fn key(edits: &[Edit]) -> String {
    edits.iter().map(ToString::to_string).collect::<Vec<_>>().join(";")
}

/// Every variant's edits.
fn all_edits(
    variants: &[Variant],
    quants: &Query<(&WeightEntity, &Quant, Has<InFloat>)>,
    activations: &Query<(&ActivationEntity, &ActScale)>,
) -> Vec<Vec<Edit>> {
    (0..variants.len()).map(|vi| edits_of(variants, vi, quants, activations)).collect()
}

/// One key for every variant's edits.
fn all_key(edits: &[Vec<Edit>]) -> String {
    edits.iter().map(|e| key(e)).collect::<Vec<_>>().join("|")
}

/// Change detection on the edit components: when the edits differ from those the last
/// activations or quick evaluation ran with, that run is asked for again (at once, or
/// when the run in progress ends). Undoing back to the edits it ran with asks nothing.
#[allow(clippy::too_many_arguments)]
fn follow_edits(
    open: Option<Res<OpenModel>>,
    settings: Res<RunSettings>,
    mut state: ResMut<RunState>,
    mut requests: MessageWriter<RunRequest>,
    (quants, act_scales): (Query<(&WeightEntity, &Quant, Has<InFloat>)>, Query<(&ActivationEntity, &ActScale)>),
    changed: Query<(), Or<(Changed<Quant>, Changed<ActScale>, Added<InFloat>)>>,
    mut unfloated: RemovedComponents<InFloat>,
) {
    let removed = unfloated.read().count() > 0;
    let Some(open) = open else { return };
    if (removed || !changed.is_empty())
        && let Some((_, ran)) = &state.ran_with
    {
        let now = all_key(&all_edits(&open.data.variants, &quants, &act_scales));
        state.stale = now != *ran;
    }
    if state.stale
        && state.running.is_none()
        && settings.rerun_on_edit
        && let Some((command, _)) = state.ran_with.clone()
    {
        state.stale = false;
        requests.write(RunRequest(command));
    }
}

fn start_runs(
    mut requests: MessageReader<RunRequest>,
    open: Option<Res<OpenModel>>,
    settings: Res<RunSettings>,
    mut state: ResMut<RunState>,
    (quants, act_scales): (Query<(&WeightEntity, &Quant, Has<InFloat>)>, Query<(&ActivationEntity, &ActScale)>),
) {
    for RunRequest(command) in requests.read().copied() {
        if command == RunCommand::Cancel {
            if let Some(r) = &state.running {
                r.progress.cancel();
                if r.command == RunCommand::Sensitivity {
                    // (the sweep has no sample loop to stop: its result is dropped)
                    state.running = None;
                    state.finished += 1;
                }
            }
            continue;
        }
        let Some(open) = &open else { continue };
        if state.running.is_some() {
            continue;
        }
        state.errors.clear();
        let (variants, reference) = (open.data.variants.clone(), open.data.reference);
        let progress = Arc::new(Progress::default());
        let (settings, task_progress) = (settings.clone(), Arc::clone(&progress));
        let pool = AsyncComputeTaskPool::get();
        let (task, total) = match command {
            RunCommand::Activations => {
                let total = settings.samples;
                let edits = all_edits(&variants, &quants, &act_scales);
                state.ran_with = Some((command, all_key(&edits)));
                let task = pool.spawn(async move {
                    let mut errors = Vec::new();
                    (activations(&variants, reference, &settings, &edits, &task_progress, &mut errors), errors)
                });
                (task, total)
            }
            RunCommand::Evaluate { full } => {
                let edits = all_edits(&variants, &quants, &act_scales);
                if !full {
                    state.ran_with = Some((command, all_key(&edits)));
                }
                let keys: Vec<(String, String)> =
                    variants.iter().zip(&edits).map(|(v, e)| (v.spec.name.clone(), key(e))).collect();
                let cached: Option<Vec<EvalRow>> = keys
                    .iter()
                    .map(|(name, k)| {
                        let accuracy = state.cache.get(&(name.clone(), k.clone(), full, settings.samples))?.clone();
                        Some(EvalRow { variant: name.clone(), accuracy, edited: !k.is_empty(), unedited: None })
                    })
                    .collect();
                if let Some(mut rows) = cached {
                    state.compare_with_file(&mut rows, full, settings.samples);
                    let samples = rows.first().map_or(0, |r| r.accuracy.n);
                    state.evaluation = Some(EvalView { samples, full, rows, cached: true });
                    state.finished += 1;
                    continue;
                }
                let total = if full { 0 } else { settings.samples };
                let task = pool.spawn(async move {
                    let mut errors = Vec::new();
                    (
                        evaluation(&variants, reference, &settings, full, &edits, keys, &task_progress, &mut errors),
                        errors,
                    )
                });
                (task, total)
            }
            RunCommand::Sensitivity => {
                let task = pool.spawn(async move {
                    let mut errors = Vec::new();
                    (sensitivity(&variants, reference, &settings, &mut errors), errors)
                });
                (task, 0)
            }
            RunCommand::Cancel => continue,
        };
        state.running = Some(Running { command, progress, total, task });
    }
}

fn activations(
    variants: &[Variant],
    reference: usize,
    settings: &RunSettings,
    edits: &[Vec<Edit>],
    progress: &Progress,
    errors: &mut Vec<String>,
) -> Outcome {
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return Outcome::Failed };
    // real data when there is some
    let spec = settings.data.as_ref().unwrap_or(&settings.inputs);
    let stream = match open_samples(graph, spec, settings.samples, &settings.dims) {
        Ok(s) => s,
        Err(e) => {
            errors.push(e.to_string());
            return Outcome::Failed;
        }
    };
    let edited = edited_models(variants, reference, edits, errors);
    let (rows, failures) = infer::activation_report_edited(variants, reference, &edited, stream, 64, progress);
    errors.extend(failures.iter().map(ToString::to_string));
    Outcome::Activations(rows)
}

/// The edited variants' models, encoded in memory; an edit that cannot be applied is
/// reported and its variant runs from its file.
fn edited_models(
    variants: &[Variant],
    reference: usize,
    edits: &[Vec<Edit>],
    errors: &mut Vec<String>,
) -> HashMap<usize, Vec<u8>> {
    let mut edited = HashMap::new();
    for (vi, e) in edits.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
        match infer::apply_edits(variants, reference, vi, e) {
            Ok(bytes) => {
                edited.insert(vi, bytes);
            }
            Err(e) => errors.push(e),
        }
    }
    edited
}

fn evaluation(
    variants: &[Variant],
    reference: usize,
    settings: &RunSettings,
    full: bool,
    edits: &[Vec<Edit>],
    keys: Vec<(String, String)>,
    progress: &Progress,
    errors: &mut Vec<String>,
) -> Outcome {
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return Outcome::Failed };
    let Some(data) = &settings.data else {
        errors.push(
            "accuracy needs labelled data: a .npz with `y` beside the model, or a folder `images/CLASS/…`".into(),
        );
        return Outcome::Failed;
    };
    let edited = edited_models(variants, reference, edits, errors);
    let (stream, labels) = match labelled_samples(graph, data, &settings.dims) {
        Ok(s) => s,
        Err(e) => {
            errors.push(e.to_string());
            return Outcome::Failed;
        }
    };
    let (stream, labels) = infer::quick_set(stream, labels, if full { usize::MAX } else { settings.samples });
    let (eval, failures) = infer::evaluate_edited(variants, reference, &edited, stream, &labels, progress);
    errors.extend(failures.iter().map(ToString::to_string));
    let rows = keys
        .iter()
        .filter_map(|(name, k)| {
            let accuracy = eval.variants.get(name)?.clone();
            Some(EvalRow { variant: name.clone(), accuracy, edited: !k.is_empty(), unedited: None })
        })
        .collect();
    // a cancelled run is shown but not cached
    let keys = if progress.cancelled() { Vec::new() } else { keys };
    Outcome::Evaluation {
        view: EvalView { samples: eval.samples, full, rows, cached: false },
        keys,
        samples: settings.samples,
    }
}

fn sensitivity(variants: &[Variant], reference: usize, settings: &RunSettings, errors: &mut Vec<String>) -> Outcome {
    let Some(graph) = variants.get(reference).map(|v| &v.model.graph) else { return Outcome::Failed };
    let loaded = match &settings.data {
        Some(data) => labelled_samples(graph, data, &settings.dims).and_then(|(stream, labels)| {
            let (stream, picked) = infer::quick_set(stream, labels, settings.samples);
            Ok((stream.collect::<Result<Vec<_>, _>>()?, Some(picked)))
        }),
        None => infer::samples(graph, &settings.inputs, settings.samples, &settings.dims).map(|s| (s, None)),
    };
    let (samples, labels) = match loaded {
        Ok(s) => s,
        Err(e) => {
            errors.push(e.to_string());
            return Outcome::Failed;
        }
    };
    let (rows, failures) = infer::sensitivity(variants, reference, &samples, labels.as_deref());
    errors.extend(failures.iter().map(ToString::to_string));
    Outcome::Sensitivity { rows, accuracy: labels.is_some() }
}

/// Puts the sweep's costs on the layer list's rows when either changes (the list is
/// rebuilt as statistics arrive).
fn cost_in_list(state: Res<RunState>, open: Option<ResMut<OpenModel>>, mut last: Local<(u64, u64)>) {
    let Some(mut open) = open else { return };
    if *last == (state.version, open.list_version) {
        return;
    }
    let costs = crate::view::run::row_costs(&state.findings, &open.data.variants, &open.data.rows);
    for r in &mut open.list {
        r.cost = costs.get(r.row).copied().flatten();
    }
    open.list_version += 1;
    *last = (state.version, open.list_version);
}

fn poll_run(mut state: ResMut<RunState>) {
    let Some(running) = state.running.as_mut() else { return };
    let Some((outcome, errors)) = check_ready(&mut running.task) else { return };
    let full = matches!(running.command, RunCommand::Evaluate { full: true });
    state.running = None;
    state.errors = errors;
    state.finished += 1;
    let mut findings = (*state.findings).clone();
    match outcome {
        Outcome::Activations(rows) => findings.activations = rows,
        Outcome::Sensitivity { rows, accuracy } => {
            findings.sensitivity = rows;
            findings.sensitivity_accuracy = accuracy;
        }
        Outcome::Evaluation { mut view, keys, samples } => {
            for (name, k) in keys {
                if let Some(row) = view.rows.iter().find(|r| r.variant == name) {
                    state.cache.insert((name, k, full, samples), row.accuracy.clone());
                }
            }
            state.compare_with_file(&mut view.rows, full, samples);
            state.evaluation = Some(view);
            return;
        }
        Outcome::Failed => return,
    }
    state.findings = Arc::new(findings);
    state.version += 1;
}
