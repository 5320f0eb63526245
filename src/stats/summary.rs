//! Summary statistics of one tensor: count, NaN/Inf count, min, max, mean, std and exact
//! quartiles, streamed so that external data never needs to be resident at once.
//!
//! Quartiles are exact in two streaming passes and O(1) memory: the first pass counts the
//! finite values by the top 16 bits of an order-preserving integer key, which finds the
//! bucket of every needed order statistic; the second counts the low 16 bits within those
//! few buckets, which gives each order statistic's exact value. 8-bit quantized tensors
//! take one pass: counting `(channel, q)` pairs describes the dequantized multiset exactly.

use super::engine;
use super::kernel::Summary;
use super::source::Values;
use super::streamed::{FEW, Streamed};
use crate::model::tensor::ReadError;

/// Computes the [`Summary`] of `values`.
///
/// # Errors
/// When external data can no longer be read.
pub fn summarize(values: Values<'_>) -> Result<Summary, ReadError> {
    if let Some(counted) = engine::counted(values)? {
        return Ok(counted.summary());
    }
    summarize_float(values, FEW)
}

/// The streamed path with selection up to `few` values (tests force either method).
pub(super) fn summarize_float(values: Values<'_>, few: u64) -> Result<Summary, ReadError> {
    Ok(Streamed::first_pass(values, few)?.finish(None)?.0)
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
            for limit in [u64::MAX, 0] {
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
        // large enough for the counted path (≥ 128 values per channel)
        for (dtype, bytes) in [
            (DType::Int8, (0..6000u32).map(|i| (i.wrapping_mul(37) ^ 0x5a) as u8).collect::<Vec<u8>>()),
            (DType::Uint8, (0..6000u32).map(|i| (i.wrapping_mul(53) % 251) as u8).collect()),
        ] {
            let t = TensorData { dtype, shape: vec![3, 2000], bytes: TensorBytes::from_vec(bytes) };
            let p = QuantParams {
                scale: vec![0.5, 0.01, 0.25],
                zero_point: vec![3, -7, 0].into_iter().map(|z| if dtype == DType::Uint8 { z + 7 } else { z }).collect(),
                axis: Some(0),
                block: None,
                dtype,
                zero_point_dtype: Some(dtype),
                scale_tensor: None,
                zero_point_tensor: None,
                float_zero_point: None,
                groups: None,
            };
            assert!(crate::stats::counted::Counted::of(&t, &p).unwrap().is_some());
            let fast = summarize(Values::Dequantized(&t, &p)).unwrap();
            let mut plain = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
            let slow = summarize_float(Values::Slice(&plain), FEW).unwrap();
            assert_eq!(
                (fast.count, fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                (slow.count, slow.min, slow.max, slow.q25, slow.q50, slow.q75)
            );
            assert!((fast.mean - slow.mean).abs() < 1e-7 * slow.std && (fast.std - slow.std).abs() < 1e-7 * slow.std);
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
        for limit in [u64::MAX, 0] {
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
