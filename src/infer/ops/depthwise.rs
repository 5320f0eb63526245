//! Depthwise 2-D convolution (a `Conv` whose channels each have their own filter: group =
//! input channels = output channels), f32, channels first. tract 0.23.9 runs a strided one
//! at about 1 GMAC/s (its zone walk does not vectorise across a stride): PP-OCRv4 det's
//! four stride-2 ones take 3.6 ms of its 25 ms float run, against onnxruntime's 1.2 ms.
//! [`depthwise`] splits each image's columns into one contiguous row per stride phase, so
//! every tap is one vectorised multiply-add along an output row. [`swap_depthwise`] puts
//! it in place of tract's `Conv` where the stride is more than 1 (at stride 1 tract's own
//! kernel is as fast).

use std::borrow::Cow;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, TypedOp, as_op, bail, ensure, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Where a depthwise convolution reads and writes (rows, then columns).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Images (1 when the data has no batch axis).
    pub batch: usize,
    pub channels: usize,
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Padding before the first row and column (the padding after is what the output
    /// size leaves).
    pub pad: [usize; 2],
}

impl Geometry {
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// The convolution of `x` (`[batch, channels, rows, columns]`) by `kernel` (`[channels,
/// kernel rows, kernel columns]`) plus `bias` (one per channel), written to `out`
/// (`[batch, channels, output rows, output columns]`); padding reads zeros.
///
/// # Panics
/// When a slice's length is not the one the geometry gives.
pub fn depthwise(g: &Geometry, x: &[f32], kernel: &[f32], bias: &[f32], out: &mut [f32]) {
    let planes = g.batch * g.channels;
    assert_eq!(x.len(), planes * g.input[0] * g.input[1], "input size");
    assert_eq!(out.len(), planes * g.output[0] * g.output[1], "output size");
    assert_eq!(kernel.len(), g.channels * g.taps(), "kernel size");
    assert_eq!(bias.len(), g.channels, "bias size");
    if planes == 0 || out.is_empty() {
        return;
    }
    if x.is_empty() {
        // (an empty image: the output is all padding)
        let plane = g.output[0] * g.output[1];
        for (i, o) in out.chunks_exact_mut(plane).enumerate() {
            o.fill(bias[i % g.channels]);
        }
        return;
    }
    let mut phases =
        vec![0.0; if g.strides[1] > 1 { g.input[0] * g.input[1].div_ceil(g.strides[1]) * g.strides[1] } else { 0 }];
    let columns = column_runs(g);
    crate::stats::simd::wide!(all_planes, (g: &Geometry = g, columns: &[ColumnRun] = &columns, x: &[f32] = x, kernel: &[f32] = kernel, bias: &[f32] = bias, out: &mut [f32] = out, phases: &mut [f32] = &mut phases) -> ());
}

/// What one kernel column reads of an input row: output columns `lo..hi` take the row's
/// stride phase `phase` from `start` on.
#[derive(Clone, Copy)]
struct ColumnRun {
    phase: usize,
    start: usize,
    lo: usize,
    hi: usize,
}

/// The [`ColumnRun`] of each kernel column (empty where it reads only padding).
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn column_runs(g: &Geometry) -> Vec<ColumnRun> {
    let ([_, w], [_, ow], [_, kw]) = (g.input, g.output, g.kernel);
    let (sw, dw, pw) = (g.strides[1] as isize, g.dilations[1] as isize, g.pad[1] as isize);
    (0..kw as isize)
        .map(|kx| {
            // the tap reads column ox·sw + off = (ox + base)·sw + phase
            let off = kx * dw - pw;
            let phase = off.rem_euclid(sw);
            let base = (off - phase) / sw;
            let len = (w as isize - phase + sw - 1).div_euclid(sw).max(0);
            let lo = (-base).clamp(0, ow as isize);
            let hi = (len - base).clamp(lo, ow as isize);
            if hi == lo {
                // (only padding under this column)
                return ColumnRun { phase: 0, start: 0, lo: 0, hi: 0 };
            }
            ColumnRun { phase: phase as usize, start: (lo + base) as usize, lo: lo as usize, hi: hi as usize }
        })
        .collect()
}

#[inline(always)]
#[allow(clippy::inline_always)]
fn all_planes(
    g: &Geometry,
    columns: &[ColumnRun],
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    phases: &mut [f32],
) {
    let (plane_in, plane_out, taps) = (g.input[0] * g.input[1], g.output[0] * g.output[1], g.taps());
    for (i, (xp, op)) in x.chunks_exact(plane_in).zip(out.chunks_exact_mut(plane_out)).enumerate() {
        let c = i % g.channels;
        plane(g, columns, xp, &kernel[c * taps..(c + 1) * taps], bias[c], op, phases);
    }
}

/// Column `j·sw + p` of each row `y` of `x` as element `j` of row `(p, y)` of `phases`
/// (rows of `w.div_ceil(sw)`).
#[inline(always)]
#[allow(clippy::inline_always)]
fn split_phases(x: &[f32], h: usize, w: usize, sw: usize, phases: &mut [f32]) {
    let wp = w.div_ceil(sw);
    if sw == 2 {
        let (even, odd) = phases.split_at_mut(h * wp);
        for ((row, e), o) in x.chunks_exact(w).zip(even.chunks_exact_mut(wp)).zip(odd.chunks_exact_mut(wp)) {
            for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
            if w % 2 == 1 {
                e[wp - 1] = row[w - 1];
            }
        }
        return;
    }
    for (y, row) in x.chunks_exact(w).enumerate() {
        for (j, columns) in row.chunks(sw).enumerate() {
            for (p, &v) in columns.iter().enumerate() {
                phases[(p * h + y) * wp + j] = v;
            }
        }
    }
}

/// One channel of one image.
#[inline(always)]
#[allow(clippy::inline_always)]
fn plane(g: &Geometry, columns: &[ColumnRun], x: &[f32], k: &[f32], b: f32, out: &mut [f32], phases: &mut [f32]) {
    let ([h, w], [_, ow], [_, kw]) = (g.input, g.output, g.kernel);
    let ([sh, sw], dh, ph) = (g.strides, g.dilations[0], g.pad[0]);
    // every tap then reads a contiguous run of a row
    let (src, row_len) = if sw == 1 {
        (x, w)
    } else {
        split_phases(x, h, w, sw, phases);
        (&*phases, w.div_ceil(sw))
    };
    for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
        orow.fill(b);
        for (ky, taps) in k.chunks_exact(kw).enumerate() {
            // (above the image: wraps past `h`)
            let iy = (oy * sh + ky * dh).wrapping_sub(ph);
            if iy >= h {
                continue;
            }
            for (&wgt, run) in taps.iter().zip(columns).filter(|(_, run)| run.hi > run.lo) {
                let read = &src[(run.phase * h + iy) * row_len + run.start..][..run.hi - run.lo];
                for (o, v) in orow[run.lo..run.hi].iter_mut().zip(read) {
                    *o += wgt * v;
                }
            }
        }
    }
}

