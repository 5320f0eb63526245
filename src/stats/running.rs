//! Statistics that run over a stream of chunks in bounded memory (activations captured
//! sample after sample): moments, NaN/Inf counts and a [`GridHistogram`] whose bins are
//! aligned to powers of two, so that histograms of different streams merge exactly into
//! shared bins and quartiles come from its counts.

use super::kernel::{Histogram, Moments, QUARTILES, Summary, finish, interpolate};

/// The most bins a [`GridHistogram`] keeps while it runs (its resolution: quartiles are
/// within one of `(max − min) / 2048` of the exact ones).
pub const RUNNING_BINS: usize = 4096;

/// Counts of finite values in bins `[j·w, (j+1)·w)` with `w = 2^level`: every bin edge is a
/// multiple of the bin width, so two histograms at different levels merge exactly once the
/// finer one is coarsened (pairs of bins summed). The level rises as the values' span
/// grows, so at most `cap` bins are held.
#[derive(Clone, Debug, PartialEq)]
pub struct GridHistogram {
    level: i32,
    first: i64,
    counts: Vec<u64>,
    cap: usize,
}

impl Default for GridHistogram {
    fn default() -> Self {
        Self::new(RUNNING_BINS)
    }
}

/// `2^level` as f64 (levels stay within ±1000, where the power is exact).
fn width(level: i32) -> f64 {
    2f64.powi(level)
}

/// The bin of `v` at `level`.
#[allow(clippy::cast_possible_truncation)]
fn bin(v: f64, level: i32) -> i64 {
    (v * width(-level)).floor() as i64
}

