//! Histograms over shared bin edges, so the float weights and every variant's dequantized
//! weights of one layer are counted into the same bins.

use super::engine;
use super::kernel::{Binner, Histogram, Summary, range_of};
use super::source::Values;
use crate::model::tensor::ReadError;

/// The common range of several summaries (min of mins, max of maxes, finite values);
/// a degenerate range is widened by ±0.5 as numpy does.
#[must_use]
pub fn shared_range<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Option<(f64, f64)> {
    range_of(summaries.into_iter().filter(|s| s.finite() > 0).map(|s| (s.min, s.max)))
}

/// Counts `values` into `bins` bins over `[lo, hi]`, bin by bin as numpy assigns them
/// (index from the scaled offset, corrected against the actual edges).
///
/// # Errors
/// When external data can no longer be read.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn histogram(values: Values<'_>, lo: f64, hi: f64, bins: usize) -> Result<Histogram, ReadError> {
    // 8-bit tensors: counts below each edge, per channel
    if let Some(counted) = engine::counted(values)? {
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
