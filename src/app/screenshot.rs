//! Screenshots: F12 or the File menu saves the window (or, headless, the render image) as
//! a PNG, written atomically. A [`ShotJob`] takes one picture once the model and its
//! statistics are in (and the runs it asks for are over), then exits: `quantlens render` and
//! `quantlens PATH --screenshot`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bevy::prelude::*;
use bevy::render::render_resource::PipelineCache;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::render::{Render, RenderApp};

use super::model::{OpenModel, OpenRequest, ScreenshotRequest, SelectRequest, Status};
use super::run::{RunRequest, RunState};
use crate::view::run::RunCommand;

/// Screenshots and the one-picture job.
pub struct ScreenshotPlugin;

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        let pending = PendingPipelines::default();
        app.add_message::<ScreenshotRequest>()
            .insert_resource(pending.clone())
            .add_systems(Update, (screenshot_key, run_shot_job, take_screenshots).chain());
        if let Some(render) = app.get_sub_app_mut(RenderApp) {
            render.insert_resource(pending).add_systems(Render, count_pending_pipelines);
        }
    }
}

/// Render pipelines still compiling (shared with the render world): a picture taken
/// before they are ready misses what they draw.
#[derive(Resource, Clone, Default)]
pub struct PendingPipelines(Arc<AtomicUsize>);

fn count_pending_pipelines(cache: Res<PipelineCache>, pending: Res<PendingPipelines>) {
    pending.0.store(cache.waiting_pipelines().count(), Ordering::Relaxed);
}

/// Render into this image instead of the primary window (headless).
#[derive(Resource, Clone)]
pub struct RenderImage(pub Handle<Image>);

/// Take one picture when everything is loaded, then exit.
#[derive(Resource, Debug, Clone)]
pub struct ShotJob {
    pub out: PathBuf,
    /// Select (and frame) the layer of this name first.
    pub select: Option<String>,
    /// Frames to wait once ready (layout, egui and the renderer settle).
    pub settle_frames: u32,
    /// Runs of the variants to finish first, in order.
    pub runs: Vec<RunCommand>,
    /// How many of `runs` were asked for, and [`RunState::finished`] before the first.
    asked: usize,
    finished_before: Option<u64>,
    state: JobState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Waiting,
    Settling(u32),
    Shooting,
}

impl ShotJob {
    /// A job writing `out`.
    #[must_use]
    pub fn new(out: PathBuf, select: Option<String>) -> Self {
        Self {
            out,
            select,
            settle_frames: 8,
            runs: Vec::new(),
            asked: 0,
            finished_before: None,
            state: JobState::Waiting,
        }
    }
}

fn screenshot_key(keys: Option<Res<ButtonInput<KeyCode>>>, mut shot: MessageWriter<ScreenshotRequest>) {
    if keys.is_some_and(|k| k.just_pressed(KeyCode::F12)) {
        shot.write(ScreenshotRequest(None));
    }
}

/// First free `quantlens-screenshot-N.png` in the working folder.
fn next_screenshot_path() -> PathBuf {
    (1..10_000)
        .map(|n| PathBuf::from(format!("quantlens-screenshot-{n}.png")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| PathBuf::from("quantlens-screenshot.png"))
}

fn run_shot_job(
    job: Option<ResMut<ShotJob>>,
    open: Option<Res<OpenModel>>,
    status: Res<Status>,
    requests: MessageReader<OpenRequest>,
    mut select: MessageWriter<SelectRequest>,
    mut shot: MessageWriter<ScreenshotRequest>,
    mut exit: MessageWriter<AppExit>,
    pending: Res<PendingPipelines>,
    (run_state, mut run): (Res<RunState>, MessageWriter<RunRequest>),
) {
    let Some(mut job) = job else { return };
    if !requests.is_empty() {
        return;
    }
    match job.state {
        JobState::Waiting => {
            if status.loading.is_some() {
                return;
            }
            if open.is_none() {
                if let Some(e) = &status.error {
                    eprintln!("quantlens: error: {e}");
                    exit.write(AppExit::from_code(1));
                }
                return;
            }
            if status.stats_done < status.stats_total {
                return;
            }
            // the runs, one after the other
            let before = *job.finished_before.get_or_insert(run_state.finished);
            let over = usize::try_from(run_state.finished - before).unwrap_or(usize::MAX);
            if over < job.asked {
                return;
            }
            if let Some(&next) = job.runs.get(job.asked) {
                run.write(RunRequest(next));
                job.asked += 1;
                return;
            }
            if let Some(e) = run_state.errors.first() {
                eprintln!("quantlens: warning: {e}");
            }
            if let (Some(name), Some(open)) = (&job.select, &open) {
                let Some(r) = open.list.iter().find(|r| &r.label == name) else {
                    eprintln!("quantlens: error: no layer named {name:?}");
                    exit.write(AppExit::from_code(1));
                    return;
                };
                select.write(SelectRequest { group: Some(r.row), frame: true });
            }
            job.state = JobState::Settling(job.settle_frames);
        }
        // shaders compile in the background: count down only while none is pending
        JobState::Settling(_) if pending.0.load(Ordering::Relaxed) > 0 => {
            job.state = JobState::Settling(job.settle_frames);
        }
        JobState::Settling(0) => {
            shot.write(ScreenshotRequest(Some(job.out.clone())));
            job.state = JobState::Shooting;
        }
        JobState::Settling(n) => job.state = JobState::Settling(n - 1),
        JobState::Shooting => {}
    }
}

fn take_screenshots(
    mut commands: Commands,
    mut requests: MessageReader<ScreenshotRequest>,
    image: Option<Res<RenderImage>>,
    job: Option<Res<ShotJob>>,
) {
    for ScreenshotRequest(path) in requests.read() {
        let path = path.clone().unwrap_or_else(next_screenshot_path);
        let shot = match &image {
            Some(img) => Screenshot::image(img.0.clone()),
            None => Screenshot::primary_window(),
        };
        let exit = job.as_ref().is_some_and(|j| j.out == path);
        commands.spawn(shot).observe(
            move |captured: On<ScreenshotCaptured>, mut status: ResMut<Status>, mut quit: MessageWriter<AppExit>| {
                let result = save_png(&captured.image, &path);
                match &result {
                    Ok(()) => status.info = Some(format!("screenshot saved: {}", path.display())),
                    Err(e) => status.error = Some(format!("screenshot failed: {e}: {}", path.display())),
                }
                if exit {
                    if let Err(e) = &result {
                        eprintln!("quantlens: error: {e}: {}", path.display());
                    }
                    quit.write(if result.is_ok() { AppExit::Success } else { AppExit::from_code(1) });
                }
            },
        );
    }
}

/// Saves as PNG through a temporary file and a rename (never a half-written picture).
fn save_png(image: &Image, path: &Path) -> Result<(), String> {
    let rgb = image.clone().try_into_dynamic().map_err(|e| e.to_string())?.to_rgb8();
    let tmp = path.with_extension("png.partial");
    rgb.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
