//! What statistics run over: a tensor's raw values, its dequantized values, or a slice.

use crate::model::quant::QuantParams;
use crate::model::tensor::{ChunkReader, ReadError, TensorData};

/// A sequence of `f32` values that can be streamed any number of times.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    /// The tensor's stored values (float weights, or raw integers).
    Raw(&'a TensorData),
    /// `(q − zp) · scale` of a quantized tensor.
    Dequantized(&'a TensorData, &'a QuantParams),
    /// A float tensor quantized and dequantized as the graph runs it
    /// (`QuantizeLinear → DequantizeLinear` of a float weight):
    /// `(clamp(round(x / scale) + zp) − zp) · scale`, rounding half to even as ONNX does.
    Requantized(&'a TensorData, &'a QuantParams),
    /// Values already in memory.
    Slice(&'a [f32]),
    /// The values of `Dequantized` in the order they are stored (a `MatMulNBits` weight
    /// is viewed in the float `MatMul`'s `[K, N]` order but stored `[N, K]`: read row by
    /// row, not strided): for statistics that do not depend on order. See
    /// [`Values::any_order`].
    DequantizedStored(&'a TensorData, &'a QuantParams),
}

impl<'a> Values<'a> {
    /// Number of values.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Self::Raw(t) | Self::Dequantized(t, _) | Self::Requantized(t, _) | Self::DequantizedStored(t, _) => t.len(),
            Self::Slice(s) => s.len() as u64,
        }
    }

    /// True when there is no value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the underlying tensor (a slice is 1-D).
    #[must_use]
    pub fn shape(&self) -> Vec<u64> {
        match self {
            Self::Raw(t) | Self::Dequantized(t, _) | Self::Requantized(t, _) | Self::DequantizedStored(t, _) => {
                t.shape.clone()
            }
            Self::Slice(s) => vec![s.len() as u64],
        }
    }

    /// The same values in the order fastest to read: a transposed view of unsigned 2–8
    /// bit values blocked along its first axis ([`TensorBytes::Transposed`]) is read in
    /// its stored order; anything else is itself.
    #[must_use]
    pub fn any_order(self) -> Self {
        match self {
            Self::Dequantized(t, p) if stored_order(t, p).is_some() => Self::DequantizedStored(t, p),
            other => other,
        }
    }

    /// A pull-based reader over the values.
    ///
    /// # Errors
    /// When external data cannot be opened.
    pub fn reader(&self) -> Result<ValueReader<'a>, ReadError> {
        Ok(match *self {
            Self::Raw(t) => ValueReader {
                inner: Inner::Tensor(t.reader()?),
                params: None,
                channel: ChannelMap::none(),
                lanes: None,
                requantize: false,
            },
            Self::Dequantized(t, p) => {
                let channel = ChannelMap::new(&t.shape, p);
                let lanes = (channel.rowwise() && !p.float_arithmetic())
                    .then(|| (0..channel.channels).map(|c| p.channel(c)).unzip());
                ValueReader { inner: Inner::Tensor(t.reader()?), params: Some(p), channel, lanes, requantize: false }
            }
            Self::Requantized(t, p) => ValueReader {
                inner: Inner::Tensor(t.reader()?),
                params: Some(p),
                channel: ChannelMap::new(&t.shape, p),
                lanes: None,
                requantize: true,
            },
            Self::DequantizedStored(t, p) => match stored_order(t, p) {
                Some(stored) => ValueReader {
                    inner: Inner::Stored(stored),
                    params: None,
                    channel: ChannelMap::none(),
                    lanes: None,
                    requantize: false,
                },
                None => return Self::Dequantized(t, p).reader(),
            },
            Self::Slice(s) => ValueReader {
                inner: Inner::Slice(s, 0),
                params: None,
                channel: ChannelMap::none(),
                lanes: None,
                requantize: false,
            },
        })
    }

    /// Streams all values in chunks: `f(first_index, values)`.
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn for_each_chunk(&self, mut f: impl FnMut(usize, &[f32])) -> Result<(), ReadError> {
        let mut r = self.reader()?;
        let mut buf = Vec::new();
        while let Some(start) = r.next_chunk(&mut buf)? {
            f(start, &buf);
        }
        Ok(())
    }
}

