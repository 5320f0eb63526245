//! Quantization parameters, found by following edges (not name suffixes), and the
//! dequantization arithmetic `(q − zp) · scale`, done in i32/f32.

use std::collections::HashSet;

use serde::Serialize;

use super::dtype::DType;
use super::graph::{Graph, NodeId, TensorId};
use super::tensor::{ReadError, TensorData};

/// How a weight's quantization is written in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantForm {
    /// `W_q → DequantizeLinear(scale, zp, axis) → layer` (onnxruntime's QDQ).
    Qdq,
    /// `W (float) → QuantizeLinear → DequantizeLinear → layer`: the weight is quantized as
    /// the graph runs (TensorRT-style QDQ exports, onnxruntime when a weight is not an
    /// initializer). Its dequantized values are recomputed from the float weight.
    QdqRuntime,
    /// `QLinearConv` / `QLinearMatMul` with scale and zero point as node inputs.
    QLinear,
    /// `MatMulInteger` / `ConvInteger`, scale found on the `Mul` after the `Cast`.
    Integer,
    /// Weight-only: `Cast(int → float) → Mul(scale)` with no `DequantizeLinear`.
    CastMul,
    /// Declared by `graph.quantization_annotation`.
    Annotation,
    /// onnxruntime's `MatMulNBits`: packed low-bit `B`, block scales and zero points as
    /// node inputs.
    MatMulNBits,
    /// onnxruntime's `GatherBlockQuantized` (quantized embeddings): blocked data, scales
    /// and zero points as node inputs.
    GatherBlockQuantized,
}

/// Scale and zero point of one quantized tensor, already read and validated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantParams {
    /// One scale (per-tensor) or one per channel along `axis`.
    pub scale: Vec<f32>,
    /// Same length as `scale`; zeros when the graph gives none.
    pub zero_point: Vec<i32>,
    /// Normalised (non-negative) channel axis; `None` for per-tensor.
    pub axis: Option<usize>,
    /// Blocked quantization (`DequantizeLinear`'s `block_size`, opset 21): blocks of this
    /// many elements along `axis` share a scale, and `scale`/`zero_point` hold one value
    /// per block, in the order of a tensor shaped like the weight with `axis` divided
    /// into blocks (the last block may be short).
    pub block: Option<usize>,
    /// Element type of the quantized tensor.
    pub dtype: DType,
    /// Element type of the zero point as written (may differ: reported).
    pub zero_point_dtype: Option<DType>,
    /// The tensors the parameters were read from (ids, not names, so that an edit can
    /// patch them in the graph).
    pub scale_tensor: Option<TensorId>,
    pub zero_point_tensor: Option<TensorId>,
    /// Zero points stored as floats (HQQ's `MatMulNBits`): dequantization subtracts these,
    /// as floats; `zero_point` then holds them rounded, for display.
    pub float_zero_point: Option<Vec<f32>>,
    /// The block of each index along `axis` where it is not `index / block`: act-order
    /// GPTQ's `g_idx` (`MatMulNBits`), which groups rows by importance, not by position.
    /// Every entry is below the number of blocks (checked at import).
    #[serde(skip)]
    pub groups: Option<Vec<u32>>,
}

impl QuantParams {
    /// True for per-channel parameters.
    #[must_use]
    pub fn per_channel(&self) -> bool {
        self.axis.is_some() && self.scale.len() > 1
    }

    /// Dequantizes one value of channel `c`: `(q − zp) · scale`, in i32 then f32 — never in
    /// the quantized type, where subtracting a uint8 zero point would wrap around.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn dequantize(&self, q: f32, c: usize) -> f32 {
        if self.float_arithmetic() {
            let (scale, zp) = self.channel_f(c);
            return (q - zp) * scale;
        }
        let (scale, zp) = self.channel(c);
        ((q as i32) - zp) as f32 * scale
    }

    /// Whether dequantization is float arithmetic: float8 values, or float zero points.
    #[must_use]
    pub fn float_arithmetic(&self) -> bool {
        self.dtype.is_float8() || self.float_zero_point.is_some()
    }

    /// `(scale, zero point)` of channel `c` with the zero point as a float (the stored
    /// float one where there is one).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn channel_f(&self, c: usize) -> (f32, f32) {
        let (scale, zp) = self.channel(c);
        let f = self.float_zero_point.as_ref().and_then(|z| z.get(c).or(z.first()).copied());
        (scale, f.unwrap_or(zp as f32))
    }

    /// `(scale, zero point)` of channel `c` (per-tensor parameters for every channel; a
    /// NaN scale when there is none).
    #[must_use]
    pub fn channel(&self, c: usize) -> (f32, i32) {
        let scale = self.scale.get(c).or(self.scale.first()).copied().unwrap_or(f32::NAN);
        let zp = self.zero_point.get(c).or(self.zero_point.first()).copied().unwrap_or(0);
        (scale, zp)
    }
}

