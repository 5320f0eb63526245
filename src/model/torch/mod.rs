//! The PyTorch reader: `.pt`/`.pth` archives (`torch.save` of a `state_dict` or a whole
//! module, `torch.jit.save` of TorchScript) read without running any Python: the pickle is
//! parsed into plain values (`pickle.rs`), an allow-list of tensor calls is interpreted
//! (`tensors.rs`) over the archive's storage entries (`archive.rs`), and the modules found
//! are written as ONNX nodes in registration order (a weighted module becomes a `Conv` or
//! `Gemm` named by its path, a quantized weight a `DequantizeLinear` of its integers, a
//! module's output `scale`/`zero_point` a `QuantizeLinear → DequantizeLinear`), so every
//! later stage (layers, quantization, statistics, matching by name) is the ONNX one.
//! Stored weights stay ranges of the file's bytes.

pub mod archive;
pub mod pickle;
pub mod tensors;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb;

use self::archive::{Archive, EntryBytes, MAX_PICKLE_BYTES};
use self::tensors::{Found, TorchQuant, TorchTensor};
use super::format::{ImportError, Model};
use super::tensor::FileBytes;
use crate::model::DType;

/// The values of little-endian `bytes` of `dtype` as f64 (`None` for types not read).
#[must_use]
pub fn decode_f64(bytes: &[u8], dtype: DType) -> Option<Vec<f64>> {
    let w = |c: &[u8]| -> [u8; 8] { c.try_into().unwrap_or_default() };
    let h = |c: &[u8]| -> [u8; 4] { c.try_into().unwrap_or_default() };
    #[allow(clippy::cast_precision_loss)]
    Some(match dtype {
        DType::Float64 => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(w(c))).collect(),
        DType::Float32 => bytes.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(h(c)))).collect(),
        DType::Int64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(w(c)) as f64).collect(),
        DType::Int32 => bytes.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes(h(c)))).collect(),
        DType::Int8 => bytes.iter().map(|&b| f64::from(b.cast_signed())).collect(),
        DType::Uint8 => bytes.iter().map(|&b| f64::from(b)).collect(),
        _ => return None,
    })
}

/// A module as its tensors and numbers describe it.
#[derive(Debug, Default)]
struct Module {
    path: String,
    weight: Option<TorchTensor>,
    bias: Option<TorchTensor>,
    scale: Option<f64>,
    zero_point: Option<i64>,
    /// Why its weight could not be read (the module is left out, with an issue).
    refused: Option<String>,
}

/// A finding about one module: (subject, message, an error rather than a warning).
type Finding = (String, String, bool);

/// Which module and role a path names: `M.weight`, `M.bias`, `M.scale`, `M.zero_point`,
/// and a quantized Linear's packed weight and bias (`M._packed_params._packed_params.0`
/// and `.1` in a `state_dict`, the packed object's state in a pickled module).
fn role_of(path: &str) -> Option<(&str, &str)> {
    for (suffix, role) in [
        ("._packed_params._packed_params.0", "weight"),
        ("._packed_params._packed_params.1", "bias"),
        ("._packed_params._packed_params.0.0", "weight"),
        ("._packed_params._packed_params.0.1", "bias"),
        ("._packed_params._packed_params.weight", "weight"),
        ("._packed_params._packed_weight", "weight"),
        ("._packed_params._packed_params.bias", "bias"),
        ("._packed_params.weight", "weight"),
        ("._packed_params.bias", "bias"),
        (".weight", "weight"),
        (".bias", "bias"),
        (".scale", "scale"),
        (".zero_point", "zero_point"),
    ] {
        if let Some(m) = path.strip_suffix(suffix) {
            return Some((m, role));
        }
    }
    None
}

