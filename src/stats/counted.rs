//! Exact statistics of an 8-bit quantized tensor from how often each `(channel, q)` pair
//! occurs: one counting pass over the raw bytes, then work per channel, not per element.
//!
//! Within a channel the dequantized value `(q − zp)·scale` is monotone in `q` (scale > 0,
//! and f32 rounding keeps the order), so per-channel cumulative counts answer "how many
//! values are ≤ v" in O(channels). Quartiles come from a search for the values at the
//! needed ranks (interpolation, with bisection of the float's bit pattern as a fallback,
//! until the bracket holds few `(channel, q)` slots, which are then sorted), and shared-bin
//! histograms from the counts below each bin edge. Min, max, quartiles and bin counts equal
//! what the streamed path computes over the f32 dequantized values (tests check both
//! against each other); mean and std come from exact integer sums over the slots, so they
//! are those of the exact values `(q − zp)·scale`, within 1e-7 of a std of the moments of
//! the f32-rounded ones.

use super::kernel::{Histogram, MAX_BINS, Moments, Summary, edges, finish, interpolate, key, needed_ranks, unkey};
use super::source::ChannelMap;
use crate::model::DType;
use crate::model::quant::QuantParams;
use crate::model::tensor::{ReadError, TensorData};

/// Slots per channel: one per stored byte value, in the order of `q` (int8's sign bit is
/// flipped so that slot 0 is q = −128).
const SLOTS: usize = 256;
/// Bytes counted per call: large, so that axis-last weights count many rows per block of
/// channels (small in unit tests, so that rows and runs straddle the calls).
#[cfg(not(test))]
const COUNT_BLOCK: usize = 4 << 20;
#[cfg(test)]
const COUNT_BLOCK: usize = 40_000;
/// Channels whose tables are counted into together (256 KiB of tables, a quarter of the L2
/// cache), when there are more than four times as many (fewer fit in L2 whole).
const COLUMN_BLOCK: usize = 256;

