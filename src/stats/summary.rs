//! Summary statistics of one tensor: count, NaN/Inf count, min, max, mean, std and exact
//! quartiles, streamed so that external data never needs to be resident at once.
//!
//! Quartiles are exact in two streaming passes and O(1) memory: the first pass counts the
//! finite values by the top 16 bits of an order-preserving integer key, which finds the
//! bucket of every needed order statistic; the second counts the low 16 bits within those
//! few buckets, which gives each order statistic's exact value. 8-bit quantized tensors
//! take one pass: counting `(channel, q)` pairs describes the dequantized multiset exactly.

use serde::Serialize;

use super::source::{QuantCounts, Values, counted_8bit};
use crate::model::tensor::ReadError;

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
    /// Always true: quartiles are exact (kept for the report format's stability).
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
    /// Merges a group of `n` values with this mean, sum of squared deviations and range.
    #[allow(clippy::cast_precision_loss)]
    fn merge(&mut self, n: u64, mean: f64, m2: f64, lo: f64, hi: f64) {
        if n == 0 {
            return;
        }
        if self.n == 0 {
            *self = Self { n, mean, m2, min: lo, max: hi };
            return;
        }
        let (na, nb) = (self.n as f64, n as f64);
        let total = na + nb;
        let delta = mean - self.mean;
        self.mean += delta * nb / total;
        self.m2 += m2 + delta * delta * na * nb / total;
        self.n += n;
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
    }
}

/// An order-preserving integer key of a finite `f32`.
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 == 0 { b | 0x8000_0000 } else { !b }
}

fn unkey(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 == 0 { !k } else { k & 0x7fff_ffff })
}

const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

/// numpy's linear interpolation between the order statistics `value(lo)` and `value(hi)`.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn interpolate(n: u64, p: f64, value: impl Fn(u64) -> f64) -> f64 {
    let pos = p * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let a = value(lo);
    let frac = pos - lo as f64;
    if frac == 0.0 { a } else { a + (value(lo + 1) - a) * frac }
}

/// The order statistics needed for the quartiles of `n` values.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn needed_ranks(n: u64) -> Vec<u64> {
    let mut r: Vec<u64> = QUARTILES
        .iter()
        .flat_map(|p| {
            let lo = (p * (n - 1) as f64).floor() as u64;
            [lo, (lo + 1).min(n - 1)]
        })
        .collect();
    r.sort_unstable();
    r.dedup();
    r
}

/// Computes the [`Summary`] of `values`.
///
/// # Errors
/// When external data can no longer be read.
pub fn summarize(values: Values<'_>) -> Result<Summary, ReadError> {
    if let Some((t, p, map)) = counted_8bit(values)
        && let Some(counts) = QuantCounts::of(t, map)?
    {
        return Ok(summarize_counted(values.len(), &counts, p));
    }
    summarize_float(values, SELECT_LIMIT)
}

/// Up to this many finite values, quartiles come from selection over a copy of the keys
/// (one pass over the data); above it, from the two-pass key histograms (no copy).
const SELECT_LIMIT: u64 = 1 << 22;

#[allow(clippy::cast_precision_loss)]
fn finish(count: u64, nan: u64, inf: u64, m: Moments, quartiles: [f64; 3]) -> Summary {
    let nf = m.n;
    let (min, max, mean, std) = if nf > 0 {
        (m.min, m.max, m.mean, (m.m2 / nf as f64).sqrt())
    } else {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    };
    let [q25, q50, q75] = quartiles;
    Summary { count, nan, inf, min, max, mean, std, q25, q50, q75, quantiles_exact: true }
}

