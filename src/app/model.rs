//! The ECS shape of an open model: components, resources and messages shared by the
//! feature plugins. Plain data; the plugins own the behaviour.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::prelude::*;

use crate::layout::{ColourMetric, Layout, ViewMode};
use crate::model::matching::MatchRow;
use crate::model::{NodeId, Variant};
use crate::model::{QuantParams, WeightId};
use crate::report::{LayerReport, ParamKey};
use crate::view::ListRow;

/// The loaded variants and their matching: shared, read-only, handed to tasks.
#[derive(Clone, Debug)]
pub struct ModelData {
    pub path: PathBuf,
    pub variants: Arc<Vec<Variant>>,
    pub rows: Arc<Vec<MatchRow>>,
    pub reference: usize,
    /// Files that could not be loaded (the rest still opened).
    pub failures: Vec<String>,
    /// Per non-reference variant: nodes it lacks or adds against the reference.
    pub differences: Arc<Vec<(usize, crate::model::NodeDiff)>>,
}

/// Marks the root entity of an open model; everything else of it is `ChildOf` it.
#[derive(Component, Debug)]
pub struct ModelRoot;

/// The open model (at most one; opening another replaces it).
#[derive(Resource, Debug)]
pub struct OpenModel {
    pub root: Entity,
    pub data: ModelData,
    /// Layout of the current [`ViewSettings`].
    pub layout: Arc<Layout>,
    /// The layer list's rows; refreshed when stats arrive.
    pub list: Vec<ListRow>,
    /// Changes whenever `list` does, across models too, so that views can cache what they
    /// derive from the rows (the layer list's filtered order).
    pub list_version: u64,
}

/// A precision variant of the open model.
#[derive(Component, Debug)]
pub struct VariantEntity {
    pub index: usize,
    pub name: String,
}

/// A matched layer across variants (a match row): the holder of its statistics.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRow(pub usize);

/// Statistics, metrics and histograms of a layer row, computed on a task.
#[derive(Component, Debug, Clone)]
pub struct LayerStats(pub Arc<LayerReport>);

/// A graph node of one variant, drawn as a block.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphNode {
    pub variant: usize,
    pub node: NodeId,
    /// Index into [`OpenModel::layout`]`.blocks`.
    pub block: usize,
    /// Counterpart group (same value in every variant).
    pub group: usize,
    /// Match row, for layers.
    pub row: Option<usize>,
}

/// A parameter tensor of one layer of one variant (a row of [`crate::model::weights`]),
/// child of its [`VariantEntity`]; quantized ones carry a [`Quant`].
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightEntity {
    pub id: WeightId,
    pub variant: usize,
    /// Index into the variant's `layers`.
    pub layer: usize,
    pub key: ParamKey,
    /// The match row of its layer.
    pub row: Option<usize>,
}

/// The quantization parameters a weight's statistics use: the file's when a model opens;
/// an edit replaces them, and the row's statistics are computed again (`Changed<Quant>`).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Quant(pub QuantParams);

/// A statically quantized activation of a variant (its `QuantizeLinear → DequantizeLinear`
/// pair, named by the float tensor), editable for runs.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct ActivationEntity {
    pub variant: usize,
    pub tensor: String,
}

/// The factor an edit puts on an activation's scale (1: the file's).
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct ActScale(pub f64);

/// How the towers are drawn.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSettings {
    pub metric: ColourMetric,
    pub mode: ViewMode,
    pub fold_quant: bool,
    pub histogram_bins: usize,
    /// Which parameter of the selected layer the histogram shows.
    pub histogram_param: crate::report::ParamKey,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            metric: ColourMetric::Sqnr,
            mode: ViewMode::ThreeD,
            fold_quant: true,
            histogram_bins: 64,
            histogram_param: crate::report::ParamKey::WEIGHT,
        }
    }
}

/// The selected counterpart group (one layer in every variant).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub group: Option<usize>,
}

/// Open a folder or file.
#[derive(Message, Debug, Clone)]
pub struct OpenRequest(pub PathBuf);

/// Select a group (`None` clears).
#[derive(Message, Debug, Clone, Copy)]
pub struct SelectRequest {
    pub group: Option<usize>,
    pub frame: bool,
}

/// Move the camera onto the selection, onto everything, or onto the overview (everything
/// when it reads at that scale, else the start of the graph: long chains would shrink to
/// a line).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRequest {
    Selection,
    All,
    Overview,
}

/// Save a screenshot of the window.
#[derive(Message, Debug, Clone)]
pub struct ScreenshotRequest(pub Option<PathBuf>);

/// What is going on, for the top bar.
#[derive(Resource, Debug, Default, Clone)]
pub struct Status {
    /// Loading this path.
    pub loading: Option<PathBuf>,
    pub stats_done: usize,
    pub stats_total: usize,
    /// The last load error (the previous model stays open).
    pub error: Option<String>,
    /// Informational line (partial loads, screenshot saved, …).
    pub info: Option<String>,
}

impl Status {
    /// Work in progress as `(what, fraction)`.
    #[must_use]
    pub fn progress(&self) -> Option<(String, f32)> {
        if let Some(p) = &self.loading {
            return Some((format!("loading {}", p.display()), 0.0));
        }
        (self.stats_done < self.stats_total).then(|| {
            (
                format!("statistics {}/{}", self.stats_done, self.stats_total),
                self.stats_done as f32 / self.stats_total.max(1) as f32,
            )
        })
    }
}
