//! One layer's statistics in one go: the summary of each value set (the float weight and
//! every variant's dequantized weight) and their histograms over shared bins, reading each
//! tensor as few times as the exact results allow (8-bit weights once, float ones twice).

use super::engine::FirstPass;
use super::kernel::{Histogram, Summary, range_of};
use super::source::Values;
use crate::model::tensor::ReadError;

/// The statistics of one value set of a layer.
#[derive(Debug)]
pub struct SetStats {
    pub summary: Result<Summary, ReadError>,
    /// Over the bins shared by every set whose summary succeeded (`None` without bins,
    /// when no set has a finite value, or when this set failed).
    pub histogram: Option<Histogram>,
}

/// Summaries of `sets` and, with `bins`, their histograms over one set of edges (the
/// common finite range, as [`super::shared_histograms`] chooses it). Equal to calling
/// [`super::summarize`] on each set, then [`super::shared_histograms`].
#[must_use]
pub fn layer_stats(sets: &[Values<'_>], bins: Option<usize>) -> Vec<SetStats> {
    let passes: Vec<Result<FirstPass, ReadError>> = sets.iter().map(|v| FirstPass::of(*v)).collect();
    let range = bins.and_then(|n| {
        let (lo, hi) = range_of(passes.iter().filter_map(|p| p.as_ref().ok()?.bounds()))?;
        Some((lo, hi, n))
    });
    passes
        .into_iter()
        .map(|p| match p.and_then(|p| p.finish(range)) {
            Ok((summary, histogram)) => SetStats { summary: Ok(summary), histogram },
            Err(e) => SetStats { summary: Err(e), histogram: None },
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::cast_possible_wrap)]
mod tests {
    use super::*;
    use crate::model::{DType, QuantParams, TensorBytes, TensorData};
    use crate::stats::streamed::{FEW, Streamed};
    use crate::stats::{histogram, shared_histograms, summarize};

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = |x: u64| (x & 0xffff) as f32 / 65536.0 - 0.5;
                (u(s >> 16) + u(s >> 32) + u(s >> 48)) * 0.2
            })
            .collect()
    }

    /// A float weight `[k, n]`, its int8 per-column quantization and a uint8 one.
    fn layer(k: usize, n: usize) -> (Vec<f32>, [(TensorData, QuantParams); 2]) {
        let w = noise(k * n, k as u64 * 31 + n as u64);
        let quant = |dtype: DType| {
            let (qmin, qmax) = if dtype == DType::Int8 { (-127.0f32, 127.0) } else { (0.0, 255.0) };
            let mut scale = vec![0f32; n];
            let mut zp = vec![0i32; n];
            for c in 0..n {
                let col = (0..k).map(|r| w[r * n + c]);
                let (lo, hi) = col.fold((0f32, 0f32), |(a, b), v| (a.min(v), b.max(v)));
                if dtype == DType::Int8 {
                    scale[c] = lo.abs().max(hi) / 127.0;
                } else {
                    scale[c] = (hi - lo) / 255.0;
                    zp[c] = (-lo / scale[c]).round() as i32;
                }
            }
            let bytes: Vec<u8> = w
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = i % n;
                    let q = ((v / scale[c]).round() + zp[c] as f32).clamp(qmin, qmax) as i32;
                    q as u8
                })
                .collect();
            let p = QuantParams {
                scale,
                zero_point: zp,
                axis: Some(1),
                block: None,
                dtype,
                zero_point_dtype: Some(dtype),
                scale_tensor: None,
                zero_point_tensor: None,
                float_zero_point: None,
                groups: None,
            };
            (TensorData { dtype, shape: vec![k as u64, n as u64], bytes: TensorBytes::from_vec(bytes) }, p)
        };
        let q = [quant(DType::Int8), quant(DType::Uint8)];
        (w, q)
    }

    #[test]
    fn one_go_equals_summaries_then_shared_histograms() {
        // few values (selection), the coarse histogram path, and NaN/Inf in the float set
        for (k, n) in [(20, 10), (300, 70), (257, 300)] {
            let (mut w, [(t8, p8), (tu, pu)]) = layer(k, n);
            w[3] = f32::NAN;
            w[k * n - 1] = f32::INFINITY;
            let sets = [Values::Slice(&w), Values::Dequantized(&t8, &p8), Values::Dequantized(&tu, &pu)];
            for bins in [1, 16, 64, 301] {
                let got = layer_stats(&sets, Some(bins));
                let summaries: Vec<Summary> = sets.iter().map(|v| summarize(*v).unwrap()).collect();
                let pairs: Vec<_> = sets.iter().copied().zip(&summaries).collect();
                let expected = shared_histograms(&pairs, bins).unwrap().unwrap();
                for ((g, s), h) in got.iter().zip(&summaries).zip(&expected) {
                    assert_eq!(g.summary.as_ref().unwrap(), s, "[{k}, {n}] / {bins}");
                    assert_eq!(g.histogram.as_ref().unwrap(), h, "[{k}, {n}] / {bins}");
                    assert_eq!(h.total() + h.outside + h.nonfinite, (k * n) as u64);
                }
                // the streamed histogram with the float bins, value by value
                let h = histogram(Values::Slice(&w), expected[0].lo, expected[0].hi, bins).unwrap();
                assert_eq!(got[0].histogram.as_ref().unwrap(), &h);
                assert_eq!(h.nonfinite, 2);
            }
        }
    }

    #[test]
    fn narrow_bins_split_the_coarse_buckets() {
        // a range much narrower than the data: most coarse buckets straddle edges or lie
        // outside; the streamed second pass must still bin exactly like numpy
        let w = noise(50_000, 7);
        let first = Streamed::first_pass(Values::Slice(&w), FEW).unwrap();
        let (_, h) = first.finish(Some((-0.001, 0.0015, 97))).unwrap();
        let expected = histogram(Values::Slice(&w), -0.001, 0.0015, 97).unwrap();
        assert_eq!(h.unwrap(), expected);
        assert!(expected.outside > 40_000 && expected.total() > 100);
    }

    #[test]
    fn values_on_bin_edges_and_signed_zeros_bin_like_numpy() {
        // multiples of 1/4 (exact in binary) with edges on them, −0.0 beside 0.0: a bucket
        // split at an edge must send a value equal to it to the upper bin, and the top
        // edge's value to the last bin
        let mut state = 99u64;
        let v: Vec<f32> = (0..30_000)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                if i % 97 == 0 { -0.0 } else { ((state >> 40) % 81) as f32 * 0.25 - 10.0 }
            })
            .collect();
        for (lo, hi, bins) in [(-10.0, 10.0, 80), (-10.0, 10.0, 40), (-2.0, 3.0, 20), (-0.0, 0.25, 1), (-10.0, 10.0, 7)]
        {
            let first = Streamed::first_pass(Values::Slice(&v), FEW).unwrap();
            let (s, h) = first.finish(Some((lo, hi, bins))).unwrap();
            assert_eq!(h.unwrap(), histogram(Values::Slice(&v), lo, hi, bins).unwrap(), "[{lo}, {hi}] / {bins}");
            assert_eq!(s, summarize(Values::Slice(&v)).unwrap());
        }
        let mut sorted = v.clone();
        sorted.sort_by(f32::total_cmp);
        let s = summarize(Values::Slice(&v)).unwrap();
        assert_eq!((s.min, s.max), (-10.0, 10.0));
        assert_eq!(s.q50, f64::from(sorted[14_999]) + (f64::from(sorted[15_000]) - f64::from(sorted[14_999])) * 0.5);
    }

    #[test]
    fn a_failed_set_keeps_the_others() {
        let w = noise(5000, 3);
        let missing = TensorData {
            dtype: DType::Float32,
            shape: vec![5000],
            bytes: TensorBytes::External {
                path: std::sync::Arc::new("/nonexistent/quantlens/weights.bin".into()),
                offset: 0,
                len: 20_000,
            },
        };
        let got = layer_stats(&[Values::Slice(&w), Values::Raw(&missing)], Some(8));
        assert!(got[1].summary.is_err() && got[1].histogram.is_none());
        assert_eq!(got[0].histogram.as_ref().unwrap().total(), 5000);
    }
}
