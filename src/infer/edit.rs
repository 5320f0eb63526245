//! Edits of a variant's quantization parameters, written into a copy of its ONNX file:
//! a layer's weight scale (a value, or a factor on every channel), its weight zero point,
//! its input or output activation scale (a factor). The original file is never touched;
//! the edited bytes are re-encoded with prost.

use prost::Message as _;
use tract_onnx::pb;

use crate::model::{ActRole, Graph, LayerWeight, TensorId, Variant, layer_activations};

/// What an edit changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    WeightScale,
    WeightZeroPoint,
    InputScale,
    OutputScale,
    /// Keep the layer in float: its parameters are the float variant's, its inputs and its
    /// output skip their quantize-dequantize (a `ReLU` the quantizer fused into one stays).
    Float,
}

/// How it changes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    Set(f64),
    Times(f64),
}

/// `LAYER.FIELD=V` or `LAYER.FIELD*=F`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub layer: String,
    pub field: Field,
    pub change: Change,
}

impl std::str::FromStr for Edit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(layer) = s.strip_suffix(".float").filter(|l| !l.is_empty() && !s.contains('=')) {
            return Ok(Self { layer: layer.to_string(), field: Field::Float, change: Change::Set(1.0) });
        }
        let usage = || {
            format!(
                "edits are LAYER.weight_scale=V, LAYER.weight_scale*=F, LAYER.weight_zero_point=Z, \
                 LAYER.input_scale*=F, LAYER.output_scale*=F or LAYER.float, not `{s}`"
            )
        };
        let (target, change) = if let Some((t, v)) = s.split_once("*=") {
            (t, Change::Times(v.trim().parse().map_err(|_| usage())?))
        } else {
            let (t, v) = s.split_once('=').ok_or_else(usage)?;
            (t, Change::Set(v.trim().parse().map_err(|_| usage())?))
        };
        let (layer, field) = target.rsplit_once('.').ok_or_else(usage)?;
        let field = match (field, change) {
            ("weight_scale", _) => Field::WeightScale,
            ("weight_zero_point", Change::Set(_)) => Field::WeightZeroPoint,
            ("input_scale", Change::Times(_)) => Field::InputScale,
            ("output_scale", Change::Times(_)) => Field::OutputScale,
            _ => return Err(usage()),
        };
        let ok = match change {
            Change::Set(v) | Change::Times(v) => v.is_finite() && (field == Field::WeightZeroPoint || v > 0.0),
        };
        if layer.is_empty() || !ok {
            return Err(usage());
        }
        Ok(Self { layer: layer.to_string(), field, change })
    }
}

/// The edit as `quantlens export --set` takes it (parsing it gives it back).
impl std::fmt::Display for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = match self.field {
            Field::Float => return write!(f, "{}.float", self.layer),
            Field::WeightScale => "weight_scale",
            Field::WeightZeroPoint => "weight_zero_point",
            Field::InputScale => "input_scale",
            Field::OutputScale => "output_scale",
        };
        match self.change {
            Change::Set(v) => write!(f, "{}.{field}={v}", self.layer),
            Change::Times(v) => write!(f, "{}.{field}*={v}", self.layer),
        }
    }
}

/// The index of the layer named `name` in `v` (its label, or its node name less
/// `QOperator`'s `_quant`).
fn find_layer(v: &Variant, name: &str) -> Result<usize, String> {
    let g = &v.model.graph;
    v.layers
        .iter()
        .position(|l| {
            g.node(l.node).is_some_and(|n| n.label(l.node) == name || n.name.trim_end_matches("_quant") == name)
        })
        .ok_or_else(|| format!("no layer `{name}` in {}", v.spec.name))
}