/// Maps a flat element index to its channel along a quantization axis (or, for blocked
/// parameters, to its block: the index into the parameters).
#[derive(Clone, Copy, Debug)]
pub struct ChannelMap<'a> {
    /// Elements per step of the axis (product of the dims after it); 0 means per-tensor.
    inner: usize,
    channels: usize,
    /// Blocked: elements per block along the axis (0: not blocked), and the axis length.
    block: usize,
    dim: usize,
    /// Blocked: the block of each index along the axis where it is not `k / block`
    /// ([`QuantParams::groups`], act-order `g_idx`).
    groups: Option<&'a [u32]>,
}

impl<'a> ChannelMap<'a> {
    /// Per-tensor: every element is channel 0.
    #[must_use]
    pub fn none() -> Self {
        Self { inner: 0, channels: 1, block: 0, dim: 0, groups: None }
    }

    /// The map for `params` on a tensor of `shape`.
    #[must_use]
    pub fn new(shape: &[u64], params: &'a QuantParams) -> Self {
        match (params.axis, params.block) {
            (Some(a), Some(b)) => {
                let map = Self::blocked(shape, a, b);
                // (a table that does not cover the axis is ignored, never indexed past)
                let groups = params.groups.as_deref().filter(|g| g.len() == map.dim);
                Self { groups, ..map }
            }
            (Some(a), None) if params.scale.len() > 1 => Self::along(shape, a),
            _ => Self::none(),
        }
    }

    /// The map along `axis` of `shape`.
    #[must_use]
    pub fn along(shape: &[u64], axis: usize) -> Self {
        let inner = shape.iter().skip(axis + 1).product::<u64>();
        let channels = shape.get(axis).copied().unwrap_or(1);
        Self {
            inner: usize::try_from(inner.max(1)).unwrap_or(usize::MAX),
            channels: usize::try_from(channels.max(1)).unwrap_or(1),
            block: 0,
            dim: 0,
            groups: None,
        }
    }

    /// The map of blocks of `block` elements along `axis` of `shape`: element
    /// `(o, k, j)` (before, along, after the axis) has parameters
    /// `(o · ⌈dim / block⌉ + k / block) · inner + j`.
    #[must_use]
    pub fn blocked(shape: &[u64], axis: usize, block: usize) -> Self {
        let size = |v: u64| usize::try_from(v.max(1)).unwrap_or(usize::MAX);
        let inner = size(shape.iter().skip(axis + 1).product::<u64>());
        let outer = size(shape.iter().take(axis).product::<u64>());
        let dim = size(shape.get(axis).copied().unwrap_or(1));
        let block = block.max(1);
        let channels = outer.saturating_mul(dim.div_ceil(block)).saturating_mul(inner);
        Self { inner, channels, block, dim, groups: None }
    }

    /// The block of index `k` along the blocked axis.
    fn block_of(&self, k: usize) -> usize {
        match self.groups {
            Some(g) => g.get(k).map_or(0, |&b| b as usize),
            None => k / self.block.max(1),
        }
    }

    /// How many indices from `k` on (at most `limit`) share `k`'s block.
    fn same_block(&self, k: usize, limit: usize) -> usize {
        match self.groups {
            Some(g) => {
                let b = g.get(k);
                1 + g
                    .get(k + 1..)
                    .unwrap_or_default()
                    .iter()
                    .take(limit.saturating_sub(1))
                    .take_while(|x| Some(*x) == b)
                    .count()
            }
            None => (((k / self.block.max(1) + 1) * self.block.max(1)).min(self.dim) - k).min(limit),
        }
    }

