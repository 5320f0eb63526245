//! Selection: one resource naming a counterpart group. Clicking a block (mesh picking)
//! or a panel row sends a [`SelectRequest`]; the selected block and its counterparts in
//! every variant get outlines, unmatched layers a magenta one.

use bevy::picking::events::{Click, Pointer};
use bevy::prelude::*;

use super::AppSystems;

use crate::theme;

use super::model::{FrameRequest, GraphNode, OpenModel, SelectRequest, Selection};
use super::towers::BlockIndex;

/// Selection and its highlight.
pub struct SelectionPlugin;

impl Plugin for SelectionPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Selection>()
            .add_message::<SelectRequest>()
            .add_message::<FrameRequest>()
            .add_observer(select_clicked_block)
            .add_systems(
                Update,
                apply_select_requests.in_set(AppSystems::Present).after(super::towers::rebuild_towers),
            );
    }
}

/// Highlights (needs a renderer: gizmos).
pub struct HighlightPlugin;

impl Plugin for HighlightPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PostUpdate, draw_highlights.after(TransformSystems::Propagate));
    }
}

fn select_clicked_block(
    click: On<Pointer<Click>>,
    blocks: Query<&GraphNode>,
    mut select: MessageWriter<SelectRequest>,
) {
    if let Ok(node) = blocks.get(click.entity) {
        select.write(SelectRequest { group: Some(node.group), frame: false });
    }
}

fn apply_select_requests(
    mut requests: MessageReader<SelectRequest>,
    mut selection: ResMut<Selection>,
    mut frame: MessageWriter<FrameRequest>,
) {
    for r in requests.read() {
        selection.set_if_neq(Selection { group: r.group });
        if r.frame && r.group.is_some() {
            frame.write(FrameRequest::Selection);
        }
    }
}

fn draw_highlights(
    mut gizmos: Gizmos,
    selection: Res<Selection>,
    index: Res<BlockIndex>,
    open: Option<Res<OpenModel>>,
    blocks: Query<(&GraphNode, &GlobalTransform)>,
) {
    let Some(open) = open else { return };
    let colour = |rgb: theme::Rgb| Color::srgb(rgb[0], rgb[1], rgb[2]);
    if let Some(g) = selection.group {
        for (i, e) in index.by_group.get(&g).into_iter().flatten().enumerate() {
            let Ok((_, t)) = blocks.get(*e) else { continue };
            let grown = t.compute_transform().with_scale(t.scale() * 1.15);
            gizmos.cube(grown, colour(if i == 0 { theme::SELECTED } else { theme::COUNTERPART }));
        }
    }
    for &bi in &open.layout.unmatched {
        let Some(Ok((_, t))) = index.by_block.get(bi).map(|e| blocks.get(*e)) else { continue };
        gizmos.cube(t.compute_transform().with_scale(t.scale() * 1.08), colour(theme::UNMATCHED));
    }
}