impl GridHistogram {
    /// An empty histogram holding at most `cap` (≥ 2) bins.
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self { level: 0, first: 0, counts: Vec::new(), cap: cap.max(2) }
    }

    /// Number of values counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn last(&self) -> i64 {
        self.first + i64::try_from(self.counts.len()).unwrap_or(i64::MAX) - 1
    }

    /// Doubles the bin width (pairs of bins summed).
    fn coarsen(&mut self) {
        let (first, last) = (self.first.div_euclid(2), self.last().div_euclid(2));
        let mut counts = vec![0; usize::try_from(last - first + 1).unwrap_or(0)];
        for (j, &c) in (self.first..).zip(&self.counts) {
            if let Some(slot) = usize::try_from(j.div_euclid(2) - first).ok().and_then(|i| counts.get_mut(i)) {
                *slot += c;
            }
        }
        self.level += 1;
        self.first = first;
        self.counts = counts;
    }

    /// Bins from `lo` to `hi` inclusive (saturating: indices of far values saturate).
    fn span(lo: i64, hi: i64) -> usize {
        hi.checked_sub(lo).and_then(|d| d.checked_add(1)).and_then(|n| usize::try_from(n).ok()).unwrap_or(usize::MAX)
    }

    /// Makes room for the finite values `lo ≤ hi`: the first values choose the finest
    /// level that holds them (and keeps bin indices far inside i64), later ones coarsen.
    fn fit(&mut self, lo: f64, hi: f64) {
        if self.counts.is_empty() {
            // |v| / w ≤ 2^50 keeps every index exact
            let magnitude = lo.abs().max(hi.abs());
            let mut level = if magnitude > 0.0 { exponent(magnitude) - 50 } else { -60 };
            #[allow(clippy::cast_precision_loss)]
            let wanted = exponent((hi - lo) / (self.cap - 1) as f64);
            if hi > lo {
                level = level.max(wanted - 1);
            }
            while Self::span(bin(lo, level), bin(hi, level)) > self.cap {
                level += 1;
            }
            self.level = level;
            self.first = bin(lo, level);
            self.counts = vec![0; Self::span(self.first, bin(hi, level))];
            return;
        }
        let (mut a, mut b) = (self.first.min(bin(lo, self.level)), self.last().max(bin(hi, self.level)));
        while Self::span(a, b) > self.cap {
            self.coarsen();
            (a, b) = (self.first.min(bin(lo, self.level)), self.last().max(bin(hi, self.level)));
        }
        if a < self.first {
            let grow = usize::try_from(self.first - a).unwrap_or(0);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = a;
        }
        if b > self.last() {
            self.counts.resize(Self::span(self.first, b), 0);
        }
    }

    /// Counts `xs`, whose finite values span `[lo, hi]` (non-finite ones are skipped).
    #[cfg(test)]
    fn add_within(&mut self, xs: &[f32], lo: f64, hi: f64) {
        self.fit(lo, hi);
        self.count(xs);
    }

    /// Counts the finite values of `xs`, which [`Self::fit`] made room for (others are
    /// skipped). The bins of sixteen values at a time are found in vectors (`v · scale −
    /// first` is exact: an f32 scaled by a power of two, less an integer of the bins'
    /// range; the truncation of a value in `[0, len)` is its floor), then counted in u32
    /// tables, four interleaved ones for a chunk much longer than the bins, so that runs
    /// of equal values (a rectifier's zeros) do not wait on one counter. Each table's last
    /// slot takes the values outside the bins.
    // (inlined into `RunningStats::add_chunk`, so that it is compiled for AVX2 there)
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn count(&mut self, xs: &[f32]) {
        let (bins, scale) = (self.counts.len(), width(-self.level));
        let stride = bins + 1;
        #[allow(clippy::cast_precision_loss)]
        let (len, first) = (bins as f64, self.first as f64);
        let index = |v: f32| -> usize {
            let u = f64::from(v) * scale - first;
            let u = if (0.0..len).contains(&u) { u } else { len };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let j = u as u32 as usize;
            j
        };
        // (u32 counts: at most 2^30 values per table)
        for xs in xs.chunks(1 << 30) {
            if xs.len() < 16 * bins {
                // (too short to repay four tables: counted in place)
                let counts = &mut self.counts;
                tally(xs, &index, |_, j| {
                    if let Some(c) = counts.get_mut(j) {
                        *c += 1;
                    }
                });
                continue;
            }
            let mut tables = vec![0u32; 4 * stride];
            tally(xs, &index, |lane, j| {
                if let Some(t) = tables.get_mut((lane & 3) * stride + j) {
                    *t += 1;
                }
            });
            for t in tables.chunks_exact(stride) {
                for (c, &k) in self.counts.iter_mut().zip(t) {
                    *c += u64::from(k);
                }
            }
        }
    }

    /// Counts `counts[i]` values equal to `values[i]`, finite ones that [`Self::fit`]
    /// made room for.
    fn add_counts(&mut self, values: &[f32], counts: &[u64]) {
        let first = self.first;
        for (&v, &c) in values.iter().zip(counts) {
            let j = bin(f64::from(v), self.level) - first;
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.counts.get_mut(j)) {
                *slot += c;
            }
        }
    }

    /// This histogram at `level` (≥ its own).
    fn at_level(&self, level: i32) -> Self {
        let mut h = self.clone();
        h.cap = usize::MAX;
        while h.level < level {
            h.coarsen();
        }
        h
    }

    /// The value below which a fraction `p` of the counts lie, linear inside its bin.
    #[allow(clippy::cast_precision_loss)]
    fn value_at_rank(&self, rank: u64) -> f64 {
        let w = width(self.level);
        let mut below = 0u64;
        for (j, &c) in (self.first..).zip(&self.counts) {
            if c > 0 && rank < below + c {
                // the c values of the bin spread evenly over it, at the centres of c slots
                return (j as f64 + ((rank - below) as f64 + 0.5) / c as f64) * w;
            }
            below += c;
        }
        (self.last() + 1) as f64 * w
    }
}

/// `(Σ (x − shift), Σ (x − shift)², min, max)` of `xs` over sixteen lanes; `None` when
/// a value is not finite.
// (inlined into `simd::wide!`, so that it is compiled for AVX2 there: four vectors of
// four f64 per sum, so that no sum waits on the one before)
#[allow(clippy::inline_always)]
#[inline(always)]
fn lanes(xs: &[f32], shift: f64) -> Option<(f64, f64, f32, f32)> {
    const L: usize = 16;
    let (mut a1, mut a2) = ([0.0f64; L], [0.0f64; L]);
    let (mut mn, mut mx) = ([f32::INFINITY; L], [f32::NEG_INFINITY; L]);
    let mut c = xs.chunks_exact(L);
    for v in &mut c {
        for l in 0..L {
            let d = f64::from(v[l]) - shift;
            a1[l] += d;
            a2[l] += d * d;
            // (a NaN need not reach min and max: it shows in the sums)
            mn[l] = if v[l] < mn[l] { v[l] } else { mn[l] };
            mx[l] = if v[l] > mx[l] { v[l] } else { mx[l] };
        }
    }
    for &v in c.remainder() {
        let d = f64::from(v) - shift;
        a1[0] += d;
        a2[0] += d * d;
        mn[0] = mn[0].min(v);
        mx[0] = mx[0].max(v);
    }
    let (s1, s2) = (a1.iter().sum::<f64>(), a2.iter().sum::<f64>());
    let min = mn.iter().copied().fold(f32::INFINITY, f32::min);
    let max = mx.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (s1.is_finite() && s2.is_finite()).then_some((s1, s2, min, max))
}

