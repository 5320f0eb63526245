//! Bevy glue, one plugin per feature: import, stats, towers, selection, camera, panels,
//! open (dialog, drop, recent), screenshot. [`CorePlugins`] is everything that runs
//! without a renderer (the headless ECS tests use it with `MinimalPlugins`); the window
//! and the headless picture add rendering, picking and egui on top.

pub mod bench;
pub mod camera;
pub mod edit;
pub mod export;
pub mod import;
pub mod memory;
pub mod model;
pub mod open;
pub mod panels;
pub mod run;
pub mod screenshot;
pub mod selection;
pub mod stats;
pub mod towers;

use std::path::PathBuf;
use std::time::Duration;

use bevy::app::{PluginGroupBuilder, ScheduleRunnerPlugin};
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{CameraOutputMode, RenderTarget};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::render_resource::TextureFormat;
use bevy::window::{ExitCondition, RequestRedraw};
use bevy::winit::{WinitPlugin, WinitSettings};
use bevy_egui::{EguiGlobalSettings, EguiPlugin, PrimaryEguiContext};

use crate::layout::ViewMode;
use crate::theme;

use self::camera::{OrbitCamera, TowerCamera};
use self::model::{OpenRequest, Status, ViewSettings};
use self::screenshot::{RenderImage, ShotJob};

/// The stages of a frame's own work, in order: a model loads, edits apply to its
/// parameters, what they change is recomputed, and the view shows the result.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSystems {
    /// Opening models (`import`).
    Load,
    /// Changes to weights' quantization parameters (`Quant` components).
    Edit,
    /// Statistics (and later inference) of what changed.
    Compute,
    /// Towers, colours and selection.
    Present,
}

/// Orders [`AppSystems`] in `Update`.
struct SchedulePlugin;

impl Plugin for SchedulePlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(
            Update,
            (AppSystems::Load, AppSystems::Edit, AppSystems::Compute, AppSystems::Present).chain(),
        );
    }
}

/// The plugins that need no renderer: import, stats, towers (entities), selection.
pub struct CorePlugins;

impl PluginGroup for CorePlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(SchedulePlugin)
            .add(import::ImportPlugin)
            .add(edit::EditPlugin)
            .add(stats::StatsPlugin)
            .add(towers::TowersPlugin)
            .add(selection::SelectionPlugin)
            .add(memory::MemoryPlugin)
            .add(run::RunPlugin)
            .add(export::ExportPlugin)
    }
}

/// Everything the window and the headless picture share on top of [`CorePlugins`].
struct ViewPlugins;

impl PluginGroup for ViewPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(selection::HighlightPlugin)
            .add(camera::CameraPlugin)
            .add(panels::PanelsPlugin)
            .add(open::OpenPlugin)
            .add(screenshot::ScreenshotPlugin)
    }
}

fn background() -> Color {
    Color::srgb(theme::BACKGROUND[0], theme::BACKGROUND[1], theme::BACKGROUND[2])
}

