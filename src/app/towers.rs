//! The layer towers: one entity per block (shared cube mesh, one material per palette
//! swatch so blocks batch), the edges as one line mesh, badges for folded Q/DQ, and
//! recolouring driven by change detection (new stats, another metric).

use std::collections::HashMap;
use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::mesh::PrimitiveTopology;
use bevy::prelude::*;

use super::AppSystems;

use crate::layout::{Layout, LayoutOptions, block_swatch, layout};
use crate::theme::{self, Swatch};

use super::model::{GraphNode, LayerRow, LayerStats, OpenModel, SelectRequest, ViewSettings};

/// Spawns and recolours the towers.
pub struct TowersPlugin;

impl Plugin for TowersPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<BlockIndex>()
            .init_resource::<RecolourWork>()
            .add_systems(Startup, setup_palette)
            .add_systems(Update, (rebuild_towers, recolour_blocks).chain().in_set(AppSystems::Present));
    }
}

/// Shared meshes and one material per swatch.
#[derive(Resource)]
pub struct Palette {
    pub cube: Handle<Mesh>,
    pub materials: Vec<Handle<StandardMaterial>>,
    pub edge: Handle<StandardMaterial>,
    pub badge: Handle<StandardMaterial>,
}

impl Palette {
    fn material(&self, s: Swatch) -> Handle<StandardMaterial> {
        self.materials.get(usize::from(s.0)).cloned().unwrap_or_default()
    }
}

/// Block entities by group and by row.
#[derive(Resource, Default, Debug)]
pub struct BlockIndex {
    pub by_group: HashMap<usize, Vec<Entity>>,
    pub by_row: HashMap<usize, Vec<Entity>>,
    /// Entity of each layout block, in block order.
    pub by_block: Vec<Entity>,
    /// Root and options the towers were built for.
    built: Option<(Entity, LayoutOptions)>,
}

/// Counts recolouring work: a frame where nothing changed recolours nothing.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecolourWork {
    /// Blocks whose swatch was evaluated.
    pub evaluated: u64,
    /// Blocks whose material actually changed.
    pub changed: u64,
}

/// The drawn swatch of a block.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSwatch(pub Swatch);

/// The line mesh of all edges.
#[derive(Component)]
pub struct EdgeLines;

fn srgb(rgb: theme::Rgb) -> Color {
    Color::srgb(rgb[0], rgb[1], rgb[2])
}

fn setup_palette(
    mut commands: Commands,
    meshes: Option<ResMut<Assets<Mesh>>>,
    materials: Option<ResMut<Assets<StandardMaterial>>>,
) {
    let (Some(mut meshes), Some(mut materials)) = (meshes, materials) else { return };
    let lit = |rgb: theme::Rgb| StandardMaterial { base_color: srgb(rgb), perceptual_roughness: 0.7, ..default() };
    commands.insert_resource(Palette {
        cube: meshes.add(Cuboid::new(1.0, 1.0, 1.0)),
        materials: Swatch::all().map(|s| materials.add(lit(s.rgb()))).collect(),
        edge: materials.add(StandardMaterial { base_color: srgb(theme::EDGE), unlit: true, ..default() }),
        badge: materials.add(StandardMaterial {
            base_color: srgb(theme::BADGE),
            emissive: LinearRgba::from(srgb(theme::BADGE)) * 0.3,
            ..default()
        }),
    });
}

/// (Re)builds blocks when a model opens or the layout options change.
pub(crate) fn rebuild_towers(
    mut commands: Commands,
    open: Option<ResMut<OpenModel>>,
    settings: Res<ViewSettings>,
    palette: Option<Res<Palette>>,
    mut meshes: Option<ResMut<Assets<Mesh>>>,
    mut index: ResMut<BlockIndex>,
    old: Query<Entity, Or<(With<GraphNode>, With<EdgeLines>)>>,
    mut select: MessageWriter<SelectRequest>,
) {
    let Some(mut open) = open else { return };
    let options = LayoutOptions { mode: settings.mode, fold_quant: settings.fold_quant };
    if index.built == Some((open.root, options)) {
        return;
    }
    let same_root = index.built.is_some_and(|(r, _)| r == open.root);
    if same_root {
        // options changed: new layout of the same model
        let l = layout(&open.data.variants, &open.data.rows, open.data.reference, options);
        open.layout = Arc::new(l);
        for e in &old {
            commands.entity(e).despawn();
        }
    } else {
        select.write(SelectRequest { group: None, frame: false });
    }
    index.by_group.clear();
    index.by_row.clear();
    index.by_block.clear();
    let root = open.root;
    let l: &Layout = &open.layout;
    for (bi, b) in l.blocks.iter().enumerate() {
        let Some(v) = open.data.variants.get(b.variant) else { continue };
        let op = v.model.graph.node(b.node).map(|n| n.op_type.as_str()).unwrap_or_default();
        let swatch = Swatch::op(op);
        let mut e = commands.spawn((
            GraphNode { variant: b.variant, node: b.node, block: bi, group: b.group, row: b.row },
            BlockSwatch(swatch),
            Transform::from_translation(Vec3::from_array(b.center)).with_scale(Vec3::from_array(b.size)),
            Visibility::default(),
            ChildOf(root),
        ));
        if let Some(p) = &palette {
            e.insert((Mesh3d(p.cube.clone()), MeshMaterial3d(p.material(swatch))));
            if !b.folded.is_empty() {
                // a flat badge on top: the folded quantization
                e.with_child((
                    Mesh3d(p.cube.clone()),
                    MeshMaterial3d(p.badge.clone()),
                    Transform::from_xyz(0.0, 0.55, 0.0).with_scale(Vec3::new(0.5, 0.08, 0.5)),
                    bevy::picking::Pickable::IGNORE,
                ));
            }
        }
        let id = e.id();
        index.by_block.push(id);
        index.by_group.entry(b.group).or_default().push(id);
        if let Some(r) = b.row {
            index.by_row.entry(r).or_default().push(id);
        }
    }
    // a graph without edges (one node) gets no line mesh: an empty one upsets the
    // renderer's allocator
    if let (Some(p), Some(meshes), Some(mesh)) = (&palette, meshes.as_mut(), edge_mesh(l)) {
        commands.spawn((
            EdgeLines,
            Mesh3d(meshes.add(mesh)),
            MeshMaterial3d(p.edge.clone()),
            Transform::default(),
            bevy::picking::Pickable::IGNORE,
            ChildOf(root),
        ));
    }
    index.built = Some((root, options));
}

