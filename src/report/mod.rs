//! Headless reports built from the pure layers: JSON, CSV and a text table.

pub mod bench;
pub mod build;
pub mod format;

pub use build::{
    LayerReport, LayerVariant, Report, ReportOptions, SharedHistogram, build_report, layer_report, layer_values, rebin,
    reference_index,
};
pub use format::{SortKey, sort_layers, to_csv, to_json, to_table};
