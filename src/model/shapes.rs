//! Shape and dtype inference for activations the file does not declare (quantizers drop
//! most `value_info`), so that the inspector can show every input and output. Declared
//! shapes are never overridden; an op we do not know leaves its outputs unknown, and a dim
//! that cannot be computed becomes `?`. One pass in topological order, no recursion, all
//! arithmetic checked (hostile files declare absurd dims).

use super::dtype::DType;
use super::graph::{Dim, Graph, Node, NodeId, TensorId, normalize_axis};

/// Largest rank we reason about (beyond it, outputs stay unknown).
const MAX_RANK: usize = 16;

/// Fills the missing `shape` and `dtype` of tensors produced by the nodes of `order`.
pub fn infer_shapes(g: &mut Graph, order: &[NodeId]) {
    for &n in order {
        let Some(node) = g.nodes.get(n) else { continue };
        let mut found = vec![infer_node(g, node)];
        if node.op_type == "DynamicQuantizeLinear" {
            // y_scale and y_zero_point are scalars
            found.extend([(Some(vec![]), Some(DType::Float32)), (Some(vec![]), Some(DType::Uint8))]);
        }
        let outputs = node.outputs.clone();
        for (out, (shape, dtype)) in outputs.into_iter().zip(found) {
            let Some(t) = g.tensors.get_mut(out) else { continue };
            if t.shape.is_none()
                && let Some(s) = shape.filter(|s| s.len() <= MAX_RANK)
            {
                t.shape = Some(s);
            }
            if t.dtype.is_none() {
                t.dtype = dtype;
            }
        }
    }
}

/// The declared or stored shape of a tensor (`None` beyond [`MAX_RANK`]: hostile files
/// declare millions of dims, and the ops below are linear or quadratic in the rank).
fn shape_of(g: &Graph, t: Option<TensorId>) -> Option<Vec<Dim>> {
    let t = g.tensor(t?)?;
    let shape = match &t.shape {
        Some(s) => s.clone(),
        None => t.data.as_ref()?.shape.iter().map(|&x| Dim::Known(x)).collect(),
    };
    (shape.len() <= MAX_RANK).then_some(shape)
}

fn dtype_of(g: &Graph, t: Option<TensorId>) -> Option<DType> {
    let t = g.tensor(t?)?;
    t.dtype.or_else(|| t.data.as_ref().map(|d| d.dtype))
}

/// Small integer tensors (Reshape targets, axes) read from initializers or constants.
#[allow(clippy::cast_possible_truncation)]
fn ints_of(g: &Graph, t: Option<TensorId>) -> Option<Vec<i64>> {
    let data = g.tensor(t?)?.data.as_ref()?;
    if data.len() > MAX_RANK as u64 {
        return None;
    }
    Some(data.to_f32_vec().ok()?.into_iter().map(|v| v as i64).collect())
}

/// An integer-list attribute of at most `2 · MAX_RANK` values (pads hold two per axis).
fn attr_ints(node: &Node, name: &str) -> Option<Vec<i64>> {
    node.attr_ints(name).filter(|v| v.len() <= 2 * MAX_RANK).map(<[i64]>::to_vec)
}

fn unknown() -> Dim {
    Dim::Symbolic(String::new())
}

fn known(d: &Dim) -> Option<u64> {
    match d {
        Dim::Known(n) => Some(*n),
        Dim::Symbolic(_) => None,
    }
}

