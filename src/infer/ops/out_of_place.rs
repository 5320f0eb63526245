//! tract runs its element-wise binary ops (`OptBinByScalar`, `OptBinUnicast`,
//! `OptBinChain`) in place in their first input. When that input is captured, the run
//! keeps it, and tract copies it first: a pass to copy and a pass to compute, on PP-OCRv4
//! det's float model 8 ms of the 12 ms a capture adds. [`OutOfPlace`] runs the same steps
//! from the kept input straight into a new tensor (one pass, chunk by chunk so that the
//! later steps of a chain find it in cache), giving the same values bit for bit; an input
//! nothing else holds is still worked in place by tract's own op.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{
    EvalContext, EvalOp, Op, StaticName, TypedOp, as_op, op_as_typed_op, op_out_of_plan,
};
use tract_onnx::tract_core::ops::binary::{OptBinByScalar, OptBinChain, OptBinUnicast};
use tract_onnx::tract_core::tract_linalg::BinOp;
use tract_onnx::tract_core::tract_linalg::multithread::BShare;

/// Elements per chunk: a chain's steps run over one chunk while it is in cache.
const CHUNK: usize = 8 * 1024;

/// One step: `acc = acc op b`, `b` read per block (one value per `acc.len() / b.len()`
/// elements) or in lockstep (`b` repeated along `acc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    pub op: Arith,
    pub per_block: bool,
}

/// tract's `BinOp`, as a value this crate can hash and match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arith {
    Add,
    Sub,
    /// `b − acc`
    SubF,
    Mul,
    Min,
    Max,
}

impl Arith {
    fn of(op: BinOp) -> Self {
        match op {
            BinOp::Add => Self::Add,
            BinOp::Sub => Self::Sub,
            BinOp::SubF => Self::SubF,
            BinOp::Mul => Self::Mul,
            BinOp::Min => Self::Min,
            BinOp::Max => Self::Max,
        }
    }

    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "Add" => Self::Add,
            "Sub" => Self::Sub,
            "SubF" => Self::SubF,
            "Mul" => Self::Mul,
            "Min" => Self::Min,
            "Max" => Self::Max,
            _ => return None,
        })
    }
}

/// The steps of `acc` (`a`, then `out`) against `bs`, over the elements `start..` of
/// `out.len()`. The first reads `a`, the others `out`.
#[inline(always)]
#[allow(clippy::inline_always)]
fn run_chunk(steps: &[Step], a: &[f32], bs: &[&[f32]], total: usize, start: usize, out: &mut [f32]) {
    for (i, (step, b)) in steps.iter().zip(bs).enumerate() {
        let period = if step.per_block { total / b.len() } else { b.len() };
        let mut at = 0;
        while at < out.len() {
            let e = start + at;
            let run = (period - e % period).min(out.len() - at);
            let o = &mut out[at..at + run];
            let src = if i == 0 { Some(&a[at..at + run]) } else { None };
            let y = if step.per_block {
                Operand::Scalar(b[e / period])
            } else {
                Operand::Values(&b[e % period..e % period + run])
            };
            by_op(step.op, o, src, y);
            at += run;
        }
    }
}

/// `b`'s values for a run of `acc`: one for all, or one each.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Scalar(f32),
    Values(&'a [f32]),
}

/// `o[k] = f(x[k], y[k])` with `x` = `src`, else `o` itself.
#[inline(always)]
#[allow(clippy::inline_always)]
fn by_op(op: Arith, o: &mut [f32], src: Option<&[f32]>, y: Operand) {
    #[inline(always)]
    fn each(o: &mut [f32], src: Option<&[f32]>, y: Operand, f: impl Fn(f32, f32) -> f32) {
        match (src, y) {
            (Some(xs), Operand::Scalar(y)) => o.iter_mut().zip(xs).for_each(|(o, &x)| *o = f(x, y)),
            (Some(xs), Operand::Values(ys)) => o.iter_mut().zip(xs).zip(ys).for_each(|((o, &x), &y)| *o = f(x, y)),
            (None, Operand::Scalar(y)) => o.iter_mut().for_each(|o| *o = f(*o, y)),
            (None, Operand::Values(ys)) => o.iter_mut().zip(ys).for_each(|(o, &y)| *o = f(*o, y)),
        }
    }
    match op {
        Arith::Add => each(o, src, y, |x, y| x + y),
        Arith::Sub => each(o, src, y, |x, y| x - y),
        Arith::SubF => each(o, src, y, |x, y| y - x),
        Arith::Mul => each(o, src, y, |x, y| x * y),
        Arith::Min => each(o, src, y, f32::min),
        Arith::Max => each(o, src, y, f32::max),
    }
}

/// `out = a op₁ b₁ op₂ b₂ …` by `steps`, `a` and `out` of one length.
///
/// # Panics
/// When a `b` does not divide `a`'s length, or `out` is not as long as `a`.
pub fn run_steps(steps: &[Step], a: &[f32], bs: &[&[f32]], out: &mut [f32]) {
    assert_eq!(a.len(), out.len(), "output size");
    assert!(bs.iter().all(|b| !b.is_empty() && a.len().is_multiple_of(b.len())), "operand sizes");
    let total = a.len();
    for (c, (xs, os)) in a.chunks(CHUNK).zip(out.chunks_mut(CHUNK)).enumerate() {
        crate::stats::simd::wide!(run_chunk, (steps: &[Step] = steps, a: &[f32] = xs, bs: &[&[f32]] = bs, total: usize = total, start: usize = c * CHUNK, out: &mut [f32] = os) -> ());
    }
}