thread_local! {
    /// Count tables, reused from tensor to tensor: a fresh one per tensor cost a page
    /// fault per 4 KiB, more than counting into it.
    static TABLES: std::cell::RefCell<Vec<Vec<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One channel in slot terms: slot `s` stands for the value `((s − base) as f32) · scale`.
#[derive(Clone, Copy, Debug)]
struct Lane {
    scale: f32,
    /// `offset + zero point`, so that `s − base = q − zp`.
    base: i32,
    /// `1 / scale`, to estimate the slot of a value.
    inv: f64,
    /// First and last slot holding a value.
    first: i32,
    last: i32,
    /// See [`Lane::floor_slot`].
    margin: f64,
}

impl Lane {
    /// The dequantized value of slot `s`, exactly as `QuantParams::dequantize` computes it.
    #[inline]
    fn value(&self, s: i32) -> f32 {
        (s - self.base) as f32 * self.scale
    }

    /// The last slot below `x` when no value needs computing to know it: `x / scale + base`
    /// (the real slot whose value would be `x`) is not within `margin` of a whole number.
    /// (Rounding a slot's value to f32 moves it by under 2⁻²⁴·|s − base| slots; `margin`
    /// is 16 times that.) `None` near a slot, or outside the slots.
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    fn floor_slot(&self, x: f64) -> Option<i32> {
        self.floor_of(x * self.inv + f64::from(self.base))
    }

    /// [`Self::floor_slot`] of the real slot `est`.
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    fn floor_of(&self, est: f64) -> Option<i32> {
        if !(0.0..256.0).contains(&est) {
            return None;
        }
        let floor = est as i32; // est ≥ 0: truncation is a floor
        let frac = est - f64::from(floor);
        (frac > self.margin && frac < 1.0 - self.margin).then_some(floor.clamp(self.first - 1, self.last))
    }

    /// The last slot (clamped to `first − 1 ..= last`) whose value is below `x` (`≤ x` when
    /// `inclusive`), compared in f64 as the histogram does.
    #[inline]
    #[allow(clippy::cast_possible_truncation)]
    fn slot_below(&self, x: f64, inclusive: bool) -> i32 {
        if let Some(s) = self.floor_slot(x) {
            return s;
        }
        let est = x * self.inv + f64::from(self.base);
        if est.is_nan() || est < f64::from(self.first - 1) {
            return self.first - 1;
        }
        if est >= f64::from(self.last) + 1.0 {
            return self.last;
        }
        let ok = |s: i32| {
            let v = f64::from(self.value(s));
            if inclusive { v <= x } else { v < x }
        };
        let mut s = ((est + 1.0) as i32 - 1).clamp(self.first - 1, self.last); // est ≥ −1
        while s < self.last && ok(s + 1) {
            s += 1;
        }
        while s >= self.first && !ok(s) {
            s -= 1;
        }
        s
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // keep tables up to 4 MiB (a thousand channels) for the next tensor
        let table = std::mem::take(&mut self.cum);
        if table.capacity() <= 1 << 20 {
            TABLES.with(|p| p.borrow_mut().push(table));
        }
    }
}

/// A probed value of the rank search: how many values are ≤ it, and each channel's last
/// slot ≤ it.
struct Probe {
    v: f32,
    count: u64,
    t: Vec<i32>,
}

/// An 8-bit tensor's dequantized values, described exactly by their per-channel counts.
pub struct Counted {
    lanes: Vec<Lane>,
    /// `cum[c * SLOTS + s]`: values of channel `c` in slots up to `s`, for `s` from the
    /// channel's first to its last used slot (counts turned into running sums in place;
    /// read through [`Counted::cum`]).
    cum: Vec<u32>,
    count: u64,
    moments: Moments,
}

impl Counted {
    /// Counts `t` under `p`, when the counted path applies: int8 or uint8; every scale
    /// finite and positive with finite values at both ends of the range; at least 128
    /// values per channel (below, the work per channel outweighs the streamed path's per
    /// value: `bench-kernels` measured 6.5 against 3.1 ns per value at 64); under 2³¹ values; tables no larger than twice the tensor (or 16 MiB).
    /// `Ok(None)` otherwise (the streamed path handles every case).
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub fn of(t: &TensorData, p: &QuantParams) -> Result<Option<Self>, ReadError> {
        let Some((lanes, map, flip)) = plan(t, p) else { return Ok(None) };
        let mut table = TABLES.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        table.clear();
        table.resize(lanes.len() * SLOTS, 0);
        let counts = table.as_chunks_mut::<SLOTS>().0;
        t.for_each_raw_block(COUNT_BLOCK, |start, bytes| count_into(counts, map, start, bytes, flip))?;
        Ok(Some(Self::from_counts(table, lanes, t.len())))
    }

    fn from_counts(mut cum: Vec<u32>, mut lanes: Vec<Lane>, count: u64) -> Self {
        let mut m = Moments::default();
        for (table, lane) in cum.as_chunks_mut::<SLOTS>().0.iter_mut().zip(lanes.iter_mut()) {
            let (Some(first), Some(last)) = (table.iter().position(|&n| n > 0), table.iter().rposition(|&n| n > 0))
            else {
                continue;
            };
            let (first, last) = (i32::try_from(first).unwrap_or(0), i32::try_from(last).unwrap_or(0));
            (lane.first, lane.last) = (first, last);
            // only the used slots: lookups never leave `first − 1 ..= last` (see `Lane`)
            let used = table.get_mut(first as usize..=last as usize).unwrap_or_default();
            let total = running_sums(used);
            // moments from exact integer sums over the slots: with running sums cum[k],
            // Σ s·n = last·total − Σ cum[k] and Σ s²·n = last²·total − Σ (2k+1)·cum[k],
            // over first ≤ k < last; then shifted to q − zp and scaled
            let (mut a1, mut a2) = (0u64, 0u64);
            let below_last = used.get(..used.len().saturating_sub(1)).unwrap_or_default();
            for (k, &c) in (2 * u64::from(first.unsigned_abs()) + 1..).step_by(2).zip(below_last) {
                a1 += u64::from(c);
                a2 += k * u64::from(c);
            }
            let (t, last_u) = (u128::from(total), u128::from(last.unsigned_abs()));
            let s1 = last_u * t - u128::from(a1);
            let s2 = last_u * last_u * t - u128::from(a2);
            let spread = t * s2 - s1 * s1; // S0·S2 − S1² ≥ 0: n² times the variance of s
            let sum_y = s1 as f64 - f64::from(lane.base) * f64::from(total);
            let scale = f64::from(lane.scale);
            let n = f64::from(total);
            m.merge(
                u64::from(total),
                scale * sum_y / n,
                scale * scale * (spread as f64) / n,
                f64::from(lane.value(first)),
                f64::from(lane.value(last)),
            );
        }
        Self { lanes, cum, count, moments: m }
    }

    #[inline]
    fn cum(&self, c: usize, s: i32) -> u64 {
        // values in slots ≤ s; running sums were only taken over the used slots, so past
        // the last one the total stands at the last
        let s = self.lanes.get(c).map_or(s, |l| s.min(l.last));
        usize::try_from(s).ok().and_then(|s| self.cum.get(c * SLOTS + s)).map_or(0, |&n| u64::from(n))
    }

    fn slot_count(&self, c: usize, s: i32) -> u32 {
        u32::try_from(self.cum(c, s) - self.cum(c, s - 1)).unwrap_or(0)
    }

    /// The finite range, when there is a value.
    pub(super) fn bounds(&self) -> Option<(f64, f64)> {
        (self.moments.n > 0).then_some((self.moments.min, self.moments.max))
    }

    /// The summary (exact quartiles included).
    #[must_use]
    pub fn summary(&self) -> Summary {
        let m = self.moments;
        if m.n == 0 {
            return finish(self.count, 0, 0, m, [f64::NAN; 3]);
        }
        let ranks = needed_ranks(m.n);
        let values = self.values_at(&ranks);
        let value_of =
            |r: u64| ranks.iter().position(|&x| x == r).and_then(|i| values.get(i)).map_or(f64::NAN, |&v| f64::from(v));
        let q = [0.25, 0.5, 0.75].map(|p| interpolate(m.n, p, value_of));
        finish(self.count, 0, 0, m, q)
    }

    /// Counts the values into `bins` bins over `[lo, hi]`, as [`super::histogram`] assigns
    /// them: per channel, the number of values below each edge.
    #[must_use]
    pub fn histogram(&self, lo: f64, hi: f64, bins: usize) -> Histogram {
        let bins = bins.clamp(1, MAX_BINS);
        let edges = edges(lo, hi, bins);
        let norm = bins as f64 / (hi - lo);
        // below[j]: values < edges[j]; whole channels past an edge are added to `all_from`
        // at the first edge above them and accumulated after the loop
        let mut below = vec![0u64; bins + 1];
        let mut all_from = vec![0u64; bins + 2];
        let mut up_to_hi = 0u64;
        for (c, lane) in self.lanes.iter().enumerate() {
            let (vmin, vmax) = (f64::from(lane.value(lane.first)), f64::from(lane.value(lane.last)));
            let total = self.cum(c, lane.last);
            let (j0, j1) = (edges_at_or_below(&edges, lo, norm, vmin), edges_at_or_below(&edges, lo, norm, vmax));
            // edges inside the channel: the slot below each is at least `first`; the real
            // slot of edge j steps by `step` from edge j0's
            let row = self.cum.get(c * SLOTS..(c + 1) * SLOTS).unwrap_or_default();
            let inside = edges.get(j0..j1).unwrap_or_default();
            let slot_step = (hi - lo) / bins as f64 * lane.inv;
            let mut est = inside.first().map_or(0.0, |&e| e * lane.inv + f64::from(lane.base));
            for (b, &e) in below.get_mut(j0..j1).unwrap_or_default().iter_mut().zip(inside) {
                let s = lane.floor_of(est).unwrap_or_else(|| lane.slot_below(e, false));
                *b += usize::try_from(s).ok().and_then(|s| row.get(s)).map_or(0, |&n| u64::from(n));
                est += slot_step;
            }
            if let Some(a) = all_from.get_mut(j1) {
                *a += total;
            }
            up_to_hi += if hi >= vmax {
                total
            } else if hi < vmin {
                0
            } else {
                self.cum(c, lane.slot_below(hi, true))
            };
        }
        let mut run = 0u64;
        for (b, a) in below.iter_mut().zip(&all_from) {
            run += a;
            *b += run;
        }
        let mut counts: Vec<u64> = below.windows(2).map(|w| w[1] - w[0]).collect();
        if let (Some(last), Some(&from)) = (counts.last_mut(), below.get(bins - 1)) {
            *last = up_to_hi.saturating_sub(from);
        }
        let inside = up_to_hi.saturating_sub(below.first().copied().unwrap_or(0));
        Histogram { lo, hi, counts, outside: self.moments.n - inside, nonfinite: 0 }
    }

    /// The values at the sorted ranks `ranks` (each below the number of values).
    fn values_at(&self, ranks: &[u64]) -> Vec<f32> {
        let mut out = vec![f32::NAN; ranks.len()];
        let mut probes = Vec::new();
        let mut i = 0;
        while let Some(&r) = ranks.get(i) {
            let (mut before, pairs) = self.bracket(r, &mut probes);
            let start = i;
            let mut k = 0;
            while let Some(&r) = ranks.get(i) {
                while let Some(&(_, n)) = pairs.get(k)
                    && before + u64::from(n) <= r
                {
                    before += u64::from(n);
                    k += 1;
                }
                let Some(&(v, _)) = pairs.get(k) else { break };
                if let Some(o) = out.get_mut(i) {
                    *o = v;
                }
                i += 1;
            }
            if i == start {
                i += 1; // cannot happen (the bracket holds rank r); never loop forever
            }
        }
        out
    }

    /// Narrows `(lo, hi]` until it holds rank `r` and few slots; returns the number of
    /// values ≤ lo and the bracket's `(value, count)` pairs in ascending order.
    ///
    /// Each probe counts the values ≤ v in every channel; the bracket's ends are then
    /// snapped to the nearest values the channels can hold, so that a value shared by many
    /// channels (0 = the zero point, often the median) ends the search at once. Probes
    /// interpolate on the counts (Illinois-weighted, so that one end does not stall) and
    /// bisect the float's bit pattern after a poor step, so the search always converges.
    fn bracket(&self, r: u64, probes: &mut Vec<Probe>) -> (u64, Vec<(f32, u32)>) {
        let m = self.moments;
        // the tightest bracket among earlier probes (other ranks' searches), else the
        // value just below the minimum (nothing ≤ it) and the maximum (everything)
        let lo = probes.iter().filter(|p| p.count <= r).max_by(|a, b| a.v.total_cmp(&b.v));
        let hi = probes.iter().filter(|p| p.count > r).min_by(|a, b| a.v.total_cmp(&b.v));
        #[allow(clippy::cast_possible_truncation)]
        let (mut lo_v, mut c_lo, mut lo_t) = match lo {
            Some(p) => (p.v, p.count, p.t.clone()),
            None => (unkey(key(m.min as f32).wrapping_sub(1)), 0, self.lanes.iter().map(|l| l.first - 1).collect()),
        };
        #[allow(clippy::cast_possible_truncation)]
        let (mut hi_v, mut c_hi, mut hi_t) = match hi {
            Some(p) => (p.v, p.count, p.t.clone()),
            None => (m.max as f32, m.n, self.lanes.iter().map(|l| l.last).collect()),
        };
        let limit = 64;
        let mut slots: u64 = hi_t.iter().zip(&lo_t).map(|(h, l)| u64::try_from(h - l).unwrap_or(0)).sum();
        let (mut bisect, mut moved, mut w_lo, mut w_hi) = (false, 0i8, 1.0f64, 1.0f64);
        let target = r as f64 + 0.5;
        // the first guess from the moments (quartiles of a bell: mean ± 0.67 σ)
        let mut first_guess =
            probes.is_empty().then(|| m.mean + (m.m2 / m.n as f64).sqrt() * ((target / m.n as f64) - 0.5) * 2.7);
        loop {
            let (klo, khi) = (key(lo_v), key(hi_v));
            if slots <= limit || khi <= klo.saturating_add(1) {
                break;
            }
            let (g_lo, g_hi) = ((c_lo as f64 - target) * w_lo, (c_hi as f64 - target) * w_hi);
            let guess = first_guess
                .take()
                .unwrap_or_else(|| f64::from(lo_v) + (f64::from(hi_v) - f64::from(lo_v)) * (-g_lo / (g_hi - g_lo)));
            #[allow(clippy::cast_possible_truncation)]
            let k = if bisect || !guess.is_finite() {
                klo + (khi - klo) / 2
            } else {
                key(guess as f32).clamp(klo + 1, khi - 1)
            };
            let v = unkey(k);
            let mut t = Vec::with_capacity(self.lanes.len());
            let (mut cnt, mut below, mut above) = (0u64, f32::NEG_INFINITY, f32::INFINITY);
            for (c, lane) in self.lanes.iter().enumerate() {
                let s = lane.slot_below(f64::from(v), true);
                t.push(s);
                cnt += self.cum(c, s);
                if s >= lane.first {
                    below = below.max(lane.value(s));
                }
                if s < lane.last {
                    above = above.min(lane.value(s + 1));
                }
            }
            let before = slots;
            if cnt <= r {
                // nothing lies between v and the next value a channel can hold
                lo_v = if above.is_finite() { unkey(key(above) - 1).max(v) } else { v };
                (c_lo, lo_t) = (cnt, t);
                (w_lo, w_hi) = (1.0, if moved < 0 { w_hi * 0.5 } else { w_hi });
                moved = -1;
                probes.push(Probe { v: lo_v, count: c_lo, t: lo_t.clone() });
            } else {
                hi_v = if below.is_finite() { below.min(v) } else { v };
                (c_hi, hi_t) = (cnt, t);
                (w_hi, w_lo) = (1.0, if moved > 0 { w_lo * 0.5 } else { w_lo });
                moved = 1;
                probes.push(Probe { v: hi_v, count: c_hi, t: hi_t.clone() });
            }
            slots = hi_t.iter().zip(&lo_t).map(|(h, l)| u64::try_from(h - l).unwrap_or(0)).sum();
            // a poor step (the bracket kept over half its slots) is followed by a bisection
            bisect = !bisect && slots * 2 > before;
        }
        let mut pairs = Vec::with_capacity(usize::try_from(slots).unwrap_or(0));
        for (c, (lane, (&l, &h))) in self.lanes.iter().zip(lo_t.iter().zip(&hi_t)).enumerate() {
            for s in l + 1..=h {
                let k = self.slot_count(c, s);
                if k > 0 {
                    pairs.push((lane.value(s), k));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        (c_lo, pairs)
    }
}

/// How many of the ascending `edges` (`lo + i·(bins / norm)`) are ≤ `x`: estimated from the
/// spacing, then checked against the edges themselves.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn edges_at_or_below(edges: &[f64], lo: f64, norm: f64, x: f64) -> usize {
    let est = ((x - lo) * norm).clamp(-1.0, edges.len() as f64) + 1.0;
    let mut j = if est.is_nan() { 0 } else { (est as usize).min(edges.len()) };
    while j > 0 && edges.get(j - 1).is_some_and(|&e| e > x) {
        j -= 1;
    }
    while edges.get(j).is_some_and(|&e| e <= x) {
        j += 1;
    }
    j
}

/// Turns a channel's counts into running sums in place; returns the total. Four quarters
/// are summed side by side (independent chains), then offset.
fn running_sums(counts: &mut [u32]) -> u32 {
    let quarter = counts.len() / 4;
    let (a, rest) = counts.split_at_mut(quarter);
    let (b, rest) = rest.split_at_mut(quarter);
    let (c, d) = rest.split_at_mut(quarter);
    let mut acc = [0u32; 4];
    for (((a, b), c), d) in a.iter_mut().zip(b.iter_mut()).zip(c.iter_mut()).zip(d.iter_mut()) {
        acc[0] += *a;
        *a = acc[0];
        acc[1] += *b;
        *b = acc[1];
        acc[2] += *c;
        *c = acc[2];
        acc[3] += *d;
        *d = acc[3];
    }
    // the last part may be longer by up to three
    for x in d.iter_mut().skip(quarter) {
        acc[3] += *x;
        *x = acc[3];
    }
    let (ob, oc) = (acc[0], acc[0] + acc[1]);
    let od = oc + acc[2];
    for (part, offset) in [(b, ob), (c, oc), (d, od)] {
        for x in part {
            *x += offset;
        }
    }
    od + acc[3]
}

/// The lanes, channel map and sign flip of `t` under `p`, when the counted path applies.
fn plan<'p>(t: &TensorData, p: &'p QuantParams) -> Option<(Vec<Lane>, ChannelMap<'p>, u8)> {
    let (offset, flip) = match t.dtype {
        DType::Int8 => (128, 0x80),
        DType::Uint8 => (0, 0),
        _ => return None,
    };
    // (blocked parameters: one table per block would outgrow the tensor; streamed instead)
    if p.block.is_some() {
        return None;
    }
    let map = ChannelMap::new(&t.shape, p);
    let (n, channels) = (t.len(), map.channels() as u64);
    let table_bytes = channels * SLOTS as u64 * 4;
    if n < 128 * channels || n > u64::from(i32::MAX.unsigned_abs()) || table_bytes > (2 * n).max(16 << 20) {
        return None;
    }
    let lanes = (0..map.channels())
        .map(|c| {
            let (scale, zp) = p.channel(c);
            let ok = scale.is_finite() && scale > 0.0 && zp.abs() <= 1 << 16;
            let base = offset + zp;
            let margin = 16.0 * (256.0 + f64::from(base.abs())) / f64::from(1u32 << 24);
            let lane = Lane { scale, base, inv: 1.0 / f64::from(scale), first: 0, last: -1, margin };
            (ok && lane.value(0).is_finite() && lane.value(255).is_finite()).then_some(lane)
        })
        .collect::<Option<Vec<_>>>()?;
    Some((lanes, map, flip))
}

/// Counts one raw chunk (starting at element `start`) into the per-channel tables.
fn count_into(tables: &mut [[u32; SLOTS]], map: ChannelMap<'_>, start: usize, bytes: &[u8], flip: u8) {
    let channels = tables.len().max(1);
    if !map.rowwise() {
        for (c, range) in map.runs(start, bytes.len()) {
            if let (Some(t), Some(run)) = (tables.get_mut(c), bytes.get(range)) {
                count_run(t, run, flip);
            }
        }
        return;
    }
    // one channel per element (e.g. MatMul weights along axis 1): whole rows zip with the
    // tables, no channel arithmetic per element
    let c = start % channels;
    let (head, rest) = bytes.split_at((channels - c).min(bytes.len()) * usize::from(c != 0));
    for (t, &b) in tables.get_mut(c..).unwrap_or_default().iter_mut().zip(head) {
        t[usize::from(b ^ flip)] += 1;
    }
    let rows = rest.chunks_exact(channels);
    let tail = rows.remainder();
    // in blocks of channels, so that the tables being counted into stay in cache
    let block = if channels > 4 * COLUMN_BLOCK { COLUMN_BLOCK } else { channels };
    for from in (0..channels).step_by(block) {
        let to = (from + block).min(channels);
        let tabs = tables.get_mut(from..to).unwrap_or_default();
        for row in rows.clone() {
            for (t, &b) in tabs.iter_mut().zip(row.get(from..to).unwrap_or_default()) {
                t[usize::from(b ^ flip)] += 1;
            }
        }
    }
    for (t, &b) in tables.iter_mut().zip(tail) {
        t[usize::from(b ^ flip)] += 1;
    }
}

/// Counts a run of one channel; long runs into four interleaved tables, so that repeats
/// of one value do not wait on each other's increment.
fn count_run(t: &mut [u32; SLOTS], run: &[u8], flip: u8) {
    if run.len() < 4096 {
        for &b in run {
            t[usize::from(b ^ flip)] += 1;
        }
        return;
    }
    let mut w = [[0u32; SLOTS]; 3];
    let mut quads = run.chunks_exact(4);
    for q in &mut quads {
        if let &[a, b, c, d] = q {
            t[usize::from(a ^ flip)] += 1;
            w[0][usize::from(b ^ flip)] += 1;
            w[1][usize::from(c ^ flip)] += 1;
            w[2][usize::from(d ^ flip)] += 1;
        }
    }
    for &b in quads.remainder() {
        t[usize::from(b ^ flip)] += 1;
    }
    for (i, x) in t.iter_mut().enumerate() {
        *x += w[0][i] + w[1][i] + w[2][i];
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_wrap)]
mod tests {
    use super::*;
    use crate::model::TensorBytes;
    use crate::stats::Values;

    fn params(dtype: DType, scale: Vec<f32>, zero_point: Vec<i32>, axis: Option<usize>) -> QuantParams {
        QuantParams {
            scale,
            zero_point,
            axis,
            block: None,
            dtype,
            zero_point_dtype: Some(dtype),
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        }
    }

    /// Bytes with a bell-shaped spread (sums of three uniforms), like quantized weights.
    fn bell(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 56) as u32
        };
        (0..n).map(|_| ((next() + next() + next()) / 3) as u8).collect()
    }

    #[test]
    fn counts_match_the_streamed_dequantized_values() {
        // every channel layout: per tensor, inner 1 (axis = last), short and long runs
        let cases: Vec<(Vec<u64>, Option<usize>)> = vec![
            (vec![300, 17], None),
            (vec![400, 37], Some(1)),
            (vec![600, 5, 3], Some(1)),
            (vec![9, 5000], Some(0)),
            (vec![2, 3, 30_000], Some(1)),
            // several raw chunks, the second starting inside a row / a run
            (vec![1000, 301], Some(1)),
            (vec![40, 1000, 7], Some(1)),
            // over 1,024 channels: counted in blocks of channels
            (vec![130, 1100], Some(1)),
        ];
        for (dtype, seed) in [(DType::Int8, 1u64), (DType::Uint8, 2)] {
            for (shape, axis) in &cases {
                let n: u64 = shape.iter().product();
                let channels = axis.map_or(1, |a| shape[a] as usize);
                let scale: Vec<f32> = (0..channels).map(|c| 0.003 + 0.0007 * c as f32).collect();
                let zp: Vec<i32> = (0..channels).map(|c| (c % 5) as i32 * 3 - 4).collect();
                let p = params(dtype, scale, zp, *axis);
                let t =
                    TensorData { dtype, shape: shape.clone(), bytes: TensorBytes::from_vec(bell(n as usize, seed)) };
                let counted = Counted::of(&t, &p).unwrap().expect("counted path applies");
                let mut plain = Vec::new();
                Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
                let (fast, slow) = (counted.summary(), crate::stats::summarize(Values::Slice(&plain)).unwrap());
                assert_eq!(
                    (fast.count, fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                    (slow.count, slow.min, slow.max, slow.q25, slow.q50, slow.q75),
                    "{dtype:?} {shape:?}"
                );
                assert!((fast.mean - slow.mean).abs() <= 1e-7 * slow.std, "{dtype:?} {shape:?} mean");
                assert!((fast.std - slow.std).abs() <= 1e-7 * slow.std, "{dtype:?} {shape:?} std");
                // bins over a wider, a narrower and an offset range: edges inside channels
                for (lo, hi, bins) in [
                    (slow.min - 0.01, slow.max + 0.02, 64),
                    (slow.q25, slow.q75, 7),
                    (slow.min, slow.max, 1),
                    (slow.mean, slow.max * 3.0, 100),
                ] {
                    let fast = counted.histogram(lo, hi, bins);
                    let slow = crate::stats::histogram(Values::Slice(&plain), lo, hi, bins).unwrap();
                    assert_eq!(fast, slow, "{dtype:?} {shape:?} [{lo}, {hi}] / {bins}");
                    assert_eq!(fast.total() + fast.outside, n);
                }
            }
        }
    }

    #[test]
    fn random_parameters_and_edges_on_values_stay_exact() {
        // seeded: shapes, layouts, scales from 1e-30 to 1e30 and exact binary fractions,
        // zero points across the range, value spreads from constant to uniform, and bin
        // edges placed exactly on dequantized values
        let mut state = 0x51ed_270b_u64;
        let mut next = move |n: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n.max(1)
        };
        let mut checked = 0;
        for case in 0..150 {
            let dtype = if next(2) == 0 { DType::Int8 } else { DType::Uint8 };
            let (rows, channels) = (128 + next(200) as usize, 1 + next(12) as usize);
            let axis = [None, Some(0), Some(1)][next(3) as usize];
            let shape =
                if axis == Some(0) { vec![channels as u64, rows as u64] } else { vec![rows as u64, channels as u64] };
            let n = rows * channels;
            let spread = [0u64, 1, 2, 16, 256][next(5) as usize];
            let centre = next(256);
            let bytes: Vec<u8> = (0..n).map(|_| (centre + next(spread + 1)).min(255) as u8).collect();
            let k = if axis.is_some() { channels } else { 1 };
            let scale: Vec<f32> = (0..k)
                .map(|_| match next(4) {
                    0 => 0.25 * (1 + next(4)) as f32,
                    1 => 10f32.powi(next(61) as i32 - 30),
                    _ => 0.001 + next(1000) as f32 * 1e-5,
                })
                .collect();
            let zp: Vec<i32> =
                (0..k).map(|_| if dtype == DType::Int8 { next(256) as i32 - 128 } else { next(256) as i32 }).collect();
            let p = params(dtype, scale, zp, axis);
            let t = TensorData { dtype, shape, bytes: TensorBytes::from_vec(bytes) };
            let Some(counted) = Counted::of(&t, &p).unwrap() else {
                continue; // scales whose range overflows f32: the streamed path's job
            };
            checked += 1;
            let mut plain = Vec::new();
            Values::Dequantized(&t, &p).for_each_chunk(|_, c| plain.extend_from_slice(c)).unwrap();
            let (fast, slow) = (counted.summary(), crate::stats::summarize(Values::Slice(&plain)).unwrap());
            assert_eq!(
                (fast.min, fast.max, fast.q25, fast.q50, fast.q75),
                (slow.min, slow.max, slow.q25, slow.q50, slow.q75),
                "case {case}"
            );
            let tol = 1e-6 * (slow.std + slow.mean.abs()) + f64::MIN_POSITIVE;
            assert!((fast.mean - slow.mean).abs() <= tol && (fast.std - slow.std).abs() <= tol, "case {case}");
            // edges on values: the range between two stored values, bins dividing it evenly
            let (a, b) = (f64::from(plain[next(n as u64) as usize]), f64::from(plain[next(n as u64) as usize]));
            for (lo, hi, bins) in [(a.min(b), a.max(b), 1 + next(9) as usize), (slow.min, slow.max, 2), (a, a + 1.0, 4)]
            {
                if lo >= hi || lo.is_nan() || hi.is_nan() {
                    continue;
                }
                let fast = counted.histogram(lo, hi, bins);
                let slow = crate::stats::histogram(Values::Slice(&plain), lo, hi, bins).unwrap();
                assert_eq!(fast, slow, "case {case}: [{lo}, {hi}] / {bins}");
            }
        }
        assert!(checked > 100, "{checked} cases took the counted path");
    }

    #[test]
    fn unusable_parameters_leave_it_to_the_streamed_path() {
        let t = TensorData { dtype: DType::Int8, shape: vec![128, 4], bytes: TensorBytes::from_vec(bell(512, 3)) };
        for scale in [0.0, -0.5, f32::NAN, f32::INFINITY, 3e38] {
            let p = params(DType::Int8, vec![scale], vec![0], None);
            assert!(Counted::of(&t, &p).unwrap().is_none(), "scale {scale}");
        }
        // too few values per channel: the table would outweigh the tensor
        let p = params(DType::Int8, vec![0.1; 4], vec![0; 4], Some(1));
        let small = TensorData { dtype: DType::Int8, shape: vec![8, 4], bytes: TensorBytes::from_vec(bell(32, 3)) };
        assert!(Counted::of(&small, &p).unwrap().is_none());
        assert!(Counted::of(&t, &p).unwrap().is_some());
    }

    #[test]
    fn constant_and_two_valued_tensors() {
        let p = params(DType::Uint8, vec![0.25], vec![3], None);
        for bytes in [vec![7u8; 1000], (0..1000).map(|i| if i % 3 == 0 { 0 } else { 255 }).collect()] {
            let t = TensorData { dtype: DType::Uint8, shape: vec![1000], bytes: TensorBytes::from_vec(bytes) };
            let s = Counted::of(&t, &p).unwrap().unwrap().summary();
            let plain = t.to_f32_vec().unwrap().iter().map(|&q| p.dequantize(q, 0)).collect::<Vec<_>>();
            let slow = crate::stats::summarize(Values::Slice(&plain)).unwrap();
            assert_eq!((s.min, s.max, s.q25, s.q50, s.q75), (slow.min, slow.max, slow.q25, slow.q50, slow.q75));
        }
    }
}