/// The output scale and zero point a TorchScript class's code passes to its quantized op
/// (`ops.quantized.linear(x, packed, 0.0832, 69)`: FX bakes them in for Linear).
fn code_qparams(archive: &Archive<'_>, module: &str, class: &str) -> Option<(f64, i64)> {
    let file = format!("code/{}.py", module.replace('.', "/"));
    let code = archive.entry(&file, 16 << 20).ok()?;
    let code = std::str::from_utf8(code.bytes()).ok()?;
    let start = code.find(&format!("class {class}("))?;
    let body = code.get(start..)?;
    let end = body.get(1..).and_then(|b| b.find("\nclass ")).map_or(body.len(), |e| e + 1);
    let re = regex::Regex::new(r"ops\.quantized\.\w+\([^()]*,\s*([-+0-9.eE]+),\s*(-?\d+)\)").ok()?;
    let c = re.captures(body.get(..end)?)?;
    Some((c.get(1)?.as_str().parse().ok()?, c.get(2)?.as_str().parse().ok()?))
}

/// The modules of the found values, in the order they first appear, and the tensors
/// refused outside any module.
fn modules(archive: &Archive<'_>, found: Vec<(String, Found)>) -> Result<(Vec<Module>, Vec<Finding>), String> {
    let mut out: Vec<Module> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut classes: HashMap<String, (String, String)> = HashMap::new();
    for (path, value) in found {
        if let Found::Class(m, c) = value {
            classes.insert(path, (m, c));
            continue;
        }
        let Some((m, role)) = role_of(&path) else {
            if let Found::Refused(reason) = value {
                findings.push((path, reason, true));
            }
            continue;
        };
        let i = *index.entry(m.to_string()).or_insert_with(|| {
            out.push(Module { path: m.to_string(), ..Module::default() });
            out.len() - 1
        });
        let Some(module) = out.get_mut(i) else { continue };
        let number = |v: &Found| -> Result<Option<f64>, String> {
            match v {
                Found::Number(x) => Ok(Some(*x)),
                Found::Tensor(t) if t.numel() == 1 => {
                    let b = tensors::read_contiguous(archive, t, 1)?;
                    Ok(decode_f64(&b, t.dtype).and_then(|v| v.first().copied()))
                }
                Found::Tensor(_) | Found::Class(..) | Found::Refused(_) => Ok(None),
            }
        };
        match (role, value) {
            (_, Found::Refused(reason)) => module.refused = Some(format!("{path}: {reason}")),
            ("weight", Found::Tensor(t)) => module.weight = Some(t),
            ("bias", Found::Tensor(t)) => module.bias = Some(t),
            ("scale", v) => module.scale = number(&v).map_err(|e| format!("{path}: {e}"))?,
            #[allow(clippy::cast_possible_truncation)]
            ("zero_point", v) => module.zero_point = number(&v).map_err(|e| format!("{path}: {e}"))?.map(|z| z as i64),
            _ => {}
        }
    }
    // TorchScript: what the attributes lack, the class's code may say
    for m in out.iter_mut().filter(|m| m.weight.as_ref().is_some_and(|w| w.quant.is_some()) && m.scale.is_none()) {
        if let Some((s, z)) = classes.get(&m.path).and_then(|(module, class)| code_qparams(archive, module, class)) {
            (m.scale, m.zero_point) = (Some(s), Some(z));
        }
    }
    Ok((out, findings))
}

fn onnx_type(d: DType) -> i32 {
    match d {
        DType::Float32 => 1,
        DType::Uint8 => 2,
        DType::Int8 => 3,
        DType::Int16 => 5,
        DType::Int32 => 6,
        DType::Int64 => 7,
        DType::Bool => 9,
        DType::Float16 => 10,
        DType::Float64 => 11,
        DType::BFloat16 => 16,
        _ => 0,
    }
}

/// The ONNX model being written, with the file ranges of its initializers.
struct Writer<'a> {
    archive: &'a Archive<'a>,
    graph: pb::GraphProto,
    ranges: Vec<Option<Range<usize>>>,
}