    /// Whether the parameters are per block (see [`Self::blocked`]).
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        self.block > 0
    }

    /// The elements `start..start + len` of a blocked map as segments over which the
    /// parameter index is either consecutive (`true`: one step per element, the elements
    /// after the blocked axis) or constant (`false`: blocks along the last axis):
    /// `(first parameter, consecutive, range counted from start)`, walked incrementally.
    pub fn block_segments(
        self,
        start: usize,
        len: usize,
    ) -> impl Iterator<Item = (usize, bool, std::ops::Range<usize>)> {
        let (inner, dim, block) = (self.inner.max(1), self.dim.max(1), self.block.max(1));
        let blocks = dim.div_ceil(block);
        let (mut o, mut k, mut j) = (start / (dim * inner), (start / inner) % dim, start % inner);
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= len {
                return None;
            }
            let base = (o * blocks + self.block_of(k)) * inner + j;
            let n = if inner > 1 { (inner - j).min(len - at) } else { self.same_block(k, len - at) };
            let segment = (base, inner > 1, at..at + n);
            at += n;
            if inner > 1 {
                j += n;
                if j == inner {
                    j = 0;
                    k += 1;
                }
            } else {
                k += n;
            }
            if k == dim {
                k = 0;
                o += 1;
            }
            Some(segment)
        })
    }

    /// Whether element `i`'s channel is `i mod channels` (the axis is the last and not
    /// blocked): rows then zip with the per-channel parameters.
    #[must_use]
    pub fn rowwise(&self) -> bool {
        self.inner == 1 && self.block == 0
    }

    /// Channel (or block) of element `i`.
    #[must_use]
    pub fn channel(&self, i: usize) -> usize {
        if self.block > 0 {
            let (inner, dim) = (self.inner, self.dim);
            let o = i / (dim * inner);
            let k = (i / inner) % dim;
            return (o * dim.div_ceil(self.block) + self.block_of(k)) * inner + i % inner;
        }
        i.checked_div(self.inner).map_or(0, |c| c % self.channels)
    }

    /// Number of channels.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Elements per step of the axis (0: per-tensor).
    #[must_use]
    pub fn inner(&self) -> usize {
        self.inner
    }

    /// The elements `start..start + len` as runs of one channel, `(channel, range)` with
    /// ranges counted from `start`, walking the channels incrementally (no division per
    /// element). Per-tensor: one run of channel 0.
    pub fn runs(self, start: usize, len: usize) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
        let (mut c, mut r) = start.checked_div(self.inner).map_or((0, 0), |q| (q % self.channels, start % self.inner));
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= len {
                return None;
            }
            if self.block > 0 {
                // blocks: the run goes on while the parameters do
                let c = self.channel(start + at);
                let from = at;
                at += 1;
                while at < len && self.channel(start + at) == c {
                    at += 1;
                }
                return Some((c, from..at));
            }
            let n = if self.inner == 0 { len } else { (self.inner - r).min(len - at) };
            let run = (c, at..at + n);
            (at, r) = (at + n, 0);
            if self.inner > 0 {
                c = if c + 1 == self.channels { 0 } else { c + 1 };
            }
            Some(run)
        })
    }

    /// For a map whose channel steps every element (`inner == 1`: the axis is the last):
    /// the elements `start..start + len` as segments of consecutive channels, `(first
    /// channel, range)`: the rest of the first row, then whole rows.
    pub fn rows(self, start: usize, len: usize) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
        let channels = self.channels.max(1);
        let (mut c, mut at) = (start % channels, 0);
        std::iter::from_fn(move || {
            if at >= len {
                return None;
            }
            let n = (channels - c).min(len - at);
            let segment = (c, at..at + n);
            (c, at) = (0, at + n);
            Some(segment)
        })
    }
}

enum Inner<'a> {
    Tensor(ChunkReader<'a>),
    Slice(&'a [f32], usize),
    Stored(Stored<'a>),
}

/// A transposed blocked view read in its stored order, dequantized as it goes: stored row
/// `n` (column `n` of the `[cols, rows]` view) holds elements `(k, n)` at `n · stride + k`,
/// whose parameters are `block_of(k) · rows + n` (the view's [`ChannelMap`]).
struct Stored<'a> {
    bytes: &'a [u8],
    bits: u8,
    rows: usize,
    stride: usize,
    cols: usize,
    map: ChannelMap<'a>,
    params: &'a QuantParams,
    /// Next element: stored row and position in it; values handed out so far.
    n: usize,
    k: usize,
    done: usize,
}

/// The stored-order reader of `t` under `p`, when it applies.
fn stored_order<'a>(t: &'a TensorData, p: &'a QuantParams) -> Option<Stored<'a>> {
    let crate::model::tensor::TensorBytes::Transposed { buf, range, rows, stride, cols } = &t.bytes else {
        return None;
    };
    let bits = match t.dtype {
        crate::model::DType::Uint8 => 8,
        crate::model::DType::Uint4 => 4,
        crate::model::DType::UintBits(b) => b,
        _ => return None,
    };
    p.block.filter(|_| p.axis == Some(0) && t.shape.len() == 2)?;
    Some(Stored {
        bytes: buf.get(range.clone())?,
        bits,
        rows: *rows,
        stride: *stride,
        cols: *cols,
        map: ChannelMap::new(&t.shape, p),
        params: p,
        n: 0,
        k: 0,
        done: 0,
    })
}

impl Stored<'_> {
    /// The next chunk, dequantized; `None` at the end.
    fn next_chunk(&mut self, out: &mut Vec<f32>) -> Option<usize> {
        let total = self.rows * self.cols;
        if self.done >= total {
            return None;
        }
        let count = crate::model::tensor::CHUNK_ELEMS.min(total - self.done);
        out.clear();
        while out.len() < count {
            // the rest of this block (or of this run of rows of one act-order group)
            let take = self.map.same_block(self.k, count - out.len());
            let (scale, zp) = self.params.channel_f(self.map.block_of(self.k) * self.rows + self.n);
            let at = self.n * self.stride + self.k;
            match self.bits {
                4 => out.extend((at..at + take).map(|i| {
                    let q = self.bytes.get(i >> 1).map_or(0, |b| (b >> ((i & 1) << 2)) & 0x0f);
                    (f32::from(q) - zp) * scale
                })),
                8 => out.extend(
                    self.bytes.get(at..at + take).unwrap_or_default().iter().map(|&q| (f32::from(q) - zp) * scale),
                ),
                b => out.extend(
                    (at..at + take).map(|i| (f32::from(crate::model::dtype::bits_at(self.bytes, i, b)) - zp) * scale),
                ),
            }
            self.k += take;
            if self.k == self.cols {
                (self.k, self.n) = (0, self.n + 1);
            }
        }
        let start = self.done;
        self.done += count;
        Some(start)
    }
}