/// tract's op, kept to run when it may work in place.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Inner {
    ByScalar(OptBinByScalar),
    Unicast(OptBinUnicast),
    Chain(OptBinChain),
}

impl Inner {
    fn op(&self) -> &dyn TypedOp {
        match self {
            Self::ByScalar(op) => op,
            Self::Unicast(op) => op,
            Self::Chain(op) => op,
        }
    }
}

/// An element-wise binary op of tract, run out of place when its first input is held
/// elsewhere too (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfPlace {
    inner: Inner,
    steps: Vec<Step>,
}

impl OutOfPlace {
    /// `op` wrapped, when it is one of tract's in-place binary ops on f32.
    #[must_use]
    pub fn of(op: &dyn TypedOp, inputs: &[&TypedFact]) -> Option<Self> {
        if inputs.iter().any(|f| f.datum_type != f32::datum_type()) {
            return None;
        }
        let any = op.as_op();
        let (inner, steps) = if let Some(op) = any.downcast_ref::<OptBinByScalar>() {
            (Inner::ByScalar(op.clone()), vec![Step { op: Arith::of(op.linalg_op), per_block: true }])
        } else if let Some(op) = any.downcast_ref::<OptBinUnicast>() {
            (Inner::Unicast(op.clone()), vec![Step { op: Arith::named(op.binop.name())?, per_block: false }])
        } else if let Some(op) = any.downcast_ref::<OptBinChain>() {
            let steps = op
                .steps
                .iter()
                .map(|s| Step { op: Arith::of(s.linalg_op), per_block: s.share == BShare::PerBlock })
                .collect();
            (Inner::Chain(op.clone()), steps)
        } else {
            return None;
        };
        (steps.len() + 1 == inputs.len()).then_some(Self { inner, steps })
    }
}

impl Op for OutOfPlace {
    fn name(&self) -> StaticName {
        format!("OutOfPlace({})", self.inner.op().name()).into()
    }

    op_as_typed_op!();
}

impl EvalOp for OutOfPlace {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if let Some((a, rest)) = inputs.split_first()
            && !a.is_exclusive()
            && let Some(xs) = super::plain(a)
            && let Some(bs) = rest.iter().map(|b| super::plain(b)).collect::<Option<Vec<_>>>()
            && bs.iter().all(|b| !b.is_empty() && xs.len().is_multiple_of(b.len()))
        {
            // SAFETY: `run_steps` writes every value of `out` (its first step from `a`),
            // and f32 has no invalid bit pattern
            #[allow(unsafe_code)]
            let mut out = unsafe { Tensor::uninitialized::<f32>(a.shape())? };
            run_steps(&self.steps, xs, &bs, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
            return Ok(tvec!(out.into_tvalue()));
        }
        self.inner.op().eval(ctx, inputs)
    }
}

impl TypedOp for OutOfPlace {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.inner.op().output_facts(inputs)
    }

    as_op!();
}

/// Wraps each of tract's in-place binary ops on f32 in `model` in an [`OutOfPlace`].
/// Returns how many.
///
/// # Errors
/// When a node's input facts cannot be read.
pub fn wrap_in_place_ops(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_ops(model, |op, facts| Some(Box::new(OutOfPlace::of(op, facts)?)))
}

#[cfg(test)]
mod tests {
    use super::{Arith, Step, run_steps};

    #[test]
    fn steps_combine_per_block_and_in_lockstep() {
        // a: 2 blocks × 3 channels × 4000 values (past one chunk)
        let a: Vec<f32> = (0..24_000).map(|i| (i % 97) as f32 * 0.5 - 20.0).collect();
        let per_channel = [2.0f32, -1.0, 0.5, 3.0, 0.25, -4.0];
        let lockstep: Vec<f32> = (0..12_000).map(|i| (i % 13) as f32 - 6.0).collect();
        let scalar = [1.5f32];
        let steps = [
            Step { op: Arith::Mul, per_block: true },
            Step { op: Arith::Add, per_block: false },
            Step { op: Arith::SubF, per_block: true },
            Step { op: Arith::Max, per_block: true },
            Step { op: Arith::Min, per_block: false },
            Step { op: Arith::Sub, per_block: true },
        ];
        let floor = [-30.0f32];
        let bs: [&[f32]; 6] = [&per_channel, &lockstep, &scalar, &floor, &lockstep, &per_channel];
        let mut out = vec![f32::NAN; a.len()];
        run_steps(&steps, &a, &bs, &mut out);
        for (i, (&x, &o)) in a.iter().zip(&out).enumerate() {
            let c = i / 4000;
            let mut want = x * per_channel[c] + lockstep[i % 12_000];
            want = (1.5 - want).max(-30.0).min(lockstep[i % 12_000]);
            want -= per_channel[c];
            assert_eq!(o.to_bits(), want.to_bits(), "value {i}: {o} vs {want}");
        }
    }
}