/// A quantized weight as the layer sees it.
#[derive(Clone, Debug)]
pub struct QuantizedWeight {
    /// The integer initializer.
    pub q_tensor: TensorId,
    pub form: QuantForm,
    /// `None` when the parameters were unusable (see the layer's issues).
    pub params: Option<QuantParams>,
    /// Problems found with the parameters.
    pub problems: Vec<String>,
}

/// The parameter input of a layer.
// (one per layer, a few hundred in a model: not worth a box per quantized weight)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum LayerWeight {
    /// A float initializer or constant (also float16/bfloat16).
    Float(TensorId),
    Quantized(QuantizedWeight),
}

impl LayerWeight {
    /// The stored tensor (float, or the integer one).
    #[must_use]
    pub fn tensor(&self) -> TensorId {
        match self {
            Self::Float(t) => *t,
            Self::Quantized(q) => q.q_tensor,
        }
    }

    /// The file's quantization parameters (`None` for float or unusable ones).
    #[must_use]
    pub fn params(&self) -> Option<&QuantParams> {
        match self {
            Self::Float(_) => None,
            Self::Quantized(q) => q.params.as_ref(),
        }
    }
}

/// What a parameter is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamRole {
    /// The layer's main (largest, or known-slot) parameter.
    Weight,
    /// The bias of a `Conv`/`Gemm`-like layer (int32 in onnxruntime's quantization).
    Bias,
    /// Any other constant input (a `Clip` bound, a `Mul` factor, …).
    Other,
}

impl ParamRole {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Weight => "weight",
            Self::Bias => "bias",
            Self::Other => "other",
        }
    }
}

/// A parameter beside the main weight (bias, other constants).
#[derive(Clone, Debug)]
pub struct LayerParam {
    pub role: ParamRole,
    /// The input slot in the float op's numbering (`QLinearConv`'s bias, input 8, is 2
    /// like `Conv`'s), so that parameters pair up across QDQ and `QOperator` variants.
    pub slot: usize,
    pub weight: LayerWeight,
}

/// A graph node that carries parameters: the unit quantlens compares across variants.
#[derive(Clone, Debug)]
pub struct Layer {
    pub node: NodeId,
    pub weight: LayerWeight,
    /// The main weight's slot (float op numbering, see [`LayerParam::slot`]).
    pub weight_slot: usize,
    /// The other parameters (bias, constants), by slot.
    pub others: Vec<LayerParam>,
}

impl Layer {
    /// Every parameter: the main weight first, then the others.
    pub fn params(&self) -> impl Iterator<Item = (ParamRole, usize, &LayerWeight)> {
        std::iter::once((ParamRole::Weight, self.weight_slot, &self.weight))
            .chain(self.others.iter().map(|p| (p.role, p.slot, &p.weight)))
    }
}

/// Input slot `k` of `op` in the numbering of its float op (`Conv`, `Gemm`, `MatMul`);
/// `None` for slots that carry quantization parameters (scales, zero points).
#[must_use]
pub fn float_slot(op: &str, k: usize) -> Option<usize> {
    match (op, k) {
        // A (QLinearAdd/QLinearMul: both operands), B, and the bias (of contrib MatMuls too)
        ("QLinearConv" | "QLinearMatMul" | "QGemm" | "QLinearAdd" | "QLinearMul", 0) => Some(0),
        ("QLinearConv" | "QLinearMatMul" | "QGemm" | "QLinearAdd" | "QLinearMul", 3) => Some(1),
        ("QLinearConv", 8)
        | ("QGemm" | "MatMulIntegerToFloat", 6)
        | ("MatMulNBits", 5)
        | ("DynamicQuantizeMatMul", 4) => Some(2),
        (
            "MatMulInteger"
            | "ConvInteger"
            | "MatMulNBits"
            | "DynamicQuantizeMatMul"
            | "MatMulIntegerToFloat"
            | "GatherBlockQuantized",
            0 | 1,
        ) => Some(k),
        (
            "QLinearConv"
            | "QLinearMatMul"
            | "QGemm"
            | "MatMulInteger"
            | "ConvInteger"
            | "MatMulNBits"
            | "GatherBlockQuantized"
            | "DynamicQuantizeMatMul"
            | "MatMulIntegerToFloat"
            | "QLinearAdd"
            | "QLinearMul",
            _,
        ) => None,
        _ => Some(k),
    }
}

/// The role of float-numbered slot `slot` of `op` when it is not the main weight.
fn role_of(op: &str, slot: usize) -> ParamRole {
    match (super::matching::op_family(op), slot) {
        ("Conv" | "MatMul" | "ConvTranspose", 2) => ParamRole::Bias,
        _ => ParamRole::Other,
    }
}