/// `floor(log2(v))` of a positive finite `v`.
#[allow(clippy::cast_possible_truncation)]
fn exponent(v: f64) -> i32 {
    if v > 0.0 && v.is_finite() { v.log2().floor() as i32 } else { 0 }
}

/// Histograms of several running streams over one set of shared edges with at most
/// `bins` bins (exactly aligned: every stream's counts are coarsened to a common level).
/// `None` when no stream has a finite value.
#[must_use]
pub fn shared_grid_histograms(hists: &[&GridHistogram], nonfinite: &[u64], bins: usize) -> Option<Vec<Histogram>> {
    let filled: Vec<&&GridHistogram> = hists.iter().filter(|h| !h.counts.is_empty()).collect();
    let mut level = filled.iter().map(|h| h.level).max()?;
    let bins = i64::try_from(bins.max(1)).unwrap_or(i64::MAX);
    let mut levelled: Vec<GridHistogram> = hists.iter().map(|h| h.at_level(level)).collect();
    loop {
        let live = levelled.iter().filter(|h| !h.counts.is_empty());
        let first = live.clone().map(|h| h.first).min()?;
        let last = live.map(GridHistogram::last).max()?;
        if last - first < bins {
            let w = width(level);
            #[allow(clippy::cast_precision_loss)]
            let (lo, hi) = (first as f64 * w, (last + 1) as f64 * w);
            let len = usize::try_from(last - first + 1).unwrap_or(0);
            return Some(
                levelled
                    .iter()
                    .zip(nonfinite.iter().chain(std::iter::repeat(&0)))
                    .map(|(h, &nonfinite)| {
                        let mut counts = vec![0; len];
                        if !h.counts.is_empty() {
                            let at = usize::try_from(h.first - first).unwrap_or(0);
                            for (slot, &c) in counts.iter_mut().skip(at).zip(&h.counts) {
                                *slot = c;
                            }
                        }
                        Histogram { lo, hi, counts, outside: 0, nonfinite }
                    })
                    .collect(),
            );
        }
        // one level coarser: each filled histogram coarsened once more (an empty one
        // stays empty)
        level += 1;
        for l in levelled.iter_mut().filter(|l| !l.counts.is_empty()) {
            l.coarsen();
        }
    }
}

/// `add(lane, index(v))` for each value, the indices of sixteen at a time found first (in
/// vectors) and handed over by lane (`lane` 0 for the last few).
#[inline(always)]
#[allow(clippy::inline_always)]
fn tally(xs: &[f32], index: &impl Fn(f32) -> usize, mut add: impl FnMut(usize, usize)) {
    let mut blocks = xs.chunks_exact(16);
    for block in &mut blocks {
        let mut at = [0usize; 16];
        for (a, &v) in at.iter_mut().zip(block) {
            *a = index(v);
        }
        for (lane, &j) in at.iter().enumerate() {
            add(lane, j);
        }
    }
    for &v in blocks.remainder() {
        add(0, index(v));
    }
}

/// A summary and histogram of everything [`RunningStats::add`] was given.
#[derive(Clone, Debug, Default)]
pub struct RunningStats {
    count: u64,
    nan: u64,
    inf: u64,
    moments: Moments,
    hist: GridHistogram,
}

impl RunningStats {
    /// Adds one chunk: its moments (from sums shifted by the chunk's first finite value,
    /// so that a large mean does not cancel its variance) and range first, then the
    /// histogram, coarsened beforehand to hold that range, counts it.
    pub fn add(&mut self, xs: &[f32]) {
        super::simd::wide!(RunningStats::add_chunk, (stats: &mut RunningStats = self, xs: &[f32] = xs) -> ());
    }

