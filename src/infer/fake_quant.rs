//! A `QuantizeLinear → DequantizeLinear` pair as one tract op. tract runs the pair as two
//! passes (f32 → i8/u8 tensor → f32), its rounding a scalar function call per element:
//! about two thirds of a quantized variant's capture time. [`fuse_fake_quant`] replaces
//! each such `DequantizeLinear` by [`FakeQuant`], one vectorised pass from the quantized
//! tensor's float input, giving the same values bit for bit. Done once the model is typed,
//! it also leaves the optimiser half the nodes of a QDQ graph to work through. A pair can
//! carry a [`Probe`]: the op then also sums `qdq_err` (its input against its output) and
//! the output's statistics while both are in cache (sums that do not depend on the order
//! of the values, so on no layout tract chooses), and the input need not be kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::element_wise::{ElementWiseMiniOp, ElementWiseOp};
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

use crate::stats::{RunningComparison, RunningStats};

/// What a probed pair sums over every run: its input against its output (`qdq_err`), and
/// its output's statistics.
#[derive(Debug, Default)]
pub struct ProbeSums {
    pub qdq: RunningComparison,
    pub post: RunningStats,
}

/// A pair's sums, shared between the op (which adds to them) and whoever reads them.
#[derive(Clone, Debug, Default)]
pub struct Probe(Arc<Mutex<ProbeSums>>);

impl Probe {
    /// The sums so far.
    #[must_use]
    pub fn take(&self) -> ProbeSums {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Values of a probed pair summed at a time (input and output tiles stay in L2).
const TILE: usize = 64 * 1024;

/// `y = (clamp(round_ties_even(x · inv_scale), lo, hi) + shift) · scale`: tract's
/// `QuantizeLinear` (`inv_scale` = 1/its scale, `[lo, hi]` = the type's range less its
/// zero point) then `DequantizeLinear` (`shift` = the first zero point less the second).
#[derive(Clone, Debug, PartialEq)]
pub struct FakeQuant {
    pub inv_scale: f32,
    pub lo: f32,
    pub hi: f32,
    pub shift: f32,
    pub scale: f32,
    pub probe: Option<Probe>,
}

// the parameters are finite (scales come from constant tensors, checked when fused);
// probes are equal when they are one
impl Eq for FakeQuant {}

/// Adding then subtracting 1.5·2²³ rounds an f32 of magnitude below 2²² to the nearest
/// integer, ties to even (the FPU's default mode), in any vector width.
const ROUND: f32 = 12_582_912.0;

impl FakeQuant {
    /// The pair `q → dq`, when both are per-tensor with finite parameters.
    fn of(q: &ElementWiseOp, dq: &DequantizeLinearF32) -> Option<Self> {
        let (inv_scale, zp, (min, max)) = if let Some(q) = q.0.downcast_ref::<QuantizeLinearI8>() {
            (q.scale, i32::from(q.zero_point), (i32::from(i8::MIN), i32::from(i8::MAX)))
        } else {
            let q = q.0.downcast_ref::<QuantizeLinearU8>()?;
            (q.scale, i32::from(q.zero_point), (0, i32::from(u8::MAX)))
        };
        let f = |v: i32| v as f32; // |v| ≤ 2³¹: these are small integers, exact
        let op = Self {
            inv_scale,
            lo: f(min - zp),
            hi: f(max - zp),
            shift: f(zp - dq.zero_point),
            scale: dq.scale,
            probe: None,
        };
        (inv_scale.is_finite() && dq.scale.is_finite() && dq.zero_point.unsigned_abs() < 1 << 20).then_some(op)
    }

    /// Writes the fake-quantized `xs` into `ys` (as long as each other).
    pub fn apply(&self, xs: &[f32], ys: &mut [f32]) {
        crate::stats::simd::wide!(FakeQuant::apply_lanes, (op: &FakeQuant = self, xs: &[f32] = xs, ys: &mut [f32] = ys) -> ());
    }

    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn apply_lanes(&self, xs: &[f32], ys: &mut [f32]) {
        let Self { inv_scale, lo, hi, shift, scale, .. } = *self;
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            let v = x * inv_scale;
            // NaN rounds to 0 in tract (a saturating cast), inside the range: zp ∈ [min, max]
            let v = if v.is_nan() { 0.0 } else { v };
            let v = if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            };
            // rounding after the clamp is rounding before it: the bounds are integers
            *y = ((v + ROUND) - ROUND + shift) * scale;
        }
    }
}

impl ElementWiseMiniOp for FakeQuant {
    fn name(&self) -> String {
        "FakeQuant".into()
    }

    fn output_type(&self, input_type: DatumType) -> Option<DatumType> {
        (input_type == f32::datum_type()).then(f32::datum_type)
    }

    fn eval_out_of_place(&self, t: &Tensor, _out_dt: Option<DatumType>) -> TractResult<Tensor> {
        let xs = t.try_as_plain_ram()?;
        let xs = xs.as_slice::<f32>()?;
        let mut out = Tensor::zero::<f32>(t.shape())?;
        let mut view = out.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<f32>()?;
        self.apply(xs, ys);
        if let Some(probe) = &self.probe {
            let mut sums = probe.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (x, y) in xs.chunks(TILE).zip(ys.chunks(TILE)) {
                sums.qdq.add(x, y);
                sums.post.add(y);
            }
        }
        Ok(out)
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "1/scale {} range [{}, {}] shift {} scale {}",
            self.inv_scale, self.lo, self.hi, self.shift, self.scale
        )])
    }
}

