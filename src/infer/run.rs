//! One variant as tract runs it: built once from its file with the given input facts and
//! the activations to capture made outputs (each Q→DQ pair as one `FakeQuant` op; tract's
//! optimiser less its `ChangeAxes` pass), then run sample by sample, each captured tensor
//! handed to an observer as tract computes it.

use std::path::Path;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::order::eval_order_for_nodes;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::optim::Optimizer;
use tract_onnx::tract_core::plan::eval;

use super::InferError;
use super::fake_quant::{Probe, fuse_fake_quant, join_pairs, probed_in};
use super::inputs::{InputTensor, Sample};
use super::npy::NpyData;

/// An activation pair whose `qdq_err` and output statistics a run sums inside tract
/// ([`Probe`]). Its input `pre` is captured only when the pair could not be probed; its
/// output `post` only when it is not streamed ([`Runner::streamed`]).
pub struct ProbedPair {
    pub pre: String,
    pub post: String,
    pub probe: Probe,
}

type Plan = std::sync::Arc<TypedRunnableModel>;

/// A variant ready to run, with the tensors it captures.
pub struct Runner {
    plan: Plan,
    /// The captured tensors' names, in the order of [`Runner::run`]'s results (names tract
    /// does not know are left out).
    pub captured: Vec<String>,
    /// The probed pairs' output tensors (those given a [`Probe`]).
    pub probed: Vec<String>,
    /// Of those, the ones the probe's op writes itself, in the layout the file declares
    /// (tract's optimiser had to keep it: the tensor was an output then): they are not
    /// captured, and their probes compare them in the run with the reference they are
    /// given ([`Probe::set_reference`]).
    pub streamed: Vec<String>,
    /// How many of the model's own outputs precede the captured ones.
    outputs: usize,
    /// The captured outlets, by node id: (slot, index in [`Runner::captured`]).
    captured_by_node: Vec<Vec<(usize, usize)>>,
    variant: String,
}

/// tract's ONNX reader. The files' `value_info` is left out: quantizers keep symbolic dims
/// there that then contradict the concrete input facts (tract re-infers every shape).
fn onnx() -> tract_onnx::Onnx {
    tract_onnx::onnx().with_ignore_value_info(true)
}

fn tract_error(variant: &str, e: &TractError) -> InferError {
    // the cause chain on one line, without the backtrace `{:?}` would add
    InferError::Tract { variant: variant.to_string(), reason: format!("{e:#}") }
}

impl Runner {
    /// Builds `path` (variant `variant`) for inputs shaped like `sample`, capturing the
    /// tensors named in `capture` besides the model's outputs.
    ///
    /// # Errors
    /// When tract cannot load or type the model (an op it does not implement names itself
    /// and its node).
    pub fn new(path: &Path, variant: &str, sample: &Sample, capture: &[String]) -> Result<Self, InferError> {
        Self::build(variant, onnx().model_for_path(path), sample, capture, &[])
    }

    /// [`Runner::new`] for a model held in memory (an edited variant; external data is
    /// not resolved).
    ///
    /// # Errors
    /// As [`Runner::new`].
    pub fn from_bytes(bytes: &[u8], variant: &str, sample: &Sample, capture: &[String]) -> Result<Self, InferError> {
        Self::build(variant, onnx().model_for_read(&mut &bytes[..]), sample, capture, &[])
    }

    /// Variant `v` from its edited model when `edited` holds one, else from its file.
    ///
    /// # Errors
    /// As [`Runner::new`].
    pub fn of_variant(
        v: &crate::model::Variant,
        edited: Option<&[u8]>,
        sample: &Sample,
        capture: &[String],
    ) -> Result<Self, InferError> {
        Self::probed(v, edited, sample, capture, &[])
    }

    /// [`Runner::of_variant`] with `pairs` probed: a pair's output is captured unless its
    /// probe compares it in the run ([`Runner::streamed`]), and its input only when tract
    /// could not give it a probe (its `pre` then is in [`Runner::captured`]).
    ///
    /// # Errors
    /// As [`Runner::new`].
    pub fn probed(
        v: &crate::model::Variant,
        edited: Option<&[u8]>,
        sample: &Sample,
        capture: &[String],
        pairs: &[ProbedPair],
    ) -> Result<Self, InferError> {
        let model = match edited {
            Some(bytes) => onnx().model_for_read(&mut &bytes[..]),
            None => onnx().model_for_path(&v.spec.path),
        };
        Self::build(&v.spec.name, model, sample, capture, pairs)
    }