    // (inlined into `simd::wide!`, so that it is compiled for AVX2 there)
    #[allow(clippy::inline_always, clippy::cast_precision_loss)]
    #[inline(always)]
    fn add_chunk(&mut self, xs: &[f32]) {
        self.count += xs.len() as u64;
        let Some(shift) = xs.iter().find(|v| v.is_finite()).map(|&v| f64::from(v)) else {
            let nan = xs.iter().filter(|v| v.is_nan()).count() as u64;
            self.nan += nan;
            self.inf += xs.len() as u64 - nan;
            return;
        };
        // the common case, every value finite: moments over sixteen lanes (loops that
        // vectorise; a NaN or infinity shows as a non-finite sum); else value by value
        let (s1, s2, n, lo, hi) = if let Some((s1, s2, min, max)) = lanes(xs, shift) {
            (s1, s2, xs.len() as u64, f64::from(min), f64::from(max))
        } else {
            let (mut s1, mut s2, mut n, mut lo, mut hi) = (0.0f64, 0.0f64, 0u64, f64::INFINITY, f64::NEG_INFINITY);
            for &v in xs {
                if v.is_nan() {
                    self.nan += 1;
                } else if v.is_infinite() {
                    self.inf += 1;
                } else {
                    let f = f64::from(v);
                    let d = f - shift;
                    (s1, s2, n, lo, hi) = (s1 + d, s2 + d * d, n + 1, lo.min(f), hi.max(f));
                }
            }
            (s1, s2, n, lo, hi)
        };
        let nf = n as f64;
        self.moments.merge(n, shift + s1 / nf, (s2 - s1 * s1 / nf).max(0.0), lo, hi);
        self.hist.fit(lo, hi);
        self.hist.count(xs);
    }

    /// Adds `counts[i]` copies of each `values[i]` (values taking few distinct levels,
    /// counted where they were made): the same summary and histogram as adding the values
    /// one by one, the moments to rounding.
    #[allow(clippy::cast_precision_loss)]
    pub fn add_counts(&mut self, values: &[f32], counts: &[u64]) {
        let (mut n, mut sum, mut lo, mut hi) = (0u64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for (&v, &c) in values.iter().zip(counts).filter(|&(_, &c)| c > 0) {
            self.count += c;
            if v.is_nan() {
                self.nan += c;
            } else if v.is_infinite() {
                self.inf += c;
            } else {
                let f = f64::from(v);
                (n, sum, lo, hi) = (n + c, sum + c as f64 * f, lo.min(f), hi.max(f));
            }
        }
        if n == 0 {
            return;
        }
        let mean = sum / n as f64;
        let finite = values.iter().zip(counts).filter(|(v, _)| v.is_finite());
        let m2 = finite.map(|(&v, &c)| c as f64 * (f64::from(v) - mean).powi(2)).sum();
        self.moments.merge(n, mean, m2, lo, hi);
        self.hist.fit(lo, hi);
        self.hist.add_counts(values, counts);
    }

    /// Number of values added (NaN and Inf included).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The summary so far; quartiles from the histogram (`quantiles_exact: false`),
    /// within one bin of the exact ones and clamped to `[min, max]`.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let m = self.moments;
        let quartiles = QUARTILES.map(|p| {
            if m.n == 0 {
                return f64::NAN;
            }
            interpolate(m.n, p, |r| self.hist.value_at_rank(r)).clamp(m.min, m.max)
        });
        Summary { quantiles_exact: false, ..finish(self.count, self.nan, self.inf, m, quartiles) }
    }

    /// The histogram of the finite values.
    #[must_use]
    pub fn histogram(&self) -> &GridHistogram {
        &self.hist
    }

    /// NaN and ±Inf values seen.
    #[must_use]
    pub fn nonfinite(&self) -> u64 {
        self.nan + self.inf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Values, summarize};

