//! Opening a model: an [`OpenRequest`] starts a load task (discovery, import, matching,
//! first layout) on the async compute pool; when it finishes, the previous model is
//! despawned and the new one spawned. A failed load keeps the previous model open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::prelude::*;

use super::AppSystems;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{AsyncComputeTaskPool, Task};

use crate::layout::{LayoutOptions, layout};
use crate::model::WeightId;
use crate::model::variants::{discover, load_variants};
use crate::model::{Variant, match_layers};
use crate::report::{ParamKey, reference_index};

use super::model::{
    ActScale, ActivationEntity, LayerRow, ModelData, ModelRoot, OpenModel, OpenRequest, Quant, Status, VariantEntity,
    ViewSettings, WeightEntity,
};

/// Loads models in the background.
pub struct ImportPlugin;

impl Plugin for ImportPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<OpenRequest>()
            .init_resource::<Status>()
            .init_resource::<ViewSettings>()
            .add_systems(Update, (start_loads, finish_loads).chain().in_set(AppSystems::Load));
    }
}

/// A load in flight.
#[derive(Component)]
struct LoadTask(Task<Result<Loaded, String>>);

struct Loaded {
    data: ModelData,
    layout: crate::layout::Layout,
}

/// Loads a folder or file: every variant that loads is kept; fails only when none does.
///
/// # Errors
/// A one-line message naming what could not be opened.
pub fn load_model_data(path: &Path) -> Result<ModelData, String> {
    let specs = discover(path).map_err(|e| e.to_string())?;
    let mut variants: Vec<Variant> = Vec::new();
    let mut failures = Vec::new();
    for r in load_variants(&specs) {
        match r {
            Ok(v) => variants.push(v),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if variants.is_empty() {
        return Err(failures.join("; "));
    }
    let reference = reference_index(&variants);
    let rows = match_layers(&variants, reference);
    let differences = Arc::new(crate::model::node_differences(&variants, reference, &rows));
    Ok(ModelData {
        path: path.to_path_buf(),
        variants: Arc::new(variants),
        rows: Arc::new(rows),
        reference,
        failures,
        differences,
    })
}

fn start_loads(
    mut requests: MessageReader<OpenRequest>,
    mut commands: Commands,
    mut status: ResMut<Status>,
    settings: Res<ViewSettings>,
    running: Query<Entity, With<LoadTask>>,
) {
    let Some(OpenRequest(path)) = requests.read().last().cloned() else { return };
    // a newer request replaces one in flight
    for e in &running {
        commands.entity(e).despawn();
    }
    let options = LayoutOptions { mode: settings.mode, fold_quant: settings.fold_quant };
    let p: PathBuf = path.clone();
    let task = AsyncComputeTaskPool::get().spawn(async move {
        let data = load_model_data(&p)?;
        let layout = layout(&data.variants, &data.rows, data.reference, options);
        Ok(Loaded { data, layout })
    });
    commands.spawn(LoadTask(task));
    status.loading = Some(path);
}

fn finish_loads(
    mut commands: Commands,
    mut tasks: Query<(Entity, &mut LoadTask)>,
    mut status: ResMut<Status>,
    open: Option<Res<OpenModel>>,
) {
    for (e, mut task) in &mut tasks {
        let Some(result) = check_ready(&mut task.0) else { continue };
        commands.entity(e).despawn();
        status.loading = None;
        match result {
            Err(msg) => {
                status.error = Some(format!("could not open: {msg}"));
            }
            Ok(loaded) => {
                if let Some(old) = &open {
                    commands.entity(old.root).despawn();
                }
                status.error = None;
                status.info = (!loaded.data.failures.is_empty())
                    .then(|| format!("some files were skipped: {}", loaded.data.failures.join("; ")));
                let list_version = open.as_ref().map_or(0, |o| o.list_version + 1);
                spawn_model(&mut commands, loaded, &mut status, list_version);
            }
        }
    }
}

fn spawn_model(commands: &mut Commands, loaded: Loaded, status: &mut Status, list_version: u64) {
    let Loaded { data, layout } = loaded;
    let name = data.path.file_name().map_or_else(|| data.path.display().to_string(), |n| n.to_string_lossy().into());
    let root = commands.spawn((ModelRoot, Name::new(name), Transform::default(), Visibility::default())).id();
    let variant_entities: Vec<Entity> = data
        .variants
        .iter()
        .enumerate()
        .map(|(index, v)| commands.spawn((VariantEntity { index, name: v.spec.name.clone() }, ChildOf(root))).id())
        .collect();
    // every parameter a weight entity under its variant, quantized ones with their `Quant`
    let row_of: HashMap<(usize, usize), usize> = data
        .rows
        .iter()
        .enumerate()
        .flat_map(|(ri, row)| row.members.iter().enumerate().filter_map(move |(vi, m)| Some(((vi, (*m)?.0), ri))))
        .collect();
    for (id, w) in crate::model::weights(&data.variants).into_iter().enumerate() {
        let Some(&parent) = variant_entities.get(w.variant) else { continue };
        let weight = WeightEntity {
            id: WeightId(id),
            variant: w.variant,
            layer: w.layer,
            key: ParamKey::of(w.role, w.slot),
            row: row_of.get(&(w.variant, w.layer)).copied(),
        };
        let mut e = commands.spawn((weight, ChildOf(parent)));
        if let Some(q) = w.quant {
            e.insert(Quant(q));
        }
    }
    // every quantized activation an entity under its variant, for edits of its scale
    for (vi, v) in data.variants.iter().enumerate() {
        let Some(&parent) = variant_entities.get(vi) else { continue };
        for pair in crate::infer::activations::qdq_pairs(&v.model.graph) {
            commands.spawn((ActivationEntity { variant: vi, tensor: pair.key }, ActScale(1.0), ChildOf(parent)));
        }
    }
    for ri in 0..data.rows.len() {
        commands.spawn((LayerRow(ri), ChildOf(root)));
    }
    status.stats_done = 0;
    status.stats_total = data.rows.len();
    let list = crate::view::list_rows(&data.variants, data.reference, &data.rows, &vec![None; data.rows.len()]);
    commands.insert_resource(OpenModel { root, data, layout: Arc::new(layout), list, list_version });
}