/// Ops whose parameter input index is known (the rest: the largest parameter input).
fn weight_inputs(op: &str) -> &'static [usize] {
    match op {
        "Conv" | "ConvTranspose" | "Gemm" | "MatMul" | "MatMulInteger" | "ConvInteger" | "FusedMatMul" => &[1, 0],
        "MatMulNBits" => &[1],
        "QLinearConv" | "QLinearMatMul" | "QGemm" => &[3],
        "Gather" | "GatherElements" | "GatherBlockQuantized" => &[0],
        "LSTM" | "GRU" | "RNN" => &[1, 2],
        _ => &[],
    }
}

/// Ops a weight may pass through unchanged on its way to the layer.
fn is_passthrough(op: &str) -> bool {
    matches!(op, "Transpose" | "Reshape" | "Identity" | "Flatten" | "Squeeze" | "Unsqueeze")
}

/// Finds every layer of `g` (nodes with a float or quantized parameter input), in
/// `order`. Nodes that only carry quantization (DQ, Cast/Mul of a weight-only scheme, the
/// scale `Mul` of `MatMulInteger`) are consumed as plumbing, not listed.
#[must_use]
pub fn find_layers(g: &Graph, order: &[NodeId]) -> Vec<Layer> {
    find_layers_with_plumbing(g, order).0
}

/// [`find_layers`], with the nodes consumed as plumbing.
#[must_use]
pub fn find_layers_with_plumbing(g: &Graph, order: &[NodeId]) -> (Vec<Layer>, HashSet<NodeId>) {
    let mut plumbing: HashSet<NodeId> = HashSet::new();
    let mut found: Vec<(NodeId, usize, LayerWeight)> = Vec::new();
    // Ops with a known weight slot go first, so their plumbing is known before the rest.
    for &n in order {
        let Some(node) = g.node(n) else { continue };
        let slots = weight_inputs(&node.op_type);
        if slots.is_empty() {
            continue;
        }
        for &k in slots {
            if let Some(w) = resolve_at(g, n, k, &mut plumbing) {
                found.push((n, k, w));
                break;
            }
        }
    }
    let known: HashSet<NodeId> = found.iter().map(|(n, _, _)| *n).collect();
    for &n in order {
        let Some(node) = g.node(n) else { continue };
        if known.contains(&n)
            || plumbing.contains(&n)
            || !weight_inputs(&node.op_type).is_empty()
            || crate::model::graph::is_quant_plumbing(&node.op_type)
            // QLinearAdd, QLinearGlobalAveragePool, …: their only parameters are scales
            || node.op_type.starts_with("QLinear")
            || matches!(node.op_type.as_str(), "Constant" | "Cast" | "Shape" | "Reshape")
        {
            continue;
        }
        let mut best: Option<(u64, usize, LayerWeight)> = None;
        for k in 0..node.inputs.len() {
            let mut local = HashSet::new();
            if let Some(w) = resolve_at(g, n, k, &mut local) {
                let len = g.tensor(w.tensor()).and_then(|t| t.data.as_ref()).map_or(0, TensorData::len);
                if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
                    best = Some((len, k, w));
                }
            }
        }
        if let Some((_, k, _)) = best {
            // resolved again to record its pass-through nodes (an `Identity` or
            // `Unsqueeze` of the constant belongs to this layer, not beside it)
            if let Some(w) = resolve_at(g, n, k, &mut plumbing) {
                found.push((n, k, w));
            }
        }
    }
    // the other parameters of every layer; what they pass through (an `Identity` holding
    // a folded bias, say) belongs to the layer they feed
    let layers: Vec<Layer> = found
        .into_iter()
        .map(|(node, k, weight)| {
            let others = other_params(g, node, k, &mut plumbing);
            let op = g.node(node).map_or("", |n| n.op_type.as_str());
            Layer { node, weight, weight_slot: float_slot(op, k).unwrap_or(k), others }
        })
        .collect();
    let position: std::collections::HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut layers: Vec<Layer> = layers.into_iter().filter(|l| !plumbing.contains(&l.node)).collect();
    layers.sort_by_key(|l| position.get(&l.node).copied().unwrap_or(usize::MAX));
    (layers, plumbing)
}

/// The parameters of layer node `n` besides its main weight at input `main`.
fn other_params(g: &Graph, n: NodeId, main: usize, plumbing: &mut HashSet<NodeId>) -> Vec<LayerParam> {
    let Some(node) = g.node(n) else { return Vec::new() };
    let op = node.op_type.as_str();
    let mut out = Vec::new();
    for k in (0..node.inputs.len()).filter(|&k| k != main) {
        let Some(slot) = float_slot(op, k) else { continue };
        let weight = match (op, slot) {
            ("QLinearConv" | "QGemm", 2) => qlinear_bias(g, n, k),
            _ => match g.input(n, k) {
                Some(t) => resolve_tensor(g, t, plumbing),
                None => None,
            },
        };
        // empty constants (`Resize`'s roi and scales) hold no parameter
        let empty = weight.as_ref().and_then(|w| data(g, w.tensor())).is_some_and(TensorData::is_empty);
        if let Some(weight) = weight.filter(|_| !empty) {
            out.push(LayerParam { role: role_of(op, slot), slot, weight });
        }
    }
    out
}