impl Writer<'_> {
    fn constant(&mut self, name: &str, dtype: DType, dims: &[u64], raw: Vec<u8>) {
        self.graph.initializer.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect(),
            data_type: onnx_type(dtype),
            raw_data: raw,
            ..Default::default()
        });
        self.ranges.push(None);
    }

    /// A tensor of the archive as an initializer: a range of the file when it is a stored,
    /// contiguous view; else its elements gathered.
    fn tensor(&mut self, name: &str, t: &TorchTensor) -> Result<(), String> {
        let entry = tensors::view(self.archive, t)?;
        let size = t.dtype.byte_len(1).and_then(|s| usize::try_from(s).ok()).ok_or("element size")?;
        if let (EntryBytes::Stored(r, _), true) = (&entry, t.stride == t.contiguous_stride()) {
            let start = usize::try_from(t.offset).ok().and_then(|o| o.checked_mul(size)).ok_or("offset")?;
            let len = usize::try_from(t.numel()).ok().and_then(|n| n.checked_mul(size)).ok_or("size")?;
            let range = r.start + start..r.start + start + len;
            self.constant(name, t.dtype, &t.shape, Vec::new());
            if let Some(last) = self.ranges.last_mut() {
                *last = Some(range);
            }
            return Ok(());
        }
        let raw = tensors::read_contiguous(self.archive, t, u64::MAX)?;
        self.constant(name, t.dtype, &t.shape, raw);
        Ok(())
    }

    fn node(&mut self, op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) {
        self.graph.node.push(pb::NodeProto {
            name: name.to_string(),
            op_type: op.to_string(),
            input: inputs.iter().map(ToString::to_string).collect(),
            output: vec![output.to_string()],
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A `QuantizeLinear → DequantizeLinear` of `x` with per-tensor parameters; returns
    /// the dequantized tensor's name.
    #[allow(clippy::cast_possible_truncation)]
    fn activation(&mut self, m: &str, x: &str, scale: f64, zero_point: i64) -> String {
        let dtype = if (0..=255).contains(&zero_point) { DType::Uint8 } else { DType::Int8 };
        let (s, z) = (format!("{m}.output_scale"), format!("{m}.output_zero_point"));
        self.constant(&s, DType::Float32, &[], (scale as f32).to_le_bytes().to_vec());
        self.constant(&z, dtype, &[], vec![zero_point.to_le_bytes()[0]]);
        let (q, dq) = (format!("{m}.output_quantized"), format!("{m}.output"));
        self.node("QuantizeLinear", &format!("{m}.output_QuantizeLinear"), &[x, &s, &z], &q, Vec::new());
        self.node("DequantizeLinear", &format!("{m}.output_DequantizeLinear"), &[&q, &s, &z], &dq, Vec::new());
        dq
    }

    /// The weight of `m`: its integers behind a `DequantizeLinear`, or the float tensor.
    #[allow(clippy::cast_possible_truncation)]
    fn weight(&mut self, m: &str, w: &TorchTensor) -> Result<String, String> {
        let Some(q) = &w.quant else {
            let name = format!("{m}.weight");
            self.tensor(&name, w)?;
            return Ok(name);
        };
        if let TorchQuant::PerChannelFloat { scales, zero_points, axis } = q {
            // real zero points have no ONNX form: dequantized here, `(q − zp)·scale` in f32
            // as PyTorch computes it, and written as the float weight
            let name = format!("{m}.weight");
            let values = dequantize_float_qparams(self.archive, w, scales, zero_points, *axis)?;
            self.constant(&name, DType::Float32, &w.shape, values.iter().flat_map(|v| v.to_le_bytes()).collect());
            return Ok(name);
        }
        let qname = format!("{m}.weight_quantized");
        self.tensor(&qname, w)?;
        let zp_type = if w.dtype == DType::Uint8 { DType::Uint8 } else { DType::Int8 };
        let (scales, zps, axis) = match q {
            TorchQuant::PerTensor { scale, zero_point } => (vec![*scale], vec![*zero_point], None),
            TorchQuant::PerChannelFloat { .. } => return Err("float zero points".into()),
            TorchQuant::PerChannel { scales, zero_points, axis, .. } => {
                let channels = w.shape.get(*axis).copied().ok_or_else(|| format!("axis {axis} out of range"))?;
                if scales.len() as u64 != channels || zero_points.len() as u64 != channels {
                    return Err(format!("{} scales for {channels} channels along axis {axis}", scales.len()));
                }
                (scales.clone(), zero_points.clone(), Some(*axis))
            }
        };
        if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("scale {bad} is not finite and positive"));
        }
        let (lo, hi) = if zp_type == DType::Uint8 { (0, 255) } else { (-128, 127) };
        if let Some(bad) = zps.iter().find(|z| !(lo..=hi).contains(*z)) {
            return Err(format!("zero point {bad} does not fit {}", zp_type.name()));
        }
        let dims: Vec<u64> = if axis.is_some() { vec![scales.len() as u64] } else { Vec::new() };
        let (s, z) = (format!("{m}.weight_scale"), format!("{m}.weight_zero_point"));
        self.constant(&s, DType::Float32, &dims, scales.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect());
        self.constant(&z, zp_type, &dims, zps.iter().map(|&x| x.to_le_bytes()[0]).collect());
        let attrs = axis
            .map(|a| {
                vec![pb::AttributeProto {
                    name: "axis".into(),
                    r#type: 2,
                    i: i64::try_from(a).unwrap_or(0),
                    ..Default::default()
                }]
            })
            .unwrap_or_default();
        let out = format!("{m}.weight");
        self.node("DequantizeLinear", &format!("{m}.weight_DequantizeLinear"), &[&qname, &s, &z], &out, attrs);
        Ok(out)
    }
}

