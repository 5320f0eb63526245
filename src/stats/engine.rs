//! The one place that chooses a statistics engine for a value set: 8-bit tensors whose
//! parameters allow it are counted per `(channel, q)` (`counted.rs`, one pass), every
//! other set is streamed (`streamed.rs`, two passes).

use super::counted::Counted;
use super::kernel::{Histogram, Summary};
use super::source::Values;
use super::streamed::{FEW, Streamed};
use crate::model::tensor::ReadError;

/// The counted engine's tables of `values` when it applies (see [`Counted::of`]).
///
/// # Errors
/// When external data can no longer be read.
pub(crate) fn counted(values: Values<'_>) -> Result<Option<Counted>, ReadError> {
    match values {
        Values::Dequantized(t, p) => Counted::of(t, p),
        _ => Ok(None),
    }
}

/// What the first pass left of one value set.
pub(crate) enum FirstPass<'a> {
    Counted(Counted),
    Streamed(Streamed<'a>),
}

impl<'a> FirstPass<'a> {
    pub(crate) fn of(values: Values<'a>) -> Result<Self, ReadError> {
        if let Some(c) = counted(values)? {
            return Ok(Self::Counted(c));
        }
        // (summaries and histograms do not depend on order)
        Ok(Self::Streamed(Streamed::first_pass(values.any_order(), FEW)?))
    }

    pub(crate) fn bounds(&self) -> Option<(f64, f64)> {
        match self {
            Self::Counted(c) => c.bounds(),
            Self::Streamed(s) => s.bounds(),
        }
    }

    pub(crate) fn finish(self, bins: Option<(f64, f64, usize)>) -> Result<(Summary, Option<Histogram>), ReadError> {
        match self {
            Self::Counted(c) => Ok((c.summary(), bins.map(|(lo, hi, n)| c.histogram(lo, hi, n)))),
            Self::Streamed(s) => s.finish(bins),
        }
    }
}
