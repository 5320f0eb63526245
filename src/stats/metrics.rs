//! Error metrics of a quantized tensor against its float original, as the established
//! tools define them (SQNR as onnxruntime's `qdq_loss_debug`).

use serde::Serialize;

use super::blocks::{BlockLayout, Heatmap, Pool};
use super::source::{ChannelMap, Values};
use crate::model::quant::QuantParams;
use crate::model::tensor::ReadError;

/// `rmse/scale` of uniform rounding error alone (1/√12).
pub const HEALTHY_RMSE_OVER_SCALE: f64 = 0.288_675;

/// How far an `rmse/scale` is from healthy rounding (in octaves).
#[must_use]
pub fn rmse_distance(v: f64) -> f64 {
    (v / HEALTHY_RMSE_OVER_SCALE).log2().abs()
}

/// onnxruntime's ε: `np.finfo(float).eps`.
pub const SQNR_EPS: f64 = f64::EPSILON;

/// How far `y` (dequantized) is from `x` (float). Pairs where either value is not finite
/// are skipped and counted in `skipped`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorMetrics {
    /// `20·log10(max(‖x‖, ε) / max(‖x − y‖, ε))`.
    pub sqnr_db: f64,
    pub mse: f64,
    pub max_abs: f64,
    /// `x·y / (‖x‖‖y‖)`; 1 when both tensors are all zeros, NaN (null in JSON) when only
    /// one is.
    pub cosine: f64,
    /// `‖x − y‖ / ‖x‖`.
    pub norm_l2: f64,
    /// `sqrt(mean(((x − y) / scale)²))` with each element's own scale: the error in
    /// quantization steps. Uniform rounding gives 1/√12 ≈ 0.289; far above that, the
    /// range is clipping or the parameters are off.
    pub rmse_over_scale: Option<f64>,
    pub count: u64,
    pub skipped: u64,
    /// Every compared pair is equal: the tensor is reproduced exactly (a scalar constant,
    /// a float bias). `sqnr_db` then only reflects ε; show *exact*, not a number.
    pub exact: bool,
    /// Per channel (or block) `rmse/scale`, summarised: with more than one scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<ChannelErrors>,
}

/// The error in steps of each channel (or block) of a weight, summarised in bounded size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelErrors {
    /// Channels (blocks) with a compared value.
    pub count: usize,
    /// The worst channels (blocks), highest `rmse/scale` first, at most [`WORST_KEPT`].
    pub worst: Vec<WorstChannel>,
    /// Share of channels (blocks) whose `rmse/scale` is over twice rounding's.
    pub off_share: f64,
    /// Blocked weights: every block's `rmse/scale`, max-pooled to at most
    /// [`HEATMAP_SIDE`]² cells (rows × blocks).
    #[serde(skip)]
    pub heatmap: Option<Heatmap>,
}

/// One channel (block) and its error in steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorstChannel {
    /// Index into the parameters (a channel, or a block in parameter order).
    pub index: usize,
    /// Blocked weights: its row (every index but the blocked axis) and block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<usize>,
    pub rmse_over_scale: f64,
    pub scale: f32,
}

/// Worst channels (blocks) kept per weight.
pub const WORST_KEPT: usize = 8;
/// Largest side of a block heatmap, in cells.
pub const HEATMAP_SIDE: usize = 96;