fn targets(v: &Variant, e: &Edit) -> Result<Vec<(TensorId, Vec<f64>)>, String> {
    let g = &v.model.graph;
    let layer = v.layers.get(find_layer(v, &e.layer)?).ok_or("no such layer")?;
    let apply = |x: f64| match e.change {
        Change::Set(v) => v,
        Change::Times(f) => x * f,
    };
    match e.field {
        Field::WeightScale | Field::WeightZeroPoint => {
            let LayerWeight::Quantized(q) = &layer.weight else {
                return Err(format!("`{}` has a float weight in {}", e.layer, v.spec.name));
            };
            let p = q.params.as_ref().ok_or_else(|| format!("`{}`'s weight parameters are unusable", e.layer))?;
            let (tensor, values): (Option<TensorId>, Vec<f64>) = if e.field == Field::WeightScale {
                (p.scale_tensor, p.scale.iter().map(|&s| apply(f64::from(s))).collect())
            } else {
                (p.zero_point_tensor, p.zero_point.iter().map(|&z| apply(f64::from(z))).collect())
            };
            let tensor = tensor.ok_or_else(|| format!("`{}`'s weight has no such tensor to edit", e.layer))?;
            Ok(vec![(tensor, values)])
        }
        Field::Float => Ok(Vec::new()),
        Field::InputScale | Field::OutputScale => {
            let role = if e.field == Field::InputScale { ActRole::Input } else { ActRole::Output };
            let acts: Vec<_> = layer_activations(g, layer.node).into_iter().filter(|a| a.role == role).collect();
            if acts.is_empty() {
                return Err(
                    format!("`{}` has no quantized {role:?} activation in {}", e.layer, v.spec.name).to_lowercase()
                );
            }
            let mut out = Vec::new();
            for a in acts {
                let new = vec![apply(f64::from(a.scale))];
                out.extend(a.scale_tensor.map(|t| (t, new.clone())));
                // a DequantizeLinear with a scale tensor of its own gets the same value
                out.extend(dq_scales(g, a.q_node).into_iter().map(|t| (t, new.clone())));
            }
            out.sort_by_key(|(t, _)| *t);
            out.dedup_by_key(|(t, _)| *t);
            Ok(out)
        }
    }
}

/// The scale tensors of the `DequantizeLinear`s consuming `QuantizeLinear` `q`.
fn dq_scales(g: &Graph, q: Option<usize>) -> Vec<TensorId> {
    let Some(out) = q.and_then(|q| g.node(q)?.outputs.first().copied()) else { return Vec::new() };
    g.tensor(out)
        .map(|t| t.consumers.iter().filter(|&&c| g.node(c).is_some_and(|n| n.op_type == "DequantizeLinear")))
        .into_iter()
        .flatten()
        .filter_map(|&c| g.input(c, 1))
        .collect()
}

/// The bytes of variant `vi`'s file with `edits` applied (`reference`: the float variant
/// whose parameters a layer kept in float takes).
///
/// # Errors
/// When an edit names no layer or field of the variant, a tensor to rewrite is not an
/// initializer of the main graph, or the file cannot be read or decoded.
pub fn apply_edits(variants: &[Variant], reference: usize, vi: usize, edits: &[Edit]) -> Result<Vec<u8>, String> {
    let mut proto = read_proto(variants.get(vi).ok_or("no such variant")?)?;
    let rows = if edits.iter().any(|e| e.field == Field::Float) {
        crate::model::match_layers(variants, reference)
    } else {
        Vec::new()
    };
    edit_proto(variants, reference, vi, &rows, edits, &mut proto)?;
    Ok(proto.encode_to_vec())
}

/// The protobuf of `v`'s file.
///
/// # Errors
/// When the file cannot be read or decoded.
pub fn read_proto(v: &Variant) -> Result<pb::ModelProto, String> {
    let path = &v.spec.path;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {e}: {}", path.display()))?;
    pb::ModelProto::decode(bytes.as_slice()).map_err(|e| format!("cannot decode {e}: {}", path.display()))
}

/// Applies `edits` to `proto`, variant `vi`'s decoded file; `rows` is the layer matching
/// (needed by `LAYER.float`).
///
/// # Errors
/// As [`apply_edits`].
pub fn edit_proto(
    variants: &[Variant],
    reference: usize,
    vi: usize,
    rows: &[crate::model::MatchRow],
    edits: &[Edit],
    proto: &mut pb::ModelProto,
) -> Result<(), String> {
    let v = variants.get(vi).ok_or("no such variant")?;
    let mut changes: Vec<(String, Vec<f64>)> = Vec::new();
    for e in edits {
        for (t, values) in targets(v, e)? {
            let name = v.model.graph.tensor(t).map(|t| t.name.clone()).unwrap_or_default();
            changes.retain(|(n, _)| *n != name);
            changes.push((name, values));
        }
    }
    let graph = proto.graph.as_mut().ok_or("the model has no graph")?;
    for (name, values) in changes {
        let init = graph
            .initializer
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("`{name}` is not an initializer of the main graph; it cannot be edited"))?;
        rewrite(init, &values)?;
    }
    // QDQ layers first (their rewrites keep node positions), then QOperator ones, whose
    // node becomes three, from the last in the graph to the first
    let mut qoperator = Vec::new();
    for e in edits.iter().filter(|e| e.field == Field::Float) {
        let li = find_layer(v, &e.layer)?;
        let node = v.layers.get(li).map_or(0, |l| l.node);
        let target = FloatTarget { variants, reference, vi, li, rows, layer: &e.layer };
        if let Some(slots) = qoperator_float_op(&v.model.graph, node) {
            qoperator.push((node, target, slots));
        } else {
            keep_in_float(&target, graph)?;
        }
    }
    qoperator.sort_by_key(|(n, _, _)| std::cmp::Reverse(*n));
    qoperator.dedup_by_key(|(n, _, _)| *n);
    for (node, target, slots) in qoperator {
        keep_qoperator_in_float(&target, node, slots, graph)?;
    }
    Ok(())
}

