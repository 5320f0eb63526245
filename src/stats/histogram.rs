//! Histograms over shared bin edges, so the float weights and every variant's dequantized
//! weights of one layer are counted into the same bins.

use serde::Serialize;

use super::counted::Counted;
use super::source::Values;
use super::summary::Summary;
use crate::model::tensor::ReadError;

/// The most bins a histogram has (more are clamped to it).
pub const MAX_BINS: usize = 4096;

/// Counts of values in `bins` equal-width bins over `[lo, hi]` (numpy's `histogram` with
/// `range=(lo, hi)`: the last bin includes `hi`). Values outside the range or not finite
/// are counted in `outside` / `nonfinite`, so `counts` + `outside` + `nonfinite` = length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub outside: u64,
    pub nonfinite: u64,
}

impl Histogram {
    /// Bin edges (`bins + 1` values), as numpy's `linspace(lo, hi, bins + 1)`.
    #[must_use]
    pub fn edges(&self) -> Vec<f64> {
        edges(self.lo, self.hi, self.counts.len())
    }

    /// Sum of the bin counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[allow(clippy::cast_precision_loss)]
pub(super) fn edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let step = (hi - lo) / bins as f64;
    (0..=bins).map(|i| if i == bins { hi } else { lo + step * i as f64 }).collect()
}

/// The common range of several summaries (min of mins, max of maxes, finite values);
/// a degenerate range is widened by ±0.5 as numpy does.
#[must_use]
pub fn shared_range<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Option<(f64, f64)> {
    range_of(summaries.into_iter().filter(|s| s.finite() > 0).map(|s| (s.min, s.max)))
}

/// The range covering every finite `(min, max)`, widened by ±0.5 when degenerate.
pub(super) fn range_of(bounds: impl IntoIterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (a, b) in bounds {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    if lo == hi {
        return Some((lo - 0.5, hi + 0.5));
    }
    Some((lo, hi))
}

/// Counts `values` into `bins` bins over `[lo, hi]`, bin by bin as numpy assigns them
/// (index from the scaled offset, corrected against the actual edges).
///
/// # Errors
/// When external data can no longer be read.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn histogram(values: Values<'_>, lo: f64, hi: f64, bins: usize) -> Result<Histogram, ReadError> {
    // 8-bit tensors: counts below each edge, per channel
    if let Values::Dequantized(t, p) = values
        && let Some(counted) = Counted::of(t, p)?
    {
        return Ok(counted.histogram(lo, hi, bins));
    }
    let mut binner = Binner::new(lo, hi, bins);
    values.for_each_chunk(|_, chunk| {
        for &v in chunk {
            binner.add(v, 1);
        }
    })?;
    Ok(binner.finish())
}

/// Counts values into bins as numpy assigns them (index from the scaled offset,
/// corrected against the actual edges).
pub(super) struct Binner {
    lo: f64,
    hi: f64,
    edges: Vec<f64>,
    norm: f64,
    counts: Vec<u64>,
    outside: u64,
    nonfinite: u64,
}

impl Binner {
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn new(lo: f64, hi: f64, bins: usize) -> Self {
        let bins = bins.clamp(1, MAX_BINS);
        Self {
            lo,
            hi,
            edges: edges(lo, hi, bins),
            norm: bins as f64 / (hi - lo),
            counts: vec![0; bins],
            outside: 0,
            nonfinite: 0,
        }
    }

    /// Where a finite `x` goes: its bin, −1 below the range, `bins` above it (monotone in
    /// `x`, so values between two of the same place share it).
    #[inline]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
    pub(super) fn place(&self, x: f64) -> isize {
        if x < self.lo {
            return -1;
        }
        if x > self.hi {
            return self.counts.len() as isize;
        }
        let last = self.counts.len() - 1;
        let mut i = (((x - self.lo) * self.norm) as usize).min(last);
        if i > 0 && self.edges.get(i).is_some_and(|&e| x < e) {
            i -= 1;
        } else if i < last && self.edges.get(i + 1).is_some_and(|&e| x >= e) {
            i += 1;
        }
        i as isize
    }

    /// The boundary between `place − 1` and `place`: `(edge, strict)`, values at or above
    /// `edge` (above it when `strict`: the top edge, which the last bin includes) being
    /// at `place` or beyond.
    pub(super) fn threshold(&self, place: isize) -> (f64, bool) {
        let bins = self.counts.len();
        match usize::try_from(place) {
            Ok(p) if p >= bins => (self.hi, true),
            Ok(p) => (self.edges.get(p).copied().unwrap_or(self.hi), false),
            Err(_) => (self.lo, false),
        }
    }

    /// The place above the range (`bins`).
    #[allow(clippy::cast_possible_wrap)]
    pub(super) fn top_place(&self) -> isize {
        self.counts.len() as isize
    }

    /// Adds `n` values at `place` (see [`Self::place`]).
    #[inline]
    pub(super) fn add_at(&mut self, place: isize, n: u64) {
        match usize::try_from(place).ok().and_then(|i| self.counts.get_mut(i)) {
            Some(c) => *c += n,
            None => self.outside += n,
        }
    }

    #[inline]
    pub(super) fn add(&mut self, v: f32, n: u64) {
        if v.is_finite() {
            self.add_at(self.place(f64::from(v)), n);
        } else {
            self.nonfinite += n;
        }
    }

    pub(super) fn add_nonfinite(&mut self, n: u64) {
        self.nonfinite += n;
    }

    pub(super) fn finish(self) -> Histogram {
        Histogram { lo: self.lo, hi: self.hi, counts: self.counts, outside: self.outside, nonfinite: self.nonfinite }
    }
}

/// Histograms of several value sets over one shared set of edges (the common range of
/// their summaries). `None` when no set has a finite value.
///
/// # Errors
/// When external data can no longer be read.
pub fn shared_histograms(sets: &[(Values<'_>, &Summary)], bins: usize) -> Result<Option<Vec<Histogram>>, ReadError> {
    let Some((lo, hi)) = shared_range(sets.iter().map(|(_, s)| *s)) else { return Ok(None) };
    sets.iter().map(|(v, _)| histogram(*v, lo, hi, bins)).collect::<Result<Vec<_>, _>>().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::summarize;

    #[test]
    fn shared_bins_sum_to_element_counts() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..777).map(|i| (i as f32).cos() * 1.5).collect();
        let (sa, sb) = (summarize(Values::Slice(&a)).unwrap(), summarize(Values::Slice(&b)).unwrap());
        let hs = shared_histograms(&[(Values::Slice(&a), &sa), (Values::Slice(&b), &sb)], 17).unwrap().unwrap();
        assert_eq!(hs[0].edges(), hs[1].edges());
        assert_eq!(hs[0].total(), 1000);
        assert_eq!(hs[1].total(), 777);
        assert_eq!(hs[0].lo, sb.min.min(sa.min));
        assert_eq!(hs[1].hi, sb.max);
    }

    #[test]
    fn edges_follow_numpy() {
        // np.histogram([0, 1, 2, 3, 4], bins=4, range=(0, 4)) -> [1, 1, 1, 2]
        let h = histogram(Values::Slice(&[0.0, 1.0, 2.0, 3.0, 4.0]), 0.0, 4.0, 4).unwrap();
        assert_eq!(h.counts, vec![1, 1, 1, 2]);
        let h = histogram(Values::Slice(&[f32::NAN, 9.0, 0.5]), 0.0, 4.0, 4).unwrap();
        assert_eq!((h.counts.iter().sum::<u64>(), h.outside, h.nonfinite), (1, 1, 1));
    }
}
