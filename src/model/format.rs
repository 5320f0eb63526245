//! Model file formats and what every format's reader produces: a [`Model`] (our graph,
//! format-free), read or mapped per [`Access`]. Each format's reader sits in its own
//! folder (`onnx/`, `torch/`); [`Format::of_path`] picks it, and folder discovery lists the files
//! of every known format.

use std::path::{Path, PathBuf};

use super::graph::{Graph, NodeId};
use super::tensor::FileBytes;

/// A model file format quantlens reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ONNX protobuf (`.onnx`).
    Onnx,
    /// A PyTorch archive (`.pt`, `.pth`): `torch.save` or `torch.jit.save`.
    Torch,
}

impl Format {
    /// Every format, in discovery order.
    pub const ALL: [Self; 2] = [Self::Onnx, Self::Torch];

    /// The file extensions (lowercase, without the dot).
    #[must_use]
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Onnx => &["onnx"],
            Self::Torch => &["pt", "pth"],
        }
    }

    /// The format of `path`, from its extension (case-insensitive).
    #[must_use]
    pub fn of_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?;
        Self::ALL.into_iter().find(|f| f.extensions().iter().any(|e| ext.eq_ignore_ascii_case(e)))
    }

    /// `.onnx, .pt, .pth`, for messages.
    #[must_use]
    pub fn list() -> String {
        Self::ALL.iter().flat_map(|f| f.extensions()).map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ")
    }
}

/// Why a model file could not be opened at all. Per-tensor problems are [`Issue`]s instead.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read file: {source}: {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("file is empty: {0}")]
    Empty(PathBuf),
    #[error("not an ONNX model (protobuf decoding failed: {reason}): {path}")]
    NotProtobuf { path: PathBuf, reason: String },
    #[error("ONNX model has no graph: {0}")]
    NoGraph(PathBuf),
    #[error("ONNX graph is empty (no nodes): {0}")]
    EmptyGraph(PathBuf),
    #[error("not a model file quantlens reads (it reads {exts}): {0}", exts = Format::list())]
    UnknownFormat(PathBuf),
    #[error("not a PyTorch file quantlens reads ({reason}): {path}")]
    NotTorch { path: PathBuf, reason: String },
}

/// A loaded model file.
#[derive(Clone, Debug)]
pub struct Model {
    pub path: PathBuf,
    pub graph: Graph,
    /// Default-domain opset version (0 when not declared).
    pub opset: i64,
    pub producer: String,
    /// The main graph's name (Model Explorer keys its graph by it).
    pub graph_name: String,
    /// Node ids in topological order (see [`Graph::compute_depths`]).
    pub topo_order: Vec<NodeId>,
}

/// How a model file's bytes are brought into memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// Read whole into a buffer the model owns (the window's choice: a file rewritten or
    /// truncated while it is open cannot touch what was loaded).
    #[default]
    Read,
    /// Memory-mapped: nothing copied, pages come from the page cache as statistics touch
    /// them (the command line's choice: a short-lived process; the file must not be
    /// truncated while it runs). Falls back to reading when mapping fails.
    Map,
}

/// Loads `path` (read into memory) in the format its extension names. ONNX: the file is
/// read once, decoded with tract-onnx's protobuf types, and the initializer payloads stay
/// ranges of that buffer (or of external files, streamed later).
///
/// # Errors
/// When the file cannot be read or is not a usable ONNX model.
pub fn load_model(path: &Path) -> Result<Model, ImportError> {
    load_model_with(path, Access::Read)
}

/// Loads `path` with the given [`Access`].
///
/// # Errors
/// When the file cannot be read or is not a usable ONNX model.
pub fn load_model_with(path: &Path, access: Access) -> Result<Model, ImportError> {
    let Some(format) = Format::of_path(path) else {
        return Err(ImportError::UnknownFormat(path.to_path_buf()));
    };
    let io = |source| ImportError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    if meta.len() == 0 {
        return Err(ImportError::Empty(path.to_path_buf()));
    }
    let bytes = match access {
        Access::Map => map_file(path).map_or_else(|| std::fs::read(path).map(FileBytes::Owned), Ok),
        Access::Read => std::fs::read(path).map(FileBytes::Owned),
    }
    .map_err(io)?;
    match format {
        Format::Onnx => super::onnx::import::model_from_buffer(bytes, path),
        Format::Torch => super::torch::model_from_buffer(bytes, path),
    }
}

/// Maps `path` read-only, or `None` when it cannot be mapped.
#[allow(unsafe_code)]
pub(crate) fn map_file(path: &Path) -> Option<FileBytes> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: the map is read-only and nothing here writes through it; memmap2's one
    // requirement is that the file is not modified or truncated while mapped, which
    // `Access::Map` documents as its caller's condition (the command line maps, the
    // window reads).
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    Some(FileBytes::Mapped(map))
}
