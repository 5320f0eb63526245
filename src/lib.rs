//! quantlens: see what quantization did to a network.
//!
//! The pure layers (`model`, `stats`, `report`, `layout`, `view`, `theme`) build and test without
//! Bevy (`cargo test --no-default-features`); `ui` (egui views) and `app` (Bevy plugins)
//! come with the default `gui` feature.

pub mod alloc;
#[cfg(feature = "gui")]
pub mod app;
pub mod infer;
pub mod layout;
pub mod model;
pub mod report;
pub mod stats;
pub mod theme;
#[cfg(feature = "gui")]
pub mod ui;
pub mod view;
pub mod write;