/// A layer to keep in float: layer `li` (named `layer`) of variant `vi`, its float
/// counterpart found through the matching `rows` in the reference variant.
#[derive(Clone, Copy)]
struct FloatTarget<'a> {
    variants: &'a [Variant],
    reference: usize,
    vi: usize,
    li: usize,
    rows: &'a [crate::model::MatchRow],
    layer: &'a str,
}

/// A `QOperator` layer's float op and its input slots: `(float op, [x, x_scale, x_zp],
/// weight, bias, [y_scale, y_zp])` (slots of the quantized node).
type QOperatorSlots = (&'static str, [usize; 3], usize, Option<usize>, Option<[usize; 2]>);

fn qoperator_float_op(g: &Graph, n: usize) -> Option<QOperatorSlots> {
    let node = g.node(n)?;
    Some(match node.op_type.as_str() {
        "QLinearConv" => ("Conv", [0, 1, 2], 3, Some(8), Some([6, 7])),
        "QLinearMatMul" => ("MatMul", [0, 1, 2], 3, None, Some([6, 7])),
        // QGemm without y_scale writes float
        "QGemm" => ("Gemm", [0, 1, 2], 3, Some(6), g.input(n, 7).map(|_| [7, 8])),
        _ => return None,
    })
}

/// The float parameters of layer `li` of variant `vi`, from its matched float layer: an
/// initializer per quantized parameter, added to `graph` once, by float-op slot.
fn float_params(t: &FloatTarget<'_>, graph: &mut pb::GraphProto) -> Result<Vec<(usize, String)>, String> {
    let FloatTarget { variants, reference, vi, li, rows, layer } = *t;
    let v = variants.get(vi).ok_or("no such variant")?;
    let l = v.layers.get(li).ok_or("no such layer")?;
    let refv = variants.get(reference).ok_or("no reference variant")?;
    let float_layer = rows
        .iter()
        .find(|r| r.members.get(vi).copied().flatten().map(|(i, _)| i) == Some(li))
        .and_then(|r| r.members.get(reference).copied().flatten())
        .and_then(|(rli, _)| refv.layers.get(rli))
        .ok_or_else(|| format!("`{layer}` has no float counterpart"))?;
    let mut out = Vec::new();
    for (role, slot, w) in l.params() {
        if matches!(w, LayerWeight::Float(_)) {
            continue;
        }
        let key = crate::report::ParamKey::of(role, slot);
        let Some(LayerWeight::Float(ft)) = key.find(float_layer) else {
            return Err(format!("`{layer}`'s {} has no float counterpart", role.name()));
        };
        let t = refv.model.graph.tensor(*ft).ok_or("no float tensor")?;
        let d = t.data.as_ref().ok_or("the float tensor has no data")?;
        let values = d.to_f32_vec().map_err(|e| e.to_string())?;
        let name = format!("{}__quantlens_float", t.name);
        if !graph.initializer.iter().any(|i| i.name == name) {
            graph.initializer.push(pb::TensorProto {
                name: name.clone(),
                dims: d.shape.iter().map(|&x| i64::try_from(x).unwrap_or(0)).collect(),
                data_type: 1,
                raw_data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ..Default::default()
            });
        }
        out.push((slot, name));
    }
    Ok(out)
}

/// Runs `QOperator` layer `layer` (`QLinearConv`, `QLinearMatMul`, `QGemm`) in float: its
/// node becomes `DequantizeLinear` of its input, the float op with the float variant's
/// weight and bias (and the node's own attributes), and `QuantizeLinear` of the result
/// with the node's output parameters, so that the next quantized op reads what it expects.
fn keep_qoperator_in_float(
    t: &FloatTarget<'_>,
    n: usize,
    (op, [x, xs, xz], w_slot, bias_slot, y): QOperatorSlots,
    graph: &mut pb::GraphProto,
) -> Result<(), String> {
    let layer = t.layer;
    let params = float_params(t, graph)?;
    let node = graph.node.get(n).ok_or("the layer's node is not in the main graph")?.clone();
    let input = |k: usize| node.input.get(k).filter(|s| !s.is_empty()).cloned();
    let (Some(_), Some(out)) = (input(x), node.output.first().cloned()) else {
        return Err(format!("`{layer}` lacks its input or output"));
    };
    let float = |slot: usize| params.iter().find(|(s, _)| *s == slot).map(|(_, name)| name.clone());
    let weight = float(1).ok_or_else(|| format!("`{layer}`'s weight (input {w_slot}) has no float counterpart"))?;
    let x_float = format!("{}__quantlens_x", node.name);
    let y_float = if y.is_some() { format!("{out}__quantlens_float") } else { out.clone() };
    let mut inputs = vec![x_float.clone(), weight];
    if let Some(b) = bias_slot.and_then(input).and(float(2)) {
        inputs.push(b);
    }
    let named = |suffix: &str| format!("{}__quantlens_{suffix}", node.name);
    let mut nodes = vec![
        pb::NodeProto {
            name: named("dq"),
            op_type: "DequantizeLinear".into(),
            input: [input(x), input(xs), input(xz)].into_iter().map(Option::unwrap_or_default).collect(),
            output: vec![x_float],
            ..Default::default()
        },
        pb::NodeProto {
            name: named("float"),
            op_type: op.into(),
            input: inputs,
            output: vec![y_float.clone()],
            attribute: node.attribute.iter().filter(|a| a.name != "beta").cloned().collect(),
            ..Default::default()
        },
    ];
    if let Some([ys, yz]) = y {
        nodes.push(pb::NodeProto {
            name: named("q"),
            op_type: "QuantizeLinear".into(),
            input: vec![y_float, input(ys).unwrap_or_default(), input(yz).unwrap_or_default()],
            output: vec![out],
            ..Default::default()
        });
    }
    graph.node.splice(n..=n, nodes);
    Ok(())
}

/// Rewires layer `layer` of variant `vi` in `graph` (its protobuf) to run in float: float
/// parameters from the reference variant's matched layer, its input activations read
/// before their `QuantizeLinear`, its output not quantized.
fn keep_in_float(t: &FloatTarget<'_>, graph: &mut pb::GraphProto) -> Result<(), String> {
    let layer = t.layer;
    let v = t.variants.get(t.vi).ok_or("no such variant")?;
    let g = &v.model.graph;
    let l = v.layers.get(t.li).ok_or("no such layer")?;
    let op = g.node(l.node).map(|n| n.op_type.clone()).unwrap_or_default();
    if op.starts_with("QLinear") || op.ends_with("Integer") || op.starts_with("DynamicQuantize") {
        return Err(format!("`{layer}` is {op}: QDQ layers, QLinearConv, QLinearMatMul and QGemm are kept in float"));
    }
    let node_index = l.node;
    let mut new_inputs = float_params(t, graph)?;
    // the inputs are read before their QuantizeLinear. An input whose quantization starts
    // at 0 carries the previous layer's fused ReLU: the float input is that ReLU of the
    // tensor before its QuantizeLinear
    for a in layer_activations(g, l.node).into_iter().filter(|a| a.role == ActRole::Input) {
        let relu = a.dtype.int_range().is_some_and(|(qmin, _)| i64::from(a.zero_point) == qmin);
        if relu {
            let out = format!("{}__quantlens_relu", a.tensor);
            if !graph.node.iter().any(|n| n.output.contains(&out)) {
                graph.node.push(pb::NodeProto {
                    name: out.clone(),
                    op_type: "Relu".into(),
                    input: vec![a.tensor.clone()],
                    output: vec![out.clone()],
                    ..Default::default()
                });
            }
            new_inputs.push((a.slot, out));
        } else {
            new_inputs.push((a.slot, a.tensor.clone()));
        }
    }
    let node = graph.node.get_mut(node_index).ok_or("the layer's node is not in the main graph")?;
    for (slot, name) in new_inputs {
        if let Some(input) = node.input.get_mut(slot) {
            *input = name;
        }
    }
    // the output leaves in float: each DequantizeLinear of its quantization becomes the
    // identity of the tensor before the QuantizeLinear, or its ReLU where the range starts
    // at 0 (quantizers fold the following ReLU into it), so every consumer, a graph output
    // too, reads the layer's float output
    for a in layer_activations(g, l.node).into_iter().filter(|a| a.role == ActRole::Output) {
        let Some(q) = a.q_node else { continue };
        let (Some(pre), Some(&qout)) = (g.input(q, 0), g.node(q).and_then(|n| n.outputs.first())) else { continue };
        let pre = g.tensor(pre).map(|t| t.name.clone()).unwrap_or_default();
        let relu = a.dtype.int_range().is_some_and(|(qmin, _)| i64::from(a.zero_point) == qmin);
        let dqs = g.tensor(qout).map(|t| t.consumers.clone()).unwrap_or_default();
        for dq in dqs.into_iter().filter(|&c| g.node(c).is_some_and(|n| n.op_type == "DequantizeLinear")) {
            let node = graph.node.get_mut(dq).ok_or("a DequantizeLinear is not in the main graph")?;
            node.op_type = if relu { "Relu" } else { "Identity" }.into();
            node.input = vec![pre.clone()];
            node.attribute.clear();
            node.domain.clear();
        }
    }
    Ok(())
}

/// Replaces an initializer's values (float, int8, uint8, int32), keeping its type and
/// dims; integers are rounded and must fit.
#[allow(clippy::cast_possible_truncation)]
fn rewrite(t: &mut pb::TensorProto, values: &[f64]) -> Result<(), String> {
    let n: i64 = t.dims.iter().product();
    if usize::try_from(n).ok() != Some(values.len()) {
        return Err(format!("`{}` holds {n} values, the edit {}", t.name, values.len()));
    }
    if t.data_location == Some(1) {
        return Err(format!("`{}` is in external data; it cannot be edited", t.name));
    }
    let int = |lo: f64, hi: f64| -> Result<Vec<i64>, String> {
        values
            .iter()
            .map(|v| {
                let r = v.round();
                if (lo..=hi).contains(&r) { Ok(r as i64) } else { Err(format!("{v} does not fit `{}`", t.name)) }
            })
            .collect()
    };
    let raw: Vec<u8> = match t.data_type {
        1 => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        2 => int(0.0, 255.0)?.into_iter().map(|v| v as u8).collect(),
        3 => int(-128.0, 127.0)?.into_iter().map(|v| (v as i8).to_le_bytes()[0]).collect(),
        6 => {
            int(f64::from(i32::MIN), f64::from(i32::MAX))?.into_iter().flat_map(|v| (v as i32).to_le_bytes()).collect()
        }
        other => return Err(format!("`{}` has data type {other}; only float, int8, uint8, int32 are edited", t.name)),
    };
    t.float_data.clear();
    t.int32_data.clear();
    t.raw_data = raw;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_parse() {
        let e: Edit = "p2o.Conv.28.weight_scale*=0.5".parse().unwrap();
        assert_eq!((e.layer.as_str(), e.field, e.change), ("p2o.Conv.28", Field::WeightScale, Change::Times(0.5)));
        let e: Edit = "fc.weight_zero_point=3".parse().unwrap();
        assert_eq!((e.field, e.change), (Field::WeightZeroPoint, Change::Set(3.0)));
        let e: Edit = "p2o.Conv.28.float".parse().unwrap();
        assert_eq!((e.layer.as_str(), e.field), ("p2o.Conv.28", Field::Float));
        for bad in
            ["fc.input_scale=2", "fc.weight_scale=-1", "weight_scale*=2", "fc.bias_scale*=2", "fc.weight_scale*=x"]
        {
            assert!(bad.parse::<Edit>().is_err(), "{bad}");
        }
        for text in ["a.weight_scale*=0.5", "a.b.weight_zero_point=3", "c.float", "d.output_scale*=1.25"] {
            assert_eq!(text.parse::<Edit>().unwrap().to_string(), text, "written as it is read");
        }
    }
}
