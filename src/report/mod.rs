//! Headless reports built from the pure layers: JSON, CSV and a text table.

pub mod bench;
pub mod build;
pub mod explorer;
pub mod format;
pub mod gate;
pub mod markdown;

pub use build::{
    ActivationReport, InitializerReport, LayerReport, LayerVariant, ParamKey, QuantOverrides, Report, ReportOptions,
    SharedHistogram, build_report, layer_report, layer_report_with, layer_values, param_values, param_values_with,
    rebin, reference_index,
};
pub use explorer::{ExplorerMetric, to_model_explorer};
pub use format::{SortKey, sort_layers, sqnr_text, to_csv, to_json, to_table};
pub use gate::{Thresholds, Verdict, check};
pub use markdown::to_markdown;