/// Summarises per-channel sums of squared error (`dd`, unscaled) and counts.
#[allow(clippy::cast_precision_loss)]
fn channel_errors(dd: &[f64], n: &[u32], p: &QuantParams, layout: Option<BlockLayout>) -> ChannelErrors {
    let rmse: Vec<f32> = dd
        .iter()
        .zip(n)
        .enumerate()
        .map(|(c, (&d, &k))| {
            let s = f64::from(p.channel(c).0).abs();
            #[allow(clippy::cast_possible_truncation)]
            if k == 0 { f32::NAN } else { ((d / f64::from(k)).sqrt() / s) as f32 }
        })
        .collect();
    let at = |c: usize| rmse.get(c).copied().unwrap_or(f32::NAN);
    let mut order: Vec<usize> = (0..rmse.len()).filter(|&c| at(c).is_finite()).collect();
    let count = order.len();
    let off = order.iter().filter(|&&c| f64::from(at(c)) > 2.0 * HEALTHY_RMSE_OVER_SCALE).count();
    let kept = WORST_KEPT.min(order.len());
    if kept > 0 {
        order.select_nth_unstable_by(kept - 1, |&a, &b| at(b).total_cmp(&at(a)));
    }
    order.truncate(kept);
    order.sort_by(|&a, &b| at(b).total_cmp(&at(a)).then(a.cmp(&b)));
    let worst = order
        .into_iter()
        .map(|c| {
            let (row, block) = layout.map(|l| l.cell(c)).unzip();
            WorstChannel { index: c, row, block, rmse_over_scale: f64::from(at(c)), scale: p.channel(c).0 }
        })
        .collect();
    ChannelErrors {
        count,
        worst,
        off_share: if count == 0 { 0.0 } else { off as f64 / count as f64 },
        heatmap: layout
            .map(|l| Heatmap::pooled(l, HEATMAP_SIDE, Pool::Max, |i| rmse.get(i).copied().unwrap_or(f32::NAN))),
    }
}

impl ErrorMetrics {
    /// SQNR for ordering "worst first": exact tensors count as infinitely good.
    #[must_use]
    pub fn sqnr_for_ranking(&self) -> f64 {
        if self.exact { f64::INFINITY } else { self.sqnr_db }
    }
}

/// Compares `x` and `y` element by element (same length and layout). `params`, when
/// given, supplies the per-element scale for `rmse_over_scale`.
///
/// # Errors
/// When external data can no longer be read, or the lengths differ.
#[allow(clippy::cast_precision_loss)]
pub fn compare(x: Values<'_>, y: Values<'_>, params: Option<&QuantParams>) -> Result<ErrorMetrics, ReadError> {
    if x.len() != y.len() {
        return Err(ReadError(std::io::Error::other(format!("cannot compare {} values with {}", x.len(), y.len()))));
    }
    // (float8 steps are not uniform: no error in steps)
    let params = params.filter(|p| !p.dtype.is_float8());
    let map = params.map(|p| ChannelMap::new(&y.shape(), p));
    // squared error and count per channel, for the error in quantization steps
    let channels = map.map_or(0, |m| m.channels());
    let (mut dd, mut counts) = (vec![0f64; channels], vec![0u32; channels]);
    let (mut rx, mut ry) = (x.reader()?, y.reader()?);
    let (mut bx, mut by) = (Vec::new(), Vec::new());
    let mut s = Sums::default();
    while let (Some(start), Some(_)) = (rx.next_chunk(&mut bx)?, ry.next_chunk(&mut by)?) {
        let n = bx.len().min(by.len());
        let (xs, ys) = (bx.get(..n).unwrap_or_default(), by.get(..n).unwrap_or_default());
        let chunk = Sums::of(xs, ys);
        if chunk.all_finite() {
            s.merge(&chunk);
            if let Some(m) = map {
                if m.inner() == 0 {
                    // one scale
                    if let (Some(d), Some(c)) = (dd.first_mut(), counts.first_mut()) {
                        *d += chunk.dd;
                        *c = c.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                    }
                } else {
                    channel_sq_error(xs, ys, start, m, &mut dd, &mut counts);
                }
            }
        } else {
            s.add_skipping(xs, ys, start, map.map(|m| (m, dd.as_mut_slice(), counts.as_mut_slice())));
        }
    }
    if let Some(p) = params {
        s.dd_scaled = dd.iter().enumerate().map(|(c, d)| d / f64::from(p.channel(c).0).powi(2)).sum();
    }
    let mut metrics = s.metrics(params.is_some());
    if let Some(p) = params.filter(|_| channels > 1) {
        metrics.channels = Some(channel_errors(&dd, &counts, p, BlockLayout::of(&y.shape(), p)));
    }
    Ok(metrics)
}

/// A comparison summed over a stream of chunk pairs (all samples of an activation), in
/// bounded memory: the metrics of the concatenation, as [`compare`] would give them.
#[derive(Clone, Debug, Default)]
pub struct RunningComparison {
    sums: Sums,
    mismatched: bool,
}

