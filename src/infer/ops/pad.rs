//! tract's constant `Pad` fills a new array and assigns the input into its interior
//! through ndarray's generic n-dimensional slicing: on PP-OCRv4 det's float model 1 ms of
//! a run, on resnet8 (where tract pads before each 3×3 convolution) 6 %. [`Padded`]
//! fills the output and copies the input's rows into place.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, TypedOp, as_op, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_core::ops::array::{Pad, PadMode};

/// `x` (of `shape`, in order) with `pads` (before, after) values of `value` around each
/// axis, written to `out`.
///
/// # Panics
/// When `pads` is not one pair per axis, or `x` or `out` is not as long as the shapes
/// say.
pub fn pad_constant(x: &[f32], shape: &[usize], pads: &[(usize, usize)], value: f32, out: &mut [f32]) {
    assert_eq!(pads.len(), shape.len(), "one pair of pads per axis");
    let padded: Vec<usize> = shape.iter().zip(pads).map(|(d, (a, b))| d + a + b).collect();
    assert_eq!(x.len(), shape.iter().product::<usize>(), "input size");
    assert_eq!(out.len(), padded.iter().product::<usize>(), "output size");
    out.fill(value);
    let Some((&row, outer)) = shape.split_last() else {
        out.copy_from_slice(x);
        return;
    };
    if x.is_empty() {
        return;
    }
    // the output's strides, and where the input's first row goes
    let mut strides = vec![1; padded.len()];
    for a in (0..padded.len() - 1).rev() {
        strides[a] = strides[a + 1] * padded[a + 1];
    }
    let mut at = vec![0; outer.len()];
    for src in x.chunks_exact(row) {
        let start: usize =
            at.iter().zip(pads).zip(&strides).map(|((i, (before, _)), s)| (i + before) * s).sum::<usize>()
                + pads[outer.len()].0;
        out[start..start + row].copy_from_slice(src);
        for a in (0..outer.len()).rev() {
            at[a] += 1;
            if at[a] < outer[a] {
                break;
            }
            at[a] = 0;
        }
    }
}

/// tract's `Pad` of f32 with a constant, run by [`pad_constant`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Padded {
    pad: Pad,
    value: u32,
}

impl Op for Padded {
    fn name(&self) -> StaticName {
        "Padded".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Padded {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if let [x] = &*inputs
            && let Some(xs) = super::plain(x)
            && self.pad.pads.len() == x.rank()
        {
            let shape: TVec<usize> = x.shape().iter().zip(&self.pad.pads).map(|(d, (a, b))| d + a + b).collect();
            let value = f32::from_bits(self.value);
            // SAFETY: `pad_constant` writes every value (it fills the output first)
            #[allow(unsafe_code)]
            let out = unsafe { super::written(&shape, |out| pad_constant(xs, x.shape(), &self.pad.pads, value, out))? };
            return Ok(tvec!(out));
        }
        self.pad.eval(ctx, inputs)
    }
}

impl TypedOp for Padded {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.pad.output_facts(inputs)
    }

    as_op!();
}

/// Replaces each constant `Pad` of f32 in `model` by a [`Padded`]. Returns how many.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn swap_pad(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_ops(model, |op, facts| {
        let pad = op.as_op().downcast_ref::<Pad>()?;
        let PadMode::Constant(value) = &pad.mode else { return None };
        let value = value.cast_to_scalar::<f32>().ok()?;
        let f32s = facts.iter().all(|f| f.datum_type == f32::datum_type());
        f32s.then(|| Box::new(Padded { pad: pad.clone(), value: value.to_bits() }) as _)
    })
}

#[cfg(test)]
mod tests {
    use super::pad_constant;

    #[test]
    fn pad_constant_surrounds_the_input_with_the_value() {
        let shape = [2, 3, 4];
        let x: Vec<f32> = (1..=24u8).map(f32::from).collect();
        let pads = [(0, 1), (2, 0), (1, 3)];
        let mut out = vec![f32::NAN; 3 * 5 * 8];
        pad_constant(&x, &shape, &pads, -0.5, &mut out);
        for i in 0..3 {
            for j in 0..5 {
                for k in 0..8 {
                    let inside = i < 2 && (2..5).contains(&j) && (1..5).contains(&k);
                    let want = if inside { x[(i * 3 + j - 2) * 4 + k - 1] } else { -0.5 };
                    assert_eq!(out[(i * 5 + j) * 8 + k], want, "at {i},{j},{k}");
                }
            }
        }
        let mut scalar = [0.0];
        pad_constant(&[7.0], &[], &[], 0.0, &mut scalar);
        assert_eq!(scalar, [7.0]);
    }
}
