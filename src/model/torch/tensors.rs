//! The tensors (and numbers) of a torch pickle, by attribute path. An allow-list of
//! calls is interpreted: `torch._utils._rebuild_tensor_v2`, `_rebuild_qtensor` (per-tensor
//! and per-channel affine), `_rebuild_parameter`; storages are the archive's entries named
//! by the persistent id `('storage', torch.<Type>Storage, key, location, numel)`. Every
//! other call is a container of named values (an `OrderedDict`, a module's `__dict__`),
//! walked with a budget and a depth limit.

use super::archive::{Archive, EntryBytes};
use super::pickle::{Obj, Pickle, Value};
use crate::model::DType;

/// The most values one walk visits (a pickle's references can form a DAG much larger
/// than the pickle).
const MAX_VISITS: usize = 5_000_000;
/// The deepest nesting walked.
const MAX_DEPTH: usize = 256;

/// How a quantized tensor maps integers to reals.
#[derive(Clone, Debug, PartialEq)]
pub enum TorchQuant {
    PerTensor {
        scale: f64,
        zero_point: i64,
    },
    PerChannel {
        scales: Vec<f64>,
        zero_points: Vec<i64>,
        axis: usize,
    },
    /// `per_channel_affine_float_qparams` (quantized embeddings): real zero points.
    PerChannelFloat {
        scales: Vec<f64>,
        zero_points: Vec<f64>,
        axis: usize,
    },
}

/// A tensor as the pickle describes it: a view of a storage entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor {
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// In elements.
    pub stride: Vec<u64>,
    pub offset: u64,
    pub storage: String,
    pub quant: Option<TorchQuant>,
}

impl TorchTensor {
    /// Number of elements (saturating: a hostile shape is then refused against its
    /// storage, never overflows).
    #[must_use]
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// The strides of a C-ordered (row-major) tensor of this shape.
    #[must_use]
    pub fn contiguous_stride(&self) -> Vec<u64> {
        let mut s = vec![1u64; self.shape.len()];
        for k in (0..self.shape.len().saturating_sub(1)).rev() {
            s[k] = s[k + 1].saturating_mul(self.shape[k + 1].max(1));
        }
        s
    }
}

/// What a path holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Found {
    Tensor(TorchTensor),
    Number(f64),
    /// A TorchScript object of this class (`__torch__.…` module and name): its code may
    /// hold what its attributes do not (a quantized Linear's output scale).
    Class(String, String),
    /// A tensor that cannot be read, and why (the rest of the file still is).
    Refused(String),
}

/// The dtype of a storage class (`torch.FloatStorage`, `torch.QInt8Storage`, …).
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::Float32,
        "DoubleStorage" => DType::Float64,
        "HalfStorage" => DType::Float16,
        "BFloat16Storage" => DType::BFloat16,
        "LongStorage" => DType::Int64,
        "IntStorage" | "QInt32Storage" => DType::Int32,
        "ShortStorage" => DType::Int16,
        "CharStorage" | "QInt8Storage" => DType::Int8,
        "ByteStorage" | "QUInt8Storage" => DType::Uint8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

