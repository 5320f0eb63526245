//! Exact summary and histogram of any values, in two streaming passes and bounded memory.
//!
//! The first pass gathers count, NaN/Inf, moments and range, and counts the finite values
//! by the top 16 bits of an order-preserving integer key (a coarse histogram whose
//! buckets are 1/128 of an octave wide). The second pass only looks at values in the few
//! buckets that matter: those holding a needed order statistic (whose low key bits are
//! kept to pick the exact value) and those straddling a histogram edge (binned one by
//! one). Every other bucket lies inside one histogram bin and is added whole. A few
//! values (≤ 4096) are instead kept as keys and selected directly.

use std::cell::RefCell;

use super::kernel::{Binner, Histogram, Moments, QUARTILES, Summary, finish, interpolate, key, needed_ranks, unkey};
use super::source::Values;
use crate::model::tensor::ReadError;

/// Buckets of the coarse key histogram (the top 16 bits of a key).
const BUCKETS: usize = 1 << 16;
/// Values counted into the u32 bucket table before it is flushed into u64 counts (small
/// in tests, so that the flush is exercised).
#[cfg(not(test))]
const FLUSH_AT: u64 = u32::MAX as u64;
#[cfg(test)]
const FLUSH_AT: u64 = 40_000;
/// Up to this many values, quartiles come from selection over a copy of the keys.
pub(super) const FEW: u64 = 1 << 12;

/// What the second pass does with the values of one bucket.
#[derive(Default)]
struct Special {
    /// The bucket (its role entry is cleared after the pass).
    bucket: usize,
    bin: Bin,
    /// Index of the `Refine` list keeping its low key bits (a needed rank lies here).
    refine: Option<usize>,
}

/// How the values of a bucket are binned in the second pass.
#[derive(Clone, Copy, Default)]
enum Bin {
    /// Not at all (the bucket was added whole, or there is no histogram).
    #[default]
    None,
    /// One edge inside: `((edge, strict), place below, place above)`; a value goes above
    /// when `x ≥ edge` (`x > edge` for the top edge, which the last bin includes).
    Split((f64, bool), isize, isize),
    /// Several edges inside: each value placed on its own.
    Each,
}

/// The special entry of `bucket`, created on first use: `role[bucket]` is its index + 1.
/// (At most 4,104 buckets are special: one per bin edge and per needed rank.)
fn special_of<'s>(role: &mut [u16; BUCKETS], special: &'s mut Vec<Special>, bucket: usize) -> Option<&'s mut Special> {
    let r = &mut role[bucket & (BUCKETS - 1)];
    if *r == 0 {
        special.push(Special { bucket, ..Special::default() });
        *r = u16::try_from(special.len()).ok()?;
    }
    special.get_mut(usize::from(*r) - 1)
}

/// Per-thread tables, reused from tensor to tensor (allocating and zeroing 640 KiB for
/// every tensor cost more than the pass over a small one) and left zeroed after use.
struct Scratch {
    /// Counts per bucket; u32 so that the table stays small in cache (tensors beyond
    /// 2³² − 1 values flush it into `Streamed::wide`).
    coarse: Box<[u32; BUCKETS]>,
    /// Bucket → what the second pass does there: 0 nothing, `i + 1` special `i`.
    role: Box<[u16; BUCKETS]>,
}

thread_local! {
    static POOL: RefCell<Vec<Scratch>> = const { RefCell::new(Vec::new()) };
}

fn take_scratch() -> Scratch {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| Scratch { coarse: zeroed(), role: zeroed() })
}

/// A zeroed table on the heap (never on the stack: 512 KiB).
#[allow(clippy::unnecessary_box_returns)]
fn zeroed<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(table) => table,
        Err(_) => unreachable!("a boxed slice of N elements converts to [T; N]"),
    }
}

/// The low key bits of the values in one needed bucket: a list while short, counts once
/// long (so that memory stays bounded when one value fills a whole tensor).
enum Refine {
    Keys(Vec<u16>),
    Counts(Vec<u64>),
}

