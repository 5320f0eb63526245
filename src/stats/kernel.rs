//! The shared primitives of the statistics engines, and the data they produce: the
//! [`Summary`] and [`Histogram`] types, running [`Moments`], the order-preserving float
//! key, numpy's quartile interpolation, bin edges and the [`Binner`]. The engines
//! (`counted.rs`, `streamed.rs`) build on this file only; `engine.rs` chooses between
//! them; `summary.rs`, `histogram.rs` and `layer.rs` are the entry points.

use serde::Serialize;

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
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Moments {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Moments {
    /// Merges a group of `n` values with this mean, sum of squared deviations and range.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn merge(&mut self, n: u64, mean: f64, m2: f64, lo: f64, hi: f64) {
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
#[inline]
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
pub(crate) fn key(v: f32) -> u32 {
    // positive: set the sign bit; negative: flip every bit (branch-free, so it vectorises)
    let b = v.to_bits();
    let negative = ((b as i32) >> 31) as u32;
    b ^ (negative | 0x8000_0000)
}

pub(crate) fn unkey(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 == 0 { !k } else { k & 0x7fff_ffff })
}

pub(crate) const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

/// numpy's linear interpolation between the order statistics `value(lo)` and `value(hi)`.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn interpolate(n: u64, p: f64, value: impl Fn(u64) -> f64) -> f64 {
    let pos = p * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let a = value(lo);
    let frac = pos - lo as f64;
    if frac == 0.0 { a } else { a + (value(lo + 1) - a) * frac }
}

/// The order statistics needed for the quartiles of `n` values.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn needed_ranks(n: u64) -> Vec<u64> {
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

#[allow(clippy::cast_precision_loss)]
pub(crate) fn finish(count: u64, nan: u64, inf: u64, m: Moments, quartiles: [f64; 3]) -> Summary {
    let nf = m.n;
    let (min, max, mean, std) = if nf > 0 {
        (m.min, m.max, m.mean, (m.m2 / nf as f64).sqrt())
    } else {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    };
    let [q25, q50, q75] = quartiles;
    Summary { count, nan, inf, min, max, mean, std, q25, q50, q75, quantiles_exact: true }
}

/// The most bins a histogram has (more are clamped to it).
pub const MAX_BINS: usize = 4096;

/// Counts of values in `bins` equal-width bins over `[lo, hi]` (numpy's `histogram` with
/// `range=(lo, hi)`: the last bin includes `hi`). Values outside the range or not finite
/// are counted in `outside` / `nonfinite`, so `counts` + `outside` + `nonfinite` = length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub outside: u64,
    pub nonfinite: u64,
}

impl Histogram {
    /// Bin edges (`bins + 1` values), as numpy's `linspace(lo, hi, bins + 1)`.
    #[must_use]
    pub fn edges(&self) -> Vec<f64> {
        edges(self.lo, self.hi, self.counts.len())
    }

    /// Sum of the bin counts.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let step = (hi - lo) / bins as f64;
    (0..=bins).map(|i| if i == bins { hi } else { lo + step * i as f64 }).collect()
}

/// The range covering every finite `(min, max)`, widened by ±0.5 when degenerate.
pub(crate) fn range_of(bounds: impl IntoIterator<Item = (f64, f64)>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (a, b) in bounds {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    if lo == hi {
        return Some((lo - 0.5, hi + 0.5));
    }
    Some((lo, hi))
}

/// Counts values into bins as numpy assigns them (index from the scaled offset,
/// corrected against the actual edges).
pub(crate) struct Binner {
    lo: f64,
    hi: f64,
    edges: Vec<f64>,
    norm: f64,
    counts: Vec<u64>,
    outside: u64,
    nonfinite: u64,
}

impl Binner {
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn new(lo: f64, hi: f64, bins: usize) -> Self {
        let bins = bins.clamp(1, MAX_BINS);
        Self {
            lo,
            hi,
            edges: edges(lo, hi, bins),
            norm: bins as f64 / (hi - lo),
            counts: vec![0; bins],
            outside: 0,
            nonfinite: 0,
        }
    }

    /// Where a finite `x` goes: its bin, −1 below the range, `bins` above it (monotone in
    /// `x`, so values between two of the same place share it).
    #[inline]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
    pub(crate) fn place(&self, x: f64) -> isize {
        if x < self.lo {
            return -1;
        }
        if x > self.hi {
            return self.counts.len() as isize;
        }
        let last = self.counts.len() - 1;
        let mut i = (((x - self.lo) * self.norm) as usize).min(last);
        if i > 0 && self.edges.get(i).is_some_and(|&e| x < e) {
            i -= 1;
        } else if i < last && self.edges.get(i + 1).is_some_and(|&e| x >= e) {
            i += 1;
        }
        i as isize
    }

    /// The boundary between `place − 1` and `place`: `(edge, strict)`, values at or above
    /// `edge` (above it when `strict`: the top edge, which the last bin includes) being
    /// at `place` or beyond.
    pub(crate) fn threshold(&self, place: isize) -> (f64, bool) {
        let bins = self.counts.len();
        match usize::try_from(place) {
            Ok(p) if p >= bins => (self.hi, true),
            Ok(p) => (self.edges.get(p).copied().unwrap_or(self.hi), false),
            Err(_) => (self.lo, false),
        }
    }

    /// The place above the range (`bins`).
    #[allow(clippy::cast_possible_wrap)]
    pub(crate) fn top_place(&self) -> isize {
        self.counts.len() as isize
    }

    /// Adds `n` values at `place` (see [`Self::place`]).
    #[inline]
    pub(crate) fn add_at(&mut self, place: isize, n: u64) {
        match usize::try_from(place).ok().and_then(|i| self.counts.get_mut(i)) {
            Some(c) => *c += n,
            None => self.outside += n,
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, v: f32, n: u64) {
        if v.is_finite() {
            self.add_at(self.place(f64::from(v)), n);
        } else {
            self.nonfinite += n;
        }
    }

    pub(crate) fn add_nonfinite(&mut self, n: u64) {
        self.nonfinite += n;
    }

    pub(crate) fn finish(self) -> Histogram {
        Histogram { lo: self.lo, hi: self.hi, counts: self.counts, outside: self.outside, nonfinite: self.nonfinite }
    }
}
