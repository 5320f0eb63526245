//! Pure statistics over tensors: summaries, shared-bin histograms, error metrics and
//! per-channel summaries. Streamed in chunks; no Bevy.

pub mod blocks;
pub mod channel;
pub mod counted;
mod engine;
pub mod histogram;
pub mod kernel;
pub mod layer;
pub mod metrics;
pub mod running;
pub(crate) mod simd;
pub mod source;
mod streamed;
pub mod summary;

pub use channel::{ChannelSummary, Spread, channel_summaries, spread};
pub use histogram::{histogram, shared_histograms, shared_range};
pub use kernel::{Histogram, MAX_BINS, Summary};
pub use layer::{SetStats, layer_stats};
pub use metrics::{ErrorMetrics, RunningClip, RunningComparison, compare};
pub use running::{GridHistogram, RunningStats, shared_grid_histograms};
pub use source::Values;
pub use summary::summarize;
