//! A `QuantizeLinear → DequantizeLinear` pair as one tract op. tract runs the pair as two
//! passes (f32 → i8/u8 tensor → f32), its rounding a scalar function call per element:
//! about two thirds of a quantized variant's capture time. [`FakeQuant`] is one vectorised
//! pass from the quantized tensor's float input, giving the same values bit for bit, in
//! place (no new tensor to fault in). [`join_pairs`] makes each pair one node before tract
//! types the model (typing and decluttering then see one node for two: a tenth of a QDQ
//! plan's build), wired as `FakeQuant`; [`fuse_fake_quant`] fuses the pairs typing brings
//! together (through reshapes). A pair can carry a [`Probe`]: the op then also sums
//! `qdq_err` (its input against its output) while both are in cache, and counts its
//! output's levels (at most 256), from which the output's statistics follow: sums that do
//! not depend on the order of the values, so on no layout tract chooses, and the input
//! need not be kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::element_wise::{ElementWiseMiniOp, ElementWiseOp};
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};
use tract_onnx::tract_hir::internal::{
    DatumType, Expansion, InferenceModel, InferenceNode, InferenceResult, InletId, Solver, StaticName, TensorProxy,
    bail, check_output_arity, expand,
};

use super::TILE;
use crate::stats::{RunningClip, RunningComparison, RunningStats};

/// What a probed pair sums over every run: its input against its output (`qdq_err`), its
/// output's statistics, and, in runs given a reference, the reference against its output
/// (`xmodel_err`) and the reference's clipping by the pair's range.
#[derive(Debug, Default)]
pub struct ProbeSums {
    pub qdq: RunningComparison,
    pub post: RunningStats,
    pub xmodel: RunningComparison,
    pub clip: RunningClip,
}

#[derive(Debug, Default)]
struct ProbeState {
    sums: ProbeSums,
    /// The float model's tensor for the sample being run.
    reference: Option<TValue>,
    /// The range `[(qmin − zp)·s, (qmax − zp)·s]` the reference's clipping is counted
    /// against.
    range: Option<(f64, f64)>,
}

/// A pair's sums, shared between the op (which adds to them) and whoever reads them.
#[derive(Clone, Debug, Default)]
pub struct Probe(Arc<Mutex<ProbeState>>);