    fn build(
        variant: &str,
        model: TractResult<InferenceModel>,
        sample: &Sample,
        capture: &[String],
        pairs: &[ProbedPair],
    ) -> Result<Self, InferError> {
        let err = |e: TractError| tract_error(variant, &e);
        let mut model = model.map_err(err)?;
        for (i, t) in sample.iter().enumerate() {
            let dt = match t.data {
                NpyData::F32(_) => f32::datum_type(),
                NpyData::I64(_) => i64::datum_type(),
            };
            model = model.with_input_fact(i, InferenceFact::dt_shape(dt, t.shape.clone())).map_err(err)?;
        }
        let known: std::collections::HashSet<&str> = model.outlet_labels.values().map(String::as_str).collect();
        let posts = pairs.iter().map(|p| &p.post);
        let mut captured: Vec<String> =
            capture.iter().chain(posts).filter(|n| known.contains(n.as_str())).cloned().collect();
        let outputs: Vec<String> = model
            .output_outlets()
            .map_err(err)?
            .iter()
            .map(|o| {
                model.outlet_label(*o).map_or_else(|| format!("{}:{}", model.node(o.node).name, o.slot), String::from)
            })
            .collect();
        let n_outputs = outputs.len();
        model.select_outputs_by_name(outputs.iter().chain(&captured)).map_err(err)?;
        // each activation's QuantizeLinear → DequantizeLinear in one pass, same values: as
        // one node before tract types the model, and the pairs that typing brings together
        // once typed
        let probes: std::collections::HashMap<String, Probe> =
            pairs.iter().map(|p| (p.post.clone(), p.probe.clone())).collect();
        join_pairs(&mut model, &probes).map_err(err)?;
        let mut typed = model.into_typed().map_err(err)?;
        fuse_fake_quant(&mut typed, &probes).map_err(err)?;
        let probed = probed_in(&typed, &probes);
        // the inputs of pairs left without a probe are kept, to be compared outside
        let mut outlets = typed.output_outlets().map_err(err)?.to_vec();
        for p in pairs.iter().filter(|p| !probed.contains(&p.post)) {
            if let Some(o) = typed.find_outlet_label(&p.pre) {
                outlets.push(o);
                captured.push(p.pre.clone());
            }
        }
        typed.select_output_outlets(&outlets).map_err(err)?;
        let mut optimized = optimized(typed).map_err(err)?;
        let streamed = stream(&mut optimized, n_outputs, &mut captured, &probes).map_err(err)?;
        let mut captured_by_node = vec![Vec::new(); optimized.nodes().len()];
        for (i, o) in optimized.output_outlets().map_err(err)?.iter().skip(n_outputs).enumerate() {
            if let Some(at) = captured_by_node.get_mut(o.node) {
                at.push((o.slot, i));
            }
        }
        let plan = optimized.into_runnable().map_err(err)?;
        Ok(Self {
            plan,
            captured,
            probed,
            streamed,
            outputs: n_outputs,
            captured_by_node,
            variant: variant.to_string(),
        })
    }

    /// Runs one sample: the captured tensors, in [`Runner::captured`]'s order.
    ///
    /// # Errors
    /// When tract fails on the sample.
    pub fn run(&self, sample: &[InputTensor]) -> Result<Captured, InferError> {
        let mut values = self.run_all(sample, |_, _| {})?;
        Ok(Captured(values.drain(self.outputs.min(values.len())..).collect()))
    }

