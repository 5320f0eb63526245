//! quantlens: see what quantization did to a network.
//!
//! The pure layers (`model`, `stats`, `report`) build and test without Bevy
//! (`cargo test --no-default-features`).

pub mod model;
pub mod report;
pub mod stats;
