//! The camera: orbit (left drag), pan (right/middle drag, WASD/arrows), zoom (scroll,
//! +/-) in 3D; pan and zoom looking straight down in 2D. `F` frames the selection and
//! `Home` everything. Input is ignored while egui wants the pointer or keyboard.

use std::f32::consts::FRAC_PI_2;

use bevy::camera::ScalingMode;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;

use crate::layout::ViewMode;

use super::model::{FrameRequest, GraphNode, OpenModel, Selection, ViewSettings};
use super::towers::BlockIndex;

/// Camera control.
pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<AutoFrame>()
            .add_systems(Update, (camera_input, frame_requests, keep_projection, apply_orbit).chain());
    }
}

/// Where the camera looks from.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct OrbitCamera {
    pub focus: Vec3,
    pub yaw: f32,
    pub pitch: f32,
    pub distance: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        // from the front, a little from the left and above: the flow runs left to right,
        // the variant rows stack from back (float) to front
        Self { focus: Vec3::ZERO, yaw: -0.3, pitch: -0.62, distance: 30.0 }
    }
}

impl OrbitCamera {
    /// The camera transform in `mode`.
    #[must_use]
    pub fn transform(&self, mode: ViewMode) -> Transform {
        match mode {
            ViewMode::ThreeD => {
                let rot = Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0);
                Transform::from_translation(self.focus + rot * Vec3::new(0.0, 0.0, self.distance)).with_rotation(rot)
            }
            // straight down, flow axis (x) to the right, rows (z) downwards on screen
            ViewMode::TwoD => {
                Transform::from_translation(self.focus + Vec3::Y * 500.0).looking_at(self.focus, Vec3::NEG_Z)
            }
        }
    }

    /// Frames the box `min..max` for a viewport of aspect `aspect` (width / height).
    pub fn frame(&mut self, min: Vec3, max: Vec3, mode: ViewMode, aspect: f32) {
        self.focus = (min + max) / 2.0;
        let size = (max - min).max(Vec3::splat(1.0));
        let aspect = aspect.max(0.1);
        self.distance = match mode {
            // the bounding sphere inside the narrower of the two fields of view (45° vertical)
            ViewMode::ThreeD => {
                let half_v = std::f32::consts::FRAC_PI_8;
                let half_h = (half_v.tan() * aspect).atan();
                // the sphere is conservative for the flat, wide layouts, but the near end
                // of an oblique view looms larger: 0.95 of it keeps both ends in view
                0.95 * size.length() / 2.0 / half_v.min(half_h).sin()
            }
            // orthographic: the visible height in world units
            ViewMode::TwoD => size.z.max(size.x / aspect) * 1.08,
        };
    }
}

/// Until the user moves the camera, it repeats the last framing (the overview, or a
/// selection framed from the list or `--select`) whenever the viewport changes (panels
/// appear, the window is resized).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoFrame(pub Option<FrameRequest>);

impl Default for AutoFrame {
    fn default() -> Self {
        Self(Some(FrameRequest::Overview))
    }
}

/// Longest stretch of the flow axis the overview shows (in depth columns).
const OVERVIEW_COLUMNS: f32 = 48.0;

/// Marks the camera that draws the towers.
#[derive(Component, Debug, Default)]
pub struct TowerCamera;

fn camera_input(
    mouse: Option<Res<ButtonInput<MouseButton>>>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    motion: Option<Res<AccumulatedMouseMotion>>,
    scroll: Option<Res<AccumulatedMouseScroll>>,
    time: Res<Time>,
    settings: Res<ViewSettings>,
    wants: Option<Res<bevy_egui::input::EguiWantsInput>>,
    mut cameras: Query<&mut OrbitCamera, With<TowerCamera>>,
    mut frame: MessageWriter<FrameRequest>,
    mut auto: ResMut<AutoFrame>,
) {
    let (pointer_free, keys_free) =
        wants.map_or((true, true), |w| (!w.wants_any_pointer_input(), !w.wants_any_keyboard_input()));
    let dt = time.delta_secs().min(0.1);
    let touched = (pointer_free
        && (mouse.as_ref().is_some_and(|m| m.get_pressed().next().is_some())
            || scroll.as_ref().is_some_and(|s| s.delta != Vec2::ZERO)))
        || (keys_free && keys.as_ref().is_some_and(|k| k.get_pressed().next().is_some()));
    if touched {
        auto.set_if_neq(AutoFrame(None));
    }
    for mut cam in &mut cameras {
        let pan_scale = cam.distance * 0.0015;
        let rot = Quat::from_rotation_y(cam.yaw);
        let (right, forward) = match settings.mode {
            ViewMode::ThreeD => (rot * Vec3::X, rot * Vec3::NEG_Z),
            ViewMode::TwoD => (Vec3::X, Vec3::NEG_Z),
        };
        if pointer_free && let (Some(mouse), Some(motion)) = (&mouse, &motion) {
            let d = motion.delta;
            if mouse.pressed(MouseButton::Left) && settings.mode == ViewMode::ThreeD {
                cam.yaw -= d.x * 0.005;
                cam.pitch = (cam.pitch - d.y * 0.005).clamp(-FRAC_PI_2 + 0.05, FRAC_PI_2 - 0.05);
            }
            if mouse.pressed(MouseButton::Right)
                || mouse.pressed(MouseButton::Middle)
                || (mouse.pressed(MouseButton::Left) && settings.mode == ViewMode::TwoD)
            {
                let up = if settings.mode == ViewMode::ThreeD { Vec3::Y } else { forward };
                cam.focus += (-d.x * right + d.y * up) * pan_scale;
            }
        }
        if pointer_free && let Some(scroll) = &scroll {
            let lines = match scroll.unit {
                MouseScrollUnit::Line => scroll.delta.y,
                MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
            };
            cam.distance = (cam.distance * 0.9f32.powf(lines)).clamp(1.0, 50_000.0);
        }
        if keys_free && let Some(keys) = &keys {
            let speed = cam.distance * 0.8 * dt;
            let mut step = Vec3::ZERO;
            for (k, dir) in [
                (KeyCode::KeyW, forward),
                (KeyCode::ArrowUp, forward),
                (KeyCode::KeyS, -forward),
                (KeyCode::ArrowDown, -forward),
                (KeyCode::KeyD, right),
                (KeyCode::ArrowRight, right),
                (KeyCode::KeyA, -right),
                (KeyCode::ArrowLeft, -right),
            ] {
                if keys.pressed(k) {
                    step += dir;
                }
            }
            cam.focus += step * speed;
            if keys.pressed(KeyCode::Equal) || keys.pressed(KeyCode::NumpadAdd) {
                cam.distance = (cam.distance * (1.0 - dt)).max(1.0);
            }
            if keys.pressed(KeyCode::Minus) || keys.pressed(KeyCode::NumpadSubtract) {
                cam.distance = (cam.distance * (1.0 + dt)).min(50_000.0);
            }
            if keys.just_pressed(KeyCode::KeyF) {
                frame.write(FrameRequest::Selection);
            }
            if keys.just_pressed(KeyCode::Home) {
                frame.write(FrameRequest::All);
            }
        }
    }
}