impl Refine {
    #[inline]
    fn add(&mut self, low: u16) {
        match self {
            Self::Keys(k) if k.len() < BUCKETS => k.push(low),
            Self::Keys(k) => {
                let mut counts = vec![0u64; BUCKETS];
                for &l in k.iter() {
                    if let Some(c) = counts.get_mut(usize::from(l)) {
                        *c += 1;
                    }
                }
                if let Some(c) = counts.get_mut(usize::from(low)) {
                    *c += 1;
                }
                *self = Self::Counts(counts);
            }
            Self::Counts(c) => {
                if let Some(c) = c.get_mut(usize::from(low)) {
                    *c += 1;
                }
            }
        }
    }

    /// The low bits of the `within`-th smallest value (the list sorted first).
    fn nth(&mut self, within: u64) -> Option<u16> {
        match self {
            Self::Keys(k) => {
                k.sort_unstable();
                k.get(usize::try_from(within).ok()?).copied()
            }
            Self::Counts(c) => {
                let mut left = within;
                for (low, &n) in c.iter().enumerate() {
                    if left < n {
                        return u16::try_from(low).ok();
                    }
                    left -= n;
                }
                None
            }
        }
    }
}

/// The state after the first pass.
pub(super) struct Streamed<'a> {
    values: Values<'a>,
    count: u64,
    nan: u64,
    inf: u64,
    m: Moments,
    /// All finite keys, when there are few values.
    keys: Option<Vec<u32>>,
    scratch: Option<Scratch>,
    /// Bucket counts flushed from `Scratch::coarse` (tensors of 2³² values or more).
    wide: Option<Vec<u64>>,
    /// Set when `finish` has zeroed what it touched in the scratch tables.
    cleared: bool,
}

impl Drop for Streamed<'_> {
    fn drop(&mut self) {
        if let Some(mut s) = self.scratch.take() {
            // (unless `finish` cleared them) only the buckets between the minimum and the
            // maximum were touched
            if self.m.n > 0 && !self.cleared {
                #[allow(clippy::cast_possible_truncation)]
                let (a, b) = ((key(self.m.min as f32) >> 16) as usize, (key(self.m.max as f32) >> 16) as usize);
                if let (Some(c), Some(r)) = (s.coarse.get_mut(a..=b), s.role.get_mut(a..=b)) {
                    c.fill(0);
                    r.fill(0);
                }
            }
            POOL.with(|p| p.borrow_mut().push(s));
        }
    }
}

impl<'a> Streamed<'a> {
    /// The first pass over `values`.
    ///
    /// # Errors
    /// When external data can no longer be read.
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn first_pass(values: Values<'a>, few: u64) -> Result<Self, ReadError> {
        let count = values.len();
        let (mut nan, mut inf) = (0u64, 0u64);
        let mut m = Moments::default();
        let mut keys = (count <= few).then(|| Vec::with_capacity(usize::try_from(count).unwrap_or(0)));
        let mut scratch = keys.is_none().then(take_scratch);
        let mut finite_buf: Vec<f32> = Vec::new();
        let mut buckets: Vec<u16> = Vec::new();
        let (mut wide, mut since_flush): (Option<Vec<u64>>, u64) = (None, 0);
        let result = values.for_each_chunk(|_, chunk| {
            // the common case (all finite: the f64 sum of f32 values cannot overflow, so
            // it is finite exactly then) runs over the chunk itself, in loops the compiler
            // vectorises; otherwise over a copy of its finite values
            let mut sum = lane_sum(chunk, f64::from);
            let chunk = if sum.is_finite() {
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
                sum = lane_sum(&finite_buf, f64::from);
                &finite_buf
            };
            if chunk.is_empty() {
                return;
            }
            let n = chunk.len() as u64;
            let (lo, hi) = chunk.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            match (keys.as_mut(), scratch.as_mut()) {
                (Some(keys), _) => keys.extend(chunk.iter().map(|&v| key(v))),
                (None, Some(s)) => {
                    // buckets first (a loop that vectorises), then the increments
                    buckets.clear();
                    buckets.extend(chunk.iter().map(|&v| bucket_of(v)));
                    if since_flush + n > FLUSH_AT {
                        let wide = wide.get_or_insert_with(|| vec![0u64; BUCKETS]);
                        for (w, c) in wide.iter_mut().zip(s.coarse.iter_mut()) {
                            *w += u64::from(std::mem::take(c));
                        }
                        since_flush = 0;
                    }
                    since_flush += n;
                    for &b in &buckets {
                        s.coarse[usize::from(b)] += 1;
                    }
                }
                (None, None) => {}
            }
            let mean = sum / n as f64;
            let m2 = lane_sum(chunk, |v| (f64::from(v) - mean).powi(2));
            m.merge(n, mean, m2, f64::from(lo), f64::from(hi));
        });
        let out = Self { values, count, nan, inf, m, keys, scratch, wide, cleared: false };
        result.map(|()| out)
    }