/// The int32 bias of `QLinearConv` (input 8) or `QGemm` (input 6): its scale is the
/// input scale times the weight scale (per channel), its zero point 0.
fn qlinear_bias(g: &Graph, n: NodeId, k: usize) -> Option<LayerWeight> {
    let q = g.input(n, k)?;
    let bias = data(g, q)?;
    if bias.dtype != DType::Int32 {
        return None;
    }
    let mut problems = Vec::new();
    let x_scale = g.input(n, 1).and_then(|t| read_small(g, t).ok());
    let w_scale = g.input(n, 4).and_then(|t| read_small(g, t).ok());
    let params = match (x_scale.as_deref(), w_scale) {
        (Some([x]), Some(w)) if !w.is_empty() => {
            let scale: Vec<f32> = w.iter().map(|s| s * x).collect();
            let axis = (scale.len() > 1).then_some(0);
            if axis.is_some() && bias.shape.first().copied() != Some(scale.len() as u64) {
                problems.push(format!("{} weight scales for a bias of shape {:?}", scale.len(), bias.shape));
                None
            } else {
                Some(QuantParams {
                    zero_point: vec![0; scale.len()],
                    scale,
                    axis,
                    block: None,
                    dtype: DType::Int32,
                    zero_point_dtype: None,
                    scale_tensor: None,
                    zero_point_tensor: None,
                    float_zero_point: None,
                    groups: None,
                })
            }
        }
        _ => {
            problems.push("bias scale (input scale × weight scale) is unreadable".into());
            None
        }
    };
    Some(LayerWeight::Quantized(QuantizedWeight { q_tensor: q, form: QuantForm::QLinear, params, problems }))
}

/// Data of a tensor that holds a payload.
fn data(g: &Graph, t: TensorId) -> Option<&TensorData> {
    g.tensor(t)?.data.as_ref()
}

/// Resolves input `k` of node `n` to a layer weight.
fn resolve_at(g: &Graph, n: NodeId, k: usize, plumbing: &mut HashSet<NodeId>) -> Option<LayerWeight> {
    let node = g.node(n)?;
    let t = g.input(n, k)?;
    match node.op_type.as_str() {
        "QLinearConv" => qlinear(g, n, 3, 4, 5, Some(0)),
        "QLinearMatMul" => {
            let rank = data(g, t).map_or(2, |d| d.shape.len());
            qlinear(g, n, 3, 4, 5, Some(rank.saturating_sub(1)))
        }
        // QGemm's B is [N, K] with transB = 1 (channels along 0), else [K, N] (along 1)
        "QGemm" => qlinear(g, n, 3, 4, 5, Some(usize::from(node.attr_int("transB").unwrap_or(0) == 0))),
        "MatMulInteger" | "ConvInteger" if k == 1 => integer_op(g, n, plumbing),
        // data blocked along quantize_axis (packed uint8 rewritten at import: `onnx::gather_block`)
        "GatherBlockQuantized" if k == 0 => {
            let block = Some(node.attr_int("block_size").unwrap_or(128));
            let axis = node.attr_int("quantize_axis").unwrap_or(1);
            let mut problems = Vec::new();
            let params = read_params(g, t, g.input(n, 2), g.input(n, 3), Some(axis), None, block, &mut problems);
            Some(LayerWeight::Quantized(QuantizedWeight {
                q_tensor: t,
                form: QuantForm::GatherBlockQuantized,
                params,
                problems,
            }))
        }
        // B unpacked at import into a [K, N] view with blocked parameters (`onnx::nbits`)
        "MatMulNBits" if k == 1 => {
            let mut problems = Vec::new();
            let params = super::onnx::nbits::params(g, n).map_err(|e| problems.push(format!("MatMulNBits: {e}"))).ok();
            Some(LayerWeight::Quantized(QuantizedWeight {
                q_tensor: t,
                form: QuantForm::MatMulNBits,
                params,
                problems,
            }))
        }
        _ => resolve_tensor(g, t, plumbing),
    }
}

/// Follows a tensor back to a parameter: a float initializer, or an integer one through
/// `DequantizeLinear`, Cast→Mul, or a quantization annotation.
/// The pass-through nodes on the way (`Identity`, `Transpose`, …) become plumbing only
/// when a parameter is found at the end.
fn resolve_tensor(g: &Graph, t: TensorId, plumbing: &mut HashSet<NodeId>) -> Option<LayerWeight> {
    let mut passed = Vec::new();
    let found = resolve_through(g, t, plumbing, &mut passed);
    if found.is_some() {
        plumbing.extend(passed);
    }
    found
}

