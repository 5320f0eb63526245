//! The phases of `quantlens bench`, timed apart so that they compare with the onnx +
//! numpy reference path (`scripts/bench_numpy.py`): summaries of every layer weight of
//! every variant (dequantization included), shared-bin histograms per matched layer,
//! and — beyond what the reference computes — the error metrics.

use std::time::Instant;

use rayon::prelude::*;

use super::build::{layer_values, reference_index};
use crate::model::{Variant, match_layers};
use crate::stats::{self, Values};

/// Seconds per phase and what was computed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Phases {
    /// Summaries of every layer weight and shared-bin histograms of every layer.
    pub stats_histograms_s: f64,
    /// The same work for each variant alone, in the order of the variants (a second run:
    /// the files are warm by then).
    pub by_variant_s: Vec<f64>,
    pub metrics_s: f64,
    pub summaries: usize,
    pub histograms: usize,
    pub compared: usize,
}

/// A memory line of `/proc/self/status` (`VmRSS`, `VmHWM`, …) in MB (10^6 bytes); 0 where
/// there is none (not Linux). The kernel writes kB meaning KiB.
#[must_use]
pub fn proc_status_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib * 1024.0 / 1e6)
}

/// Resident set size now, in MB.
#[must_use]
pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS")
}

/// Peak resident set size since the last [`reset_peak_rss`], in MB.
#[must_use]
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM")
}