fn spawn_lights(commands: &mut Commands) {
    commands.spawn((
        DirectionalLight { illuminance: 9_000.0, shadow_maps_enabled: false, ..default() },
        Transform::from_xyz(-4.0, 10.0, 6.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.insert_resource(GlobalAmbientLight { brightness: 600.0, ..default() });
}

/// The tower camera (drawing into the viewport the panels leave) and, over the whole
/// target, a camera that draws only egui (so the panels do not shrink with the viewport).
fn spawn_cameras(commands: &mut Commands, egui: &mut EguiGlobalSettings, target: Option<RenderTarget>) {
    egui.auto_create_primary_context = false;
    spawn_lights(commands);
    let mut tower = commands.spawn((Camera3d::default(), TowerCamera, OrbitCamera::default(), Transform::default()));
    if let Some(t) = target.clone() {
        tower.insert(t);
    }
    let mut ui = commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
    if let Some(t) = target {
        ui.insert(t);
    }
}

fn spawn_window_cameras(mut commands: Commands, mut egui: ResMut<EguiGlobalSettings>) {
    spawn_cameras(&mut commands, &mut egui, None);
}

/// Keeps a reactive desktop app updating while work runs or a camera key is held.
fn keep_awake(
    status: Res<Status>,
    keys: Res<ButtonInput<KeyCode>>,
    mouse: Res<ButtonInput<MouseButton>>,
    run: Res<run::RunState>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    let busy = status.progress().is_some() || run.running.is_some();
    if busy || keys.get_pressed().next().is_some() || mouse.get_pressed().next().is_some() {
        redraw.write(RequestRedraw);
    }
}

/// The desktop window, optionally opening `path` and taking one screenshot.
pub fn window_app(path: Option<PathBuf>, screenshot: Option<PathBuf>, settings: run::RunSettings) -> App {
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window { title: "quantlens".into(), resolution: (1400, 860).into(), ..default() }),
        ..default()
    }))
    .add_plugins((MeshPickingPlugin, EguiPlugin::default()))
    .insert_resource(WinitSettings::desktop_app())
    .insert_resource(ClearColor(background()))
    .add_plugins((CorePlugins, ViewPlugins))
    .insert_resource(settings)
    .add_systems(Startup, spawn_window_cameras)
    .add_systems(Update, keep_awake);
    if let Some(out) = screenshot {
        app.insert_resource(ShotJob::new(out, None));
        // a screenshot run must not wait for input events
        app.insert_resource(WinitSettings::game());
    }
    if let Some(p) = path {
        app.world_mut().write_message(OpenRequest(p));
    }
    app
}

/// Options of a headless picture.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub path: PathBuf,
    pub out: PathBuf,
    pub width: u32,
    pub height: u32,
    pub mode: ViewMode,
    pub select: Option<String>,
    /// Colour by this metric instead of the default.
    pub metric: Option<crate::layout::ColourMetric>,
    /// Runs of the variants to finish before the picture.
    pub runs: Vec<crate::view::run::RunCommand>,
    /// What the runs run on.
    pub settings: run::RunSettings,
}

/// Renders what the window would show into a PNG, without a display.
pub fn headless_app(opts: &RenderOptions) -> App {
    let mut app = headless_app_without_job(opts);
    let mut job = ShotJob::new(opts.out.clone(), opts.select.clone());
    job.runs.clone_from(&opts.runs);
    app.insert_resource(job);
    app
}

/// The headless app drawing into an image, opening `opts.path`; takes no picture.
pub fn headless_app_without_job(opts: &RenderOptions) -> App {
    headless_app_with(opts, false)
}

/// The headless app; `sequential` renders after the main world instead of beside it (so
/// that timing the main world is not disturbed by a CPU renderer on the same cores).
pub fn headless_app_with(opts: &RenderOptions, sequential: bool) -> App {
    let mut app = App::new();
    let mut plugins = DefaultPlugins
        .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
        .disable::<WinitPlugin>();
    if sequential {
        plugins = plugins.disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>();
    }
    app.add_plugins(plugins)
        .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(1.0 / 60.0)))
        .add_plugins(EguiPlugin::default())
        .insert_resource(ClearColor(background()))
        .insert_resource(opts.settings.clone())
        .insert_resource(ViewSettings {
            mode: opts.mode,
            metric: opts.metric.unwrap_or(ViewSettings::default().metric),
            ..default()
        })
        .add_plugins((CorePlugins, ViewPlugins));
    let (w, h) = (opts.width.max(64), opts.height.max(64));
    app.add_systems(
        Startup,
        move |mut commands: Commands, mut images: ResMut<Assets<Image>>, mut egui: ResMut<EguiGlobalSettings>| {
            let mut image = Image::new_target_texture(w, h, TextureFormat::Rgba8UnormSrgb, None);
            image.texture_descriptor.usage |= bevy::render::render_resource::TextureUsages::COPY_SRC;
            let handle = images.add(image);
            commands.insert_resource(RenderImage(handle.clone()));
            spawn_cameras(&mut commands, &mut egui, Some(RenderTarget::Image(handle.into())));
        },
    );
    app.world_mut().write_message(OpenRequest(opts.path.clone()));
    app
}