fn resolve_through(
    g: &Graph,
    mut t: TensorId,
    plumbing: &mut HashSet<NodeId>,
    passed: &mut Vec<NodeId>,
) -> Option<LayerWeight> {
    for _ in 0..8 {
        let tensor = g.tensor(t)?;
        if let Some(d) = &tensor.data {
            if d.dtype.is_float() {
                return Some(LayerWeight::Float(t));
            }
            if d.dtype.is_quantized_int()
                && let Some(w) = annotated(g, t)
            {
                return Some(w);
            }
            return None;
        }
        let p = tensor.producer?;
        let node = g.node(p)?;
        match node.op_type.as_str() {
            "DequantizeLinear" => {
                let q = g.input(p, 0)?;
                let axis = node.attr_int("axis").unwrap_or(1);
                if data(g, q).is_none() {
                    return runtime_qdq(g, p, q, axis, plumbing, passed);
                }
                plumbing.insert(p);
                let block = node.attr_int("block_size").filter(|&b| b != 0);
                let mut problems = Vec::new();
                let (scale, zp) = (g.input(p, 1), g.input(p, 2));
                let params = read_params(g, q, scale, zp, Some(axis), None, block, &mut problems);
                return Some(LayerWeight::Quantized(QuantizedWeight {
                    q_tensor: q,
                    form: QuantForm::Qdq,
                    params,
                    problems,
                }));
            }
            "Mul" => return cast_mul(g, p, plumbing),
            "Cast" => {
                // float16 weights cast up to float: the parameter is the float16 tensor
                let src = g.input(p, 0)?;
                let d = data(g, src)?;
                if d.dtype.is_float() {
                    plumbing.insert(p);
                    return Some(LayerWeight::Float(src));
                }
                return None;
            }
            op if is_passthrough(op) => {
                passed.push(p);
                t = g.input(p, 0)?;
            }
            _ => return None,
        }
    }
    None
}

/// `W (float constant) → QuantizeLinear → DequantizeLinear (dq)`, `q` the tensor between
/// them: the weight `W` with the `QuantizeLinear`'s parameters.
fn runtime_qdq(
    g: &Graph,
    dq: NodeId,
    q: TensorId,
    axis: i64,
    plumbing: &mut HashSet<NodeId>,
    passed: &mut Vec<NodeId>,
) -> Option<LayerWeight> {
    let qn = g.tensor(q)?.producer?;
    let q_node = g.node(qn)?;
    if q_node.op_type != "QuantizeLinear" {
        return None;
    }
    let Some(LayerWeight::Float(w)) = resolve_through(g, g.input(qn, 0)?, plumbing, passed) else { return None };
    plumbing.extend([dq, qn]);
    let (scale, zp) = (g.input(qn, 1), g.input(qn, 2));
    let mut problems = Vec::new();
    let values = |t: Option<TensorId>| t.map(|t| read_small(g, t).ok());
    if (scale, zp) != (g.input(dq, 1), g.input(dq, 2))
        && (values(scale) != values(g.input(dq, 1)) || values(zp) != values(g.input(dq, 2)))
    {
        problems.push("QuantizeLinear and DequantizeLinear use different parameters; the first are used".into());
    }
    let zp_dtype = zp.and_then(|t| data(g, t)).map(|d| d.dtype);
    let declared = q_node.attr_int("output_dtype").filter(|&c| c != 0).and_then(|c| i32::try_from(c).ok());
    let qdtype = zp_dtype.or(declared.map(DType::from_onnx)).unwrap_or(DType::Uint8);
    let params =
        read_params(g, w, scale, zp, Some(q_node.attr_int("axis").unwrap_or(axis)), Some(qdtype), None, &mut problems);
    Some(LayerWeight::Quantized(QuantizedWeight { q_tensor: w, form: QuantForm::QdqRuntime, params, problems }))
}

/// `Cast(int initializer) → Mul(scale)` weight-only quantization (optionally `Sub(zp)`).
fn cast_mul(g: &Graph, mul: NodeId, plumbing: &mut HashSet<NodeId>) -> Option<LayerWeight> {
    for (a, b) in [(0, 1), (1, 0)] {
        let Some(scale) = g.input(mul, b) else { continue };
        if !data(g, scale).is_some_and(|d| d.dtype.is_float()) {
            continue;
        }
        let Some(cast) = g.input_producer(mul, a) else { continue };
        let Some(cast_node) = g.node(cast) else { continue };
        let (cast, zp) = if cast_node.op_type == "Sub" {
            let zp = g.input(cast, 1);
            match g.input_producer(cast, 0) {
                Some(c) => (c, zp),
                None => continue,
            }
        } else {
            (cast, None)
        };
        if g.node(cast).is_none_or(|c| c.op_type != "Cast") {
            continue;
        }
        let Some(q) = g.input(cast, 0) else { continue };
        if !data(g, q).is_some_and(|d| d.dtype.is_quantized_int()) {
            continue;
        }
        plumbing.insert(mul);
        plumbing.insert(cast);
        if let Some(sub) = g.input_producer(mul, a) {
            plumbing.insert(sub);
        }
        let axis = broadcast_axis(g, q, scale);
        return Some(quantized(g, q, QuantForm::CastMul, Some(scale), zp, axis));
    }
    None
}