/// Reads [`Values`] chunk by chunk.
pub struct ValueReader<'a> {
    inner: Inner<'a>,
    params: Option<&'a QuantParams>,
    channel: ChannelMap<'a>,
    /// Per channel `(scale, zero point)` when every element is its own channel's (the
    /// quantization axis is the last one): rows then dequantize as whole vectors.
    lanes: Option<(Vec<f32>, Vec<i32>)>,
    /// The stored values are float: quantize them first ([`Values::Requantized`]).
    requantize: bool,
}

impl ValueReader<'_> {
    /// Fills `out` with the next chunk and returns its first index, or `None` at the end.
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn next_chunk(&mut self, out: &mut Vec<f32>) -> Result<Option<usize>, ReadError> {
        let start = match &mut self.inner {
            Inner::Tensor(r) => r.next_chunk(out)?,
            Inner::Stored(r) => return Ok(r.next_chunk(out)),
            Inner::Slice(s, pos) => {
                if *pos >= s.len() {
                    return Ok(None);
                }
                let n = crate::model::tensor::CHUNK_ELEMS.min(s.len() - *pos);
                out.clear();
                out.extend_from_slice(s.get(*pos..*pos + n).unwrap_or_default());
                let start = *pos;
                *pos += n;
                Some(start)
            }
        };
        match (start, self.params, &self.lanes) {
            (Some(start), Some(p), _) if self.requantize => requantize_chunk(out, start, p, self.channel),
            (Some(start), Some(p), _) if p.float_arithmetic() => dequantize_float(out, start, p, self.channel),
            (Some(start), Some(_), Some((scales, zps))) => dequantize_rows(out, start, self.channel, scales, zps),
            (Some(start), Some(p), None) if self.channel.is_blocked() => {
                dequantize_blocked(out, start, p, self.channel);
            }
            (Some(start), Some(p), None) => dequantize_chunk(out, start, p, self.channel),
            _ => {}
        }
        Ok(start)
    }
}

/// `(q − zp) · scale` of a chunk starting at element `start` when element `i` is channel
/// `i mod channels`: whole rows zip with the per-channel parameters (loops that vectorise).
#[allow(clippy::cast_possible_truncation)]
fn dequantize_rows(out: &mut [f32], start: usize, map: ChannelMap<'_>, scales: &[f32], zps: &[i32]) {
    for (c, range) in map.rows(start, out.len()) {
        let vals = out.get_mut(range).unwrap_or_default();
        let (scales, zps) = (scales.get(c..).unwrap_or_default(), zps.get(c..).unwrap_or_default());
        for ((v, &s), &z) in vals.iter_mut().zip(scales).zip(zps) {
            *v = ((*v as i32) - z) as f32 * s;
        }
    }
}

/// `(q − zp) · scale` of a blocked chunk starting at element `start`, segment by segment
/// (rows zipped with consecutive block parameters, or runs of one block).
#[allow(clippy::cast_possible_truncation)]
fn dequantize_blocked(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap<'_>) {
    for (base, consecutive, range) in map.block_segments(start, out.len()) {
        let vals = out.get_mut(range).unwrap_or_default();
        if consecutive {
            let (scales, zps) = (p.scale.get(base..).unwrap_or_default(), p.zero_point.get(base..).unwrap_or_default());
            for ((v, &s), &z) in vals.iter_mut().zip(scales).zip(zps) {
                *v = ((*v as i32) - z) as f32 * s;
            }
        } else {
            let (s, z) = p.channel(base);
            for v in vals {
                *v = ((*v as i32) - z) as f32 * s;
            }
        }
    }
}