    /// The finite range, when there is a finite value.
    pub(super) fn bounds(&self) -> Option<(f64, f64)> {
        (self.m.n > 0).then_some((self.m.min, self.m.max))
    }

    /// The summary and, for `bins = Some((lo, hi, bins))`, the histogram (a second pass
    /// unless the values were few).
    ///
    /// # Errors
    /// When external data can no longer be read.
    pub(super) fn finish(mut self, bins: Option<(f64, f64, usize)>) -> Result<(Summary, Option<Histogram>), ReadError> {
        let (count, nan, inf, m) = (self.count, self.nan, self.inf, self.m);
        let mut binner = bins.map(|(lo, hi, bins)| Binner::new(lo, hi, bins));
        if let Some(b) = binner.as_mut() {
            b.add_nonfinite(nan + inf);
        }
        let histogram = |binner: Option<Binner>| binner.map(Binner::finish);
        if m.n == 0 {
            return Ok((finish(count, nan, inf, m, [f64::NAN; 3]), histogram(binner)));
        }
        if let Some(keys) = self.keys.take() {
            if let Some(b) = binner.as_mut() {
                for &k in &keys {
                    b.add(unkey(k), 1);
                }
            }
            let q = select_quartiles(keys, m.n);
            return Ok((finish(count, nan, inf, m, q), histogram(binner)));
        }
        let Some(scratch) = self.scratch.as_mut() else {
            return Ok((finish(count, nan, inf, m, [f64::NAN; 3]), histogram(binner)));
        };
        #[allow(clippy::cast_possible_truncation)]
        let (first, last) = ((key(m.min as f32) >> 16) as usize, (key(m.max as f32) >> 16) as usize);
        let occupied = occupied(&scratch.coarse, self.wide.as_deref(), first, last);
        // the buckets the second pass looks into (see `special_of`)
        let mut special: Vec<Special> = Vec::new();
        // the bucket of each needed rank, its `Refine` list, and the rank within it
        let mut located: Vec<(u64, u32, usize, u64)> = Vec::new();
        let mut refine: Vec<Refine> = Vec::new();
        let (mut before, mut at) = (0u64, 0usize);
        for r in needed_ranks(m.n) {
            while let Some(&(_, n)) = occupied.get(at)
                && at + 1 < occupied.len()
                && before + n <= r
            {
                before += n;
                at += 1;
            }
            let bucket = occupied.get(at).map_or(first, |o| o.0);
            if let Some(sp) = special_of(&mut scratch.role, &mut special, bucket) {
                let list = *sp.refine.get_or_insert_with(|| {
                    refine.push(Refine::Keys(Vec::new()));
                    refine.len() - 1
                });
                located.push((r, u32::try_from(bucket).unwrap_or(0), list, r - before));
            }
        }
        // whole buckets inside one bin are added at once; a bucket holding one edge splits
        // at it; one holding several bins each value. Buckets and edges are both in value
        // order, so the places of a bucket's ends are found by walking forward.
        if let Some(b) = binner.as_mut() {
            let top = b.top_place();
            let at_or_above = |x: f64, p: isize| {
                let (edge, strict) = b.threshold(p);
                if strict { x > edge } else { x >= edge }
            };
            let mut place = -1isize;
            let mut whole: Vec<(isize, u64)> = Vec::new();
            for &(k, n) in &occupied {
                let k = u32::try_from(k).unwrap_or(0) << 16;
                let (a, z) = (f64::from(unkey(k)).max(m.min), f64::from(unkey(k | 0xffff)).min(m.max));
                while place < top && at_or_above(a, place + 1) {
                    place += 1;
                }
                let mut pz = place;
                while pz < top && at_or_above(z, pz + 1) {
                    pz += 1;
                }
                if pz == place {
                    whole.push((place, n));
                    continue;
                }
                if let Some(sp) = special_of(&mut scratch.role, &mut special, (k >> 16) as usize) {
                    sp.bin = if pz == place + 1 { Bin::Split(b.threshold(pz), place, pz) } else { Bin::Each };
                }
            }
            for (p, n) in whole {
                b.add_at(p, n);
            }
        }
        let role = &scratch.role;
        let mut buckets: Vec<u16> = Vec::new();
        self.values.for_each_chunk(|_, chunk| {
            buckets.clear();
            buckets.extend(chunk.iter().map(|&v| bucket_of(v)));
            for (&bucket, &v) in buckets.iter().zip(chunk) {
                let r = role[usize::from(bucket)];
                if r == 0 {
                    continue;
                }
                let k = key(v);
                let Some(sp) = special.get(usize::from(r) - 1) else { continue };
                if let Some(b) = binner.as_mut() {
                    match sp.bin {
                        Bin::None => {}
                        Bin::Split((edge, strict), below, above) => {
                            let x = f64::from(v);
                            let up = if strict { x > edge } else { x >= edge };
                            b.add_at(if up { above } else { below }, 1);
                        }
                        Bin::Each => b.add(v, 1),
                    }
                }
                if let Some(list) = sp.refine.and_then(|i| refine.get_mut(i)) {
                    #[allow(clippy::cast_possible_truncation)]
                    list.add(k as u16);
                }
            }
        })?;
        // leave the tables zeroed for the next tensor: the occupied buckets and the roles
        for &(k, _) in &occupied {
            scratch.coarse[k & (BUCKETS - 1)] = 0;
        }
        for sp in &special {
            scratch.role[sp.bucket & (BUCKETS - 1)] = 0;
        }
        self.cleared = true;
        let mut found = Vec::with_capacity(located.len());
        for &(r, bucket, list, within) in &located {
            let low = refine.get_mut(list).and_then(|l| l.nth(within));
            found.push((r, low.map(|l| unkey((bucket << 16) | u32::from(l)))));
        }
        let value_of = |r: u64| found.iter().find(|x| x.0 == r).and_then(|x| x.1).map_or(f64::NAN, f64::from);
        let q = QUARTILES.map(|p| interpolate(m.n, p, value_of));
        Ok((finish(count, nan, inf, m, q), histogram(binner)))
    }
}