/// Two streaming passes: moments and a coarse key histogram, then fine counts inside the
/// buckets that hold the needed order statistics.
#[allow(clippy::cast_precision_loss)]
fn summarize_float(values: Values<'_>, select_limit: u64) -> Result<Summary, ReadError> {
    let count = values.len();
    let (mut nan, mut inf) = (0u64, 0u64);
    let mut m = Moments::default();
    let small = count <= select_limit;
    let mut kept: Option<Vec<u32>> = small.then(|| Vec::with_capacity(usize::try_from(count).unwrap_or(0)));
    let mut coarse = vec![0u64; if small { 0 } else { 1 << 16 }];
    let mut finite_buf: Vec<f32> = Vec::new();
    values.for_each_chunk(|_, chunk| {
        // the common case (all finite) runs over the chunk itself, in loops the compiler
        // vectorises; otherwise over a copy of its finite values
        let chunk = if chunk.iter().all(|v| v.is_finite()) {
            chunk
        } else {
            finite_buf.clear();
            for &v in chunk {
                if v.is_finite() {
                    finite_buf.push(v);
                } else if v.is_nan() {
                    nan += 1;
                } else {
                    inf += 1;
                }
            }
            &finite_buf
        };
        if chunk.is_empty() {
            return;
        }
        let n = chunk.len() as u64;
        let sum = lane_sum(chunk, f64::from);
        let (lo, hi) = chunk.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        match kept.as_mut() {
            Some(keys) => keys.extend(chunk.iter().map(|&v| key(v))),
            None => {
                for &v in chunk {
                    if let Some(c) = coarse.get_mut((key(v) >> 16) as usize) {
                        *c += 1;
                    }
                }
            }
        }
        let mean = sum / n as f64;
        let m2 = lane_sum(chunk, |v| (f64::from(v) - mean).powi(2));
        m.merge(n, mean, m2, f64::from(lo), f64::from(hi));
    })?;
    if m.n == 0 {
        return Ok(finish(count, nan, inf, m, [f64::NAN; 3]));
    }
    if let Some(keys) = kept {
        let q = select_quartiles(keys, m.n);
        return Ok(finish(count, nan, inf, m, q));
    }
    let mut radix = Radix { coarse, ..Radix::default() };
    radix.locate(m.n);
    values.for_each_chunk(|_, chunk| {
        for &v in chunk.iter().filter(|v| v.is_finite()) {
            radix.add_fine(key(v), 1);
        }
    })?;
    Ok(finish(count, nan, inf, m, radix.quartiles(m.n)))
}

/// Exact order statistics in two passes over keys: a coarse histogram of their top 16
/// bits, then, inside the few buckets holding the needed ranks, of their low 16 bits.
#[derive(Default)]
struct Radix {
    coarse: Vec<u64>,
    /// (rank, bucket, rank within the bucket)
    located: Vec<(u64, usize, u64)>,
    buckets: Vec<usize>,
    fine: Vec<Vec<u64>>,
    /// bucket → index into `fine` (`u8::MAX`: not needed)
    slot: Vec<u8>,
}

impl Radix {
    fn new() -> Self {
        Self { coarse: vec![0; 1 << 16], ..Self::default() }
    }

    #[inline]
    fn add_coarse(&mut self, k: u32, n: u64) {
        if let Some(c) = self.coarse.get_mut((k >> 16) as usize) {
            *c += n;
        }
    }

    /// Finds the bucket of each rank needed for the quartiles of `n` values.
    fn locate(&mut self, n: u64) {
        let (mut before, mut bucket) = (0u64, 0usize);
        for r in needed_ranks(n) {
            while let Some(&c) = self.coarse.get(bucket)
                && before + c <= r
            {
                before += c;
                bucket += 1;
            }
            self.located.push((r, bucket, r - before));
        }
        self.buckets = self.located.iter().map(|l| l.1).collect();
        self.buckets.dedup();
        self.fine = vec![vec![0u64; 1 << 16]; self.buckets.len()];
        self.slot = vec![u8::MAX; 1 << 16];
        for (i, &b) in self.buckets.iter().enumerate() {
            if let Some(s) = self.slot.get_mut(b) {
                *s = u8::try_from(i).unwrap_or(u8::MAX);
            }
        }
    }

    #[inline]
    fn add_fine(&mut self, k: u32, n: u64) {
        let Some(&s) = self.slot.get((k >> 16) as usize) else { return };
        if let Some(c) = self.fine.get_mut(usize::from(s)).and_then(|f| f.get_mut((k & 0xffff) as usize)) {
            *c += n;
        }
    }

    #[allow(clippy::cast_possible_truncation)]
    fn quartiles(&self, n: u64) -> [f64; 3] {
        let value_of = |r: u64| -> f64 {
            let Some(&(_, b, mut within)) = self.located.iter().find(|l| l.0 == r) else { return f64::NAN };
            let Some(counts) = self.buckets.iter().position(|&x| x == b).and_then(|i| self.fine.get(i)) else {
                return f64::NAN;
            };
            for (low, &c) in counts.iter().enumerate() {
                if within < c {
                    return f64::from(unkey(((b as u32) << 16) | low as u32));
                }
                within -= c;
            }
            f64::NAN
        };
        QUARTILES.map(|p| interpolate(n, p, value_of))
    }
}

