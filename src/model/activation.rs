//! Statically quantized activations of a layer: the scale and zero point a `QuantizeLinear`
//! applies to a computed tensor feeding or leaving the layer (QDQ), or a `QLinear*` node's
//! input/output scale (`QOperator`), and the float range they can represent.

use serde::Serialize;

use super::dtype::DType;
use super::graph::{Graph, NodeId, TensorId};
use super::quant::{QuantForm, float_slot};

/// Whether an activation enters or leaves its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActRole {
    Input,
    Output,
}

/// One statically quantized activation of a layer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivationQuant {
    /// The float tensor's name (for `QOperator`, the quantized name less `_quantized`).
    pub tensor: String,
    pub role: ActRole,
    /// Input slot in the float op's numbering, or output index.
    pub slot: usize,
    pub form: QuantForm,
    /// Element type of the quantized activation.
    pub dtype: DType,
    pub scale: f32,
    pub zero_point: i32,
    /// The scale's tensor (what an edit patches).
    #[serde(skip)]
    pub scale_tensor: Option<TensorId>,
    /// The `QuantizeLinear` (QDQ form).
    #[serde(skip)]
    pub q_node: Option<NodeId>,
}

impl ActivationQuant {
    /// The float range the parameters can represent, `[(qmin − zp)·s, (qmax − zp)·s]`
    /// (float8: `±max · s`, its largest finite value; quantizing saturates there).
    #[must_use]
    pub fn range(&self) -> Option<(f64, f64)> {
        let (s, zp) = (f64::from(self.scale), f64::from(self.zero_point));
        if let Some(max) = self.dtype.float8_max() {
            let m = f64::from(max);
            return Some(((-m - zp) * s, (m - zp) * s));
        }
        let (qmin, qmax) = self.dtype.int_range()?;
        Some(((qmin as f64 - zp) * s, (qmax as f64 - zp) * s))
    }
}

/// `(tensor, scale, zero point)` input slots of the activations a `QOperator` node quantizes,
/// and the `(scale, zero point)` slots of its output.
fn qoperator_slots(op: &str) -> Option<(&'static [(usize, usize, usize)], Option<(usize, usize)>)> {
    Some(match op {
        "QLinearConv" | "QLinearMatMul" | "QLinearAdd" | "QLinearMul" => (&[(0, 1, 2), (3, 4, 5)], Some((6, 7))),
        "QGemm" => (&[(0, 1, 2), (3, 4, 5)], Some((7, 8))),
        op if op.starts_with("QLinear") => (&[(0, 1, 2)], Some((3, 4))),
        _ => return None,
    })
}

/// The statically quantized activations around layer node `n`: inputs first (by slot),
/// then outputs.
#[must_use]
pub fn layer_activations(g: &Graph, n: NodeId) -> Vec<ActivationQuant> {
    let Some(node) = g.node(n) else { return Vec::new() };
    let op = node.op_type.as_str();
    let mut out = Vec::new();
    if let Some((inputs, output)) = qoperator_slots(op) {
        for &(k, s, z) in inputs {
            // a constant at a weight slot is the weight, not an activation
            let (Some(t), Some(slot)) = (g.input(n, k), float_slot(op, k)) else { continue };
            if g.tensor(t).is_some_and(|t| t.data.is_some()) {
                continue;
            }
            out.extend(read(g, t, ActRole::Input, slot, QuantForm::QLinear, g.input(n, s), g.input(n, z), None));
        }
        if let (Some((s, z)), Some(&y)) = (output, node.outputs.first()) {
            out.extend(read(g, y, ActRole::Output, 0, QuantForm::QLinear, g.input(n, s), g.input(n, z), None));
        }
        return out;
    }
    for k in 0..node.inputs.len() {
        let (Some(t), Some(slot)) = (g.input(n, k), float_slot(op, k)) else { continue };
        out.extend(q_behind_dq(g, t).and_then(|q| quantize_node(g, q, ActRole::Input, slot)));
    }
    for (i, &y) in node.outputs.iter().enumerate() {
        let Some(tensor) = g.tensor(y) else { continue };
        let q = tensor
            .consumers
            .iter()
            .copied()
            .find(|&c| g.node(c).is_some_and(|c| c.op_type == "QuantizeLinear") && g.input(c, 0) == Some(y));
        out.extend(q.and_then(|q| quantize_node(g, q, ActRole::Output, i)));
    }
    out
}

/// The activation `QuantizeLinear` node `q` quantizes (a computed tensor with a
/// per-tensor scale), named as the float model names it.
#[must_use]
pub fn quantize_node(g: &Graph, q: NodeId, role: ActRole, slot: usize) -> Option<ActivationQuant> {
    let x = g.input(q, 0).filter(|&x| g.tensor(x).is_some_and(|t| t.data.is_none()))?;
    read(g, x, role, slot, QuantForm::Qdq, g.input(q, 1), g.input(q, 2), Some(q))
}

/// The `QuantizeLinear` when `t` is `DequantizeLinear(QuantizeLinear(x))`.
fn q_behind_dq(g: &Graph, t: TensorId) -> Option<NodeId> {
    let dq = g.tensor(t)?.producer?;
    if g.node(dq)?.op_type != "DequantizeLinear" {
        return None;
    }
    let q = g.input_producer(dq, 0)?;
    (g.node(q)?.op_type == "QuantizeLinear").then_some(q)
}

/// Reads a per-tensor scale and zero point; `None` when the scale is not one readable
/// number. The element type comes from the zero point, else the `QuantizeLinear`'s
/// `output_dtype`, else the operator default (uint8).
#[allow(clippy::too_many_arguments)]
fn read(
    g: &Graph,
    float: TensorId,
    role: ActRole,
    slot: usize,
    form: QuantForm,
    scale: Option<TensorId>,
    zp: Option<TensorId>,
    q_node: Option<NodeId>,
) -> Option<ActivationQuant> {
    let small = |t: TensorId| {
        let d = g.tensor(t)?.data.as_ref()?;
        if d.len() != 1 {
            return None;
        }
        Some((d.to_f32_vec().ok()?.first().copied()?, d.dtype))
    };
    let scale_tensor = scale?;
    let (scale, _) = small(scale_tensor)?;
    let zp = zp.and_then(small);
    let dtype = zp.map(|(_, d)| d).or_else(|| {
        let code = g.node(q_node?)?.attr_int("output_dtype").filter(|&c| c != 0)?;
        Some(DType::from_onnx(i32::try_from(code).ok()?))
    });
    let name = g.tensor(float)?.name.clone();
    // the float model's name: onnxruntime renames a graph output it quantizes
    // `<name>_QuantizeLinear_Input`, and QOperator tensors `<name>_quantized`
    let suffix = if form == QuantForm::QLinear { "_quantized" } else { "_QuantizeLinear_Input" };
    let tensor = name.strip_suffix(suffix).map_or_else(|| name.clone(), String::from);
    #[allow(clippy::cast_possible_truncation)]
    Some(ActivationQuant {
        tensor,
        role,
        slot,
        form,
        dtype: dtype.unwrap_or(DType::Uint8),
        scale,
        zero_point: zp.map_or(0, |(z, _)| z as i32),
        scale_tensor: Some(scale_tensor),
        q_node,
    })
}
