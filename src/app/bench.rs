//! `quantlens bench-ui`: the window's figures, measured headless (the same app as
//! `render`): time from "open" to the first frame with towers, main-world CPU time per
//! frame (our systems, egui, Bevy's own) while the camera moves, and the resident set
//! over repeated opens of the same model (a second open must free the first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;

use super::camera::{OrbitCamera, TowerCamera};
use super::model::{GraphNode, OpenModel, OpenRequest, SelectRequest, Status};
use super::{RenderOptions, headless_app_with};
use crate::report::bench::rss_mb;

/// Main-world time of the current frame (`First` to `Last`), split into phases: `First`
/// and `PreUpdate` (input, picking), `Update` (most of our systems), the egui pass (our
/// panels and egui's layout), the rest of `PostUpdate` (Bevy's transforms, visibility,
/// our highlight gizmos) and `Last`.
#[derive(Resource, Default)]
struct FrameClock {
    start: Option<Instant>,
    marks: Vec<Instant>,
    last: Duration,
    /// Per phase of the last frame, in `PHASES` order.
    phases: Vec<Duration>,
}

/// Names of the measured phases (see [`FrameClock`]).
const PHASES: [&str; 5] = ["first_pre_update", "update", "egui_pass", "post_update_rest", "last"];

#[derive(bevy::ecs::schedule::ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
struct AfterPreUpdate;

#[derive(bevy::ecs::schedule::ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
struct AfterUpdate;

#[derive(bevy::ecs::schedule::ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
struct AfterPostUpdate;

fn clock_start(mut c: ResMut<FrameClock>) {
    c.start = Some(Instant::now());
    c.marks.clear();
}

fn clock_mark(mut c: ResMut<FrameClock>) {
    c.marks.push(Instant::now());
}

fn clock_end(mut c: ResMut<FrameClock>) {
    let end = Instant::now();
    if let Some(s) = c.start.take() {
        c.last = end - s;
        // marks: after PreUpdate, after Update, egui start, egui end, after PostUpdate
        if let [pre, upd, egui_start, egui_end, post] = c.marks[..] {
            c.phases = vec![
                pre - s,
                upd - pre,
                egui_end - egui_start,
                (post - upd).saturating_sub(egui_end - egui_start),
                end - post,
            ];
        }
    }
}

/// Adds the frame clock's systems and stamp schedules to `app`.
fn add_frame_clock(app: &mut App) {
    use bevy::app::MainScheduleOrder;
    use bevy_egui::EguiPostUpdateSet;
    app.init_resource::<FrameClock>()
        .add_systems(First, clock_start)
        .add_systems(AfterPreUpdate, clock_mark)
        .add_systems(AfterUpdate, clock_mark)
        .add_systems(PostUpdate, clock_mark.before(EguiPostUpdateSet::EndPass))
        .add_systems(PostUpdate, clock_mark.after(EguiPostUpdateSet::EndPass).before(EguiPostUpdateSet::ProcessOutput))
        .add_systems(AfterPostUpdate, clock_mark)
        .add_systems(Last, clock_end);
    let mut order = app.world_mut().resource_mut::<MainScheduleOrder>();
    order.insert_after(PreUpdate, AfterPreUpdate);
    order.insert_after(Update, AfterUpdate);
    order.insert_after(PostUpdate, AfterPostUpdate);
}