/// The coarse bucket of a value: the top 16 bits of its key.
#[inline]
#[allow(clippy::cast_possible_truncation)]
fn bucket_of(v: f32) -> u16 {
    (key(v) >> 16) as u16
}

/// The buckets from `first` to `last` that hold values, with their counts, in order; runs
/// of empty buckets (most of the range between a negative minimum and a positive maximum:
/// the tiny magnitudes) are skipped sixteen at a time.
fn occupied(coarse: &[u32; BUCKETS], wide: Option<&[u64]>, first: usize, last: usize) -> Vec<(usize, u64)> {
    let range = coarse.get(first..=last).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(w) = wide {
        for (k, &c) in (first..).zip(range) {
            let n = u64::from(c) + w.get(k).copied().unwrap_or(0);
            if n > 0 {
                out.push((k, n));
            }
        }
        return out;
    }
    for (block, k0) in range.chunks(16).zip((first..).step_by(16)) {
        if block.iter().fold(0, |a, &c| a | c) == 0 {
            continue;
        }
        for (k, &c) in (k0..).zip(block) {
            if c > 0 {
                out.push((k, u64::from(c)));
            }
        }
    }
    out
}

/// `Σ f(v)` in f64 over eight independent partial sums (so that the additions pipeline
/// and vectorise instead of waiting on one another).
#[inline]
pub(super) fn lane_sum(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
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
