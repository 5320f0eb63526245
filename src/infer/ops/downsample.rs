//! tract's `Downsample` (every `stride`-th slice along an axis, from `modulo` on: how tract
//! runs a strided 1×1 convolution) copies through ndarray's generic slicing: 7 µs for one
//! of resnet8's 16×32×32 → 16×16×32 maps, a tenth of its convolution. [`Subsample`] copies
//! whole rows, or single values along the innermost axis.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, TypedOp, as_op, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_core::ops::Downsample;

/// Of `x` (of `shape`, in order), the slices `modulo`, `modulo + stride`, … along `axis`,
/// written to `out`.
///
/// # Panics
/// When `x` or `out` is not as long as the shapes say.
pub fn subsample(x: &[f32], shape: &[usize], axis: usize, stride: usize, modulo: usize, out: &mut [f32]) {
    let (outer, len) = (shape[..axis].iter().product::<usize>(), shape[axis]);
    let inner: usize = shape[axis + 1..].iter().product();
    let kept = len.saturating_sub(modulo).div_ceil(stride);
    assert_eq!(x.len(), outer * len * inner, "input size");
    assert_eq!(out.len(), outer * kept * inner, "output size");
    if out.is_empty() {
        return;
    }
    for (src, dst) in x.chunks_exact(len * inner).zip(out.chunks_exact_mut(kept * inner)) {
        if inner == 1 {
            for (d, s) in dst.iter_mut().zip(src[modulo..].iter().step_by(stride)) {
                *d = *s;
            }
        } else {
            for (d, s) in dst.chunks_exact_mut(inner).zip(src[modulo * inner..].chunks(inner).step_by(stride)) {
                d.copy_from_slice(s);
            }
        }
    }
}

/// tract's `Downsample` of f32 with a positive stride, run by [`subsample`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subsample(Downsample);

impl Op for Subsample {
    fn name(&self) -> StaticName {
        "Subsample".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.0.info()
    }

    op_as_typed_op!();
}

impl EvalOp for Subsample {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Downsample { axis, stride, modulo } = self.0;
        if let [x] = &*inputs
            && let Some(xs) = super::plain(x)
            && let Ok(stride) = usize::try_from(stride)
            && stride > 0
            && axis < x.rank()
        {
            let mut shape: TVec<usize> = x.shape().into();
            shape[axis] = shape[axis].saturating_sub(modulo).div_ceil(stride);
            // SAFETY: `subsample` writes every value
            #[allow(unsafe_code)]
            let out = unsafe { super::written(&shape, |out| subsample(xs, x.shape(), axis, stride, modulo, out))? };
            return Ok(tvec!(out));
        }
        self.0.eval(ctx, inputs)
    }
}

impl TypedOp for Subsample {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Replaces each `Downsample` of f32 in `model` by a [`Subsample`]. Returns how many.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn swap_downsample(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_ops(model, |op, facts| {
        let op = op.as_op().downcast_ref::<Downsample>()?;
        let f32s = facts.iter().all(|f| f.datum_type == f32::datum_type());
        (op.stride > 0 && f32s).then(|| Box::new(Subsample(op.clone())) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::subsample;

    #[test]
    fn subsample_keeps_every_strideth_slice_from_modulo() {
        let shape = [3usize, 7, 5];
        let x: Vec<f32> = (0..105u8).map(f32::from).collect();
        for axis in 0..3 {
            for (stride, modulo) in [(2, 0), (2, 1), (3, 2), (1, 0), (4, 6)] {
                let kept = shape[axis].saturating_sub(modulo).div_ceil(stride);
                let mut out_shape = shape;
                out_shape[axis] = kept;
                let mut out = vec![f32::NAN; out_shape.iter().product()];
                subsample(&x, &shape, axis, stride, modulo, &mut out);
                let mut want = Vec::new();
                for i in 0..out_shape[0] {
                    for j in 0..out_shape[1] {
                        for k in 0..out_shape[2] {
                            let mut at = [i, j, k];
                            at[axis] = modulo + at[axis] * stride;
                            want.push(x[(at[0] * 7 + at[1]) * 5 + at[2]]);
                        }
                    }
                }
                assert_eq!(out, want, "axis {axis} stride {stride} modulo {modulo}");
            }
        }
    }
}