/// Output 0's shape and dtype for one node.
fn infer_node(g: &Graph, node: &Node) -> (Option<Vec<Dim>>, Option<DType>) {
    let x = node.input(0);
    let same = || (shape_of(g, x), dtype_of(g, x));
    match node.op_type.as_str() {
        "Relu"
        | "LeakyRelu"
        | "Sigmoid"
        | "Tanh"
        | "Clip"
        | "Identity"
        | "Dropout"
        | "Erf"
        | "Gelu"
        | "Softmax"
        | "LogSoftmax"
        | "LayerNormalization"
        | "BatchNormalization"
        | "InstanceNormalization"
        | "Neg"
        | "Abs"
        | "Sqrt"
        | "Exp"
        | "Log"
        | "Reciprocal"
        | "HardSigmoid"
        | "HardSwish"
        | "Elu"
        | "Selu"
        | "PRelu"
        | "Floor"
        | "Ceil"
        | "Round"
        | "Sign"
        | "Softplus"
        | "Mish"
        | "QuickGelu"
        | "FastGelu"
        | "SkipLayerNormalization"
        | "SimplifiedLayerNormalization"
        | "CumSum"
        | "LpNormalization" => same(),
        "DequantizeLinear" => (shape_of(g, x), Some(dtype_of(g, node.input(1)).unwrap_or(DType::Float32))),
        "QuantizeLinear" => {
            let dtype = dtype_of(g, node.input(2))
                .or_else(|| {
                    node.attr_int("output_dtype")
                        .and_then(|c| i32::try_from(c).ok())
                        .filter(|&c| c > 0)
                        .map(DType::from_onnx)
                })
                .unwrap_or(DType::Uint8);
            (shape_of(g, x), Some(dtype))
        }
        "DynamicQuantizeLinear" => (shape_of(g, x), Some(DType::Uint8)),
        "Cast" => (shape_of(g, x), node.attr_int("to").and_then(|c| i32::try_from(c).ok()).map(DType::from_onnx)),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Mod" | "Sum" | "Mean" => {
            (broadcast_all(g, node, 0..node.inputs.len()), dtype_of(g, x))
        }
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
            (broadcast_all(g, node, 0..2), Some(DType::Bool))
        }
        "Where" => (broadcast_all(g, node, 0..3), dtype_of(g, node.input(1))),
        "QLinearAdd" | "QLinearMul" => (broadcast_all(g, node, [0, 3].into_iter()), dtype_of(g, node.input(7))),
        "Conv" | "ConvInteger" | "QLinearConv" => {
            let (w, dtype) = match node.op_type.as_str() {
                "Conv" => (1, dtype_of(g, x)),
                "ConvInteger" => (1, Some(DType::Int32)),
                _ => (3, dtype_of(g, node.input(7))),
            };
            (conv(node, shape_of(g, x), shape_of(g, node.input(w))), dtype)
        }
        "MaxPool" | "AveragePool" | "LpPool" => (pool(node, shape_of(g, x)), dtype_of(g, x)),
        "GlobalAveragePool" | "GlobalMaxPool" | "QLinearGlobalAveragePool" => {
            let s = shape_of(g, x)
                .filter(|s| s.len() >= 2)
                .map(|s| s.iter().enumerate().map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) }).collect());
            let dtype = if node.op_type == "QLinearGlobalAveragePool" { dtype_of(g, node.input(4)) } else { None };
            (s, dtype.or_else(|| dtype_of(g, x)))
        }
        "Flatten" => (flatten(node, shape_of(g, x)), dtype_of(g, x)),
        "Gemm" => (gemm(node, shape_of(g, x), shape_of(g, node.input(1))), dtype_of(g, x)),
        "MatMul" => (matmul(shape_of(g, x), shape_of(g, node.input(1))), dtype_of(g, x)),
        "MatMulInteger" => (matmul(shape_of(g, x), shape_of(g, node.input(1))), Some(DType::Int32)),
        "QLinearMatMul" => (matmul(shape_of(g, x), shape_of(g, node.input(3))), dtype_of(g, node.input(7))),
        "Transpose" => (transpose(node, shape_of(g, x)), dtype_of(g, x)),
        "Reshape" => (reshape(shape_of(g, x), ints_of(g, node.input(1))), dtype_of(g, x)),
        "Concat" => (concat(g, node), dtype_of(g, x)),
        "Unsqueeze" => {
            let axes = attr_ints(node, "axes").or_else(|| ints_of(g, node.input(1)));
            (unsqueeze(shape_of(g, x), axes), dtype_of(g, x))
        }
        "Squeeze" => {
            let axes = attr_ints(node, "axes").or_else(|| ints_of(g, node.input(1)));
            (squeeze(shape_of(g, x), axes), dtype_of(g, x))
        }
        "Shape" => (shape_of(g, x).map(|s| vec![Dim::Known(s.len() as u64)]), Some(DType::Int64)),
        "Gather" => (gather(node, shape_of(g, x), shape_of(g, node.input(1))), dtype_of(g, x)),
        _ => (None, None),
    }
}