impl Probe {
    /// A probe counting its references' values outside `range`.
    #[must_use]
    pub fn with_range(range: Option<(f64, f64)>) -> Self {
        Self(Arc::new(Mutex::new(ProbeState { range, ..ProbeState::default() })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProbeState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sums so far.
    #[must_use]
    pub fn take(&self) -> ProbeSums {
        std::mem::take(&mut self.lock().sums)
    }

    /// The reference tensor the next runs compare the pair's output with: the float
    /// model's values of the same tensor on the same sample, in the layout the file
    /// declares (only a pair whose output a plan streams, [`super::run::Runner::streamed`],
    /// is given one). `None` drops it.
    pub fn set_reference(&self, reference: Option<TValue>) {
        self.lock().reference = reference;
    }

    /// Whether `op` is a [`FakeQuant`] carrying this probe.
    pub(crate) fn is_on(&self, op: &dyn TypedOp) -> bool {
        carried(op).is_some_and(|p| p == self)
    }
}

/// The probe `op` carries, when it is a [`FakeQuant`] with one.
fn carried(op: &dyn TypedOp) -> Option<&Probe> {
    op.downcast_ref::<ElementWiseOp>()?.0.downcast_ref::<FakeQuant>()?.probe.as_ref()
}

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

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
        if let Some(q) = q.0.downcast_ref::<QuantizeLinearI8>() {
            Self::new(q.scale, i32::from(q.zero_point), (i32::from(i8::MIN), i32::from(i8::MAX)), dq)
        } else {
            let q = q.0.downcast_ref::<QuantizeLinearU8>()?;
            Self::new(q.scale, i32::from(q.zero_point), (0, i32::from(u8::MAX)), dq)
        }
    }

    /// Quantizing by `inv_scale` (`1 / scale`) with `zp` into `min..=max`, then `dq`;
    /// `None` unless the parameters are finite.
    fn new(inv_scale: f32, zp: i32, (min, max): (i32, i32), dq: &DequantizeLinearF32) -> Option<Self> {
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

    /// Fake-quantizes `ys` in place.
    pub fn apply(&self, ys: &mut [f32]) {
        crate::stats::simd::wide!(FakeQuant::apply_lanes, (op: &FakeQuant = self, ys: &mut [f32] = ys) -> ());
    }

    /// The level of `x`, `round_ties_even(x · inv_scale)` clamped to `[lo, hi]`: a small
    /// integer, as f32.
    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn level(&self, x: f32) -> f32 {
        let v = x * self.inv_scale;
        // NaN rounds to 0 in tract (a saturating cast), inside the range: zp ∈ [min, max]
        let v = if v.is_nan() { 0.0 } else { v };
        let v = if v < self.lo {
            self.lo
        } else if v > self.hi {
            self.hi
        } else {
            v
        };
        // rounding after the clamp is rounding before it: the bounds are integers
        (v + ROUND) - ROUND
    }

    /// The value of level `k`.
    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn value(&self, k: f32) -> f32 {
        (k + self.shift) * self.scale
    }

    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn apply_lanes(&self, ys: &mut [f32]) {
        for y in ys {
            *y = self.value(self.level(*y));
        }
    }

    /// The table slot of level `k` (`k − lo`, in `[0, 256)`): the low bits of `k − lo +
    /// 2²³`, whose unit is the last bit of the mantissa (a conversion that vectorises).
    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn slot(&self, k: f32) -> usize {
        ((k - self.lo + 8_388_608.0).to_bits() as usize) & (LEVELS - 1)
    }

    /// Levels from `lo` to `hi`: at most 256 (the parameters come from an 8-bit type).
    fn levels(&self) -> usize {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (self.hi - self.lo) as usize + 1;
        n.min(LEVELS)
    }

    /// Fake-quantizes `ys` in place, counting each level's values (from `lo`) in `tables`.
    fn apply_counting(&self, ys: &mut [f32], tables: &mut [[u32; LEVELS]; 4]) {
        crate::stats::simd::wide!(FakeQuant::apply_counting_lanes, (op: &FakeQuant = self, ys: &mut [f32] = ys, tables: &mut [[u32; LEVELS]; 4] = tables) -> ());
    }

    // sixteen levels found in vectors, then counted into four interleaved tables (runs of
    // one level, a rectifier's zeros, do not wait on one counter)
    #[inline(always)]
    #[allow(clippy::inline_always)]
    fn apply_counting_lanes(&self, ys: &mut [f32], tables: &mut [[u32; LEVELS]; 4]) {
        let mut blocks = ys.chunks_exact_mut(16);
        for block in &mut blocks {
            let mut at = [0usize; 16];
            for (y, a) in block.iter_mut().zip(&mut at) {
                let k = self.level(*y);
                *a = self.slot(k);
                *y = self.value(k);
            }
            for (l, &j) in at.iter().enumerate() {
                tables[l & 3][j] += 1;
            }
        }
        for y in blocks.into_remainder() {
            let k = self.level(*y);
            tables[0][self.slot(k)] += 1;
            *y = self.value(k);
        }
    }

    /// Fake-quantizes `ys` in place and adds to the probe's sums: the values before
    /// against after, tile by tile while both are in cache, and the count of each level.
    pub(crate) fn apply_probed(&self, ys: &mut [f32], probe: &Probe) {
        let mut state = probe.lock();
        let ProbeState { sums, reference, range } = &mut *state;
        let reference = reference.as_ref().and_then(|t| super::f32s(t));
        let mut reference = reference.filter(|r| r.len() == ys.len()).map(|r| r.chunks(TILE));
        let mut before = Vec::with_capacity(ys.len().min(TILE));
        let mut counts = [0u64; LEVELS];
        for tile in ys.chunks_mut(TILE) {
            before.clear();
            before.extend_from_slice(tile);
            let x = before.as_slice();
            let mut tables = [[0u32; LEVELS]; 4];
            self.apply_counting(tile, &mut tables);
            sums.qdq.add(x, tile);
            if let Some(r) = reference.as_mut().and_then(Iterator::next) {
                sums.xmodel.add(r, tile);
                if let Some(range) = *range {
                    sums.clip.add(r, range);
                }
            }
            for t in &tables {
                for (c, &k) in counts.iter_mut().zip(t) {
                    *c += u64::from(k);
                }
            }
        }
        let n = self.levels();
        #[allow(clippy::cast_precision_loss)]
        let values: Vec<f32> = (0..n).map(|j| self.value(self.lo + j as f32)).collect();
        sums.post.add_counts(&values, counts.get(..n).unwrap_or_default());
    }
}

/// Levels of an 8-bit type.
const LEVELS: usize = 256;

impl ElementWiseMiniOp for FakeQuant {
    fn name(&self) -> String {
        "FakeQuant".into()
    }

    fn eval_in_place(&self, t: &mut Tensor, _out_dt: Option<DatumType>) -> TractResult<()> {
        let mut view = t.try_as_plain_ram_mut()?;
        let ys = view.as_slice_mut::<f32>()?;
        match &self.probe {
            Some(probe) => self.apply_probed(ys, probe),
            None => self.apply(ys),
        }
        Ok(())
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "1/scale {} range [{}, {}] shift {} scale {}",
            self.inv_scale, self.lo, self.hi, self.shift, self.scale
        )])
    }
}