fn frame_requests(
    mut requests: MessageReader<FrameRequest>,
    open: Option<Res<OpenModel>>,
    selection: Res<Selection>,
    index: Res<BlockIndex>,
    settings: Res<ViewSettings>,
    blocks: Query<&GraphNode>,
    mut cameras: Query<(&mut OrbitCamera, &Camera), With<TowerCamera>>,
    mut auto: ResMut<AutoFrame>,
) {
    let Some(open) = open else {
        requests.clear();
        return;
    };
    for r in requests.read() {
        // while the camera is left alone, the latest framing is the one to repeat
        if auto.0.is_some() {
            auto.set_if_neq(AutoFrame(Some(*r)));
        }
        let bounds = match r {
            FrameRequest::All | FrameRequest::Overview => {
                // room on the left for the variant names; the overview stops after a while
                let min = Vec3::from_array(open.layout.min) - Vec3::X * 3.0;
                let mut max = Vec3::from_array(open.layout.max);
                if *r == FrameRequest::Overview {
                    max.x = max.x.min(min.x + OVERVIEW_COLUMNS * crate::layout::DEPTH_SPACING);
                }
                Some((min, max))
            }
            FrameRequest::Selection => {
                let members = selection.group.and_then(|g| index.by_group.get(&g));
                members.and_then(|es| {
                    es.iter().filter_map(|e| blocks.get(*e).ok()).filter_map(|n| open.layout.blocks.get(n.block)).fold(
                        None,
                        |acc: Option<(Vec3, Vec3)>, b| {
                            let (c, s) = (Vec3::from_array(b.center), Vec3::from_array(b.size) / 2.0);
                            Some(acc.map_or((c - s, c + s), |(lo, hi)| (lo.min(c - s), hi.max(c + s))))
                        },
                    )
                })
            }
        };
        let Some((min, max)) = bounds else { continue };
        for (mut cam, camera) in &mut cameras {
            let aspect = camera.logical_viewport_size().map_or(1.6, |s| s.x / s.y.max(1.0));
            // a selection is framed with some context around it
            let pad = if *r == FrameRequest::Selection { Vec3::splat(3.0) } else { Vec3::ZERO };
            cam.frame(min - pad, max + pad, settings.mode, aspect);
        }
    }
}

/// Perspective in 3D, orthographic looking down in 2D; refits when the mode changes.
fn keep_projection(
    settings: Res<ViewSettings>,
    open: Option<Res<OpenModel>>,
    mut cameras: Query<(&mut Projection, &mut OrbitCamera), With<TowerCamera>>,
    mut last: Local<Option<(ViewMode, Option<Entity>)>>,
    mut frame: MessageWriter<FrameRequest>,
    mut auto: ResMut<AutoFrame>,
) {
    let key = (settings.mode, open.as_ref().map(|o| o.root));
    if *last == Some(key) {
        return;
    }
    let first_model = last.is_none_or(|(_, root)| root != key.1);
    if first_model {
        auto.set_if_neq(AutoFrame(Some(FrameRequest::Overview)));
    }
    *last = Some(key);
    for (mut proj, cam) in &mut cameras {
        *proj = match settings.mode {
            ViewMode::ThreeD => Projection::Perspective(PerspectiveProjection::default()),
            ViewMode::TwoD => Projection::Orthographic(OrthographicProjection {
                scaling_mode: ScalingMode::FixedVertical { viewport_height: cam.distance },
                ..OrthographicProjection::default_3d()
            }),
        };
    }
    if open.is_some() || first_model {
        frame.write(auto.0.unwrap_or(FrameRequest::Overview));
    }
}

fn apply_orbit(
    settings: Res<ViewSettings>,
    mut cameras: Query<(&OrbitCamera, &mut Transform, &mut Projection), (With<TowerCamera>, Changed<OrbitCamera>)>,
) {
    for (cam, mut t, mut proj) in &mut cameras {
        *t = cam.transform(settings.mode);
        if let Projection::Orthographic(o) = proj.as_mut() {
            o.scaling_mode = ScalingMode::FixedVertical { viewport_height: cam.distance };
        }
    }
}