/// numpy broadcasting of the inputs `which`.
fn broadcast_all(g: &Graph, node: &Node, which: impl Iterator<Item = usize>) -> Option<Vec<Dim>> {
    let mut out: Option<Vec<Dim>> = None;
    for k in which {
        let s = shape_of(g, node.input(k))?;
        out = Some(match out {
            None => s,
            Some(o) => broadcast(&o, &s)?,
        });
    }
    out
}

fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Vec<Dim>> {
    let rank = a.len().max(b.len());
    if rank > MAX_RANK {
        return None;
    }
    let one = Dim::Known(1);
    let at = |s: &[Dim], i: usize| -> Dim {
        let pad = rank - s.len();
        if i < pad { one.clone() } else { s.get(i - pad).cloned().unwrap_or_else(unknown) }
    };
    Some(
        (0..rank)
            .map(|i| match (at(a, i), at(b, i)) {
                (Dim::Known(1), d) | (d, Dim::Known(1)) => d,
                (x, y) if x == y => x,
                _ => unknown(),
            })
            .collect(),
    )
}

/// Spatial output size of a sliding window.
fn window(input: &Dim, k: u64, stride: u64, dilation: u64, pads: (u64, u64), auto_pad: &str, ceil: bool) -> Dim {
    let Some(n) = known(input) else { return input.clone() };
    let stride = stride.max(1);
    let span = dilation.checked_mul(k.saturating_sub(1)).and_then(|s| s.checked_add(1));
    let out = match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => Some(n.div_ceil(stride)),
        "VALID" => span.and_then(|s| n.checked_sub(s)).map(|r| r / stride + 1),
        _ => n
            .checked_add(pads.0)
            .and_then(|x| x.checked_add(pads.1))
            .zip(span)
            .and_then(|(x, s)| x.checked_sub(s))
            .map(|r| if ceil { r.div_ceil(stride) + 1 } else { r / stride + 1 }),
    };
    out.map_or_else(unknown, Dim::Known)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Output of a convolution or pooling over `x` with `kernel` spatial dims and `channels`.
fn sliding(node: &Node, x: &[Dim], kernel: &[u64], channels: Dim) -> Option<Vec<Dim>> {
    let spatial = x.len().checked_sub(2)?;
    if kernel.len() != spatial {
        return None;
    }
    let strides = attr_ints(node, "strides").unwrap_or_default();
    let dilations = attr_ints(node, "dilations").unwrap_or_default();
    let pads = attr_ints(node, "pads").unwrap_or_default();
    let auto_pad = node.attr_text("auto_pad").unwrap_or("NOTSET");
    let ceil = node.attr_int("ceil_mode").unwrap_or(0) != 0;
    let mut out = vec![x.first()?.clone(), channels];
    for (i, &k) in kernel.iter().enumerate() {
        let pad = (u(pads.get(i).copied().unwrap_or(0)), u(pads.get(i + spatial).copied().unwrap_or(0)));
        let stride = u(strides.get(i).copied().unwrap_or(1));
        let dilation = u(dilations.get(i).copied().unwrap_or(1));
        out.push(window(x.get(i + 2)?, k, stride, dilation, pad, auto_pad, ceil));
    }
    Some(out)
}

fn conv(node: &Node, x: Option<Vec<Dim>>, w: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let (x, w) = (x?, w?);
    let kernel: Vec<u64> = match attr_ints(node, "kernel_shape") {
        Some(k) => k.into_iter().map(u).collect(),
        None => w.get(2..)?.iter().map(known).collect::<Option<_>>()?,
    };
    sliding(node, &x, &kernel, w.first()?.clone())
}

fn pool(node: &Node, x: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let x = x?;
    let kernel: Vec<u64> = attr_ints(node, "kernel_shape")?.into_iter().map(u).collect();
    sliding(node, &x, &kernel, x.get(1)?.clone())
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter().try_fold(1u64, |acc, d| known(d).and_then(|n| acc.checked_mul(n))).map_or_else(unknown, Dim::Known)
}

fn flatten(node: &Node, x: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let x = x?;
    let axis = node.attr_int("axis").unwrap_or(1);
    let axis = if axis == i64::try_from(x.len()).ok()? { x.len() } else { normalize_axis(axis, x.len())? };
    Some(vec![product(x.get(..axis)?), product(x.get(axis..)?)])
}