struct Walker<'p, 'a> {
    p: &'p Pickle,
    archive: &'p Archive<'a>,
    visits: usize,
    /// Objects already walked: each once, at the first path that reaches it (modules
    /// refer back to their parents; shared values need no second visit).
    seen: Vec<bool>,
    out: Vec<(String, Found)>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        #[allow(clippy::cast_precision_loss)]
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

impl Walker<'_, '_> {
    fn u64s(&self, v: &Value, what: &str) -> Result<Vec<u64>, String> {
        let seq = self.p.seq(v).ok_or_else(|| format!("{what} is not a tuple"))?;
        seq.iter()
            .map(|x| int(x).and_then(|i| u64::try_from(i).ok()).ok_or_else(|| format!("{what} holds a non-size")))
            .collect()
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, …)` and
    /// `_rebuild_qtensor(storage, offset, size, stride, qparams, …)`.
    fn tensor(&self, args: &Value, quantized: bool) -> Result<TorchTensor, String> {
        let a = self.p.seq(args).ok_or("tensor arguments are not a tuple")?;
        let [storage, offset, size, stride, ..] = a else { return Err("too few tensor arguments".into()) };
        let Some(Obj::Persistent(pid)) = self.p.obj(storage) else { return Err("no storage reference".into()) };
        let pid = self.p.seq(pid).ok_or("storage reference is not a tuple")?;
        let [Value::Str(tag), Value::Global(_, class), Value::Str(key), _location, ..] = pid else {
            return Err("storage reference is not ('storage', type, key, location, numel)".into());
        };
        if tag != "storage" {
            return Err(format!("persistent id `{tag}` is not a storage"));
        }
        let dtype = storage_dtype(class).ok_or_else(|| format!("storage type {class} is not read"))?;
        let t = TorchTensor {
            dtype,
            shape: self.u64s(size, "size")?,
            stride: self.u64s(stride, "stride")?,
            offset: int(offset).and_then(|o| u64::try_from(o).ok()).ok_or("bad storage offset")?,
            storage: key.clone(),
            quant: if quantized {
                let q = a.get(4).ok_or("no quantizer parameters")?;
                Some(self.qparams(q)?)
            } else {
                None
            },
        };
        if t.shape.len() != t.stride.len() {
            return Err(format!("size {:?} and stride {:?} differ in rank", t.shape, t.stride));
        }
        Ok(t)
    }

    /// `(torch.per_tensor_affine, scale, zero_point)` or
    /// `(torch.per_channel_affine[_float_qparams], scales, zero_points, axis)`.
    fn qparams(&self, q: &Value) -> Result<TorchQuant, String> {
        let q = self.p.seq(q).ok_or("quantizer parameters are not a tuple")?;
        let Some(Value::Global(_, scheme)) = q.first() else { return Err("no quantization scheme".into()) };
        match (scheme.as_str(), q) {
            ("per_tensor_affine", [_, scale, zp, ..]) => Ok(TorchQuant::PerTensor {
                scale: float(scale).ok_or("scale is not a number")?,
                zero_point: int(zp).ok_or("zero point is not an integer")?,
            }),
            // PyTorch writes `per_channel_affine_float_qparams` (quantized embeddings) as
            // `per_channel_affine` with zero points in a float tensor
            ("per_channel_affine" | "per_channel_affine_float_qparams", [_, scales, zps, axis, ..]) => {
                let scales = self.values(scales)?;
                let axis = int(axis).and_then(|a| usize::try_from(a).ok()).ok_or("bad axis")?;
                let zps_float = self.tensor_value(zps)?.is_some_and(|t| t.dtype.is_float());
                let zps = self.values(zps)?;
                if zps_float || scheme.ends_with("float_qparams") {
                    return Ok(TorchQuant::PerChannelFloat { scales, zero_points: zps, axis });
                }
                if let Some(z) = zps.iter().find(|z| z.fract() != 0.0) {
                    return Err(format!("zero point {z} is not an integer"));
                }
                #[allow(clippy::cast_possible_truncation)]
                let zero_points = zps.iter().map(|z| *z as i64).collect();
                Ok(TorchQuant::PerChannel { scales, zero_points, axis })
            }
            (s, _) => Err(format!("quantization scheme {s} is not read")),
        }
    }

    /// The values of a small tensor (per-channel scales, zero points) as f64.
    fn values(&self, v: &Value) -> Result<Vec<f64>, String> {
        let t = self.tensor_value(v)?.ok_or("per-channel parameters are not a tensor")?;
        let data = read_contiguous(self.archive, &t, 1 << 24)?;
        super::decode_f64(&data, t.dtype)
            .ok_or_else(|| format!("per-channel parameters of {} not read", t.dtype.name()))
    }

    /// The tensor a value rebuilds, if it is one of the allow-listed calls.
    fn tensor_value(&self, v: &Value) -> Result<Option<TorchTensor>, String> {
        let Some(Obj::Call { callable: Value::Global(m, n), args, .. }) = self.p.obj(v) else { return Ok(None) };
        if m != "torch._utils" {
            return Ok(None);
        }
        match n.as_str() {
            "_rebuild_tensor_v2" => self.tensor(args, false).map(Some),
            "_rebuild_qtensor" => self.tensor(args, true).map(Some),
            "_rebuild_parameter" | "_rebuild_parameter_with_state" => {
                let data = self.p.seq(args).and_then(<[Value]>::first).ok_or("parameter without data")?;
                self.tensor_value(data)
            }
            other => Err(format!("torch._utils.{other} is not on the allow-list")),
        }
    }

    fn walk(&mut self, v: &Value, path: &str, depth: usize) -> Result<(), String> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(format!("more than {MAX_VISITS} values reached (shared references?)"));
        }
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        match v {
            Value::Float(_) | Value::Int(_) if !path.is_empty() => {
                self.out.push((path.to_string(), Found::Number(float(v).unwrap_or(f64::NAN))));
                return Ok(());
            }
            Value::Obj(_) => {}
            _ => return Ok(()),
        }
        match self.tensor_value(v) {
            Ok(Some(t)) => {
                self.out.push((path.to_string(), Found::Tensor(t)));
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => {
                self.out.push((path.to_string(), Found::Refused(e)));
                return Ok(());
            }
        }
        let Some(obj) = self.p.obj(v) else { return Ok(()) };
        if let Value::Obj(i) = v {
            match self.seen.get_mut(*i) {
                Some(seen) if *seen => return Ok(()),
                Some(seen) => *seen = true,
                None => return Ok(()),
            }
        }
        match obj {
            Obj::Tuple(items) | Obj::List(items) => {
                for (k, x) in items.iter().enumerate() {
                    self.walk(x, &join(path, &k.to_string()), depth + 1)?;
                }
            }
            Obj::Dict(entries) => self.entries(entries, path, depth)?,
            Obj::Call { callable, args, state, items, list } => {
                if let Value::Global(m, n) = callable
                    && m.starts_with("__torch__.")
                    && !path.is_empty()
                {
                    self.out.push((path.to_string(), Found::Class(m.clone(), n.clone())));
                }
                // the arguments of a call off the allow-list (a `reduce_graph_module(body,
                // …)`): their values belong to the object made, at its path
                if let Some(args) = self.p.seq(args) {
                    for a in args {
                        match self.p.obj(a) {
                            Some(Obj::Dict(entries)) => self.entries(entries, path, depth)?,
                            _ => self.walk(a, path, depth + 1)?,
                        }
                    }
                }
                self.entries(items, path, depth)?;
                for (k, x) in list.iter().enumerate() {
                    self.walk(x, &join(path, &k.to_string()), depth + 1)?;
                }
                if let Some(state) = state {
                    // a module's __dict__: its children, parameters and buffers are
                    // under `_modules`, `_parameters`, `_buffers`, named without them
                    match self.p.obj(state) {
                        Some(Obj::Dict(entries)) => self.entries(entries, path, depth)?,
                        Some(Obj::Tuple(items)) if self.quantized_state(items, path) => {}
                        _ => self.walk(state, path, depth + 1)?,
                    }
                }
            }
            Obj::Persistent(_) => {}
        }
        Ok(())
    }

    /// A quantized module's `__getstate__` tuple (conv: `(in, out, kernel, stride,
    /// padding, dilation, transposed, output_padding, groups, padding_mode, weight, bias,
    /// scale, zero_point, training)`): its quantized weight, the bias after it, then the
    /// first float (output scale) and integer (output zero point). False when the tuple
    /// holds no quantized tensor.
    fn quantized_state(&mut self, items: &[Value], path: &str) -> bool {
        let mut weight = None;
        for (k, x) in items.iter().enumerate() {
            match self.tensor_value(x) {
                Ok(Some(t)) if t.quant.is_some() => {
                    weight = Some((k, t));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    self.out.push((join(path, "weight"), Found::Refused(e)));
                    return true;
                }
            }
        }
        let Some((at, w)) = weight else { return false };
        self.out.push((join(path, "weight"), Found::Tensor(w)));
        let rest = items.get(at + 1..).unwrap_or_default();
        match rest.first().map(|b| self.tensor_value(b)) {
            Some(Ok(Some(b))) => self.out.push((join(path, "bias"), Found::Tensor(b))),
            Some(Err(e)) => self.out.push((join(path, "bias"), Found::Refused(e))),
            _ => {}
        }
        if let Some(s) = rest.iter().find_map(|v| if let Value::Float(f) = v { Some(*f) } else { None }) {
            self.out.push((join(path, "scale"), Found::Number(s)));
            let after = rest.iter().skip_while(|v| !matches!(v, Value::Float(_))).skip(1);
            #[allow(clippy::cast_precision_loss)]
            if let Some(z) = after.clone().find_map(|v| if let Value::Int(i) = v { Some(*i) } else { None }) {
                self.out.push((join(path, "zero_point"), Found::Number(z as f64)));
            }
        }
        true
    }

    fn entries(&mut self, entries: &[(Value, Value)], path: &str, depth: usize) -> Result<(), String> {
        for (k, x) in entries {
            let key = match k {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            if matches!(key.as_str(), "_modules" | "_parameters" | "_buffers") {
                self.walk(x, path, depth + 1)?;
            } else {
                self.walk(x, &join(path, &key), depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Every tensor and number of the pickle, by attribute path, in pickle order; a tensor
/// that cannot be read (malformed, a call off the allow-list) is [`Found::Refused`].
///
/// # Errors
/// When the walk exceeds its budget or depth.
pub fn collect(p: &Pickle, archive: &Archive<'_>) -> Result<Vec<(String, Found)>, String> {
    let mut w = Walker { p, archive, visits: 0, seen: vec![false; p.objects.len()], out: Vec::new() };
    if let Some(root) = &p.root {
        w.walk(root, "", 0)?;
    }
    Ok(w.out)
}

/// The elements of `t` in C order as bytes of its dtype, checked against its storage
/// entry (at most `max` elements).
///
/// # Errors
/// When the storage is missing or shorter than the view needs.
pub fn read_contiguous(archive: &Archive<'_>, t: &TorchTensor, max: u64) -> Result<Vec<u8>, String> {
    let entry = view(archive, t)?;
    let bytes = entry.bytes();
    let size = t.dtype.byte_len(1).ok_or("no element size")?;
    let size = usize::try_from(size).map_err(|_| "element size")?;
    if t.numel() > max {
        return Err(format!("{} elements, more than {max}", t.numel()));
    }
    if t.stride == t.contiguous_stride() {
        let start = usize::try_from(t.offset).map_err(|_| "offset")? * size;
        let len = usize::try_from(t.numel()).map_err(|_| "size")? * size;
        return Ok(bytes.get(start..start + len).ok_or("storage shorter than the tensor")?.to_vec());
    }
    // a strided view (channels-last): gathered element by element in C order
    let n = usize::try_from(t.numel()).map_err(|_| "size")?;
    let mut out = Vec::with_capacity(n * size);
    let mut index = vec![0u64; t.shape.len()];
    for _ in 0..n {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<u64>();
        let at = usize::try_from(at).map_err(|_| "offset")? * size;
        out.extend_from_slice(bytes.get(at..at + size).ok_or("storage shorter than the tensor")?);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

/// The storage entry of `t`, checked to hold every element the view reaches.
///
/// # Errors
/// When the entry is missing or too short for the view.
pub fn view<'a>(archive: &Archive<'a>, t: &TorchTensor) -> Result<EntryBytes<'a>, String> {
    let entry = archive.entry(&format!("data/{}", t.storage), u64::MAX)?;
    let size = t.dtype.byte_len(1).ok_or("no element size")?;
    // the last element the view reaches, in checked arithmetic
    let mut last = t.offset;
    for (d, s) in t.shape.iter().zip(&t.stride) {
        if *d == 0 {
            last = 0;
            break;
        }
        last = (d - 1).checked_mul(*s).and_then(|x| last.checked_add(x)).ok_or("stride extent overflows")?;
    }
    let need = if t.numel() == 0 {
        0
    } else {
        last.checked_add(1).and_then(|n| n.checked_mul(size)).ok_or("size overflows")?
    };
    let have = entry.bytes().len() as u64;
    if need > have {
        return Err(format!("storage {} holds {have} bytes, the tensor reaches {need}", t.storage));
    }
    Ok(entry)
}
