//! Precision variants: which files of a folder are the float, int8 and uint8 versions
//! of one network, loaded side by side.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::format::{Access, Format, ImportError, Model, load_model_with};
use super::graph::NodeId;
use super::quant::{Layer, find_layers_with_plumbing};

/// The precision a variant's file name announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantKind {
    Float,
    Int8,
    Uint8,
    /// 4-bit weights: `*uint4*`.
    Uint4,
    /// 4-bit weights: `*int4*`, `*q4*`.
    Int4,
    /// `*nbits*` (onnxruntime's `MatMulNBits`).
    NBits,
    /// `*fp8*`, `*float8*`.
    Fp8,
    Other,
}

impl VariantKind {
    /// Classifies a file name: `*uint8*`, `*int8*`, `*uint4*`, `*int4*`/`*q4*`, `*nbits*`,
    /// `*fp8*`/`*float8*`, `*float*`/`*fp32*` (case-insensitive, in that order).
    #[must_use]
    pub fn from_file_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.contains("uint8") {
            Self::Uint8
        } else if lower.contains("int8") {
            Self::Int8
        } else if lower.contains("uint4") {
            Self::Uint4
        } else if lower.contains("int4") || lower.contains("q4") {
            Self::Int4
        } else if lower.contains("nbits") {
            Self::NBits
        } else if lower.contains("fp8") || lower.contains("float8") {
            Self::Fp8
        } else if lower.contains("float") || lower.contains("fp32") || lower.contains("f32") {
            Self::Float
        } else {
            Self::Other
        }
    }

    /// Default variant name for the kind.
    #[must_use]
    pub fn default_name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Int8 => "int8",
            Self::Uint8 => "uint8",
            Self::Uint4 => "uint4",
            Self::Int4 => "int4",
            Self::NBits => "nbits",
            Self::Fp8 => "fp8",
            Self::Other => "model",
        }
    }
}

/// A file to load as one variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariantSpec {
    pub name: String,
    pub kind: VariantKind,
    pub path: PathBuf,
}

/// Why a path could not be turned into variants.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot read folder: {source}: {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no model file ({exts}) in folder: {0}", exts = Format::list())]
    NoModel(PathBuf),
    #[error("not a {exts} file or a folder: {0}", exts = Format::list())]
    NotModel(PathBuf),
    #[error("--variant expects NAME=PATH, got {0:?}")]
    BadVariantArg(String),
}

/// Finds the variants of `path`: a folder's model files of every known [`Format`]
/// (sorted, classified by name),
/// or a single file. Files of one kind beyond the first are named by their file stem.
///
/// # Errors
/// When the folder cannot be read or holds no `.onnx` file.
pub fn discover(path: &Path) -> Result<Vec<VariantSpec>, DiscoverError> {
    let io = |source| DiscoverError::Io { path: path.to_path_buf(), source };
    if path.is_file() {
        if Format::of_path(path).is_none() {
            return Err(DiscoverError::NotModel(path.to_path_buf()));
        }
        return Ok(name_specs(vec![path.to_path_buf()]));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && Format::of_path(p).is_some())
        .collect();
    if files.is_empty() {
        return Err(DiscoverError::NoModel(path.to_path_buf()));
    }
    files.sort();
    Ok(name_specs(files))
}

fn name_specs(files: Vec<PathBuf>) -> Vec<VariantSpec> {
    let mut specs: Vec<VariantSpec> = Vec::new();
    for path in files {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = VariantKind::from_file_name(&file);
        let taken = |n: &str| specs.iter().any(|s| s.name == n);
        let name = if kind != VariantKind::Other && !taken(kind.default_name()) {
            kind.default_name().to_string()
        } else {
            stem
        };
        specs.push(VariantSpec { name, kind, path });
    }
    // float first, so it is the reference
    specs.sort_by_key(|s| s.kind != VariantKind::Float);
    specs
}

/// Parses `NAME=PATH` from `--variant`.
///
/// # Errors
/// When there is no `=` or a side is empty.
pub fn parse_variant_arg(arg: &str) -> Result<VariantSpec, DiscoverError> {
    let Some((name, path)) = arg.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
        return Err(DiscoverError::BadVariantArg(arg.to_string()));
    };
    let lower = name.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "float" | "fp32" | "f32" => VariantKind::Float,
        _ => VariantKind::from_file_name(&lower),
    };
    Ok(VariantSpec { name: name.to_string(), kind, path: PathBuf::from(path) })
}

/// One loaded variant.
#[derive(Clone, Debug)]
pub struct Variant {
    pub spec: VariantSpec,
    pub model: Model,
    /// Its layers in topological order.
    pub layers: Vec<Layer>,
    /// Nodes that only carry its parameters' quantization (weight DQ, pass-through nodes
    /// of parameters, Cast/Mul of weight-only schemes): not compared as nodes.
    pub plumbing: std::collections::HashSet<NodeId>,
}

impl Variant {
    /// A variant of a loaded model: finds its layers.
    #[must_use]
    pub fn new(spec: VariantSpec, model: Model) -> Self {
        let (layers, plumbing) = find_layers_with_plumbing(&model.graph, &model.topo_order);
        Self { spec, model, layers, plumbing }
    }
}

/// Loads one variant and finds its layers.
///
/// # Errors
/// When the file is not a usable ONNX model.
pub fn load_variant(spec: &VariantSpec, access: Access) -> Result<Variant, ImportError> {
    Ok(Variant::new(spec.clone(), load_model_with(&spec.path, access)?))
}

/// Loads several variants in parallel; each keeps its own result. (Each file is in memory
/// once, as its own buffer: tensors are ranges of it, so loading all at once does not
/// double the peak.)
#[must_use]
pub fn load_variants(specs: &[VariantSpec]) -> Vec<Result<Variant, ImportError>> {
    load_variants_with(specs, Access::Read)
}

/// [`load_variants`] with the given [`Access`] (the command line maps its files).
#[must_use]
pub fn load_variants_with(specs: &[VariantSpec], access: Access) -> Vec<Result<Variant, ImportError>> {
    specs.par_iter().map(|s| load_variant(s, access)).collect()
}

#[cfg(test)]
mod tests {
    use super::VariantKind;

    #[test]
    fn file_names_announce_their_kind() {
        for (name, kind) in [
            ("resnet8_UINT8.onnx", VariantKind::Uint8),
            ("resnet8_int8.onnx", VariantKind::Int8),
            ("llama_uint4_b32.onnx", VariantKind::Uint4),
            ("llama_int4.onnx", VariantKind::Int4),
            ("phi-3-mini-q4.onnx", VariantKind::Int4),
            ("model_nbits.onnx", VariantKind::NBits),
            ("model_fp8.onnx", VariantKind::Fp8),
            ("model_float8_e4m3.onnx", VariantKind::Fp8),
            ("model_fp32.onnx", VariantKind::Float),
            ("model.onnx", VariantKind::Other),
        ] {
            assert_eq!(VariantKind::from_file_name(name), kind, "{name}");
        }
    }
}