fn gemm(node: &Node, a: Option<Vec<Dim>>, b: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let (a, b) = (a?, b?);
    if a.len() != 2 || b.len() != 2 {
        return None;
    }
    let m = if node.attr_int("transA").unwrap_or(0) != 0 { a.get(1) } else { a.first() };
    let n = if node.attr_int("transB").unwrap_or(0) != 0 { b.first() } else { b.get(1) };
    Some(vec![m?.clone(), n?.clone()])
}

fn matmul(a: Option<Vec<Dim>>, b: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let (a, b) = (a?, b?);
    match (a.len(), b.len()) {
        (0, _) | (_, 0) => None,
        (1, 1) => Some(vec![]),
        (1, _) => {
            let mut out = b.get(..b.len() - 2)?.to_vec();
            out.push(b.last()?.clone());
            Some(out)
        }
        (_, 1) => Some(a.get(..a.len() - 1)?.to_vec()),
        (ra, rb) => {
            let mut out = broadcast(a.get(..ra - 2)?, b.get(..rb - 2)?)?;
            out.push(a.get(ra - 2)?.clone());
            out.push(b.last()?.clone());
            Some(out)
        }
    }
}

fn transpose(node: &Node, x: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let x = x?;
    match attr_ints(node, "perm") {
        Some(p) if p.len() == x.len() => {
            p.iter().map(|&i| x.get(usize::try_from(i).ok()?).cloned()).collect::<Option<Vec<_>>>()
        }
        Some(_) => None,
        None => Some(x.into_iter().rev().collect()),
    }
}

fn reshape(x: Option<Vec<Dim>>, target: Option<Vec<i64>>) -> Option<Vec<Dim>> {
    let target = target?;
    let mut out: Vec<Dim> = target
        .iter()
        .enumerate()
        .map(|(i, &t)| match t {
            0 => x.as_ref().and_then(|x| x.get(i).cloned()).unwrap_or_else(unknown),
            t if t > 0 => Dim::Known(u(t)),
            _ => unknown(),
        })
        .collect();
    // one -1: the element count over the product of the others
    if let (Some(pos), Some(Dim::Known(total))) = (target.iter().position(|&t| t == -1), x.as_deref().map(product)) {
        let others: Vec<Dim> = out.iter().enumerate().filter(|(i, _)| *i != pos).map(|(_, d)| d.clone()).collect();
        if let Dim::Known(rest) = product(&others)
            && rest > 0
            && let Some(slot) = out.get_mut(pos)
        {
            *slot = Dim::Known(total / rest);
        }
    }
    Some(out)
}

fn concat(g: &Graph, node: &Node) -> Option<Vec<Dim>> {
    let shapes: Vec<Vec<Dim>> = node.inputs.iter().map(|&t| shape_of(g, t)).collect::<Option<Vec<_>>>()?;
    let first = shapes.first()?.clone();
    let axis = normalize_axis(node.attr_int("axis")?, first.len())?;
    let total = shapes.iter().try_fold(0u64, |acc, s| s.get(axis).and_then(known).and_then(|n| acc.checked_add(n)));
    let mut out = first;
    if let Some(slot) = out.get_mut(axis) {
        *slot = total.map_or_else(unknown, Dim::Known);
    }
    Some(out)
}

fn unsqueeze(x: Option<Vec<Dim>>, axes: Option<Vec<i64>>) -> Option<Vec<Dim>> {
    let (mut x, axes) = (x?, axes?);
    let rank = x.len() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&a| normalize_axis(a, rank)).collect::<Option<_>>()?;
    axes.sort_unstable();
    for a in axes {
        if a > x.len() {
            return None;
        }
        x.insert(a, Dim::Known(1));
    }
    Some(x)
}

fn squeeze(x: Option<Vec<Dim>>, axes: Option<Vec<i64>>) -> Option<Vec<Dim>> {
    let x = x?;
    match axes {
        Some(axes) => {
            let axes: Vec<usize> = axes.iter().map(|&a| normalize_axis(a, x.len())).collect::<Option<_>>()?;
            Some(x.into_iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d).collect())
        }
        None if x.iter().all(|d| known(d).is_some()) => Some(x.into_iter().filter(|d| *d != Dim::Known(1)).collect()),
        None => None,
    }
}