impl RunningComparison {
    /// Adds a pair of chunks of the same length (a pair of other lengths spoils the
    /// comparison: [`Self::metrics`] is then `None`).
    pub fn add(&mut self, xs: &[f32], ys: &[f32]) {
        if xs.len() != ys.len() {
            self.mismatched = true;
            return;
        }
        let chunk = Sums::of(xs, ys);
        if chunk.all_finite() {
            self.sums.merge(&chunk);
        } else {
            self.sums.add_skipping(xs, ys, 0, None);
        }
    }

    /// The metrics so far; `None` after a length mismatch or before any pair.
    #[must_use]
    pub fn metrics(&self) -> Option<ErrorMetrics> {
        (!self.mismatched && self.sums.count + self.sums.skipped > 0).then(|| self.sums.metrics(false))
    }
}

/// Running sums of a comparison.
#[derive(Clone, Debug, Default)]
struct Sums {
    xx: f64,
    yy: f64,
    xy: f64,
    dd: f64,
    dd_scaled: f64,
    max_abs: f64,
    count: u64,
    skipped: u64,
}

impl Sums {
    /// The sums of a chunk, over sixteen lanes so that the loop vectorises (NaN or ±Inf in
    /// the chunk make them non-finite: see [`Self::all_finite`]).
    fn of(xs: &[f32], ys: &[f32]) -> Self {
        super::simd::wide!(Sums::of_lanes, (xs: &[f32] = xs, ys: &[f32] = ys) -> Sums)
    }

    // (inlined into `simd::wide!`, so that it is compiled for AVX2 there: four vectors of
    // four f64 per sum, so that no sum waits on the one before)
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn of_lanes(xs: &[f32], ys: &[f32]) -> Self {
        const L: usize = 16;
        let (mut xx, mut yy, mut xy, mut dd, mut mx) =
            ([0.0f64; L], [0.0f64; L], [0.0f64; L], [0.0f64; L], [0.0f64; L]);
        let (mut cx, mut cy) = (xs.chunks_exact(L), ys.chunks_exact(L));
        for (a, b) in (&mut cx).zip(&mut cy) {
            for l in 0..L {
                let (a, b) = (f64::from(a[l]), f64::from(b[l]));
                let d = a - b;
                xx[l] += a * a;
                yy[l] += b * b;
                xy[l] += a * b;
                dd[l] += d * d;
                // (a NaN or infinity need not reach the maximum: it shows in xx or yy)
                mx[l] = if d.abs() > mx[l] { d.abs() } else { mx[l] };
            }
        }
        for (&a, &b) in cx.remainder().iter().zip(cy.remainder()) {
            let (a, b) = (f64::from(a), f64::from(b));
            let d = a - b;
            xx[0] += a * a;
            yy[0] += b * b;
            xy[0] += a * b;
            dd[0] += d * d;
            mx[0] = if d.abs() > mx[0] { d.abs() } else { mx[0] };
        }
        let sum = |v: [f64; L]| v.iter().sum::<f64>();
        Self {
            xx: sum(xx),
            yy: sum(yy),
            xy: sum(xy),
            dd: sum(dd),
            dd_scaled: 0.0,
            max_abs: mx.iter().copied().fold(0.0, f64::max),
            count: xs.len().min(ys.len()) as u64,
            skipped: 0,
        }
    }

    /// True when every value of the chunk was finite (the squares of f32 values cannot
    /// overflow f64, so any NaN or infinity shows in the sums).
    fn all_finite(&self) -> bool {
        (self.xx + self.yy + self.max_abs).is_finite()
    }

    /// The metrics of everything summed (`scaled`: `dd_scaled` holds the per-element
    /// scaled error).
    #[allow(clippy::cast_precision_loss)]
    fn metrics(&self, scaled: bool) -> ErrorMetrics {
        let (nx, ny, nd) = (self.xx.sqrt(), self.yy.sqrt(), self.dd.sqrt());
        let n = self.count.max(1) as f64;
        ErrorMetrics {
            sqnr_db: 20.0 * (nx.max(SQNR_EPS) / nd.max(SQNR_EPS)).log10(),
            mse: self.dd / n,
            max_abs: self.max_abs,
            cosine: match (nx > 0.0, ny > 0.0) {
                (true, true) => self.xy / (nx * ny),
                (false, false) => 1.0,
                _ => f64::NAN,
            },
            norm_l2: if nx > 0.0 {
                nd / nx
            } else if nd == 0.0 {
                0.0
            } else {
                f64::NAN
            },
            rmse_over_scale: scaled.then(|| (self.dd_scaled / n).sqrt()),
            count: self.count,
            skipped: self.skipped,
            // (two empty tensors are trivially equal)
            exact: self.skipped == 0 && self.dd == 0.0,
            channels: None,
        }
    }