/// tract's `Conv` of a depthwise convolution, run by [`depthwise`]. Inputs: data, kernel
/// (`[channels, 1, kernel rows, kernel columns]`), bias (one per channel, or one for all).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise {
    pub geometry: Geometry,
    output_shape: TVec<usize>,
}

impl Depthwise {
    /// The op for a float `conv` of concrete shapes with these input facts, when it is a
    /// channels-first 2-D depthwise convolution with a stride of more than 1.
    #[must_use]
    pub fn of(conv: &Conv, inputs: &[&TypedFact]) -> Option<Self> {
        let spec = &conv.pool_spec;
        let c = spec.input_channels;
        let float = inputs.iter().all(|f| f.datum_type == f32::datum_type());
        if conv.q_params.is_some()
            || conv.kernel_fmt != KernelFormat::OIHW
            || spec.rank() != 2
            || conv.group != c
            || spec.output_channels != c
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || spec.strides().iter().all(|&s| s == 1)
            || !float
        {
            return None;
        }
        let [x, kernel, bias] = inputs else { return None };
        let shape = x.shape.as_concrete()?;
        let data = spec.data_format.shape(shape).ok()?;
        let [kh, kw] = [spec.kernel_shape[0], spec.kernel_shape[1]];
        let bias_len = bias.shape.as_concrete()?.iter().product::<usize>();
        if kernel.shape.as_concrete()? != [c, 1, kh, kw] || bias_len != 1 && bias_len != c {
            return None;
        }
        let hw = data.hw_dims();
        let pads = spec.computed_padding(hw);
        let output_shape: TVec<usize> = spec.output_shape(shape).ok()?.shape;
        let pair = |f: &dyn Fn(usize) -> usize| [f(0), f(1)];
        let geometry = Geometry {
            batch: data.n().copied().unwrap_or(1),
            channels: c,
            input: [hw[0], hw[1]],
            output: pair(&|a| pads[a].convoluted),
            kernel: [kh, kw],
            strides: pair(&|a| spec.stride(a)),
            dilations: pair(&|a| spec.dilation(a)),
            pad: pair(&|a| pads[a].pad_before),
        };
        Some(Self { geometry, output_shape })
    }
}

impl Op for Depthwise {
    fn name(&self) -> StaticName {
        "Depthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.geometry)])
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise {
    op_out_of_plan!();

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let [x, kernel, bias] = &*inputs else { bail!("Depthwise takes data, kernel and bias") };
        let (x, kernel, bias) = (x.try_as_plain_ram()?, kernel.try_as_plain_ram()?, bias.try_as_plain_ram()?);
        let bias = bias.as_slice::<f32>()?;
        let c = self.geometry.channels;
        let bias = match bias {
            [b] => Cow::Owned(vec![*b; c]),
            b => Cow::Borrowed(b),
        };
        let (x, kernel) = (x.as_slice::<f32>()?, kernel.as_slice::<f32>()?);
        let g = &self.geometry;
        let planes = g.batch * c;
        ensure!(
            x.len() == planes * g.input[0] * g.input[1] && kernel.len() == c * g.taps() && bias.len() == c,
            "Depthwise: inputs of {} / {} / {} values do not fit {g:?}",
            x.len(),
            kernel.len(),
            bias.len()
        );
        // SAFETY: `depthwise` writes every value (each output row is filled with the bias
        // first)
        #[allow(unsafe_code)]
        let out = unsafe { super::written(&self.output_shape, |out| depthwise(g, x, kernel, &bias, out))? };
        Ok(tvec!(out))
    }
}

impl TypedOp for Depthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        // (the geometry was taken from the input's shape: a pass that changed it would
        // make it wrong)
        let g = &self.geometry;
        let values = inputs.first().and_then(|x| x.shape.as_concrete()).map(|s| s.iter().product::<usize>());
        ensure!(
            inputs.len() == 3 && values == Some(g.batch * g.channels * g.input[0] * g.input[1]),
            "Depthwise of {g:?} given {inputs:?}"
        );
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    as_op!();
}

