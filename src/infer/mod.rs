//! Running the variants (tract, behind our own types): model inputs (seeded random or
//! `.npy`), every variant run on the same samples with its activations captured, and the
//! activations compared as onnxruntime's `qdq_loss_debug` does (`qdq_err`, `xmodel_err`)
//! with clipping against each activation's representable range. No Bevy.

pub mod activations;
pub mod edit;
pub mod eval;
pub mod fake_quant;
pub mod inputs;
pub mod npy;
pub mod ops;
pub mod run;
pub mod sensitivity;

pub use activations::{ActivationRow, ActivationVariant, activation_report, activation_report_edited};
pub use edit::{Change, Edit, Field, apply_edits};
pub use eval::{Accuracy, Evaluation, evaluate, evaluate_edited, quick_set, stratified, wilson};
pub use inputs::{ImageOptions, InputSpec, InputTensor, Sample, SampleStream, labelled_samples, open_samples, samples};
pub use sensitivity::{SensitivityRow, sensitivity};

/// Values of an activation summed at a time, in the runs' probes and in the comparisons
/// after them alike (so that both sum the same tiles, bit for bit): three tiles of f32
/// (float, before, after) fit in a core's L2 cache.
pub const TILE: usize = 64 * 1024;

/// A tensor's values when it holds f32 in memory.
pub(crate) fn f32s(t: &tract_onnx::prelude::Tensor) -> Option<&[f32]> {
    t.as_plain_ram()?.as_slice::<f32>().ok()
}

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

/// Hands each sample to `f` in turn (`first`, already read, then the rest), with the one
/// after it when there is one (read ahead, so that work on it can start beside the
/// current one's), until `f` returns false, `progress` is cancelled, or a sample cannot
/// be read (kept in `failures`); counts the samples done in `progress`.
pub(crate) fn for_each_sample(
    first: Sample,
    mut rest: impl Iterator<Item = Result<Sample, InferError>>,
    progress: &Progress,
    failures: &mut Vec<InferError>,
    mut f: impl FnMut(&Sample, Option<&Sample>, &mut Vec<InferError>) -> bool,
) {
    let mut current = Some(first);
    while let Some(sample) = current.take() {
        if progress.cancelled() {
            break;
        }
        let next = match rest.next() {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                failures.push(e);
                None
            }
            None => None,
        };
        let go_on = f(&sample, next.as_ref(), failures);
        progress.advance();
        if !go_on {
            break;
        }
        current = next;
    }
}

/// A long run's progress, shared with another thread (the window's progress bar): samples
/// done so far, and a request to stop after the current sample.
#[derive(Debug, Default)]
pub struct Progress {
    done: std::sync::atomic::AtomicUsize,
    cancel: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// Samples done so far.
    #[must_use]
    pub fn done(&self) -> usize {
        self.done.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the run to stop after the sample it is on.
    pub fn cancel(&self) {
        self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Self::cancel`] was called.
    #[must_use]
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn advance(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
