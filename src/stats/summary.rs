//! Summary statistics of one tensor: count, NaN/Inf count, min, max, mean, std and
//! quartiles, streamed so that external data never needs to be resident at once.

use serde::Serialize;

use super::source::Values;
use crate::model::tensor::ReadError;

/// Up to this many elements, quartiles are exact (values are copied once and selected);
/// above it they come from a 65,536-bin histogram over `[min, max]`, interpolated within
/// the bin, so their error is at most `(max − min) / 65536`.
pub const EXACT_QUANTILE_LIMIT: u64 = 1 << 24;
const QUANTILE_BINS: usize = 1 << 16;

/// Summary statistics. Min, max, mean, std and quartiles are over the finite values only;
/// NaN and ±Inf are counted apart. Quartiles follow numpy's default (linear) method.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub nan: u64,
    pub inf: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation (ddof = 0).
    pub std: f64,
    pub q25: f64,
    pub q50: f64,
    pub q75: f64,
    /// False when the quartiles are the histogram approximation.
    pub quantiles_exact: bool,
}

impl Summary {
    /// Number of finite values.
    #[must_use]
    pub fn finite(&self) -> u64 {
        self.count - self.nan - self.inf
    }
}

/// Running moments, merged chunk by chunk (Chan et al.), in f64.
#[derive(Default, Clone, Copy)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Moments {
    #[allow(clippy::cast_precision_loss)]
    fn add_chunk(&mut self, finite: &[f32]) {
        if finite.is_empty() {
            return;
        }
        let n = finite.len() as f64;
        let mean = finite.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let mut m2 = 0.0;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in finite {
            let v = f64::from(v);
            m2 += (v - mean) * (v - mean);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if self.n == 0 {
            *self = Self { n: finite.len() as u64, mean, m2, min: lo, max: hi };
            return;
        }
        let na = self.n as f64;
        let total = na + n;
        let delta = mean - self.mean;
        self.mean += delta * n / total;
        self.m2 += m2 + delta * delta * na * n / total;
        self.n += finite.len() as u64;
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
    }
}

/// Computes the [`Summary`] of `values`.
///
/// # Errors
/// When external data can no longer be read.
#[allow(clippy::cast_precision_loss)]
pub fn summarize(values: Values<'_>) -> Result<Summary, ReadError> {
    let count = values.len();
    let keep = count <= EXACT_QUANTILE_LIMIT;
    let mut kept: Vec<f32> = Vec::new();
    if keep {
        kept.reserve(usize::try_from(count).unwrap_or(0));
    }
    let (mut nan, mut inf) = (0u64, 0u64);
    let mut m = Moments::default();
    let mut finite = Vec::new();
    values.for_each_chunk(|_, chunk| {
        finite.clear();
        for &v in chunk {
            if v.is_nan() {
                nan += 1;
            } else if v.is_infinite() {
                inf += 1;
            } else {
                finite.push(v);
            }
        }
        m.add_chunk(&finite);
        if keep {
            kept.extend_from_slice(&finite);
        }
    })?;
    let nf = m.n;
    let std = if nf > 0 { (m.m2 / nf as f64).sqrt() } else { f64::NAN };
    let (min, max, mean) = if nf > 0 { (m.min, m.max, m.mean) } else { (f64::NAN, f64::NAN, f64::NAN) };
    let qs = if nf == 0 {
        [f64::NAN; 3]
    } else if keep {
        exact_quantiles(&mut kept, [0.25, 0.5, 0.75])
    } else {
        approx_quantiles(values, min, max, nf, [0.25, 0.5, 0.75])?
    };
    Ok(Summary { count, nan, inf, min, max, mean, std, q25: qs[0], q50: qs[1], q75: qs[2], quantiles_exact: keep })
}

/// numpy's linear quantiles by selection (reorders `v`).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn exact_quantiles(v: &mut [f32], ps: [f64; 3]) -> [f64; 3] {
    let n = v.len();
    let mut out = [f64::NAN; 3];
    for (o, p) in out.iter_mut().zip(ps) {
        let pos = p * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let a = select(v, lo);
        let b = if hi == lo { a } else { select(v, hi) };
        *o = a + (b - a) * (pos - lo as f64);
    }
    out
}

fn select(v: &mut [f32], k: usize) -> f64 {
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*x)
}

/// Quantiles from a fine histogram over `[min, max]` (second pass), linear within a bin.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn approx_quantiles(values: Values<'_>, min: f64, max: f64, n: u64, ps: [f64; 3]) -> Result<[f64; 3], ReadError> {
    if max <= min {
        return Ok([min; 3]);
    }
    let h = super::histogram::histogram(values, min, max, QUANTILE_BINS)?;
    let width = (max - min) / QUANTILE_BINS as f64;
    let mut out = [f64::NAN; 3];
    for (o, p) in out.iter_mut().zip(ps) {
        let rank = p * (n - 1) as f64;
        let mut before = 0u64;
        for (b, &c) in h.counts.iter().enumerate() {
            if c > 0 && (before + c) as f64 > rank {
                let frac = (rank - before as f64 + 0.5) / c as f64;
                *o = min + width * (b as f64 + frac.clamp(0.0, 1.0));
                break;
            }
            before += c;
        }
        if o.is_nan() {
            *o = max;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_definitions() {
        // numpy: np.quantile([1,2,3,4,10], [.25,.5,.75]) = [2, 3, 4]; std = 3.1622776601683795
        let v = [4.0f32, 1.0, 10.0, 3.0, 2.0];
        let s = summarize(Values::Slice(&v)).unwrap();
        assert_eq!((s.min, s.max, s.mean), (1.0, 10.0, 4.0));
        assert!((s.std - 3.162_277_660_168_379_5).abs() < 1e-12);
        assert_eq!((s.q25, s.q50, s.q75), (2.0, 3.0, 4.0));
        // interpolated: np.quantile([0,1,2,3], .25) = 0.75
        let s = summarize(Values::Slice(&[3.0, 0.0, 2.0, 1.0])).unwrap();
        assert!((s.q25 - 0.75).abs() < 1e-12 && (s.q50 - 1.5).abs() < 1e-12);
    }

    #[test]
    fn counts_nan_and_inf_apart() {
        let v = [1.0, f32::NAN, f32::INFINITY, 3.0, f32::NEG_INFINITY];
        let s = summarize(Values::Slice(&v)).unwrap();
        assert_eq!((s.count, s.nan, s.inf, s.finite()), (5, 1, 2, 2));
        assert_eq!((s.min, s.max, s.mean), (1.0, 3.0, 2.0));
    }

    #[test]
    fn approximate_quantiles_are_within_one_bin() {
        let v: Vec<f32> = (0..100_001).map(|i| (i as f32 * 0.618_034).fract() * 8.0 - 4.0).collect();
        let mut sorted = v.clone();
        let exact = exact_quantiles(&mut sorted, [0.25, 0.5, 0.75]);
        let (lo, hi) = (-4.0, 4.0);
        let approx = approx_quantiles(Values::Slice(&v), lo, hi, v.len() as u64, [0.25, 0.5, 0.75]).unwrap();
        for (a, e) in approx.iter().zip(exact) {
            assert!((a - e).abs() <= 8.0 / QUANTILE_BINS as f64 * 1.01, "{a} vs {e}");
        }
    }

    #[test]
    fn empty_is_nan_not_panic() {
        let s = summarize(Values::Slice(&[])).unwrap();
        assert_eq!(s.count, 0);
        assert!(s.mean.is_nan() && s.q50.is_nan());
    }
}
