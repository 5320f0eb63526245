//! What statistics run over: a tensor's raw values, its dequantized values, or a slice.

use crate::model::DType;
use crate::model::quant::QuantParams;
use crate::model::tensor::{ChunkReader, ReadError, TensorData};

/// A sequence of `f32` values that can be streamed any number of times.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    /// The tensor's stored values (float weights, or raw integers).
    Raw(&'a TensorData),
    /// `(q − zp) · scale` of a quantized tensor.
    Dequantized(&'a TensorData, &'a QuantParams),
    /// Values already in memory.
    Slice(&'a [f32]),
}

impl<'a> Values<'a> {
    /// Number of values.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Self::Raw(t) | Self::Dequantized(t, _) => t.len(),
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
            Self::Raw(t) | Self::Dequantized(t, _) => t.shape.clone(),
            Self::Slice(s) => vec![s.len() as u64],
        }
    }

    /// A pull-based reader over the values.
    ///
    /// # Errors
    /// When external data cannot be opened.
    pub fn reader(&self) -> Result<ValueReader<'a>, ReadError> {
        Ok(match *self {
            Self::Raw(t) => {
                ValueReader { inner: Inner::Tensor(t.reader()?), params: None, channel: ChannelMap::none() }
            }
            Self::Dequantized(t, p) => ValueReader {
                inner: Inner::Tensor(t.reader()?),
                params: Some(p),
                channel: ChannelMap::new(&t.shape, p),
            },
            Self::Slice(s) => ValueReader { inner: Inner::Slice(s, 0), params: None, channel: ChannelMap::none() },
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

/// Maps a flat element index to its channel along a quantization axis.
#[derive(Clone, Copy, Debug)]
pub struct ChannelMap {
    /// Elements per step of the axis (product of the dims after it); 0 means per-tensor.
    inner: usize,
    channels: usize,
}

impl ChannelMap {
    /// Per-tensor: every element is channel 0.
    #[must_use]
    pub fn none() -> Self {
        Self { inner: 0, channels: 1 }
    }

    /// The map for `params` on a tensor of `shape`.
    #[must_use]
    pub fn new(shape: &[u64], params: &QuantParams) -> Self {
        match params.axis {
            Some(a) if params.scale.len() > 1 => Self::along(shape, a),
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
        }
    }

    /// Channel of element `i`.
    #[must_use]
    pub fn channel(&self, i: usize) -> usize {
        i.checked_div(self.inner).map_or(0, |c| c % self.channels)
    }

    /// Number of channels.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Splits the chunk `values` (starting at element `start`) into runs of one channel:
    /// `f(channel, run)`, walking the channels incrementally (no division per element).
    pub fn for_each_run<T>(&self, start: usize, values: &mut [T], mut f: impl FnMut(usize, &mut [T])) {
        if self.inner == 0 {
            f(0, values);
            return;
        }
        let (mut c, mut r) = ((start / self.inner) % self.channels, start % self.inner);
        let mut rest = values;
        while !rest.is_empty() {
            let n = (self.inner - r).min(rest.len());
            let (run, tail) = rest.split_at_mut(n);
            f(c, run);
            rest = tail;
            r = 0;
            c = (c + 1) % self.channels;
        }
    }
}

/// Walks the channels element by element (for runs too short to split): the channel and
/// the position within its run, no division per element. Needs `map.inner > 0`.
struct Cursor {
    channel: usize,
    within: usize,
    map: ChannelMap,
}

impl Cursor {
    fn at(map: ChannelMap, start: usize) -> Self {
        Self { channel: (start / map.inner) % map.channels, within: start % map.inner, map }
    }

    /// The channel of the current element; moves to the next.
    #[inline]
    fn next_channel(&mut self) -> usize {
        let c = self.channel;
        self.within += 1;
        if self.within == self.map.inner {
            self.within = 0;
            self.channel += 1;
            if self.channel == self.map.channels {
                self.channel = 0;
            }
        }
        c
    }
}

enum Inner<'a> {
    Tensor(ChunkReader<'a>),
    Slice(&'a [f32], usize),
}

/// Reads [`Values`] chunk by chunk.
pub struct ValueReader<'a> {
    inner: Inner<'a>,
    params: Option<&'a QuantParams>,
    channel: ChannelMap,
}

impl ValueReader<'_> {
    /// Fills `out` with the next chunk and returns its first index, or `None` at the end.
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn next_chunk(&mut self, out: &mut Vec<f32>) -> Result<Option<usize>, ReadError> {
        let start = match &mut self.inner {
            Inner::Tensor(r) => r.next_chunk(out)?,
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
        if let (Some(start), Some(p)) = (start, self.params) {
            dequantize_chunk(out, start, p, self.channel);
        }
        Ok(start)
    }
}

/// `(q − zp) · scale` of a chunk starting at element `start`, walking the channels
/// incrementally (no division per element), in i32 then f32 like
/// [`QuantParams::dequantize`].
#[allow(clippy::cast_possible_truncation)]
fn dequantize_chunk(out: &mut [f32], start: usize, p: &QuantParams, map: ChannelMap) {
    if map.inner > 0 && map.inner < 16 {
        // short runs (e.g. MatMul weights along axis 1): a channel cursor per element
        let mut cursor = Cursor::at(map, start);
        for v in out.iter_mut() {
            *v = p.dequantize(*v, cursor.next_channel());
        }
        return;
    }
    map.for_each_run(start, out, |c, run| {
        let (scale, zp) = p.channel(c);
        for v in run.iter_mut() {
            *v = ((*v as i32) - zp) as f32 * scale;
        }
    });
}

/// An 8-bit quantized tensor described exactly by how often each `(channel, q)` pair
/// occurs: the multiset of its dequantized values, counted in one pass over the raw
/// bytes (no decoding, no float per element).
pub struct QuantCounts {
    /// `counts[c * 256 + (q + offset)]`.
    pub counts: Vec<u64>,
    /// 128 for int8 (so that q = −128 is slot 0), 0 for uint8.
    pub offset: i32,
}

impl QuantCounts {
    /// Counts `t` (int8 or uint8; `None` for other dtypes) along `map`'s channels.
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn of(t: &TensorData, map: ChannelMap) -> Result<Option<Self>, ReadError> {
        let offset = match t.dtype {
            DType::Int8 => 128,
            DType::Uint8 => 0,
            _ => return Ok(None),
        };
        // int8 bytes are two's complement: flipping the top bit orders them from −128
        let flip: u8 = if offset == 128 { 0x80 } else { 0 };
        // u32 counters (half the table, so it stays in cache), flushed into u64 totals
        // before any of them could overflow
        let mut counts = vec![0u64; map.channels() * 256];
        let mut small = vec![0u32; map.channels() * 256];
        let mut since_flush = 0u64;
        let flush = |small: &mut [u32], counts: &mut [u64]| {
            for (c, s) in counts.iter_mut().zip(small.iter_mut()) {
                *c += u64::from(std::mem::take(s));
            }
        };
        t.for_each_raw_chunk(|start, bytes| {
            if since_flush + bytes.len() as u64 > u64::from(u32::MAX) {
                flush(&mut small, &mut counts);
                since_flush = 0;
            }
            since_flush += bytes.len() as u64;
            if map.inner == 0 {
                for &b in bytes {
                    if let Some(slot) = small.get_mut(usize::from(b ^ flip)) {
                        *slot += 1;
                    }
                }
                return;
            }
            let mut cursor = Cursor::at(map, start);
            for &b in bytes {
                if let Some(slot) = small.get_mut(cursor.next_channel() * 256 + usize::from(b ^ flip)) {
                    *slot += 1;
                }
            }
        })?;
        flush(&mut small, &mut counts);
        Ok(Some(Self { counts, offset }))
    }

    /// Each present `(dequantized value, count)`, as [`QuantParams::dequantize`] computes it.
    #[allow(clippy::cast_precision_loss)]
    pub fn values<'s>(&'s self, p: &'s QuantParams) -> impl Iterator<Item = (f32, u64)> + 's {
        self.counts.iter().enumerate().filter(|(_, n)| **n > 0).map(move |(i, &n)| {
            let (c, q) = (i / 256, i32::try_from(i % 256).unwrap_or(0) - self.offset);
            (p.dequantize(q as f32, c), n)
        })
    }
}

/// Whether counting `(channel, q)` pairs pays off for `values` (an 8-bit dequantized
/// tensor with at least 64 values per channel: the counts table, 256 per channel, is then
/// cheaper to walk than the values); returns the tensor, params and map.
#[must_use]
pub fn counted_8bit(values: Values<'_>) -> Option<(&TensorData, &QuantParams, ChannelMap)> {
    let Values::Dequantized(t, p) = values else { return None };
    if !matches!(t.dtype, DType::Int8 | DType::Uint8) {
        return None;
    }
    let map = ChannelMap::new(&t.shape, p);
    (values.len() >= 64 * map.channels() as u64).then_some((t, p, map))
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
            dtype: DType::Int8,
            zero_point_dtype: Some(DType::Int8),
            scale_tensor: None,
            zero_point_tensor: None,
        };
        (t, p)
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
            // the (channel, q) counts describe the same multiset
            let counts = QuantCounts::of(&t, ChannelMap::new(&t.shape, &p)).unwrap().unwrap();
            let mut expected = vec![0u64; channels * 256];
            for (i, &q) in raw.iter().enumerate() {
                expected[(i / inner) % channels * 256 + (q as i32 + 128) as usize] += 1;
            }
            assert_eq!(counts.counts, expected);
            let mut plain = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
            let (fast, slow) =
                (summarize(Values::Dequantized(&t, &p)).unwrap(), summarize(Values::Slice(&plain)).unwrap());
            assert_eq!(
                (fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                (slow.min, slow.max, slow.q25, slow.q50, slow.q75)
            );
            assert!((fast.mean - slow.mean).abs() < 1e-9 && (fast.std - slow.std).abs() < 1e-9);
        }
    }
}