fn gather(node: &Node, data: Option<Vec<Dim>>, indices: Option<Vec<Dim>>) -> Option<Vec<Dim>> {
    let (data, indices) = (data?, indices?);
    let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), data.len())?;
    let mut out = data.get(..axis)?.to_vec();
    out.extend(indices);
    out.extend(data.get(axis + 1..)?.iter().cloned());
    (out.len() <= MAX_RANK).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::AttrValue;

    fn dims(v: &[u64]) -> Vec<Dim> {
        v.iter().map(|&x| Dim::Known(x)).collect()
    }

    #[test]
    fn windows_follow_onnx() {
        // 32 → 16 with a 3x3, stride 2, pad 1 conv; SAME_UPPER 7/2 → 4; VALID (7-3)/2+1 = 3
        assert_eq!(window(&Dim::Known(32), 3, 2, 1, (1, 1), "NOTSET", false), Dim::Known(16));
        assert_eq!(window(&Dim::Known(7), 3, 2, 1, (0, 0), "SAME_UPPER", false), Dim::Known(4));
        assert_eq!(window(&Dim::Known(7), 3, 2, 1, (0, 0), "VALID", false), Dim::Known(3));
        assert_eq!(window(&Dim::Known(6), 3, 2, 1, (0, 0), "NOTSET", true), Dim::Known(3));
        // a kernel larger than the input cannot be computed, absurd values do not overflow
        assert_eq!(window(&Dim::Known(2), 5, 1, 1, (0, 0), "NOTSET", false), unknown());
        assert_eq!(window(&Dim::Known(u64::MAX), 3, 1, u64::MAX, (u64::MAX, 1), "NOTSET", false), unknown());
    }

    #[test]
    fn matmul_broadcast_and_reshape() {
        let sym = Dim::Symbolic("batch".into());
        let a = vec![sym.clone(), Dim::Known(8), Dim::Known(64)];
        assert_eq!(matmul(Some(a), Some(dims(&[64, 32]))), Some(vec![sym.clone(), Dim::Known(8), Dim::Known(32)]));
        assert_eq!(broadcast(&dims(&[4, 1, 3]), &dims(&[5, 1])), Some(dims(&[4, 5, 3])));
        assert_eq!(reshape(Some(dims(&[2, 3, 4])), Some(vec![0, -1])), Some(dims(&[2, 12])));
        assert_eq!(unsqueeze(Some(dims(&[3])), Some(vec![0, -1])), Some(dims(&[1, 3, 1])));
        assert_eq!(squeeze(Some(dims(&[1, 3, 1])), None), Some(dims(&[3])));
    }

    #[test]
    fn hostile_ranks_are_refused_not_walked() {
        use crate::model::graph::{Attribute, Tensor, TensorKind};
        let tensor = |name: &str, shape: Option<Vec<Dim>>| Tensor {
            name: name.into(),
            kind: TensorKind::Activation,
            dtype: None,
            shape,
            producer: None,
            consumers: vec![],
            data: None,
        };
        let mut g = Graph::default();
        g.tensors.push(tensor("x", Some(vec![Dim::Known(1); 1_000_000])));
        g.tensors.push(tensor("y", None));
        g.tensors.push(tensor("z", Some(dims(&[2, 3]))));
        g.tensors.push(tensor("w", None));
        let node = |op: &str, input: usize, output: usize, attributes: Vec<Attribute>| Node {
            name: String::new(),
            op_type: op.into(),
            domain: String::new(),
            scope: String::new(),
            inputs: vec![Some(input)],
            outputs: vec![output],
            attributes,
            parent: None,
            depth: 0,
            in_cycle: false,
        };
        let axes = Attribute { name: "axes".into(), value: AttrValue::Ints((0..1_000_000).collect()) };
        g.nodes.push(node("Relu", 0, 1, vec![]));
        g.nodes.push(node("Unsqueeze", 2, 3, vec![axes]));
        infer_shapes(&mut g, &[0, 1]);
        assert_eq!(g.tensors[1].shape, None);
        assert_eq!(g.tensors[3].shape, None);
    }
}