/// The axis along which a broadcast `scale` varies against weight `q` (numpy broadcasting).
fn broadcast_axis(g: &Graph, q: TensorId, scale: TensorId) -> Option<i64> {
    let qs = &data(g, q)?.shape;
    let ss = &data(g, scale)?.shape;
    let offset = qs.len().checked_sub(ss.len())?;
    let axes: Vec<usize> = ss.iter().enumerate().filter(|(_, d)| **d > 1).map(|(i, _)| i + offset).collect();
    match axes.as_slice() {
        [a] => i64::try_from(*a).ok(),
        _ => None,
    }
}

/// A `QLinearConv` / `QLinearMatMul` weight with its parameters at fixed input slots.
fn qlinear(g: &Graph, n: NodeId, w: usize, s: usize, z: usize, axis: Option<usize>) -> Option<LayerWeight> {
    let q = g.input(n, w)?;
    data(g, q)?;
    let axis = axis.and_then(|a| i64::try_from(a).ok());
    Some(quantized(g, q, QuantForm::QLinear, g.input(n, s), g.input(n, z), axis))
}

/// `MatMulInteger` / `ConvInteger`: the weight is input 1 and its zero point input 3; its
/// scale is a float initializer multiplied in after the `Cast` of the integer output,
/// directly or through the `Mul(x_scale, w_scale)` that onnxruntime writes.
fn integer_op(g: &Graph, n: NodeId, plumbing: &mut HashSet<NodeId>) -> Option<LayerWeight> {
    let q = g.input(n, 1)?;
    data(g, q)?;
    let zp = g.input(n, 3);
    let axis = i64::from(g.node(n)?.op_type != "ConvInteger");
    let mut scale = None;
    let mut frontier = g.node(n)?.outputs.clone();
    'search: for _ in 0..3 {
        let mut next = Vec::new();
        for t in frontier {
            for &c in &g.tensor(t)?.consumers {
                let cn = g.node(c)?;
                match cn.op_type.as_str() {
                    "Cast" => next.extend(cn.outputs.iter().copied()),
                    "Mul" => {
                        for k in 0..2 {
                            let Some(other) = g.input(c, k) else { continue };
                            if data(g, other).is_some_and(|d| d.dtype.is_float()) {
                                scale = Some(other);
                                break 'search;
                            }
                            if let Some(pm) = g.tensor(other).and_then(|t| t.producer)
                                && g.node(pm).is_some_and(|m| m.op_type == "Mul")
                            {
                                for j in 0..2 {
                                    let Some(s) = g.input(pm, j) else { continue };
                                    if data(g, s).is_some_and(|d| d.dtype.is_float()) {
                                        plumbing.insert(pm);
                                        scale = Some(s);
                                        break 'search;
                                    }
                                }
                            }
                        }
                        next.extend(cn.outputs.iter().copied());
                    }
                    _ => {}
                }
            }
        }
        frontier = next;
    }
    Some(quantized(g, q, QuantForm::Integer, scale, zp, Some(axis)))
}

/// A weight quantized per `graph.quantization_annotation`.
fn annotated(g: &Graph, q: TensorId) -> Option<LayerWeight> {
    let keys = g.annotations.get(&g.tensor(q)?.name)?;
    let scale = keys.get("SCALE_TENSOR").and_then(|n| g.tensor_by_name(n));
    let zp = keys.get("ZERO_POINT_TENSOR").and_then(|n| g.tensor_by_name(n));
    Some(quantized(g, q, QuantForm::Annotation, scale, zp, Some(1)))
}

/// Reads and validates the parameters of quantized tensor `q`. `axis` is the declared
/// axis (ONNX default 1), applied only when the scale has more than one element.
fn quantized(
    g: &Graph,
    q: TensorId,
    form: QuantForm,
    scale: Option<TensorId>,
    zp: Option<TensorId>,
    axis: Option<i64>,
) -> LayerWeight {
    let mut problems = Vec::new();
    let params = read_params(g, q, scale, zp, axis, None, None, &mut problems);
    LayerWeight::Quantized(QuantizedWeight { q_tensor: q, form, params, problems })
}