/// A `QuantizeLinear → DequantizeLinear` pair as tract's ONNX reader gives it, as one
/// node of the model tract has yet to type: typing and decluttering then see one node for
/// the two. Wired as [`FakeQuant`] when both have per-tensor constant parameters (read as
/// tract's own ops read them, so the values are theirs), else as the two ops.
#[derive(Clone, Debug)]
struct PairExpansion {
    /// tract's `QuantizeLinear` and `DequantizeLinear`.
    q: Box<dyn Expansion>,
    dq: Box<dyn Expansion>,
    /// The `QuantizeLinear`'s inputs (`x`, scale, maybe zero point) come first, then the
    /// `DequantizeLinear`'s parameters.
    q_inputs: usize,
    probe: Option<Probe>,
}

/// A per-tensor parameter: the constant's one value.
fn scalar(model: &TypedModel, input: OutletId) -> TractResult<Option<Tensor>> {
    let konst = model.outlet_fact(input)?.konst.clone();
    Ok(konst.filter(|k| k.len() == 1).map(|k| (*k).clone()))
}

impl PairExpansion {
    /// The pair as tract's `QuantizeLinear` then `DequantizeLinear` would wire it, fused.
    fn fused(&self, model: &TypedModel, inputs: &[OutletId]) -> TractResult<Option<FakeQuant>> {
        let (q, dq) = inputs.split_at(self.q_inputs.min(inputs.len()));
        let (Some(x), Some(q_scale), Some(dq_scale)) = (q.first(), q.get(1), dq.first()) else { return Ok(None) };
        if model.outlet_fact(*x)?.datum_type != f32::datum_type() {
            return Ok(None);
        }
        let f32_of = |o: &OutletId| -> TractResult<Option<f32>> {
            Ok(scalar(model, *o)?.and_then(|t| t.cast_to_scalar::<f32>().ok()))
        };
        let (Some(q_scale), Some(dq_scale)) = (f32_of(q_scale)?, f32_of(dq_scale)?) else { return Ok(None) };
        // (an absent zero point is a u8 zero)
        let zero_point = |o: Option<&OutletId>| o.map_or(Ok(Some(tensor0(0u8))), |o| scalar(model, *o));
        let (Some(q_zp), Some(dq_zp)) = (zero_point(q.get(2))?, zero_point(dq.get(1))?) else { return Ok(None) };
        let (zp, range) = match q_zp.datum_type() {
            DatumType::U8 => (i32::from(q_zp.cast_to_scalar::<u8>()?), (0, i32::from(u8::MAX))),
            DatumType::I8 => (i32::from(q_zp.cast_to_scalar::<i8>()?), (i32::from(i8::MIN), i32::from(i8::MAX))),
            _ => return Ok(None),
        };
        let dq_zp = match dq_zp.datum_type() {
            DatumType::U8 => i32::from(dq_zp.cast_to_scalar::<u8>()?),
            DatumType::I8 => i32::from(dq_zp.cast_to_scalar::<i8>()?),
            DatumType::I32 => dq_zp.cast_to_scalar::<i32>()?,
            _ => return Ok(None),
        };
        let op = FakeQuant::new(q_scale.recip(), zp, range, &DequantizeLinearF32::new(dq_scale, dq_zp));
        Ok(op.map(|op| FakeQuant { probe: self.probe.clone(), ..op }))
    }
}

