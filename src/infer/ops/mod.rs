//! quantlens's own runs of the tract 0.23.9 ops that are slow on what a capture runs
//! (each module says what tract does and what it costs), put in a plan in place of
//! tract's: [`before_codegen`] on the decluttered model, [`after_codegen`] on the
//! optimised one. Each gives tract's values (the same sums in the same order).

pub mod depthwise;
pub mod downsample;
pub mod out_of_place;
pub mod pad;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::TypedOp;

/// The swaps made on a decluttered model, before tract picks its kernels: strided
/// depthwise convolutions.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn before_codegen(model: &mut TypedModel) -> TractResult<()> {
    depthwise::swap_depthwise(model)?;
    Ok(())
}

/// The swaps made on an optimised model: `Downsample`s, constant `Pad`s, and in-place
/// binary ops wrapped to run out of place when their input is kept.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn after_codegen(model: &mut TypedModel) -> TractResult<()> {
    downsample::swap_downsample(model)?;
    pad::swap_pad(model)?;
    out_of_place::wrap_in_place_ops(model)?;
    Ok(())
}

/// Replaces each op of `model` that `swap` gives another for (from the op and its input
/// facts) by that one (same inputs and outputs). Returns how many.
fn replace_ops(
    model: &mut TypedModel,
    swap: impl Fn(&dyn TypedOp, &[&TypedFact]) -> Option<Box<dyn TypedOp>>,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes().len() {
        let Some(op) = swap(model.node(id).op.as_ref(), &model.node_input_facts(id)?) else { continue };
        model.node_mut(id).op = op;
        replaced += 1;
    }
    Ok(replaced)
}

/// A new f32 tensor of `shape` holding what `write` writes into it.
///
/// # Safety
/// `write` must set every value: the tensor is not initialised before.
#[allow(unsafe_code)]
unsafe fn written(shape: &[usize], write: impl FnOnce(&mut [f32])) -> TractResult<TValue> {
    // SAFETY: the caller's `write` sets every value, and f32 has no invalid bit pattern
    let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
    write(out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
    Ok(out.into_tvalue())
}

/// A tensor's f32 values when it is laid out plainly, in order.
fn plain(t: &Tensor) -> Option<&[f32]> {
    let natural = t.len() == t.shape().iter().product::<usize>() && t.strides() == &*Tensor::natural_strides(t.shape());
    natural.then(|| super::f32s(t)).flatten()
}