/// The axis and size of blocked parameters: `block` within the axis's length, and the
/// scale shaped like the weight with that axis divided into blocks (the last may be
/// short). `None` with a problem when they do not fit.
fn blocked_axis(
    g: &Graph,
    qd: &TensorData,
    scale: TensorId,
    axis: i64,
    block: i64,
    problems: &mut Vec<String>,
) -> Option<(usize, usize)> {
    let rank = qd.shape.len();
    let Some(norm) = super::graph::normalize_axis(axis, rank) else {
        problems.push(format!("axis {axis} is out of range for a rank-{rank} weight"));
        return None;
    };
    let dim = qd.shape.get(norm).copied().unwrap_or(0);
    // (a block longer than the axis is one short block: onnxruntime writes block 128 on
    // 64-long axes; the scale's shape below says whether that is what the file means)
    let Some(b) = u64::try_from(block).ok().filter(|&b| b >= 1) else {
        problems.push(format!("block_size {block} does not fit axis {norm} of length {dim}"));
        return None;
    };
    let mut expected = qd.shape.clone();
    if let Some(d) = expected.get_mut(norm) {
        *d = dim.div_ceil(b);
    }
    let got = data(g, scale).map(|d| d.shape.clone()).unwrap_or_default();
    if got != expected {
        problems.push(format!(
            "scale shape {got:?} does not fit blocks of {b} along axis {norm} of a {:?} weight (expected {expected:?})",
            qd.shape
        ));
        return None;
    }
    Some((norm, usize::try_from(b).ok()?))
}

fn read_small(g: &Graph, t: TensorId) -> Result<Vec<f32>, String> {
    let d = data(g, t).ok_or("has no readable data")?;
    if d.len() > 1 << 24 {
        return Err("is implausibly large for a quantization parameter".into());
    }
    d.to_f32_vec().map_err(|e: ReadError| e.to_string())
}

/// Reads and validates the parameters of `q`, stored quantized (`qdtype` `None`) or in
/// float and quantized to `qdtype` as the graph runs; `block`: `DequantizeLinear`'s
/// `block_size` (blocked parameters, shaped like the weight with the axis in blocks).
#[allow(clippy::too_many_arguments)]
fn read_params(
    g: &Graph,
    q: TensorId,
    scale: Option<TensorId>,
    zp: Option<TensorId>,
    axis: Option<i64>,
    qdtype: Option<DType>,
    block: Option<i64>,
    problems: &mut Vec<String>,
) -> Option<QuantParams> {
    let qd = data(g, q)?;
    let Some(scale_t) = scale else {
        problems.push("no scale found for the quantized weight".into());
        return None;
    };
    let scales = match read_small(g, scale_t) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            problems.push("scale is empty".into());
            return None;
        }
        Err(e) => {
            problems.push(format!("scale {e}"));
            return None;
        }
    };
    let mut float_zero_point = None;
    let (zero_point, zero_point_dtype) = match zp.map(|t| (t, read_small(g, t))) {
        None => (vec![0; scales.len()], None),
        Some((t, Ok(z))) => {
            let dtype = data(g, t).map(|d| d.dtype);
            #[allow(clippy::cast_possible_truncation)]
            let rounded: Vec<i32> = z.iter().map(|&v| v.round() as i32).collect();
            if dtype.is_some_and(DType::is_float) {
                float_zero_point = Some(z);
            }
            (rounded, dtype)
        }
        Some((_, Err(e))) => {
            problems.push(format!("zero point {e}"));
            return None;
        }
    };
    let rank = qd.shape.len();
    let block = match block {
        None => None,
        Some(b) => Some(blocked_axis(g, qd, scale_t, axis.unwrap_or(1), b, problems)?),
    };
    let axis = if let Some((norm, _)) = block {
        Some(norm)
    } else if scales.len() > 1 {
        let a = axis.unwrap_or(1);
        let Some(norm) = super::graph::normalize_axis(a, rank) else {
            problems.push(format!("axis {a} is out of range for a rank-{rank} weight"));
            return None;
        };
        let channels = qd.shape.get(norm).copied().unwrap_or(0);
        if scales.len() as u64 != channels {
            problems.push(format!("{} scales but the weight has {channels} channels along axis {norm}", scales.len()));
            return None;
        }
        Some(norm)
    } else {
        None
    };
    let zero_point = if zero_point.len() == scales.len() {
        zero_point
    } else if zero_point.len() == 1 {
        problems.push(format!("1 zero point for {} scales; broadcast", scales.len()));
        vec![zero_point.first().copied().unwrap_or(0); scales.len()]
    } else {
        problems.push(format!("{} zero points for {} scales", zero_point.len(), scales.len()));
        return None;
    };
    let dtype = qdtype.unwrap_or(qd.dtype);
    if let Some(zd) = zero_point_dtype
        && zd != dtype
        && !(zd.is_float() && block.is_some())
    {
        problems.push(format!("zero point is {} but the weight is {}", zd.name(), dtype.name()));
    }
    if dtype.is_float8() {
        if qdtype.is_some() {
            problems.push(format!("quantizing to {} as the graph runs is not read", dtype.name()));
            return None;
        }
        // (float8 zero points are float8 values: read as floats, not truncated)
        let zps = zp.map(|t| read_small(g, t)).transpose().ok().flatten().unwrap_or_default();
        if zps.iter().any(|&z| z != 0.0) {
            problems.push(format!("{} zero point is not 0 (onnxruntime writes 0)", dtype.name()));
            return None;
        }
    }
    // (blocked 4-bit weights from onnxruntime's symmetric RTN carry negative scales: the
    // block's signed extreme over −8; only zero and non-finite ones are unusable there)
    let usable = |s: f32| s.is_finite() && if block.is_some() { s != 0.0 } else { s > 0.0 };
    let bad: Vec<usize> = scales.iter().enumerate().filter(|(_, s)| !usable(**s)).map(|(i, _)| i).collect();
    if let Some(&first) = bad.first() {
        problems.push(format!(
            "{} scale(s) are zero, negative or not finite (first: channel {first} = {})",
            bad.len(),
            scales.get(first).copied().unwrap_or(f32::NAN)
        ));
    }
    let scales_len = scales.len();
    Some(QuantParams {
        scale: scales,
        zero_point,
        axis,
        block: block.map(|(_, b)| b),
        dtype,
        zero_point_dtype,
        scale_tensor: Some(scale_t),
        zero_point_tensor: zp,
        float_zero_point: float_zero_point.filter(|z| z.len() == scales_len),
        groups: None,
    })
}