/// `(q − zp) · scale` of a chunk starting at element `start`, run by run of a channel, in
/// i32 then f32 like [`QuantParams::dequantize`].
#[allow(clippy::cast_possible_truncation)]
fn dequantize_chunk(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap<'_>) {
    for (c, range) in map.runs(start, out.len()) {
        let (scale, zp) = p.channel(c);
        for v in out.get_mut(range).unwrap_or_default() {
            *v = ((*v as i32) - zp) as f32 * scale;
        }
    }
}

/// `(x − zp) · scale` in floats (float8 values decoded exactly, or float zero points),
/// run by run of a channel.
fn dequantize_float(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap<'_>) {
    for (c, range) in map.runs(start, out.len()) {
        let (scale, zp) = p.channel_f(c);
        for v in out.get_mut(range).unwrap_or_default() {
            *v = (*v - zp) * scale;
        }
    }
}

/// `QuantizeLinear` then `DequantizeLinear` of float values, run by run of a channel:
/// `q = clamp(round_half_even(x / scale) + zp, qmin, qmax)`, then `(q − zp) · scale`
/// (AVX2 rounds in vectors; the baseline target calls `rintf` per value).
fn requantize_chunk(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap<'_>) {
    super::simd::wide!(requantize_runs, (out: &mut [f32] = out, start: usize = start, p: &QuantParams = p, map: ChannelMap<'_> = map) -> ());
}

// (inlined into `simd::wide!`, so that it is compiled for AVX2 there)
#[inline(always)]
#[allow(clippy::inline_always, clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn requantize_runs(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap<'_>) {
    let (qmin, qmax) = p.dtype.int_range().unwrap_or((0, 255));
    let (qmin, qmax) = (qmin as f32, qmax as f32);
    for (c, range) in map.runs(start, out.len()) {
        let (scale, zp) = p.channel(c);
        for v in out.get_mut(range).unwrap_or_default() {
            let q = ((*v / scale).round_ties_even() + zp as f32).clamp(qmin, qmax);
            *v = ((q as i32) - zp) as f32 * scale;
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]
mod tests {
    use super::*;
    use crate::model::DType;
    use crate::model::TensorBytes;
    use crate::stats::summary::summarize;

    /// An int8 tensor `[rows, channels, inner]` quantized along axis 1.
    fn along_axis_1(rows: usize, channels: usize, inner: usize) -> (TensorData, QuantParams) {
        let n = rows * channels * inner;
        let bytes: Vec<u8> = (0..n).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let shape = if inner == 1 {
            vec![rows as u64, channels as u64]
        } else {
            vec![rows as u64, channels as u64, inner as u64]
        };
        let t = TensorData { dtype: DType::Int8, shape, bytes: TensorBytes::from_vec(bytes) };
        let p = QuantParams {
            scale: (0..channels).map(|c| 0.01 * (c + 1) as f32).collect(),
            zero_point: (0..channels).map(|c| c as i32 - 1).collect(),
            axis: Some(1),
            block: None,
            dtype: DType::Int8,
            zero_point_dtype: Some(DType::Int8),
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        };
        (t, p)
    }

    #[test]
    fn requantized_float_values_round_half_even_and_saturate() {
        let x: [f32; 8] = [0.0, 0.25, 0.75, -0.25, 1.0, 100.0, -100.0, 0.3];
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = TensorData { dtype: DType::Float32, shape: vec![2, 4], bytes: TensorBytes::from_vec(bytes) };
        let p = QuantParams {
            scale: vec![0.5, 0.1],
            zero_point: vec![0, 10],
            axis: Some(0),
            block: None,
            dtype: DType::Int8,
            zero_point_dtype: Some(DType::Int8),
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        };
        let mut y = Vec::new();
        Values::Requantized(&t, &p).for_each_chunk(|_, c| y.extend_from_slice(c)).unwrap();
        // row 0, scale 0.5: 0.25/0.5 = 0.5 → 0 (to even), 0.75/0.5 = 1.5 → 2, -0.5 → -0
        assert_eq!(&y[..4], &[0.0, 0.0, 1.0, 0.0]);
        // row 1, scale 0.1, zp 10: 1.0 → 10 + 10 = 20 → 1.0; 100 → 127 (saturated) → 11.7
        assert!((y[4] - 1.0).abs() < 1e-6);
        assert!((y[5] - 11.7).abs() < 1e-5, "{}", y[5]);
        assert!((y[6] + 13.8).abs() < 1e-5, "-128 − 10 → {}", y[6]);
        assert!((y[7] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn block_segments_cover_each_element_with_its_block() {
        // blocks of 4 along axis 1 of [3, 10, 5] (inner 5) and along the last axis of [6, 10],
        // by position, and by act-order groups (`g_idx`) that scatter the 10 indices
        let groups: [u32; 10] = [2, 0, 0, 1, 2, 2, 1, 0, 0, 1];
        for ((shape, axis), act_order) in
            [(vec![3u64, 10, 5], 1usize), (vec![6, 10], 1)].into_iter().flat_map(|c| [(c.clone(), false), (c, true)])
        {
            let plain = ChannelMap::blocked(&shape, axis, 4);
            let map = if act_order { ChannelMap { groups: Some(&groups), ..plain } } else { plain };
            let n: usize = shape.iter().product::<u64>() as usize;
            let inner = if shape.len() == 3 { 5 } else { 1 };
            for i in 0..n {
                let (o, k, j) = (i / (10 * inner), (i / inner) % 10, i % inner);
                let block = if act_order { groups[k] as usize } else { k / 4 };
                assert_eq!(map.channel(i), (o * 3 + block) * inner + j, "{shape:?} element {i}");
            }
            for (start, len) in [(0, n), (7, 23), (13, n - 13)] {
                let mut seen = 0;
                for (base, consecutive, range) in map.block_segments(start, len) {
                    assert_eq!(range.start, seen);
                    for (k, i) in range.clone().enumerate() {
                        let expected = map.channel(start + i);
                        assert_eq!(
                            if consecutive { base + k } else { base },
                            expected,
                            "{shape:?} element {}",
                            start + i
                        );
                    }
                    seen = range.end;
                }
                assert_eq!(seen, len);
            }
        }
    }

    #[test]
    fn runs_and_rows_walk_the_channels() {
        // [*, 3 channels, 2 inner]: from element 3 (channel 1, second of its run)
        let map = ChannelMap::along(&[4, 3, 2], 1);
        let runs: Vec<_> = map.runs(3, 6).collect();
        assert_eq!(runs, vec![(1, 0..1), (2, 1..3), (0, 3..5), (1, 5..6)]);
        assert_eq!(ChannelMap::none().runs(7, 5).collect::<Vec<_>>(), vec![(0, 0..5)]);
        // [*, 4] along the last axis, from element 6 (channel 2): rest of the row, rows
        let rows: Vec<_> = ChannelMap::along(&[5, 4], 1).rows(6, 9).collect();
        assert_eq!(rows, vec![(2, 0..2), (0, 2..6), (0, 6..9)]);
    }

    #[test]
    fn short_channel_runs_dequantize_across_chunk_boundaries() {
        // 300,000 elements: several decode chunks and raw chunks, starting mid-run
        // (40 channels: more than 4096 distinct pairs, the weighted radix path)
        for (channels, inner) in [(3, 1), (5, 2), (7, 20), (40, 1)] {
            let (t, p) = along_axis_1(300_000 / (channels * inner), channels, inner);
            let raw = t.to_f32_vec().unwrap();
            let mut seen = 0;
            Values::Dequantized(&t, &p)
                .for_each_chunk(|start, chunk| {
                    for (k, &v) in chunk.iter().enumerate() {
                        let i = start + k;
                        assert_eq!(v, p.dequantize(raw[i], (i / inner) % channels), "element {i}");
                    }
                    seen += chunk.len();
                })
                .unwrap();
            assert_eq!(seen as u64, t.len());
            // the counted path (when it applies) describes the same multiset
            assert_eq!(crate::stats::counted::Counted::of(&t, &p).unwrap().is_some(), 300_000 / channels >= 128);
            let mut plain = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
            let (fast, slow) =
                (summarize(Values::Dequantized(&t, &p)).unwrap(), summarize(Values::Slice(&plain)).unwrap());
            assert_eq!(
                (fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                (slow.min, slow.max, slow.q25, slow.q50, slow.q75)
            );
            assert!((fast.mean - slow.mean).abs() < 1e-7 * slow.std && (fast.std - slow.std).abs() < 1e-7 * slow.std);
        }
    }
}
