//! egui view functions: view model in, actions out. Nothing here touches Bevy or model
//! state; each `*_ui` function draws into a `Ui` and returns the [`UiAction`]s the user
//! asked for, which the app turns into messages.

pub mod blocks;
pub mod histogram;
pub mod inspector;
pub mod layer_list;
pub mod menu;
pub mod ranges;
pub mod run;

use std::path::PathBuf;

use crate::layout::{ColourMetric, ViewMode};
use crate::theme::Rgb;

/// Something the user asked for in a panel.
#[derive(Clone, Debug, PartialEq)]
pub enum UiAction {
    /// Show the native folder dialog.
    OpenDialog,
    /// Open this folder or file.
    Open(PathBuf),
    /// Select a group of blocks (a layer across variants); `None` clears.
    Select(Option<usize>),
    /// Select and move the camera to it.
    SelectAndFrame(usize),
    FrameAll,
    SetMetric(ColourMetric),
    SetViewMode(ViewMode),
    /// Show Q/DQ nodes folded into their layer (true) or as blocks.
    SetFoldQuant(bool),
    SetHistogramBins(usize),
    /// Edit the main weight of a layer (or keep the layer in float).
    EditWeight {
        variant: usize,
        layer: usize,
        edit: crate::view::inspector::WeightEdit,
    },
    /// Scale a quantized activation's scale by `factor` against the file's (for runs).
    EditActivation {
        variant: usize,
        tensor: String,
        factor: f64,
    },
    /// Undo the last edit.
    UndoEdit,
    /// Undo every edit.
    ResetEdits,
    /// Write the edited variants into a folder the user picks.
    ExportEdits,
    /// Show the histogram of this parameter of the selected layer.
    SetHistogramParam(crate::report::ParamKey),
    /// Select the block of node `node` of variant `variant` (`usize::MAX`: the reference).
    SelectNode {
        variant: usize,
        node: crate::model::NodeId,
    },
    Screenshot,
    /// Run the variants (or stop the run).
    Run(crate::view::run::RunCommand),
    /// Samples of a quick run.
    SetRunSamples(usize),
    /// Whether an edit runs the last activations or quick evaluation again.
    SetRerunOnEdit(bool),
}

/// An egui colour from a theme colour.
#[must_use]
pub fn colour(rgb: Rgb) -> egui::Color32 {
    let c = |x: f32| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    egui::Color32::from_rgb(c(rgb[0]), c(rgb[1]), c(rgb[2]))
}