/// A `DequantizeLinear` node fed by a per-tensor `QuantizeLinear` of an f32 tensor,
/// maybe through reshapes (tract's optimiser moves some between the two: fusing before
/// or after optimising gives the same values).
struct Pair {
    dq: usize,
    /// The `QuantizeLinear`'s input.
    input: OutletId,
    op: FakeQuant,
    /// The shape-only nodes from the `QuantizeLinear` down to the `DequantizeLinear`.
    reshapes: Vec<usize>,
}

fn pair_of(model: &TypedModel, dq_node: &TypedNode) -> Option<Pair> {
    let dq = dq_node.op_as::<DequantizeLinearF32>()?;
    let mut reshapes = Vec::new();
    let mut node = model.node(dq_node.inputs.first()?.node);
    while node.op_is::<IntoShape>() || node.op_is::<AxisOp>() {
        reshapes.push(node.id);
        node = model.node(node.inputs.first()?.node);
    }
    reshapes.reverse();
    let op = FakeQuant::of(node.op_as::<ElementWiseOp>()?, dq)?;
    let input = *node.inputs.first()?;
    (model.outlet_fact(input).ok()?.datum_type == f32::datum_type()).then_some(Pair {
        dq: dq_node.id,
        input,
        op,
        reshapes,
    })
}

/// Replaces every `DequantizeLinear` of a per-tensor `QuantizeLinear`'s output in `model`
/// (directly or through reshapes) by one [`FakeQuant`] of the `QuantizeLinear`'s input,
/// reshaped the same way (the outputs and labels move to it; a `QuantizeLinear` left
/// without successors is not run). A pair whose output tensor is named in `probes` gets
/// that probe. Returns the pairs fused, and the names of the probes given to one.
///
/// # Errors
/// When tract refuses a patch.
#[allow(clippy::implicit_hasher)]
pub fn fuse_fake_quant(model: &mut TypedModel, probes: &HashMap<String, Probe>) -> TractResult<(usize, Vec<String>)> {
    // one pair at a time, each found in the model as the last patch left it (a pair's
    // QuantizeLinear may read the DequantizeLinear of the pair before); the patches only
    // append nodes, so the scan goes on from the last pair
    let (mut next, mut fused, mut probed) = (0, 0, Vec::new());
    while let Some(mut pair) = model.nodes().get(next..).unwrap_or_default().iter().find_map(|n| pair_of(model, n)) {
        let label = model.outlet_label(OutletId::new(pair.dq, 0)).map(String::from);
        if let Some((name, probe)) = label.and_then(|l| probes.get_key_value(&l)) {
            pair.op.probe = Some(probe.clone());
            probed.push(name.clone());
        }
        let mut patch = TypedModelPatch::default();
        let mut wire = patch.tap_model(model, pair.input)?;
        let dq_name = &model.node(pair.dq).name;
        wire = patch.wire_node(dq_name, ElementWiseOp(Box::new(pair.op), None), &[wire])?[0];
        for &r in &pair.reshapes {
            let r = model.node(r);
            wire = patch.wire_node(format!("{dq_name}.{}", r.name), r.op.clone(), &[wire])?[0];
        }
        patch.shunt_outside(model, OutletId::new(pair.dq, 0), wire)?;
        patch.obliterate(pair.dq)?;
        patch.apply(model)?;
        (next, fused) = (pair.dq + 1, fused + 1);
    }
    Ok((fused, probed))
}

#[cfg(test)]
mod tests {
    use super::FakeQuant;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_f32_i8, quantize_linear_f32_u8};

    /// tract's own two steps, as it evaluates `QuantizeLinear` then `DequantizeLinear`.
    fn tract_pair(x: f32, inv_scale: f32, zp: i32, signed: bool, dq_zp: i32, scale: f32) -> f32 {
        let q = if signed {
            i32::from(quantize_linear_f32_i8(x, inv_scale, zp))
        } else {
            i32::from(quantize_linear_f32_u8(x, inv_scale, zp))
        };
        (q - dq_zp) as f32 * scale
    }

    #[test]
    fn one_pass_gives_tracts_two_steps_bit_for_bit() {
        // ties (k + ½ steps), both ends of the range and beyond, signs, zeros, NaN
        let s = 0.023_4_f32;
        let mut xs: Vec<f32> = (-700..=700).map(|k| (k as f32 + 0.5) * s * 0.5).collect();
        xs.extend([0.0, -0.0, f32::NAN, 1e6, -1e6, s * 127.5, s * -128.5, f32::MIN_POSITIVE]);
        for (signed, zp, dq_zp) in
            [(true, 0, 0), (true, -7, -7), (true, 100, 3), (false, 128, 128), (false, 0, 0), (false, 255, 17)]
        {
            let (min, max) = if signed { (-128, 127) } else { (0, 255) };
            let op = FakeQuant {
                inv_scale: s.recip(),
                lo: (min - zp) as f32,
                hi: (max - zp) as f32,
                shift: (zp - dq_zp) as f32,
                scale: s,
                probe: None,
            };
            let mut ys = vec![0.0; xs.len()];
            op.apply(&xs, &mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = tract_pair(*x, s.recip(), zp, signed, dq_zp, s);
                assert_eq!(y.to_bits(), want.to_bits(), "x {x} zp {zp} dq_zp {dq_zp} signed {signed}: {y} vs {want}");
            }
        }
    }
}