/// Streams the dequantized values of `q` under `params` in chunks: `f(first_index, values)`.
///
/// # Errors
/// When external data can no longer be read.
pub fn for_each_dequantized(
    q: &TensorData,
    params: &QuantParams,
    mut f: impl FnMut(usize, &[f32]),
) -> Result<(), ReadError> {
    let channels = params.scale.len().max(1);
    let inner: usize = match params.axis {
        Some(a) if channels > 1 => q.shape.iter().skip(a + 1).product::<u64>().try_into().unwrap_or(usize::MAX),
        _ => 0,
    };
    let mut buf = Vec::new();
    q.for_each_chunk(|start, chunk| {
        buf.clear();
        if inner == 0 {
            buf.extend(chunk.iter().map(|&v| params.dequantize(v, 0)));
        } else {
            buf.extend(chunk.iter().enumerate().map(|(k, &v)| params.dequantize(v, ((start + k) / inner) % channels)));
        }
        f(start, &buf);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_pair_up_with_the_float_op() {
        // (op, input) → float op's input; None: quantization parameters
        let cases: &[(&str, usize, Option<usize>)] = &[
            ("Conv", 2, Some(2)),
            ("QLinearConv", 3, Some(1)),
            ("QLinearConv", 8, Some(2)),
            ("QLinearConv", 4, None),
            ("QLinearConv", 6, None),
            ("MatMulIntegerToFloat", 6, Some(2)),
            ("QLinearMatMul", 3, Some(1)),
            ("QLinearMatMul", 7, None),
            ("QGemm", 3, Some(1)),
            ("QGemm", 6, Some(2)),
            ("QGemm", 7, None),
            ("MatMulInteger", 1, Some(1)),
            ("MatMulInteger", 3, None),
            ("ConvInteger", 2, None),
            ("QLinearAdd", 3, Some(1)),
            ("QLinearAdd", 1, None),
            ("MatMulNBits", 2, None),
            ("MatMulNBits", 5, Some(2)),
        ];
        for &(op, k, slot) in cases {
            assert_eq!(float_slot(op, k), slot, "{op} input {k}");
        }
        assert_eq!(role_of("QLinearConv", 2), ParamRole::Bias);
        assert_eq!(role_of("Gemm", 2), ParamRole::Bias);
        assert_eq!(role_of("Clip", 2), ParamRole::Other);
        assert_eq!(role_of("Mul", 1), ParamRole::Other);
    }

    #[test]
    fn uint8_zero_point_does_not_wrap() {
        let p = QuantParams {
            scale: vec![0.5],
            zero_point: vec![128],
            axis: None,
            block: None,
            dtype: DType::Uint8,
            zero_point_dtype: Some(DType::Uint8),
            scale_tensor: None,
            zero_point_tensor: None,
            float_zero_point: None,
            groups: None,
        };
        // q = 3 < zp: in uint8 arithmetic this would wrap to 131
        assert_eq!(p.dequantize(3.0, 0), -62.5);
        assert_eq!(p.dequantize(255.0, 0), 63.5);
    }
}