    /// [`Runner::run`], handing each captured tensor to `observe` once (with its index in
    /// [`Runner::captured`]): as soon as tract has computed it, while it is in cache (a
    /// constant one after the run).
    ///
    /// # Errors
    /// When tract fails on the sample.
    pub fn run_observed(
        &self,
        sample: &[InputTensor],
        mut observe: impl FnMut(usize, &[f32]),
    ) -> Result<Captured, InferError> {
        let mut seen = vec![false; self.captured.len()];
        let mut values = self.run_all(sample, |node, outputs| {
            for &(slot, i) in self.captured_by_node.get(node).map(Vec::as_slice).unwrap_or_default() {
                if let Some(xs) = outputs.get(slot).and_then(|t| super::f32s(t)) {
                    observe(i, xs);
                    seen[i] = true;
                }
            }
        })?;
        let captured = Captured(values.drain(self.outputs.min(values.len())..).collect());
        // (a tensor tract folded into a constant is not computed in the run)
        for (i, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
            if let Some(xs) = captured.get(i) {
                observe(i, xs);
            }
        }
        Ok(captured)
    }

    /// The model's first output for one sample (a classifier's logits).
    ///
    /// # Errors
    /// When tract fails on the sample.
    pub fn output(&self, sample: &[InputTensor]) -> Result<Vec<f32>, InferError> {
        let out = self.run_all(sample, |_, _| {})?;
        Ok(out.first().and_then(|t| super::f32s(t)).map(<[f32]>::to_vec).unwrap_or_default())
    }

    /// The model's outputs, then the captured tensors, each as f32 (tract's own buffers:
    /// f32 tensors are not copied); `computed` sees each node's outputs as they come.
    fn run_all(
        &self,
        sample: &[InputTensor],
        mut computed: impl FnMut(usize, &[TValue]),
    ) -> Result<TVec<TValue>, InferError> {
        let err = |e: TractError| tract_error(&self.variant, &e);
        let inputs: TVec<TValue> = sample
            .iter()
            .map(|t| match &t.data {
                NpyData::F32(v) => Tensor::from_shape(&t.shape, v),
                NpyData::I64(v) => Tensor::from_shape(&t.shape, v),
            })
            .map(|r| r.map(TValue::from))
            .collect::<TractResult<_>>()
            .map_err(err)?;
        let mut state = self.plan.spawn().map_err(err)?;
        let out = state
            .run_plan_with_eval(inputs, |ctx, op_state, node, inputs| {
                let outputs = eval(ctx, op_state, node, inputs)?;
                computed(node.id, &outputs);
                TractResult::Ok(outputs)
            })
            .map_err(err)?;
        out.into_iter()
            .map(|v| {
                if v.datum_type() == f32::datum_type() {
                    Ok(v)
                } else {
                    Ok(TValue::from(v.cast_to::<f32>().map_err(err)?.into_owned()))
                }
            })
            .collect()
    }
}

/// `model` as tract's `into_optimized` makes it, but for its `ChangeAxes` pass, which
/// moves axis ops through the graph (and tries every node of a QDQ graph, twice as many
/// as the float one): a quarter of a plan's build (PP-OCRv4 det int8: 0.165 → 0.129 s),
/// while the plans run as fast on every model measured (PP-OCRv4 det and rec, the test
/// models) and give the same values (reports compared byte for byte); with quantlens's own
/// runs of the ops tract is slow on ([`super::ops`]).
fn optimized(mut model: TypedModel) -> TractResult<TypedModel> {
    let mut declutter = Optimizer::declutter();
    declutter.passes.retain(|p| format!("{p:?}") != "ChangeAxes");
    declutter.session().optimize(&mut model)?;
    super::ops::before_codegen(&mut model)?;
    model.optimize()?;
    super::ops::after_codegen(&mut model)?;
    Ok(model)
}

