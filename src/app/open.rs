//! Ways to open a model besides the command line: the native folder dialog (rfd, awaited
//! on a task so the window keeps drawing), dropping a folder or file on the window, and
//! the recent-folders list (remembered across runs).

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::tasks::futures::check_ready;
use bevy::tasks::{IoTaskPool, Task};
use bevy::window::FileDragAndDrop;

use crate::view::recent::{load_recent, push_recent, recent_file, save_recent};

use super::model::{OpenModel, OpenRequest, Status};

/// Dialog, drag-and-drop and recent folders.
pub struct OpenPlugin;

impl Plugin for OpenPlugin {
    fn build(&self, app: &mut App) {
        let paths = recent_file().map(|f| load_recent(&f)).unwrap_or_default();
        app.add_message::<OpenDialogRequest>()
            .insert_resource(RecentFolders { paths })
            .add_systems(Update, (open_dialog, poll_dialog, dropped_files, remember_opened));
    }
}

/// Show the native folder dialog.
#[derive(Message, Debug, Clone, Copy)]
pub struct OpenDialogRequest;

/// Recently opened folders, most recent first.
#[derive(Resource, Debug, Default, Clone)]
pub struct RecentFolders {
    pub paths: Vec<PathBuf>,
}

#[derive(Component)]
struct DialogTask(Task<Option<PathBuf>>);

fn open_dialog(
    mut requests: MessageReader<OpenDialogRequest>,
    mut commands: Commands,
    running: Query<(), With<DialogTask>>,
) {
    if requests.read().count() == 0 || !running.is_empty() {
        return;
    }
    let task = IoTaskPool::get().spawn(async move {
        rfd::AsyncFileDialog::new()
            .set_title("Open a folder of ONNX variants")
            .pick_folder()
            .await
            .map(|h| h.path().to_path_buf())
    });
    commands.spawn(DialogTask(task));
}

fn poll_dialog(
    mut commands: Commands,
    mut tasks: Query<(Entity, &mut DialogTask)>,
    mut open: MessageWriter<OpenRequest>,
    mut status: ResMut<Status>,
) {
    for (e, mut task) in &mut tasks {
        let Some(result) = check_ready(&mut task.0) else { continue };
        commands.entity(e).despawn();
        match result {
            Some(path) => {
                open.write(OpenRequest(path));
            }
            None => status.info = Some("no folder chosen (or no file dialog available here)".into()),
        }
    }
}

fn dropped_files(mut drops: MessageReader<FileDragAndDrop>, mut open: MessageWriter<OpenRequest>) {
    for d in drops.read() {
        if let FileDragAndDrop::DroppedFile { path_buf, .. } = d {
            open.write(OpenRequest(path_buf.clone()));
        }
    }
}

fn remember_opened(open: Option<Res<OpenModel>>, mut recent: ResMut<RecentFolders>, mut last: Local<Option<Entity>>) {
    let Some(open) = open else { return };
    if *last == Some(open.root) {
        return;
    }
    *last = Some(open.root);
    let path = std::fs::canonicalize(&open.data.path).unwrap_or_else(|_| open.data.path.clone());
    push_recent(&mut recent.paths, path);
    if let Some(f) = recent_file()
        && let Err(e) = save_recent(&f, &recent.paths)
    {
        // failing to remember is not worth an error in the window: logged
        warn!("cannot save the recent folders: {e}: {}", f.display());
    }
}