/// Replaces each strided depthwise `Conv` of `model` ([`Depthwise::of`]) by a
/// [`Depthwise`]. Returns how many.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn swap_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_ops(model, |op, facts| Some(Box::new(Depthwise::of(op.as_op().downcast_ref::<Conv>()?, facts)?)))
}

#[cfg(test)]
mod tests {
    use super::{Geometry, depthwise};

    /// The convolution as its definition reads, one output value at a time.
    #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
    fn direct(g: &Geometry, x: &[f32], k: &[f32], b: &[f32]) -> Vec<f32> {
        let ([h, w], [oh, ow], [kh, kw]) = (g.input, g.output, g.kernel);
        let mut out = Vec::new();
        for n in 0..g.batch {
            for c in 0..g.channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = f64::from(b[c]);
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize - g.pad[0] as isize;
                                let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize - g.pad[1] as isize;
                                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                    let v = x[((n * g.channels + c) * h + iy as usize) * w + ix as usize];
                                    acc += f64::from(v) * f64::from(k[(c * kh + ky) * kw + kx]);
                                }
                            }
                        }
                        #[allow(clippy::cast_possible_truncation)]
                        out.push(acc as f32);
                    }
                }
            }
        }
        out
    }

    fn output_len(input: usize, kernel: usize, stride: usize, dilation: usize, pads: (usize, usize)) -> usize {
        (input + pads.0 + pads.1 - dilation * (kernel - 1) - 1) / stride + 1
    }

    #[test]
    fn depthwise_equals_the_direct_convolution_for_every_geometry() {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f32::from(u16::try_from(seed >> 16).unwrap()) / 32768.0 - 1.0
        };
        let mut checked = 0;
        // (input, kernel, strides, dilations, pads before, pads after)
        for (input, kernel, strides, dilations, pad, after) in [
            ([13, 11], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            ([12, 12], [3, 3], [2, 2], [1, 1], [0, 0], [1, 1]),
            ([10, 9], [5, 5], [2, 2], [1, 1], [2, 2], [2, 2]),
            ([9, 17], [3, 3], [1, 1], [2, 2], [2, 2], [2, 2]),
            ([8, 8], [3, 3], [2, 1], [1, 1], [1, 1], [1, 1]),
            ([7, 14], [3, 1], [1, 3], [1, 1], [0, 4], [1, 2]),
            ([6, 6], [1, 1], [2, 2], [1, 1], [0, 0], [0, 0]),
            ([5, 4], [5, 5], [3, 3], [1, 2], [3, 3], [3, 3]),
            ([3, 3], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]),
            // kernel columns over nothing but padding
            ([5, 1], [7, 7], [2, 2], [1, 1], [3, 3], [3, 3]),
            ([4, 2], [7, 7], [2, 2], [1, 1], [3, 3], [3, 3]),
            ([6, 1], [5, 5], [2, 1], [1, 1], [2, 2], [2, 2]),
            ([6, 1], [3, 3], [2, 1], [2, 2], [2, 2], [2, 2]),
            ([4, 3], [3, 5], [2, 1], [1, 1], [0, 0], [0, 2]),
            // an empty image: bias only
            ([0, 4], [1, 1], [2, 2], [1, 1], [1, 1], [1, 1]),
        ] {
            let output = [0, 1].map(|a| output_len(input[a], kernel[a], strides[a], dilations[a], (pad[a], after[a])));
            let g = Geometry { batch: 2, channels: 3, input, output, kernel, strides, dilations, pad };
            let x: Vec<f32> = (0..2 * 3 * input[0] * input[1]).map(|_| next()).collect();
            let k: Vec<f32> = (0..3 * kernel[0] * kernel[1]).map(|_| next()).collect();
            let b = [0.5, -0.25, 0.0];
            let mut out = vec![f32::NAN; 2 * 3 * output[0] * output[1]];
            depthwise(&g, &x, &k, &b, &mut out);
            let want = direct(&g, &x, &k, &b);
            for (i, (o, w)) in out.iter().zip(&want).enumerate() {
                assert!((o - w).abs() <= 1e-5, "{g:?} value {i}: {o} vs {w}");
            }
            checked += out.len();
        }
        assert!(checked > 1000);
    }
}
