//! Pure layout of the layer towers: every node of every variant becomes a block placed
//! by its layer depth along the flow axis (x); blocks of one depth stack into a tower;
//! variants stand as parallel rows (z in 3D, bands in the flat 2D mode). Counterparts
//! across variants share a `group` and therefore the same slot of the same tower, so
//! the rows line up layer by layer. Colour by metric lives here too. No Bevy here: the
//! app turns blocks into entities.

pub mod colour;
mod towers;

pub use colour::{ColourMetric, LegendEntry, block_swatch, legend};
pub use towers::{
    BLOCK_HEIGHT, Block, DEPTH_SPACING, Layout, LayoutOptions, SLOT_SPACING, ViewMode, footprint, layout,
};
