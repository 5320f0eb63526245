//! Running the variants (tract, behind our own types): model inputs (seeded random or
//! `.npy`), every variant run on the same samples with its activations captured, and the
//! activations compared as onnxruntime's `qdq_loss_debug` does (`qdq_err`, `xmodel_err`)
//! with clipping against each activation's representable range. No Bevy.

pub mod activations;
pub mod edit;
pub mod eval;
pub mod inputs;
pub mod npy;
pub mod run;
pub mod sensitivity;

pub use activations::{ActivationRow, ActivationVariant, activation_report};
pub use edit::{Edit, apply_edits};
pub use eval::{Accuracy, Evaluation, evaluate, stratified, wilson};
pub use inputs::{InputSpec, InputTensor, Sample, labelled_samples, samples};
pub use sensitivity::{SensitivityRow, sensitivity};

/// Why a variant could not be run.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{0}")]
    Input(String),
    #[error("cannot read {what}: {reason}: {path}")]
    Read { what: &'static str, reason: String, path: std::path::PathBuf },
    /// tract refused the model or a run (an op it does not implement names itself here).
    #[error("tract cannot run {variant}: {reason}")]
    Tract { variant: String, reason: String },
}