/// The values of a `per_channel_affine_float_qparams` tensor: `(q − zp[c])·scale[c]` in f32.
#[allow(clippy::cast_possible_truncation)]
fn dequantize_float_qparams(
    archive: &Archive<'_>,
    w: &TorchTensor,
    scales: &[f64],
    zero_points: &[f64],
    axis: usize,
) -> Result<Vec<f32>, String> {
    let channels = w.shape.get(axis).copied().ok_or_else(|| format!("axis {axis} out of range"))?;
    if scales.len() as u64 != channels || zero_points.len() as u64 != channels {
        return Err(format!("{} scales for {channels} channels along axis {axis}", scales.len()));
    }
    if let Some(bad) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("scale {bad} is not finite and positive"));
    }
    let ints = decode_f64(&tensors::read_contiguous(archive, w, u64::MAX)?, w.dtype)
        .ok_or_else(|| format!("{} integers are not read", w.dtype.name()))?;
    let inner: u64 = w.shape.iter().skip(axis + 1).product();
    let inner = usize::try_from(inner.max(1)).map_err(|_| "shape")?;
    let channels = usize::try_from(channels).map_err(|_| "shape")?;
    Ok(ints
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let c = (i / inner) % channels.max(1);
            let (s, z) = (scales.get(c).copied().unwrap_or(f64::NAN), zero_points.get(c).copied().unwrap_or(0.0));
            (q as f32 - z as f32) * s as f32
        })
        .collect())
}