fn settled(app: &App) -> bool {
    let s = app.world().resource::<Status>();
    s.loading.is_none() && s.stats_done >= s.stats_total && app.world().get_resource::<OpenModel>().is_some()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Entities, meshes, materials and images alive in `app`'s main world.
fn live_counts(app: &mut App) -> serde_json::Value {
    let world = app.world_mut();
    let entities = world.query::<Entity>().iter(world).count();
    let meshes = world.get_resource::<Assets<Mesh>>().map_or(0, Assets::len);
    let materials = world.get_resource::<Assets<StandardMaterial>>().map_or(0, Assets::len);
    let images = world.get_resource::<Assets<Image>>().map_or(0, Assets::len);
    serde_json::json!({ "entities": entities, "meshes": meshes, "materials": materials, "images": images })
}

/// Runs the measurements and returns them as JSON.
///
/// # Errors
/// When the model cannot be opened.
pub fn bench_ui(path: PathBuf, frames: usize, cycles: usize) -> Result<serde_json::Value, String> {
    let opts = RenderOptions {
        path: path.clone(),
        out: PathBuf::new(),
        width: 1600,
        height: 1000,
        mode: crate::layout::ViewMode::ThreeD,
        select: None,
        metric: None,
        runs: Vec::new(),
        settings: super::run::RunSettings::default(),
    };
    // render after the main world, so its time is ours alone (run with LP_NUM_THREADS=0
    // so that Mesa's lavapipe rasterizes on the main thread too)
    let mut app = headless_app_with(&opts, true);
    add_frame_clock(&mut app);
    app.finish();
    app.cleanup();
    let rss_before = rss_mb();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_mins(10);
    // open → first frame with the towers spawned
    let mut first_frame_s = None;
    while first_frame_s.is_none() {
        app.update();
        let blocks = app.world_mut().query::<&GraphNode>().iter(app.world()).count();
        if blocks > 0 {
            first_frame_s = Some(t0.elapsed().as_secs_f64());
        }
        if let Some(e) = &app.world().resource::<Status>().error {
            return Err(e.clone());
        }
        if Instant::now() > deadline {
            return Err("timed out opening".into());
        }
    }
    while !settled(&app) {
        app.update();
        if Instant::now() > deadline {
            return Err("timed out computing statistics".into());
        }
    }
    let stats_s = t0.elapsed().as_secs_f64();
    let (blocks, rows) = {
        let o = app.world().resource::<OpenModel>();
        (o.layout.blocks.len(), o.data.rows.len())
    };
    // warm-up (pipelines, egui fonts), then measured frames with the camera moving and
    // the selection changing every 10 frames
    for _ in 0..30 {
        app.update();
    }
    let mut main_ms = Vec::with_capacity(frames);
    let mut update_ms = Vec::with_capacity(frames);
    let mut phase_ms: Vec<Vec<f64>> = vec![Vec::with_capacity(frames); PHASES.len()];
    for f in 0..frames {
        {
            let mut q = app.world_mut().query_filtered::<&mut OrbitCamera, With<TowerCamera>>();
            for mut cam in q.iter_mut(app.world_mut()) {
                cam.yaw += 0.01;
            }
        }
        if f % 10 == 0 {
            let group = Some((f / 10) % rows.max(1));
            app.world_mut().write_message(SelectRequest { group, frame: false });
        }
        let t = Instant::now();
        app.update();
        update_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let clock = app.world().resource::<FrameClock>();
        main_ms.push(clock.last.as_secs_f64() * 1e3);
        for (acc, d) in phase_ms.iter_mut().zip(&clock.phases) {
            acc.push(d.as_secs_f64() * 1e3);
        }
    }
    main_ms.sort_by(f64::total_cmp);
    update_ms.sort_by(f64::total_cmp);
    let rss_loaded = rss_mb();
    // open the same model again, `cycles` times: each open replaces (frees) the last
    let mut rss_cycles = Vec::with_capacity(cycles);
    // what the world holds after each reopen: equal counts mean nothing of the old model
    // is left behind (RSS can still grow with the allocator's free lists)
    let mut live = vec![live_counts(&mut app)];
    for _ in 0..cycles {
        app.world_mut().write_message(OpenRequest(path.clone()));
        app.update();
        while !settled(&app) || app.world().resource::<Status>().loading.is_some() {
            app.update();
            if Instant::now() > deadline {
                return Err("timed out reopening".into());
            }
        }
        for _ in 0..3 {
            app.update();
        }
        rss_cycles.push((rss_mb() * 10.0).round() / 10.0);
        live.push(live_counts(&mut app));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(serde_json::json!({
        "path": path.display().to_string(),
        "blocks": blocks,
        "layer_rows": rows,
        "open_to_first_frame_s": first_frame_s,
        "open_to_stats_done_s": stats_s,
        "frames": frames,
        "main_world_ms": { "mean": mean(&main_ms), "p50": percentile(&main_ms, 0.5), "p95": percentile(&main_ms, 0.95) },
        "main_world_phases_mean_ms": PHASES.iter().zip(&phase_ms).map(|(n, v)| (n.to_string(), serde_json::json!(mean(v)))).collect::<serde_json::Map<_, _>>(),
        "app_update_ms": { "mean": mean(&update_ms), "p50": percentile(&update_ms, 0.5), "p95": percentile(&update_ms, 0.95) },
        "rss_mb": { "before_open": rss_before, "loaded": rss_loaded, "after_each_reopen": rss_cycles },
        "live_after_load_then_each_reopen": live,
    }))
}