    fn values(n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale + shift).collect()
    }

    #[test]
    fn counts_every_value_once_while_the_range_grows() {
        let mut s = RunningStats::default();
        let chunks = [values(1000, 0.01, 0.0), vec![0.0; 10], values(1000, 100.0, 40.0), values(500, 1.0, -3.0)];
        let mut all = Vec::new();
        for c in &chunks {
            s.add(c);
            all.extend_from_slice(c);
        }
        s.add(&[f32::NAN, f32::INFINITY]);
        assert_eq!(s.histogram().total(), all.len() as u64);
        assert!(s.histogram().counts.len() <= RUNNING_BINS);
        let exact = summarize(Values::Slice(&all)).unwrap();
        let run = s.summary();
        assert_eq!((run.count, run.nan, run.inf), (all.len() as u64 + 2, 1, 1));
        assert_eq!((run.min, run.max), (exact.min, exact.max));
        assert!((run.mean - exact.mean).abs() < 1e-9 && (run.std - exact.std).abs() < 1e-9);
        // quartiles within one bin
        let w = width(s.histogram().level);
        for (a, b) in [(run.q25, exact.q25), (run.q50, exact.q50), (run.q75, exact.q75)] {
            assert!((a - b).abs() <= w, "{a} vs {b} (bin {w})");
        }
        assert!(!run.quantiles_exact);
    }

    #[test]
    fn bins_are_exact_multiples_of_their_width() {
        let mut h = GridHistogram::new(8);
        h.add_within(&[0.0, 0.1, 0.7], 0.0, 0.7);
        // the finest level holding [0, 0.7] in 8 bins: width 1/8
        assert_eq!((h.level, h.first), (-3, 0));
        assert_eq!(h.counts, vec![2, 0, 0, 0, 0, 1]);
        h.add_within(&[-1.0], -1.0, -1.0);
        // 14 bins of 1/8 needed: width 1/4, bins [-1, -0.75) … [0.5, 0.75)
        assert_eq!((h.level, h.first), (-2, -4));
        assert_eq!(h.counts, vec![1, 0, 0, 0, 2, 0, 1]);
    }

    #[test]
    fn shared_bins_align_streams_at_different_levels() {
        let (mut a, mut b) = (RunningStats::default(), RunningStats::default());
        let xa = values(3000, 2.0, 0.0);
        let xb = values(2000, 0.01, 0.5);
        a.add(&xa);
        b.add(&xb);
        b.add(&[f32::NAN]);
        let hs = shared_grid_histograms(&[a.histogram(), b.histogram()], &[a.nonfinite(), b.nonfinite()], 64).unwrap();
        assert_eq!(hs[0].edges(), hs[1].edges());
        assert!(hs[0].counts.len() <= 64 && hs[0].counts.len() > 16);
        assert_eq!((hs[0].total(), hs[1].total(), hs[1].nonfinite), (3000, 2000, 1));
        // every value in the bin numpy would put it in over the same edges
        let direct = crate::stats::histogram(Values::Slice(&xa), hs[0].lo, hs[0].hi, hs[0].counts.len()).unwrap();
        assert_eq!(direct.counts, hs[0].counts);
        let direct = crate::stats::histogram(Values::Slice(&xb), hs[1].lo, hs[1].hi, hs[1].counts.len()).unwrap();
        assert_eq!(direct.counts, hs[1].counts);
        assert!(shared_grid_histograms(&[&GridHistogram::default()], &[3], 64).is_none());
    }

    #[test]
    fn constant_and_extreme_streams_stay_finite() {
        let mut s = RunningStats::default();
        s.add(&[0.0; 100]);
        s.add(&[3.0e38, -3.0e38]);
        s.add(&[1.0e-30]);
        assert_eq!(s.histogram().total(), 103);
        let sum = s.summary();
        assert_eq!((sum.min, sum.max), (f64::from(-3.0e38f32), f64::from(3.0e38f32)));
        // the median is one of the zeros: within the (very wide) bin holding 0
        assert!(sum.q50.abs() <= width(s.histogram().level), "{}", sum.q50);
    }

    #[test]
    fn counted_levels_give_what_the_values_give() {
        // 256 dequantized levels (k − 3)·0.0371, taken unevenly, in two samples
        let level = |k: i32| (k - 3) as f32 * 0.0371;
        let levels: Vec<f32> = (0..256).map(level).collect();
        let (mut by_value, mut by_count) = (RunningStats::default(), RunningStats::default());
        for sample in 0..2u64 {
            let counts: Vec<u64> = (0..256u64).map(|k| (k * 7 + sample * 3) % 11).collect();
            let xs: Vec<f32> =
                levels.iter().zip(&counts).flat_map(|(&v, &c)| std::iter::repeat_n(v, c as usize)).collect();
            by_value.add(&xs);
            by_count.add_counts(&levels, &counts);
        }
        by_count.add_counts(&[f32::NAN, 1.0], &[2, 0]);
        by_value.add(&[f32::NAN, f32::NAN]);
        assert_eq!(by_count.histogram(), by_value.histogram());
        assert_eq!((by_count.count(), by_count.nonfinite()), (by_value.count(), 2));
        let (a, b) = (by_count.summary(), by_value.summary());
        assert_eq!((a.min, a.max, a.q25, a.q50, a.q75), (b.min, b.max, b.q25, b.q50, b.q75));
        assert!((a.mean - b.mean).abs() < 1e-12 * b.std && (a.std - b.std).abs() < 1e-12 * b.std, "{a:?} vs {b:?}");
    }
}
