//! Wider vectors where the CPU has them: the statistics loops are written in lanes that
//! vectorise, and compiled by default for the baseline x86-64 (SSE2, two f64 per
//! instruction). [`wide!`] runs a kernel compiled again for AVX2 (four f64) when the CPU
//! running it has AVX2, checked once per call. Results are bit for bit the same: the
//! lanes and the order of every sum are the code's, not the vector width's (no FMA).

/// `wide!(kernel(name: Type = value, …) -> Ret)` calls `kernel(value, …)`, compiled for
/// AVX2 where this CPU has it. The kernel must be `#[inline(always)]`: it is inlined into a
/// function declared here with `#[target_feature(enable = "avx2")]` (a closure handed to
/// such a function is not inlined into it for sure, and a large one was not: it ran as
/// SSE2 in release builds).
macro_rules! wide {
    ($kernel:path, ($($arg:ident: $ty:ty = $val:expr),* $(,)?) -> $ret:ty) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn avx2($($arg: $ty),*) -> $ret {
            $kernel($($arg),*)
        }
        $(let $arg: $ty = $val;)*
        #[cfg(target_arch = "x86_64")]
        let r = if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU running this has AVX2 (checked just above), all `avx2`
            // requires
            #[allow(unsafe_code)]
            unsafe {
                avx2($($arg),*)
            }
        } else {
            $kernel($($arg),*)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let r = $kernel($($arg),*);
        r
    }};
}
pub(crate) use wide;

#[cfg(test)]
mod tests {
    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn sum(xs: &[f64], calls: &mut u32) -> f64 {
        *calls += 1;
        xs.iter().sum()
    }

    #[test]
    fn wide_runs_the_kernel_once_with_its_result() {
        let mut calls = 0;
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let total = super::wide!(sum, (xs: &[f64] = &xs, calls: &mut u32 = &mut calls) -> f64);
        assert_eq!((total, calls), (499_500.0, 1));
    }
}
