//! File → Export edited variants…: every variant the window's edits changed is written,
//! edited as `quantlens export` would write it, into a folder the user picks (the native
//! dialog, on a task) as `<file stem>_edited.onnx`: atomically, never over an input.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{IoTaskPool, Task};

use super::edit::InFloat;
use super::model::{ActScale, ActivationEntity, OpenModel, Quant, Status, WeightEntity};
use super::run::edits_of;
use crate::infer::apply_edits;

/// Exports edited variants.
pub struct ExportPlugin;

impl Plugin for ExportPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<ExportRequest>().add_systems(Update, (start_export, poll_export).chain());
    }
}

/// Export the edited variants into `folder`, or into a folder the user picks.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub folder: Option<PathBuf>,
}

/// The files written, or why not.
#[derive(Component)]
struct ExportTask(Task<Result<Vec<PathBuf>, String>>);

fn start_export(
    mut commands: Commands,
    mut requests: MessageReader<ExportRequest>,
    open: Option<Res<OpenModel>>,
    quants: Query<(&WeightEntity, &Quant, Has<InFloat>)>,
    activations: Query<(&ActivationEntity, &ActScale)>,
    mut status: ResMut<Status>,
) {
    let Some(open) = open else { return };
    for r in requests.read() {
        let (variants, reference) = (open.data.variants.clone(), open.data.reference);
        let edits: Vec<(usize, Vec<crate::infer::Edit>)> = (0..variants.len())
            .map(|vi| (vi, edits_of(&variants, vi, &quants, &activations)))
            .filter(|(_, e)| !e.is_empty())
            .collect();
        if edits.is_empty() {
            status.info = Some("nothing to export: no variant is edited".into());
            continue;
        }
        let given = r.folder.clone();
        let task = IoTaskPool::get().spawn(async move {
            let folder = match given {
                Some(f) => f,
                None => match rfd::AsyncFileDialog::new().set_title("Export edited variants to").pick_folder().await {
                    Some(f) => f.path().to_path_buf(),
                    None => return Ok(Vec::new()),
                },
            };
            let mut written = Vec::new();
            for (vi, e) in &edits {
                let Some(v) = variants.get(*vi) else { continue };
                let bytes = apply_edits(&variants, reference, *vi, e)?;
                let stem = v.spec.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let path = folder.join(format!("{stem}_edited.onnx"));
                crate::write::write_atomically(&path, &bytes, &variants)?;
                written.push(path);
            }
            Ok(written)
        });
        commands.spawn(ExportTask(task));
    }
}

fn poll_export(mut commands: Commands, mut tasks: Query<(Entity, &mut ExportTask)>, mut status: ResMut<Status>) {
    for (e, mut task) in &mut tasks {
        let Some(result) = check_ready(&mut task.0) else { continue };
        commands.entity(e).despawn();
        match result {
            Ok(paths) if paths.is_empty() => {}
            Ok(paths) => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                status.info = Some(format!("exported {}", names.join(", ")));
                status.error = None;
            }
            Err(e) => status.error = Some(format!("export failed: {e}")),
        }
    }
}
