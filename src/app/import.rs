//! Opening a model: an [`OpenRequest`] starts a load task (discovery, import, matching,
//! first layout) on the async compute pool; when it finishes, the previous model is
//! despawned and the new one spawned. A failed load keeps the previous model open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bevy::prelude::*;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{AsyncComputeTaskPool, Task};

use crate::layout::{LayoutOptions, layout};
use crate::model::variants::{discover, load_variants};
use crate::model::{Variant, match_layers};
use crate::report::reference_index;

use super::model::{
    LayerIndex, LayerRow, ModelData, ModelRoot, OpenModel, OpenRequest, Status, VariantEntity, ViewSettings,
};

/// Loads models in the background.
pub struct ImportPlugin;

impl Plugin for ImportPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<OpenRequest>()
            .init_resource::<Status>()
            .init_resource::<ViewSettings>()
            .add_systems(Update, (start_loads, finish_loads).chain().in_set(ImportSystems));
    }
}

/// Systems that start and finish loads.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImportSystems;

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
    for (index, v) in data.variants.iter().enumerate() {
        commands.spawn((VariantEntity { index, name: v.spec.name.clone() }, ChildOf(root)));
    }
    for (ri, row) in data.rows.iter().enumerate() {
        let depth = row
            .members
            .iter()
            .enumerate()
            .find_map(|(vi, m)| {
                let (li, _) = (*m)?;
                let v = data.variants.get(vi)?;
                v.model.graph.node(v.layers.get(li)?.node).map(|n| n.depth)
            })
            .unwrap_or(0);
        commands.spawn((LayerRow(ri), LayerIndex(depth), ChildOf(root)));
    }
    status.stats_done = 0;
    status.stats_total = data.rows.len();
    let list = crate::view::list_rows(&data.variants, &data.rows, &vec![None; data.rows.len()]);
    commands.insert_resource(OpenModel { root, data, layout: Arc::new(layout), list, list_version });
}
