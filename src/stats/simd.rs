//! Wider vectors where the CPU has them: the statistics loops are written in lanes that
//! vectorise, and compiled by default for the baseline x86-64 (SSE2, two f64 per
//! instruction). [`wide`] runs a loop compiled again for AVX2 (four f64) when the CPU
//! running it has AVX2, checked once per call. Results are bit for bit the same: the
//! lanes and the order of every sum are the code's, not the vector width's (no FMA).

/// Runs `f`, compiled for AVX2 where this CPU has it. `f` and what it calls must inline
/// into it (`#[inline(always)]`) to benefit.
#[inline]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU running this has AVX2 (checked just above), all `avx2` requires.
        #[allow(unsafe_code)]
        return unsafe { avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn wide_runs_the_closure_once_with_its_result() {
        let mut calls = 0;
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let sum = super::wide(|| {
            calls += 1;
            xs.iter().sum::<f64>()
        });
        assert_eq!((sum, calls), (499_500.0, 1));
    }
}