/// Resets the kernel's peak-RSS mark so that each phase reports its own peak (Linux).
pub fn reset_peak_rss() {
    // (not Linux, or not allowed: the peaks then span the whole run)
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// Runs the phases over loaded `variants`.
#[must_use]
pub fn run_phases(variants: &[Variant], bins: usize) -> Phases {
    let reference = reference_index(variants);
    let rows = match_layers(variants, reference);
    // summaries of every layer weight, then shared-bin histograms per matched layer: the
    // work the reference path times as its stats and histograms (here fused per layer)
    let t = Instant::now();
    let (summaries, histograms): (usize, usize) = rows
        .par_iter()
        .map(|row| {
            let sets: Vec<Values> = row
                .members
                .iter()
                .enumerate()
                .filter_map(|(vi, m)| layer_values(variants.get(vi)?, (*m)?.0).0)
                .collect();
            let got = stats::layer_stats(&sets, Some(bins));
            (got.iter().filter(|s| s.summary.is_ok()).count(), got.iter().filter(|s| s.histogram.is_some()).count())
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let stats_histograms_s = t.elapsed().as_secs_f64();
    // the same per variant alone (histograms over its own range): where the time goes
    let by_variant_s = (0..variants.len())
        .map(|vi| {
            let t = Instant::now();
            rows.par_iter().for_each(|row| {
                let sets: Vec<Values> = row
                    .members
                    .get(vi)
                    .copied()
                    .flatten()
                    .and_then(|(li, _)| layer_values(variants.get(vi)?, li).0)
                    .into_iter()
                    .collect();
                std::hint::black_box(stats::layer_stats(&sets, Some(bins)));
            });
            t.elapsed().as_secs_f64()
        })
        .collect();
    let t = Instant::now();
    let compared: usize = rows
        .par_iter()
        .map(|row| {
            let Some(Some((rli, _))) = row.members.get(reference) else { return 0 };
            let Some((Some(x), _)) = variants.get(reference).map(|v| layer_values(v, *rli)) else { return 0 };
            row.members
                .iter()
                .enumerate()
                .filter(|(vi, _)| *vi != reference)
                .filter_map(|(vi, m)| {
                    let (li, _) = (*m)?;
                    let (y, p) = layer_values(variants.get(vi)?, li);
                    let y = y?;
                    (x.len() == y.len()).then(|| stats::compare(x, y, p).ok()).flatten()
                })
                .count()
        })
        .sum();
    let metrics_s = t.elapsed().as_secs_f64();
    Phases { stats_histograms_s, by_variant_s, metrics_s, summaries, histograms, compared }
}

/// Nanoseconds per value (best of three rounds of `reps`) of the statistics kernels on
/// synthetic tensors, one thread (no files needed): the float (streamed) path and the
/// 8-bit (counted) path at three channel sizes, each with and without a 64-bin
/// histogram; and the kernels `report --inputs` runs over each 64K-value tile of an
/// activation: running statistics, a running comparison and the fused fake-quant pass.
/// `quantlens bench-kernels` prints it.
#[must_use]
pub fn kernels(reps: usize) -> Vec<(String, f64)> {
    use crate::infer::ops::out_of_place::{Step, run_steps};
    use crate::model::{DType, QuantParams, TensorBytes, TensorData};
    use tract_onnx::tract_core::tract_linalg::BinOp;
    let mut state = 1u64;
    let mut uniform = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 40
    };
    let mut out = Vec::new();
    let mut time = |name: String, values: Values<'_>, n: usize| {
        for bins in [Some(64), None] {
            let ns = best_of_three(reps, n, &mut || {
                std::hint::black_box(stats::layer_stats(&[values], bins));
            });
            out.push((format!("{name}{}", if bins.is_some() { " + histogram" } else { "" }), ns));
        }
    };
    // float32, a bell of sums of three uniforms
    let n = 1 << 20;
    let bytes: Vec<u8> = (0..n)
        .flat_map(|_| {
            let v = (uniform() + uniform() + uniform()) as f32 / (3 << 24) as f32 - 0.5;
            (v * 0.1).to_le_bytes()
        })
        .collect();
    let t = TensorData { dtype: DType::Float32, shape: vec![n as u64], bytes: TensorBytes::from_vec(bytes) };
    time("float32 [1048576]".into(), Values::Raw(&t), n);
    // int8 [k, n] per channel along axis 1 (a MatMul weight)
    for (k, channels) in [(274usize, 274usize), (720, 360), (64, 2048)] {
        let bytes: Vec<u8> =
            (0..k * channels).map(|_| (((uniform() + uniform() + uniform()) / 3) >> 16) as u8 ^ 0x80).collect();
        let t = TensorData {
            dtype: DType::Int8,
            shape: vec![k as u64, channels as u64],
            bytes: TensorBytes::from_vec(bytes),
        };
        let p = QuantParams {
            scale: (0..channels).map(|c| 0.001 + c as f32 * 1e-6).collect(),
            zero_point: vec![0; channels],
            axis: Some(1),
            block: None,
            dtype: DType::Int8,
            zero_point_dtype: Some(DType::Int8),
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        };
        time(format!("int8 [{k}, {channels}] axis 1"), Values::Dequantized(&t, &p), k * channels);
    }
    // an activation tile, and its fake-quantized values (int8, scale 1/64)
    let tile = crate::infer::TILE;
    let x: Vec<f32> =
        (0..tile).map(|_| (uniform() + uniform() + uniform()) as f32 / (3 << 24) as f32 * 4.0 - 2.0).collect();
    let fq = crate::infer::fake_quant::FakeQuant {
        inv_scale: 64.0,
        lo: -128.0,
        hi: 127.0,
        shift: 0.0,
        scale: 1.0 / 64.0,
        probe: None,
    };
    let mut y = x.clone();
    fq.apply(&mut y);
    let mut best = |name: &str, f: &mut dyn FnMut()| {
        out.push((format!("activation tile [{tile}]: {name}"), best_of_three(reps, tile, f)));
    };
    let mut running = stats::RunningStats::default();
    best("running statistics", &mut || running.add(std::hint::black_box(&x)));
    let mut comparison = stats::RunningComparison::default();
    best("running comparison", &mut || comparison.add(std::hint::black_box(&x), &y));
    // (in place, over values it already fake-quantized: the same work)
    let mut z = x.clone();
    best("fake-quant pass", &mut || fq.apply(std::hint::black_box(&mut z)));
    // the report's probe: qdq_err, levels, and xmodel_err and clipping against a reference
    let probe = crate::infer::fake_quant::Probe::with_range(Some((-1.5, 1.5)));
    let reference: Vec<f32> = x.iter().map(|v| v * 1.01).collect();
    probe.set_reference(tract_onnx::prelude::Tensor::from_shape(&[tile], &reference).ok().map(Into::into));
    best("fake-quant pass, probed", &mut || {
        z.copy_from_slice(&x);
        fq.apply_probed(std::hint::black_box(&mut z), &probe);
    });
    // a Clip as tract runs it (Add, Max, Min by scalar), from a kept tensor into a new one
    let steps = [BinOp::Add, BinOp::Max, BinOp::Min].map(|op| Step { op, per_block: true });
    let bs: [&[f32]; 3] = [&[3.0], &[0.0], &[6.0]];
    best("out-of-place steps Add+Max+Min", &mut || run_steps(&steps, std::hint::black_box(&x), &bs, &mut z));
    // PP-OCRv4 det's first strided depthwise convolution, per output value
    let g = crate::infer::ops::depthwise::Geometry {
        batch: 1,
        channels: 32,
        input: [160, 160],
        output: [80, 80],
        kernel: [3, 3],
        strides: [2, 2],
        dilations: [1, 1],
        pad: [1, 1],
    };
    let image: Vec<f32> = (0..32 * 160 * 160).map(|i| f32::from(u8::try_from(i % 251).unwrap_or(0)) / 251.0).collect();
    let (kernel, bias) = (vec![0.1f32; 32 * 9], vec![0.0f32; 32]);
    let mut conv = vec![0.0f32; 32 * 80 * 80];
    let ns = best_of_three(reps, conv.len(), &mut || {
        crate::infer::ops::depthwise::depthwise(&g, std::hint::black_box(&image), &kernel, &bias, &mut conv);
    });
    out.push(("depthwise 3×3 stride 2 [32, 160, 160], per output value".into(), ns));
    out
}

/// Nanoseconds per value of `f` over `n` values, the best of three rounds of `reps` calls
/// (a shared host only ever adds time).
#[allow(clippy::cast_precision_loss)]
fn best_of_three(reps: usize, n: usize, f: &mut dyn FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps.max(1) {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / (reps.max(1) * n) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_time_every_path() {
        let k = super::kernels(1);
        assert_eq!(k.len(), 14, "{k:?}");
        assert!(k.iter().all(|(_, ns)| ns.is_finite() && *ns > 0.0), "{k:?}");
        assert!(k.iter().any(|(name, _)| name.starts_with("int8 [64, 2048]")));
        assert!(k.iter().any(|(name, _)| name.ends_with("fake-quant pass")));
        assert!(k.iter().any(|(name, _)| name.starts_with("depthwise 3×3 stride 2")));
    }
}