/// Of the captured tensors of `model` (its outputs after the first `first`, named by
/// `captured`), the outputs of probed pairs written by their probe's op (maybe reshaped
/// after it: the values in the same order) and still run once they are no longer
/// outputs: these stop being outputs (and leave `captured`), so that no run keeps them.
/// Returns their names.
fn stream(
    model: &mut TypedModel,
    first: usize,
    captured: &mut Vec<String>,
    probes: &std::collections::HashMap<String, Probe>,
) -> TractResult<Vec<String>> {
    let outlets = model.output_outlets()?.to_vec();
    // the probe's node, maybe before reshapes (which keep the order of the values)
    let written_by_probe = |o: &OutletId, name: &String| -> Option<usize> {
        let probe = probes.get(name)?;
        let mut node = model.node(o.node);
        while node.op_is::<IntoShape>() || node.op_as::<AxisOp>().is_some_and(|op| !matches!(op, AxisOp::Move(..))) {
            node = model.node(node.inputs.first()?.node);
        }
        (o.slot == 0 && probe.is_on(node.op.as_ref())).then_some(node.id)
    };
    let probe_nodes: Vec<Option<usize>> =
        outlets.iter().skip(first).zip(captured.iter()).map(|(o, n)| written_by_probe(o, n)).collect();
    let candidates: Vec<bool> = probe_nodes.iter().map(Option::is_some).collect();
    let without = |streamed: &[bool]| -> Vec<OutletId> {
        let rest = outlets.iter().skip(first).zip(streamed).filter(|(_, s)| !**s).map(|(o, _)| *o);
        outlets.iter().take(first).copied().chain(rest).collect()
    };
    // a node that no output needs then would not run at all: it stays an output
    let inputs: Vec<usize> = model.input_outlets()?.iter().map(|o| o.node).collect();
    let targets: Vec<usize> = without(&candidates).iter().map(|o| o.node).collect();
    let order = eval_order_for_nodes(model.nodes(), &inputs, &targets, &[])?;
    let streamed: Vec<bool> = probe_nodes.iter().map(|n| n.is_some_and(|n| order.contains(&n))).collect();
    model.select_output_outlets(&without(&streamed))?;
    let names = std::mem::take(captured);
    let (gone, kept): (Vec<_>, Vec<_>) = names.into_iter().zip(&streamed).partition(|(_, s)| **s);
    *captured = kept.into_iter().map(|(n, _)| n).collect();
    Ok(gone.into_iter().map(|(n, _)| n).collect())
}

/// The tensors one run captured, as f32, held in tract's buffers.
pub struct Captured(TVec<TValue>);

impl Captured {
    /// The values of the `i`-th captured tensor.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        super::f32s(self.0.get(i)?)
    }

    /// The `i`-th captured tensor itself (shared, not copied).
    #[must_use]
    pub fn value(&self, i: usize) -> Option<TValue> {
        self.0.get(i).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::Runner;
    use crate::infer::inputs::InputTensor;
    use crate::infer::npy::NpyData;

    #[test]
    fn plans_run_strided_depthwise_and_kept_inputs_with_quantlens_ops() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/infer/depthwise.onnx");
        let sample =
            vec![InputTensor { name: "x".into(), shape: vec![1, 8, 13, 11], data: NpyData::F32(vec![0.5; 1144]) }];
        let every = ["d1", "d2", "d3", "d4", "d5", "m", "a", "clipped", "hs", "y1", "y3"].map(String::from);
        let runner = Runner::new(&path, "float", &sample, &every).unwrap();
        let kept: Vec<String> = runner.plan.model().nodes().iter().map(|n| n.op.name().to_string()).collect();
        // (tract makes the strided 1×1 one a `Downsample` and a stride-1 convolution)
        assert_eq!(kept.iter().filter(|n| *n == "Depthwise").count(), 4, "{kept:?}");
        // per channel Mul, scalar Add, Clip, same-shape Mul, flipped Sub, Relu
        assert_eq!(kept.iter().filter(|n| n.starts_with("OutOfPlace(")).count(), 6, "{kept:?}");
        assert_eq!(kept.iter().filter(|n| *n == "Subsample").count(), 2, "{kept:?}");
    }

    #[test]
    fn resnet8_plans_pad_and_subsample_with_quantlens_ops() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/resnet8/resnet8_float.onnx");
        let sample =
            vec![InputTensor { name: "input".into(), shape: vec![1, 3, 32, 32], data: NpyData::F32(vec![0.5; 3072]) }];
        let runner = Runner::new(&path, "float", &sample, &[]).unwrap();
        let ops: Vec<String> = runner.plan.model().nodes().iter().map(|n| n.op.name().to_string()).collect();
        // tract pads before each 3×3 convolution, and runs each strided 1×1 projection as
        // two downsamplings and a product
        assert_eq!(ops.iter().filter(|n| *n == "Padded").count(), 7, "{ops:?}");
        assert_eq!(ops.iter().filter(|n| *n == "Subsample").count(), 4, "{ops:?}");
        assert!(!ops.iter().any(|n| n == "Pad" || n == "Downsample"), "{ops:?}");
    }
}