    fn merge(&mut self, o: &Self) {
        self.xx += o.xx;
        self.yy += o.yy;
        self.xy += o.xy;
        self.dd += o.dd;
        self.dd_scaled += o.dd_scaled;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.count += o.count;
        self.skipped += o.skipped;
    }

    /// Element by element, skipping pairs where either value is not finite.
    fn add_skipping(
        &mut self,
        xs: &[f32],
        ys: &[f32],
        start: usize,
        mut channels: Option<(ChannelMap<'_>, &mut [f64], &mut [u32])>,
    ) {
        for (k, (&a, &b)) in xs.iter().zip(ys).enumerate() {
            if !(a.is_finite() && b.is_finite()) {
                self.skipped += 1;
                continue;
            }
            let (a, b) = (f64::from(a), f64::from(b));
            let d = a - b;
            self.xx += a * a;
            self.yy += b * b;
            self.xy += a * b;
            self.dd += d * d;
            self.max_abs = self.max_abs.max(d.abs());
            if let Some((m, dd, n)) = channels.as_mut() {
                let c = m.channel(start + k);
                if let (Some(dd), Some(n)) = (dd.get_mut(c), n.get_mut(c)) {
                    *dd += d * d;
                    *n += 1;
                }
            }
            self.count += 1;
        }
    }
}

/// Adds `(x − y)²` and the count of a chunk starting at element `start` to each element's
/// channel: per run of a channel, or whole rows zipped with the channels when each
/// element is its own channel's, or block by block.
fn channel_sq_error(xs: &[f32], ys: &[f32], start: usize, m: ChannelMap<'_>, dd: &mut [f64], n: &mut [u32]) {
    let sq = |(&a, &b): (&f32, &f32)| (f64::from(a) - f64::from(b)).powi(2);
    let pairs =
        |r: std::ops::Range<usize>| xs.get(r.clone()).unwrap_or_default().iter().zip(ys.get(r).unwrap_or_default());
    if m.is_blocked() {
        for (base, consecutive, r) in m.block_segments(start, xs.len()) {
            if consecutive {
                let (ds, ks) = (dd.get_mut(base..).unwrap_or_default(), n.get_mut(base..).unwrap_or_default());
                for ((p, d), k) in pairs(r).zip(ds).zip(ks) {
                    *d += sq(p);
                    *k += 1;
                }
            } else if let (Some(d), Some(k)) = (dd.get_mut(base), n.get_mut(base)) {
                *k = k.saturating_add(u32::try_from(r.len()).unwrap_or(u32::MAX));
                *d += pairs(r).map(sq).sum::<f64>();
            }
        }
    } else if m.rowwise() {
        for (c, r) in m.rows(start, xs.len()) {
            let (ds, ks) = (dd.get_mut(c..).unwrap_or_default(), n.get_mut(c..).unwrap_or_default());
            for ((p, d), k) in pairs(r).zip(ds).zip(ks) {
                *d += sq(p);
                *k += 1;
            }
        }
    } else {
        for (c, r) in m.runs(start, xs.len()) {
            let len = u32::try_from(r.len()).unwrap_or(u32::MAX);
            if let (Some(d), Some(k)) = (dd.get_mut(c), n.get_mut(c)) {
                *d += pairs(r).map(sq).sum::<f64>();
                *k = k.saturating_add(len);
            }
        }
    }
}

/// Of a stream of float values: how many finite ones lie outside a range `[lo, hi]`, and
/// how many finite ones there are (an activation's clipping by its Q parameters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunningClip {
    pub outside: u64,
    pub finite: u64,
}

impl RunningClip {
    /// Adds the values `xs` (NaN and ±Inf are not counted).
    pub fn add(&mut self, xs: &[f32], range: (f64, f64)) {
        let (outside, finite) =
            super::simd::wide!(outside_range, (x: &[f32] = xs, range: (f64, f64) = range) -> (u64, u64));
        self.outside += outside;
        self.finite += finite;
    }