impl Expansion for PairExpansion {
    fn name(&self) -> StaticName {
        "QuantizeDequantizeLinear".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        let Some(x) = inputs.first() else { bail!("QuantizeDequantizeLinear without input") };
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&x.shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        if let Some(op) = self.fused(model, inputs)? {
            return model.wire_node(prefix, ElementWiseOp(Box::new(op), None), &inputs[..1]);
        }
        let (q, dq) = inputs.split_at(self.q_inputs.min(inputs.len()));
        let quantized = self.q.wire(&format!("{prefix}.quantize"), model, q)?;
        let dq_inputs: TVec<OutletId> = quantized.iter().take(1).chain(dq).copied().collect();
        self.dq.wire(prefix, model, &dq_inputs)
    }
}

/// The expansion named `name` a node of tract's ONNX reader runs, if it is one.
fn expansion(node: &InferenceNode, name: &str) -> Option<Box<dyn Expansion>> {
    node.op_as::<Box<dyn Expansion>>().filter(|e| e.name() == name).cloned()
}

/// Makes every `DequantizeLinear` fed directly by a `QuantizeLinear` in `model` (before
/// tract types it) one node of both (see [`PairExpansion`]); a pair whose output is named in
/// `probes` gets that probe. The `QuantizeLinear` is left to whatever else reads it.
/// Returns the pairs joined.
///
/// # Errors
/// When tract refuses an edge.
#[allow(clippy::implicit_hasher)]
pub fn join_pairs(model: &mut InferenceModel, probes: &HashMap<String, Probe>) -> TractResult<usize> {
    let mut joined = 0;
    for id in 0..model.nodes().len() {
        let dq_node = model.node(id);
        let Some(dq) = expansion(dq_node, "DequantizeLinear") else { continue };
        let Some(q_node) = dq_node.inputs.first().map(|o| model.node(o.node)) else { continue };
        let Some(q) = expansion(q_node, "QuantizeLinear") else { continue };
        let inputs: Vec<OutletId> = q_node.inputs.iter().chain(dq_node.inputs.iter().skip(1)).copied().collect();
        let probe = model.outlet_label(OutletId::new(id, 0)).and_then(|l| probes.get(l)).cloned();
        let op = PairExpansion { q, dq, q_inputs: q_node.inputs.len(), probe };
        for (slot, input) in inputs.into_iter().enumerate() {
            model.add_edge(input, InletId::new(id, slot))?;
        }
        model.node_mut(id).op = expand(op);
        joined += 1;
    }
    Ok(joined)
}

/// The names in `probes` whose probe a [`FakeQuant`] of `model` carries.
#[allow(clippy::implicit_hasher)]
#[must_use]
pub fn probed_in(model: &TypedModel, probes: &HashMap<String, Probe>) -> Vec<String> {
    let on: std::collections::HashSet<*const Mutex<ProbeState>> =
        model.nodes().iter().filter_map(|n| carried(n.op.as_ref())).map(|p| Arc::as_ptr(&p.0)).collect();
    probes.iter().filter(|(_, p)| on.contains(&Arc::as_ptr(&p.0))).map(|(n, _)| n.clone()).collect()
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
/// that probe ([`probed_in`] tells which did). Returns the pairs fused.
///
/// # Errors
/// When tract refuses a patch.
#[allow(clippy::implicit_hasher)]
pub fn fuse_fake_quant(model: &mut TypedModel, probes: &HashMap<String, Probe>) -> TractResult<usize> {
    // one pair at a time, each found in the model as the last patch left it (a pair's
    // QuantizeLinear may read the DequantizeLinear of the pair before); the patches only
    // append nodes, so the scan goes on from the last pair
    let (mut next, mut fused) = (0, 0);
    while let Some(mut pair) = model.nodes().get(next..).unwrap_or_default().iter().find_map(|n| pair_of(model, n)) {
        pair.op.probe = model.outlet_label(OutletId::new(pair.dq, 0)).and_then(|l| probes.get(l)).cloned();
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
    Ok(fused)
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
            let mut ys = xs.clone();
            op.apply(&mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = tract_pair(*x, s.recip(), zp, signed, dq_zp, s);
                assert_eq!(y.to_bits(), want.to_bits(), "x {x} zp {zp} dq_zp {dq_zp} signed {signed}: {y} vs {want}");
            }
        }
    }
}