/// The modules as an ONNX graph: one chain in registration order.
/// A module that cannot be written is left out with a finding; none at all is an error
/// that names the first reasons.
fn write_graph(
    archive: &Archive<'_>,
    modules: &[Module],
    name: &str,
    mut findings: Vec<Finding>,
) -> Result<(pb::ModelProto, Vec<Option<Range<usize>>>, Vec<Finding>), String> {
    let mut w =
        Writer { archive, graph: pb::GraphProto { name: name.to_string(), ..Default::default() }, ranges: Vec::new() };
    w.graph.input.push(pb::ValueInfoProto { name: "input".into(), ..Default::default() });
    let mut x = "input".to_string();
    for m in modules {
        let p = &m.path;
        if let Some(reason) = &m.refused {
            findings.push((p.clone(), format!("left out: {reason}"), true));
            continue;
        }
        // a 1-D weight is a norm layer's scale (BatchNorm, LayerNorm): folded away or kept
        // in float by exporters, not a layer quantlens compares
        if let Some(weight) = m.weight.as_ref().filter(|w| w.shape.len() >= 2) {
            if matches!(weight.quant, Some(TorchQuant::PerChannelFloat { .. })) {
                let note = "per_channel_affine_float_qparams (real zero points): dequantized on read, shown as float";
                findings.push((p.clone(), note.into(), false));
            }
            let weight_name = match w.weight(p, weight) {
                Ok(n) => n,
                Err(e) => {
                    findings.push((p.clone(), format!("left out: {p}.weight: {e}"), true));
                    continue;
                }
            };
            let mut inputs = vec![x.clone(), weight_name];
            if let Some(b) = &m.bias {
                let b_name = format!("{p}.bias");
                match w.tensor(&b_name, b) {
                    Ok(()) => inputs.push(b_name),
                    Err(e) => findings.push((p.clone(), format!("bias left out: {e}"), true)),
                }
            }
            let (op, attrs) = if weight.shape.len() >= 3 {
                ("Conv", Vec::new())
            } else {
                ("Gemm", vec![pb::AttributeProto { name: "transB".into(), r#type: 2, i: 1, ..Default::default() }])
            };
            let out = format!("{p}.out");
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            w.node(op, p, &refs, &out, attrs);
            x = out;
        }
        if let (Some(s), Some(z)) = (m.scale, m.zero_point) {
            if s.is_finite() && s > 0.0 {
                x = w.activation(p, &x, s, z);
            } else {
                findings.push((p.clone(), format!("output scale {s} is not finite and positive: left out"), true));
            }
        }
    }
    if w.graph.node.is_empty() {
        let reasons: Vec<String> = findings.iter().take(3).map(|(s, m, _)| format!("{s}: {m}")).collect();
        let why = if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) };
        return Err(format!("no module with a weight or a quantization could be read{why}"));
    }
    w.graph.output.push(pb::ValueInfoProto { name: x, ..Default::default() });
    let proto = pb::ModelProto {
        ir_version: 8,
        producer_name: "pytorch (read by quantlens)".into(),
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(w.graph),
        ..Default::default()
    };
    Ok((proto, w.ranges, findings))
}

/// Reads a torch archive held in `bytes` (the file at `path`).
///
/// # Errors
/// When it is not a torch zip archive, its pickle cannot be read, or it holds no module
/// quantlens can show; the message names the reason.
pub(crate) fn model_from_buffer(bytes: FileBytes, path: &Path) -> Result<Model, ImportError> {
    let fail = |reason: String| ImportError::NotTorch { path: path.to_path_buf(), reason };
    let bytes = Arc::new(bytes);
    let (proto, ranges, findings) = {
        let archive = Archive::open(&bytes).map_err(fail)?;
        let pickle = archive.entry("data.pkl", MAX_PICKLE_BYTES).map_err(fail)?;
        let parsed = pickle::parse(pickle.bytes(), usize::try_from(MAX_PICKLE_BYTES).unwrap_or(usize::MAX))
            .map_err(|e| fail(e.to_string()))?;
        let found = tensors::collect(&parsed, &archive).map_err(fail)?;
        let (modules, findings) = modules(&archive, found).map_err(fail)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        write_graph(&archive, &modules, &name, findings).map_err(fail)?
    };
    let mut model = super::onnx::import::model_from_parts(proto, path, bytes, ranges)?;
    model.graph.issues.extend(findings.into_iter().map(|(subject, message, error)| super::graph::Issue {
        severity: if error { super::graph::Severity::Error } else { super::graph::Severity::Warning },
        subject,
        message,
    }));
    Ok(model)
}