    /// The fraction of the finite values outside the range, once there is one.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn fraction(&self) -> Option<f64> {
        (self.finite > 0).then(|| self.outside as f64 / self.finite as f64)
    }
}

// (inlined into `simd::wide!`, so that it is compiled for AVX2 there; branch-free, so
// that it vectorises: NaN compares false, ±Inf is outside and not finite)
#[inline(always)]
#[allow(clippy::inline_always)]
fn outside_range(x: &[f32], (lo, hi): (f64, f64)) -> (u64, u64) {
    let (mut outside, mut infinite, mut nan) = (0u64, 0u64, 0u64);
    for &v in x {
        let f = f64::from(v);
        outside += u64::from(f < lo) + u64::from(f > hi);
        infinite += u64::from(f.abs() == f64::INFINITY);
        nan += u64::from(f.is_nan());
    }
    (outside - infinite, x.len() as u64 - infinite - nan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_comparison_equals_the_whole_comparison() {
        let x: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y: Vec<f32> = x.iter().map(|v| (v * 16.0).round() / 16.0).collect();
        y[7] = f32::NAN;
        let mut run = RunningComparison::default();
        for (a, b) in x.chunks(300).zip(y.chunks(300)) {
            run.add(a, b);
        }
        let (whole, streamed) = (compare(Values::Slice(&x), Values::Slice(&y), None).unwrap(), run.metrics().unwrap());
        assert_eq!((streamed.count, streamed.skipped), (1000, 1));
        assert!((whole.sqnr_db - streamed.sqnr_db).abs() < 1e-9 && (whole.mse - streamed.mse).abs() < 1e-15);
        assert_eq!(whole.max_abs, streamed.max_abs);
        run.add(&x[..3], &y[..2]);
        assert!(run.metrics().is_none(), "a length mismatch spoils it");
        assert!(RunningComparison::default().metrics().is_none());
    }

    #[test]
    fn identical_tensors_hit_the_epsilon_clamp() {
        let x = [1.0f32, -2.0, 3.0];
        let m = compare(Values::Slice(&x), Values::Slice(&x), None).unwrap();
        let expected = 20.0 * (14f64.sqrt() / f64::EPSILON).log10();
        assert!((m.sqnr_db - expected).abs() < 1e-9);
        assert_eq!((m.mse, m.max_abs), (0.0, 0.0));
        assert!((m.cosine - 1.0).abs() < 1e-12);
        assert!(m.exact, "reproduced exactly");
        assert_eq!(m.sqnr_for_ranking(), f64::INFINITY);
    }

    #[test]
    fn all_zero_tensors_are_exact_with_cosine_one() {
        let zeros = [0.0f32; 5];
        let m = compare(Values::Slice(&zeros), Values::Slice(&zeros), None).unwrap();
        assert!(m.exact);
        assert_eq!(m.cosine, 1.0);
        assert_eq!(m.norm_l2, 0.0);
        assert_eq!(m.sqnr_db, 0.0, "onnxruntime's number: eps over eps");
        // one side zero: no angle, not exact
        let ones = [1.0f32; 5];
        let m = compare(Values::Slice(&zeros), Values::Slice(&ones), None).unwrap();
        assert!(!m.exact);
        assert!(m.cosine.is_nan());
        let m = compare(Values::Slice(&ones), Values::Slice(&[1.0, 1.0, 1.0, 1.0, 1.5]), None).unwrap();
        assert!(!m.exact);
        assert_eq!(m.sqnr_for_ranking(), m.sqnr_db);
    }

    /// The metrics computed one pair at a time, as the definitions read.
    fn naive(x: &[f32], y: &[f32], scale_of: impl Fn(usize) -> f64) -> (f64, f64, f64, f64, f64, u64) {
        let (mut xx, mut dd, mut xy, mut yy, mut ds, mut mx, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0f64, 0);
        for (i, (&a, &b)) in x.iter().zip(y).enumerate() {
            if !(a.is_finite() && b.is_finite()) {
                continue;
            }
            let (a, b) = (f64::from(a), f64::from(b));
            xx += a * a;
            yy += b * b;
            xy += a * b;
            dd += (a - b) * (a - b);
            ds += ((a - b) / scale_of(i)).powi(2);
            mx = mx.max((a - b).abs());
            n += 1;
        }
        (
            20.0 * (xx.sqrt() / dd.sqrt()).log10(),
            dd / n as f64,
            xy / (xx.sqrt() * yy.sqrt()),
            mx,
            (ds / n as f64).sqrt(),
            n,
        )
    }

    #[test]
    fn per_channel_metrics_equal_the_definitions_across_chunks() {
        use crate::model::{DType, TensorBytes, TensorData};
        // [rows, channels, inner] int8 along axis 1: inner 1 (axis last), 3 (short runs)
        // and per-tensor; several chunks, a channel count that does not divide them
        for (channels, inner, per_channel) in [(37usize, 1usize, true), (11, 3, true), (5, 1, false)] {
            let rows = 3 * crate::model::tensor::CHUNK_ELEMS / (channels * inner) + 7;
            let n = rows * channels * inner;
            let mut state = 0x1234_5678_u64;
            let mut x: Vec<f32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
                })
                .collect();
            let scale: Vec<f32> =
                (0..if per_channel { channels } else { 1 }).map(|c| 0.01 + 0.001 * c as f32).collect();
            let channel_of = |i: usize| if per_channel { (i / inner) % channels } else { 0 };
            let q: Vec<u8> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| (v / scale[channel_of(i)]).round().clamp(-127.0, 127.0) as i8 as u8)
                .collect();
            let t = TensorData {
                dtype: DType::Int8,
                shape: if inner == 1 {
                    vec![rows as u64, channels as u64]
                } else {
                    vec![rows as u64, channels as u64, inner as u64]
                },
                bytes: TensorBytes::from_vec(q),
            };
            let p = QuantParams {
                zero_point: vec![0; scale.len()],
                scale: scale.clone(),
                axis: Some(1),
                block: None,
                dtype: DType::Int8,
                zero_point_dtype: Some(DType::Int8),
                scale_tensor: None,
                zero_point_tensor: None,
                float_zero_point: None,
                groups: None,
            };
            x[n / 2] = f32::NAN; // one chunk takes the element-by-element path
            let mut y = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| y.extend_from_slice(c)).unwrap();
            for (i, &v) in y.iter().enumerate() {
                let q = t.bytes.in_memory().unwrap()[i].cast_signed();
                assert_eq!(v, p.dequantize(f32::from(q), channel_of(i)), "dequantized element {i}");
            }
            let m = compare(Values::Slice(&x), Values::Dequantized(&t, &p), Some(&p)).unwrap();
            let (sqnr, mse, cosine, max_abs, steps, count) = naive(&x, &y, |i| f64::from(scale[channel_of(i)]));
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1e-300);
            assert!(close(m.sqnr_db, sqnr) && close(m.mse, mse) && close(m.cosine, cosine), "{channels}x{inner}");
            assert!(close(m.rmse_over_scale.unwrap(), steps) && m.max_abs == max_abs, "{channels}x{inner}");
            assert_eq!((m.count, m.skipped), (count, 1));
            // rounding to the nearest step: about 1/√12 of a step
            assert!((steps - 0.289).abs() < 0.02, "{steps}");
        }
    }

    #[test]
    fn known_error() {
        // x = [3, 4], y = [3, 3]: ‖x‖ = 5, ‖x−y‖ = 1 → SQNR = 20·log10(5) dB
        let m = compare(Values::Slice(&[3.0, 4.0]), Values::Slice(&[3.0, 3.0]), None).unwrap();
        assert!((m.sqnr_db - 20.0 * 5f64.log10()).abs() < 1e-12);
        assert!((m.mse - 0.5).abs() < 1e-12 && (m.norm_l2 - 0.2).abs() < 1e-12);
        assert!((m.cosine - 21.0 / (5.0 * 18f64.sqrt())).abs() < 1e-12);
    }

    #[test]
    fn clipping_counts_finite_values_outside_the_range() {
        let mut c = RunningClip::default();
        c.add(&[-2.0, -0.5, 0.0, f32::NAN, 0.5, 3.0], (-1.0, 1.0));
        assert_eq!((c.outside, c.finite), (2, 5));
        c.add(&[f32::INFINITY, 1.0], (-1.0, 1.0));
        assert_eq!((c.outside, c.finite), (2, 6));
        assert_eq!(c.fraction(), Some(2.0 / 6.0));
        assert_eq!(RunningClip::default().fraction(), None);
    }
}