/// `Σ f(v)` in f64 over eight independent partial sums (so that the additions pipeline
/// and vectorise instead of waiting on one another).
#[inline]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut lanes = values.chunks_exact(8);
    for c in &mut lanes {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f64 = lanes.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Quartiles of the finite keys by selection: the median first, then the quartiles in
/// each half; an upper neighbour is the minimum of what lies above its order statistic.
#[allow(clippy::cast_possible_truncation)]
fn select_quartiles(mut keys: Vec<u32>, n: u64) -> [f64; 3] {
    let ranks: Vec<usize> = QUARTILES.iter().map(|&p| needed_lo(n, p)).collect();
    let (r0, mid, r2) = (ranks[0], ranks[1], ranks[2]);
    keys.select_nth_unstable(mid);
    if r0 < mid
        && let Some(left) = keys.get_mut(..mid)
    {
        left.select_nth_unstable(r0);
    }
    if r2 > mid
        && let Some(right) = keys.get_mut(mid + 1..)
        && r2 - mid - 1 < right.len()
    {
        right.select_nth_unstable(r2 - mid - 1);
    }
    let selected = [r0, mid, r2];
    let value_of = |r: u64| -> f64 {
        let r = r as usize;
        if selected.contains(&r) {
            return keys.get(r).map_or(f64::NAN, |&x| f64::from(unkey(x)));
        }
        // r is one past a selected rank: the smallest key up to the next selected one
        let next = selected.iter().find(|&&s| s >= r).copied().unwrap_or(keys.len() - 1);
        keys.get(r..=next.max(r).min(keys.len() - 1))
            .and_then(|s| s.iter().min())
            .map_or(f64::NAN, |&x| f64::from(unkey(x)))
    };
    QUARTILES.map(|p| interpolate(n, p, value_of))
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn needed_lo(n: u64, p: f64) -> usize {
    (p * (n - 1) as f64).floor() as usize
}

/// The summary of an 8-bit tensor from its `(channel, q)` counts (one pass over the bytes).
#[allow(clippy::cast_precision_loss)]
fn summarize_counted(count: u64, counts: &QuantCounts, p: &crate::model::QuantParams) -> Summary {
    // distinct dequantized values with their counts, as `dequantize` computes them
    let (mut nan, mut inf) = (0u64, 0u64);
    let mut pairs: Vec<(f32, u64)> = Vec::new();
    for (v, n) in counts.values(p) {
        if v.is_nan() {
            nan += n;
        } else if v.is_infinite() {
            inf += n;
        } else {
            pairs.push((v, n));
        }
    }
    let nf: u64 = pairs.iter().map(|x| x.1).sum();
    if nf == 0 {
        return finish(count, nan, inf, Moments::default(), [f64::NAN; 3]);
    }
    let mut m = Moments::default();
    let mean = pairs.iter().map(|&(v, n)| f64::from(v) * n as f64).sum::<f64>() / nf as f64;
    let m2 = pairs.iter().map(|&(v, n)| (f64::from(v) - mean).powi(2) * n as f64).sum();
    let (lo, hi) = pairs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(v, _)| (lo.min(v), hi.max(v)));
    m.merge(nf, mean, m2, f64::from(lo), f64::from(hi));
    let q = if pairs.len() <= 4096 {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let value_of = |r: u64| -> f64 {
            let mut before = 0;
            for &(v, n) in &pairs {
                if r < before + n {
                    return f64::from(v);
                }
                before += n;
            }
            f64::NAN
        };
        QUARTILES.map(|p| interpolate(nf, p, value_of))
    } else {
        // many channels: the weighted two-pass key histograms instead of a sort
        let mut radix = Radix::new();
        for &(v, n) in &pairs {
            radix.add_coarse(key(v), n);
        }
        radix.locate(nf);
        for &(v, n) in &pairs {
            radix.add_fine(key(v), n);
        }
        radix.quartiles(nf)
    };
    finish(count, nan, inf, m, q)
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
    fn two_pass_quantiles_equal_sorting_ones() {
        let mut state = 0x9e37_79b9_u64;
        let mut rnd = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 8.0
        };
        for n in (1..60).chain([255, 256, 1001, 4096]) {
            // duplicates and negative zero included
            let v: Vec<f32> = (0..n).map(|i| if i % 7 == 0 { -0.0 } else { (rnd() * 4.0).round() / 4.0 }).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f32::total_cmp);
            let expected: Vec<f64> = [0.25, 0.5, 0.75]
                .iter()
                .map(|p| {
                    let pos = p * f64::from(n - 1);
                    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                    let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi]));
                    a + (b - a) * (pos - lo as f64)
                })
                .collect();
            // both methods: selection over a copy, and the two-pass key histograms
            for limit in [SELECT_LIMIT, 0] {
                let s = summarize_float(Values::Slice(&v), limit).unwrap();
                assert_eq!(vec![s.q25, s.q50, s.q75], expected, "n = {n}, limit {limit}");
            }
        }
    }

    #[test]
    fn counts_nan_and_inf_apart() {
        let v = [1.0, f32::NAN, f32::INFINITY, 3.0, f32::NEG_INFINITY];
        let s = summarize(Values::Slice(&v)).unwrap();
        assert_eq!((s.count, s.nan, s.inf, s.finite()), (5, 1, 2, 2));
        assert_eq!((s.min, s.max, s.mean), (1.0, 3.0, 2.0));
    }

    #[test]
    fn eight_bit_counts_equal_the_streamed_dequantized_values() {
        use crate::model::{DType, QuantParams, TensorBytes, TensorData};
        // [3 channels, 2000] int8 with per-channel scales and zero points (uint8 too):
        // large enough for the counted path (≥ 4 · 256 per channel)
        for (dtype, bytes) in [
            (DType::Int8, (0..6000u32).map(|i| (i.wrapping_mul(37) ^ 0x5a) as u8).collect::<Vec<u8>>()),
            (DType::Uint8, (0..6000u32).map(|i| (i.wrapping_mul(53) % 251) as u8).collect()),
        ] {
            let t = TensorData { dtype, shape: vec![3, 2000], bytes: TensorBytes::from_vec(bytes) };
            let p = QuantParams {
                scale: vec![0.5, 0.01, 0.25],
                zero_point: vec![3, -7, 0].into_iter().map(|z| if dtype == DType::Uint8 { z + 7 } else { z }).collect(),
                axis: Some(0),
                dtype,
                zero_point_dtype: Some(dtype),
                scale_tensor: None,
                zero_point_tensor: None,
            };
            assert!(crate::stats::source::counted_8bit(Values::Dequantized(&t, &p)).is_some());
            let fast = summarize(Values::Dequantized(&t, &p)).unwrap();
            let mut plain = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
            let slow = summarize_float(Values::Slice(&plain), SELECT_LIMIT).unwrap();
            assert_eq!(
                (fast.count, fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                (slow.count, slow.min, slow.max, slow.q25, slow.q50, slow.q75)
            );
            assert!((fast.mean - slow.mean).abs() < 1e-12 && (fast.std - slow.std).abs() < 1e-12);
            // the histogram from counts bins exactly as the streamed values do
            let (lo, hi) = (fast.min - 0.1, fast.max);
            let counted = crate::stats::histogram(Values::Dequantized(&t, &p), lo, hi, 37).unwrap();
            let streamed = crate::stats::histogram(Values::Slice(&plain), lo, hi, 37).unwrap();
            assert_eq!(counted, streamed);
            assert_eq!(counted.total(), 6000);
        }
    }

    #[test]
    fn quantiles_stay_exact_on_one_value_repeated_and_wide_ranges() {
        let v = vec![0.125f32; 70_000];
        let s = summarize(Values::Slice(&v)).unwrap();
        assert_eq!((s.q25, s.q50, s.q75, s.std), (0.125, 0.125, 0.125, 0.0));
        let v: Vec<f32> = (0..100_001).map(|i| if i % 2 == 0 { 1e-30 * i as f32 } else { -1e30 / i as f32 }).collect();
        let mut sorted = v.clone();
        sorted.sort_by(f32::total_cmp);
        for limit in [SELECT_LIMIT, 0] {
            let s = summarize_float(Values::Slice(&v), limit).unwrap();
            assert_eq!(s.q50, f64::from(sorted[50_000]));
            assert_eq!(s.q25, f64::from(sorted[25_000]));
            assert_eq!(s.q75, f64::from(sorted[75_000]));
        }
        let v = vec![0.125f32; 70_000];
        let s = summarize_float(Values::Slice(&v), 0).unwrap();
        assert_eq!((s.q25, s.q50, s.q75), (0.125, 0.125, 0.125));
    }

    #[test]
    fn empty_is_nan_not_panic() {
        let s = summarize(Values::Slice(&[])).unwrap();
        assert_eq!(s.count, 0);
        assert!(s.mean.is_nan() && s.q50.is_nan());
    }
}
