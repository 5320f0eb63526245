//! The ONNX reader: protobuf decode (tract-onnx's types, kept to this folder) with the
//! initializer payloads left as ranges of the file's buffer (`wire.rs`), into our graph.

pub(crate) mod gather_block;
pub mod import;
pub(crate) mod nbits;
pub mod wire;

pub use import::{model_from_bytes, model_from_proto};
