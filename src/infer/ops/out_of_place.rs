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

/// One step: `acc = acc op b` (`SubF`: `b − acc`), `b` read per block (one value per
/// `acc.len() / b.len()` elements) or in lockstep (`b` repeated along `acc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub op: BinOp,
    pub per_block: bool,
}

/// Whether quantlens's steps give tract's bits for `op`: tract's `x86_64` and generic
/// kernels compute `f32::min` / `f32::max` as here; its arm64 ones propagate NaN.
fn same_as_tract(op: BinOp) -> bool {
    cfg!(target_arch = "x86_64") || !matches!(op, BinOp::Min | BinOp::Max)
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
fn by_op(op: BinOp, o: &mut [f32], src: Option<&[f32]>, y: Operand) {
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
        BinOp::Add => each(o, src, y, |x, y| x + y),
        BinOp::Sub => each(o, src, y, |x, y| x - y),
        BinOp::SubF => each(o, src, y, |x, y| y - x),
        BinOp::Mul => each(o, src, y, |x, y| x * y),
        BinOp::Min => each(o, src, y, f32::min),
        BinOp::Max => each(o, src, y, f32::max),
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
            (Inner::ByScalar(op.clone()), vec![Step { op: op.linalg_op, per_block: true }])
        } else if let Some(op) = any.downcast_ref::<OptBinUnicast>() {
            (Inner::Unicast(op.clone()), vec![Step { op: op.binop.as_linalg_binop()?, per_block: false }])
        } else if let Some(op) = any.downcast_ref::<OptBinChain>() {
            let steps =
                op.steps.iter().map(|s| Step { op: s.linalg_op, per_block: s.share == BShare::PerBlock }).collect();
            (Inner::Chain(op.clone()), steps)
        } else {
            return None;
        };
        (steps.len() + 1 == inputs.len() && steps.iter().all(|s| same_as_tract(s.op))).then_some(Self { inner, steps })
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
            && !self.steps.iter().zip(&bs).any(|(s, b)| s.per_block && (2..16).contains(&(xs.len() / b.len())))
        {
            // (tract repeats a per-block value over fewer than 16 elements with its own
            // comparisons, which differ from `f32::min`/`max` on signed zeros and NaN: that
            // case stays tract's)
            // SAFETY: `run_steps` writes every value (its first step from `a`)
            #[allow(unsafe_code)]
            let out = unsafe { super::written(a.shape(), |out| run_steps(&self.steps, xs, &bs, out))? };
            return Ok(tvec!(out));
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
    use super::{BinOp, OutOfPlace, Step, run_steps};
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::EvalOp;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::math;

    /// Values with signed zeros, NaN, infinities and a subnormal among ordinary ones.
    fn values(n: usize, seed: usize) -> Vec<f32> {
        let specials = [0.0f32, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, 1.5, -2.25];
        (0..n)
            .map(|i| {
                let k = i * 7 + seed;
                if k.is_multiple_of(3) { specials[(k / 3) % specials.len()] } else { (k % 41) as f32 * 0.37 - 7.0 }
            })
            .collect()
    }

    /// Each in-place binary op tract makes of `ops` over `a` and operands of `b_shape`,
    /// run by [`OutOfPlace`] on a kept input and by tract on its own one: the same bits.
    /// Returns how many ops were compared.
    fn compare(a_shape: &[usize], b_shape: &[usize], ops: &[TypedBinOp], b_first: bool) -> usize {
        let mut model = TypedModel::default();
        let mut wire = model.add_source("a", f32::fact(a_shape)).unwrap();
        for (i, op) in ops.iter().enumerate() {
            let b = model.add_source(format!("b{i}"), f32::fact(b_shape)).unwrap();
            let inputs = if b_first { [b, wire] } else { [wire, b] };
            wire = model.wire_node(format!("op{i}"), op.clone(), &inputs).unwrap()[0];
        }
        model.select_output_outlets(&[wire]).unwrap();
        let model = model.into_optimized().unwrap();
        let value = |o: &OutletId| -> TValue {
            let name = &model.node(o.node).name;
            let shape = if name == "a" { a_shape } else { b_shape };
            let seed = name.len() + name.bytes().last().map_or(0, usize::from);
            Tensor::from_shape(shape, &values(shape.iter().product(), seed)).unwrap().into_tvalue()
        };
        let mut compared = 0;
        for node in model.nodes() {
            let facts = model.node_input_facts(node.id).unwrap();
            let Some(op) = OutOfPlace::of(node.op.as_ref(), &facts) else { continue };
            let inputs: TVec<TValue> = node.inputs.iter().map(value).collect();
            let kept = inputs[0].clone();
            let ours = op.eval_out_of_plan(inputs).unwrap().unwrap().remove(0);
            drop(kept);
            let theirs = node.op.eval_out_of_plan(node.inputs.iter().map(value).collect()).unwrap().unwrap().remove(0);
            let (ours, theirs) = (super::super::plain(&ours).unwrap(), super::super::plain(&theirs).unwrap());
            for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
                assert_eq!(
                    o.to_bits(),
                    t.to_bits(),
                    "{} {a_shape:?} b {b_shape:?} value {i}: {o} vs tract's {t}",
                    node.op.name()
                );
            }
            compared += 1;
        }
        compared
    }

    #[test]
    fn out_of_place_gives_tracts_bits_for_every_op_and_period() {
        let mut compared = 0;
        // [1, 32, 3, 3] by channel: tract's own path for a value per fewer than 16 elements
        for a in [[1, 32, 3, 3], [1, 8, 7, 6], [1, 8, 16, 16]] {
            for op in [math::add(), math::sub(), math::mul(), math::min(), math::max()] {
                for b in [[1, a[1], 1, 1], [1, 1, 1, 1], a] {
                    for b_first in [false, true] {
                        compared += compare(&a, &b, std::slice::from_ref(&op), b_first);
                    }
                }
            }
            // a Clip: one chain of Max then Min
            compared += compare(&a, &[1, a[1], 1, 1], &[math::max(), math::min()], false);
        }
        assert!(compared >= 80, "{compared} ops compared");
    }

    #[test]
    fn steps_combine_per_block_and_in_lockstep() {
        // a: 2 blocks × 3 channels × 4000 values (past one chunk)
        let a: Vec<f32> = (0..24_000).map(|i| (i % 97) as f32 * 0.5 - 20.0).collect();
        let per_channel = [2.0f32, -1.0, 0.5, 3.0, 0.25, -4.0];
        let lockstep: Vec<f32> = (0..12_000).map(|i| (i % 13) as f32 - 6.0).collect();
        let scalar = [1.5f32];
        let steps = [
            Step { op: BinOp::Mul, per_block: true },
            Step { op: BinOp::Add, per_block: false },
            Step { op: BinOp::SubF, per_block: true },
            Step { op: BinOp::Max, per_block: true },
            Step { op: BinOp::Min, per_block: false },
            Step { op: BinOp::Sub, per_block: true },
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