/// One line list: from the producer's outflow face to the consumer's inflow face; `None`
/// without edges.
fn edge_mesh(l: &Layout) -> Option<Mesh> {
    let mut positions: Vec<[f32; 3]> = Vec::with_capacity(l.edges.len() * 2);
    for &(a, b) in &l.edges {
        let (Some(pa), Some(pb)) = (l.blocks.get(a), l.blocks.get(b)) else { continue };
        positions.push([pa.center[0] + pa.size[0] / 2.0, pa.center[1], pa.center[2]]);
        positions.push([pb.center[0] - pb.size[0] / 2.0, pb.center[1], pb.center[2]]);
    }
    if positions.is_empty() {
        return None;
    }
    Some(
        Mesh::new(PrimitiveTopology::LineList, RenderAssetUsages::default())
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions),
    )
}

/// Recolours the blocks whose stats arrived, or all blocks when the metric changed.
fn recolour_blocks(
    settings: Res<ViewSettings>,
    open: Option<Res<OpenModel>>,
    palette: Option<Res<Palette>>,
    index: Res<BlockIndex>,
    changed_rows: Query<(&LayerRow, &LayerStats), Changed<LayerStats>>,
    all_rows: Query<(&LayerRow, &LayerStats)>,
    added: Query<(), Added<GraphNode>>,
    mut blocks: Query<(&GraphNode, &mut BlockSwatch, Option<&mut MeshMaterial3d<StandardMaterial>>)>,
    mut work: ResMut<RecolourWork>,
    mut last_metric: Local<Option<crate::layout::ColourMetric>>,
    run: Res<super::run::RunState>,
    mut last_run: Local<u64>,
) {
    let Some(open) = open else { return };
    let ran = *last_run != run.version && settings.metric.needs_run();
    *last_run = run.version;
    let everything = *last_metric != Some(settings.metric) || !added.is_empty() || ran;
    *last_metric = Some(settings.metric);
    let reports: HashMap<usize, &LayerStats> = if everything {
        all_rows.iter().map(|(r, s)| (r.0, s)).collect()
    } else {
        changed_rows.iter().map(|(r, s)| (r.0, s)).collect()
    };
    if !everything && reports.is_empty() {
        return;
    }
    let mut targets: Vec<Entity> = Vec::new();
    if everything {
        targets.extend(index.by_group.values().flatten().copied());
    } else {
        for r in reports.keys() {
            targets.extend(index.by_row.get(r).into_iter().flatten().copied());
        }
    }
    let costs = crate::view::run::Costs::of(&run.findings);
    for e in targets {
        let Ok((node, mut swatch, material)) = blocks.get_mut(e) else { continue };
        let Some(v) = open.data.variants.get(node.variant) else { continue };
        let op = v.model.graph.node(node.node).map(|n| n.op_type.as_str()).unwrap_or_default();
        let report = node.row.and_then(|r| reports.get(&r)).map(|s| s.0.as_ref());
        let own = report.and_then(|r| r.variants.iter().find(|lv| lv.variant == v.spec.name));
        let is_reference = node.variant == open.data.reference;
        let facts = if settings.metric.needs_run() {
            crate::view::run::block_run(&run.findings, &costs, report, &v.spec.name, is_reference)
        } else {
            crate::view::run::BlockRun::default()
        };
        let s = block_swatch(settings.metric, op, own, report, is_reference, facts);
        work.evaluated += 1;
        if swatch.set_if_neq(BlockSwatch(s)) {
            work.changed += 1;
            if let (Some(mut m), Some(p)) = (material, &palette) {
                m.0 = p.material(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_without_edges_gets_no_line_mesh() {
        // a one-node model: an empty line mesh made Bevy's allocator log a use-after-free
        assert!(edge_mesh(&Layout::default()).is_none());
        let block = |x: f32| crate::layout::Block {
            variant: 0,
            node: 0,
            group: 0,
            row: None,
            layer: None,
            depth: 0,
            slot: 0,
            center: [x, 0.0, 0.0],
            size: [1.0; 3],
            params: 0,
            folded: Vec::new(),
            unmatched: false,
        };
        let l = Layout { blocks: vec![block(0.0), block(2.0)], edges: vec![(0, 1)], ..Layout::default() };
        let mesh = edge_mesh(&l).unwrap();
        assert_eq!(mesh.count_vertices(), 2);
    }
}
