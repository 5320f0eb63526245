//! Reads an ONNX file (tract-onnx's protobuf) into our [`Graph`], validating every
//! declared size before trusting it: hostile files yield errors, never panics or huge
//! allocations.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb;

use crate::model::dtype::DType;
use crate::model::format::{ImportError, Model};
use crate::model::graph::{
    AttrValue, Attribute, Dim, Graph, Issue, Node, NodeId, Severity, Tensor, TensorId, TensorKind,
};
use crate::model::tensor::{FileBytes, TensorBytes, TensorData};

/// Decodes a model from bytes already in memory (tests, fuzzing, embedded files); `path`
/// names it in messages and locates external data.
///
/// # Errors
/// When the bytes are not a usable ONNX model.
pub fn model_from_bytes(bytes: &[u8], path: &Path) -> Result<Model, ImportError> {
    model_from_buffer(FileBytes::Owned(bytes.to_vec()), path)
}

/// Decodes a model from its file's bytes. The main graph's initializer payloads are not
/// copied out: the protobuf is decoded without them (see [`super::wire`]) and the tensors
/// keep byte ranges of `bytes`, so the model is in memory once.
pub(crate) fn model_from_buffer(bytes: FileBytes, path: &Path) -> Result<Model, ImportError> {
    use prost::Message as _;
    if bytes.is_empty() {
        return Err(ImportError::Empty(path.to_path_buf()));
    }
    let not_protobuf =
        |e: prost::DecodeError| ImportError::NotProtobuf { path: path.to_path_buf(), reason: e.to_string() };
    match super::wire::strip_raw_data(&bytes) {
        Some(stripped) => {
            let proto = pb::ModelProto::decode(stripped.pruned.as_slice()).map_err(not_protobuf)?;
            let raw = RawPayloads { buf: Arc::new(bytes), ranges: stripped.raw };
            build_model(proto, path, Some(raw))
        }
        None => build_model(pb::ModelProto::decode(&*bytes).map_err(not_protobuf)?, path, None),
    }
}

/// Builds a [`Model`] from a protobuf another reader made (the PyTorch reader writes its
/// modules as ONNX nodes), its main-graph initializers without payload where `ranges`
/// gives them a byte range of `buf` (a storage inside the file: nothing is copied).
pub(crate) fn model_from_parts(
    proto: pb::ModelProto,
    path: &Path,
    buf: Arc<FileBytes>,
    ranges: Vec<Option<std::ops::Range<usize>>>,
) -> Result<Model, ImportError> {
    build_model(proto, path, Some(RawPayloads { buf, ranges }))
}

/// The file buffer and, per main-graph initializer, the range of its stripped payload.
struct RawPayloads {
    buf: Arc<FileBytes>,
    ranges: Vec<Option<std::ops::Range<usize>>>,
}

/// Builds a [`Model`] from a decoded protobuf; `path` locates external data.
///
/// # Errors
/// When the protobuf holds no graph or an empty one.
pub fn model_from_proto(proto: pb::ModelProto, path: &Path) -> Result<Model, ImportError> {
    build_model(proto, path, None)
}

fn build_model(mut proto: pb::ModelProto, path: &Path, raw: Option<RawPayloads>) -> Result<Model, ImportError> {
    let opset =
        proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    let Some(main) = proto.graph.take() else {
        return Err(ImportError::NoGraph(path.to_path_buf()));
    };
    if main.node.is_empty() {
        return Err(ImportError::EmptyGraph(path.to_path_buf()));
    }
    let graph_name = main.name.clone();
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut builder = Builder { g: Graph::default(), dir, scopes: Vec::new(), pending_inputs: Vec::new(), raw };
    builder.build(main);
    let mut g = builder.g;
    super::nbits::unpack(&mut g);
    super::gather_block::unpack(&mut g);
    let topo_order = g.compute_depths();
    crate::model::shapes::infer_shapes(&mut g, &topo_order);
    Ok(Model { path: path.to_path_buf(), graph: g, opset, producer: proto.producer_name, graph_name, topo_order })
}

/// One (sub)graph waiting to be added.
struct Pending {
    graph: pb::GraphProto,
    scope: String,
    parent: Option<NodeId>,
    parent_scope: Option<usize>,
}

struct Builder {
    g: Graph,
    dir: PathBuf,
    /// Name maps per scope, with the index of the enclosing scope.
    scopes: Vec<(HashMap<String, TensorId>, Option<usize>)>,
    /// Input names of the nodes of the graph being added, resolved once all outputs exist.
    pending_inputs: Vec<(NodeId, Vec<String>)>,
    /// Stripped payloads of the main graph's initializers (zero-copy import).
    raw: Option<RawPayloads>,
}

impl Builder {
    /// Adds the main graph and, with an explicit work list (no recursion), every nested
    /// subgraph of `If`/`Loop`/`Scan` nodes.
    fn build(&mut self, main: pb::GraphProto) {
        let mut work = vec![Pending { graph: main, scope: String::new(), parent: None, parent_scope: None }];
        while let Some(p) = work.pop() {
            let more = self.add_graph(p);
            work.extend(more.into_iter().rev());
        }
    }

    fn lookup(&self, scope: usize, name: &str) -> Option<TensorId> {
        let mut s = Some(scope);
        while let Some(i) = s {
            let (map, up) = self.scopes.get(i)?;
            if let Some(&t) = map.get(name) {
                return Some(t);
            }
            s = *up;
        }
        None
    }

    fn new_tensor(&mut self, scope: usize, name: &str, kind: TensorKind) -> TensorId {
        let id = self.g.tensors.len();
        self.g.tensors.push(Tensor {
            name: name.to_string(),
            kind,
            dtype: None,
            shape: None,
            producer: None,
            consumers: Vec::new(),
            data: None,
        });
        if let Some((map, _)) = self.scopes.get_mut(scope) {
            map.insert(name.to_string(), id);
        }
        if scope == 0 {
            self.g.by_name.entry(name.to_string()).or_insert(id);
        }
        id
    }

    fn issue(&mut self, severity: Severity, subject: &str, message: impl Into<String>) {
        self.g.issues.push(Issue { severity, subject: subject.to_string(), message: message.into() });
    }

    fn add_graph(&mut self, p: Pending) -> Vec<Pending> {
        let scope = self.scopes.len();
        self.scopes.push((HashMap::new(), p.parent_scope));
        let mut graph = p.graph;
        for ann in std::mem::take(&mut graph.quantization_annotation) {
            let Some(name) = ann.tensor_name else { continue };
            let keys = ann.quant_parameter_tensor_names.into_iter().map(|e| (e.key, e.value)).collect();
            self.g.annotations.insert(name, keys);
        }
        for (i, mut init) in std::mem::take(&mut graph.initializer).into_iter().enumerate() {
            let name = init.name.clone();
            let id = self.new_tensor(scope, &name, TensorKind::Initializer);
            let shared = match (&self.raw, scope) {
                (Some(raw), 0) => raw.ranges.get(i).cloned().flatten().map(|r| (Arc::clone(&raw.buf), r)),
                _ => None,
            };
            self.fill_tensor(id, &mut init, shared);
        }
        for vi in &graph.input {
            let known = self.scopes.get(scope).and_then(|(m, _)| m.get(&vi.name)).copied();
            let id = known.unwrap_or_else(|| self.new_tensor(scope, &vi.name, TensorKind::GraphInput));
            self.apply_value_info(id, vi);
            if scope == 0 && known.is_none() {
                self.g.inputs.push(id);
            }
        }
        // First register every output, so inputs resolve whatever the node order (cycles too).
        let first_node = self.g.nodes.len();
        let mut sub = Vec::new();
        for (k, mut node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
            let id = first_node + k;
            let mut outputs = Vec::with_capacity(node.output.len());
            for name in &node.output {
                if name.is_empty() {
                    continue;
                }
                let existing = self.scopes.get(scope).and_then(|(m, _)| m.get(name)).copied();
                let t = match existing {
                    Some(t)
                        if self
                            .g
                            .tensors
                            .get(t)
                            .is_some_and(|t| t.producer.is_none() && t.kind == TensorKind::Activation) =>
                    {
                        t
                    }
                    Some(_) => {
                        self.issue(
                            Severity::Warning,
                            name,
                            "tensor is produced more than once; later producers get their own copy",
                        );
                        self.new_tensor(scope, name, TensorKind::Activation)
                    }
                    None => self.new_tensor(scope, name, TensorKind::Activation),
                };
                if let Some(tensor) = self.g.tensors.get_mut(t) {
                    tensor.producer = Some(id);
                }
                outputs.push(t);
            }
            let node_label = if node.name.is_empty() { format!("{}#{id}", node.op_type) } else { node.name.clone() };
            let mut attributes = Vec::with_capacity(node.attribute.len());
            for attr in &mut node.attribute {
                let value = Self::attr_value(attr, &node_label, &p.scope, id, &mut sub);
                attributes.push(Attribute { name: attr.name.clone(), value });
            }
            if node.op_type == "Constant" {
                self.constant_payload(&mut node, outputs.first().copied());
            }
            self.g.nodes.push(Node {
                name: node.name,
                op_type: node.op_type,
                domain: node.domain,
                scope: p.scope.clone(),
                inputs: Vec::new(),
                outputs,
                attributes,
                parent: p.parent,
                depth: 0,
                in_cycle: false,
            });
            // keep the input names for the second pass
            self.pending_inputs.push((id, node.input));
        }
        for (id, names) in std::mem::take(&mut self.pending_inputs) {
            let mut inputs = Vec::with_capacity(names.len());
            for name in names {
                if name.is_empty() {
                    inputs.push(None);
                    continue;
                }
                let t = if let Some(t) = self.lookup(scope, &name) {
                    t
                } else {
                    self.issue(Severity::Warning, &name, "input is not produced by any node nor declared");
                    self.new_tensor(scope, &name, TensorKind::Activation)
                };
                if let Some(tensor) = self.g.tensors.get_mut(t) {
                    tensor.consumers.push(id);
                }
                inputs.push(Some(t));
            }
            if let Some(node) = self.g.nodes.get_mut(id) {
                node.inputs = inputs;
            }
        }
        for vi in graph.value_info.iter().chain(&graph.output) {
            if let Some(t) = self.lookup(scope, &vi.name) {
                self.apply_value_info(t, vi);
            }
        }
        if scope == 0 {
            self.g.outputs = graph.output.iter().filter_map(|vi| self.lookup(0, &vi.name)).collect();
        }
        for s in &mut sub {
            s.parent_scope = Some(scope);
        }
        sub
    }

    /// Converts one attribute; subgraph attributes are queued on `sub` for the caller's work list.
    fn attr_value(
        attr: &mut pb::AttributeProto,
        node_label: &str,
        parent_scope_name: &str,
        node: NodeId,
        sub: &mut Vec<Pending>,
    ) -> AttrValue {
        let prefix = if parent_scope_name.is_empty() { String::new() } else { format!("{parent_scope_name}/") };
        let mut graphs = Vec::new();
        if let Some(g) = attr.g.take() {
            graphs.push(g);
        }
        graphs.extend(std::mem::take(&mut attr.graphs));
        if !graphs.is_empty() {
            let base = format!("{prefix}{node_label}/{}", attr.name);
            for (k, graph) in graphs.into_iter().enumerate() {
                let scope = if k == 0 { base.clone() } else { format!("{base}.{k}") };
                sub.push(Pending { graph, scope, parent: Some(node), parent_scope: None });
            }
            return AttrValue::Graph(base);
        }
        if let Some(t) = &attr.t {
            return AttrValue::Tensor { dtype: DType::from_onnx(t.data_type).name(), dims: t.dims.clone() };
        }
        match attr.r#type {
            1 => AttrValue::Float(attr.f),
            3 => AttrValue::Text(String::from_utf8_lossy(&attr.s).into_owned()),
            6 => AttrValue::Floats(attr.floats.clone()),
            7 => AttrValue::Ints(attr.ints.clone()),
            8 => AttrValue::Texts(attr.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()),
            // Files written without `type` (old exporters): infer from the populated field.
            0 if !attr.ints.is_empty() => AttrValue::Ints(attr.ints.clone()),
            0 if !attr.floats.is_empty() => AttrValue::Floats(attr.floats.clone()),
            0 if !attr.s.is_empty() => AttrValue::Text(String::from_utf8_lossy(&attr.s).into_owned()),
            0 if attr.f != 0.0 => AttrValue::Float(attr.f),
            0 | 2 => AttrValue::Int(attr.i),
            _ => AttrValue::Other,
        }
    }

    /// Gives the output of a `Constant` node its payload (`value`, `value_float(s)`, `value_int(s)`).
    fn constant_payload(&mut self, node: &mut pb::NodeProto, out: Option<TensorId>) {
        let Some(out) = out else { return };
        if let Some(t) = self.g.tensors.get_mut(out) {
            t.kind = TensorKind::Constant;
        }
        for attr in &mut node.attribute {
            let mut proto = match attr.name.as_str() {
                "value" => match attr.t.take() {
                    Some(t) => t,
                    None => continue,
                },
                "value_float" => float_proto(vec![attr.f], vec![]),
                "value_floats" => {
                    float_proto(attr.floats.clone(), vec![i64::try_from(attr.floats.len()).unwrap_or(i64::MAX)])
                }
                "value_int" => int_proto(vec![attr.i], vec![]),
                "value_ints" => int_proto(attr.ints.clone(), vec![i64::try_from(attr.ints.len()).unwrap_or(i64::MAX)]),
                _ => continue,
            };
            self.fill_tensor(out, &mut proto, None);
            return;
        }
    }

    fn apply_value_info(&mut self, id: TensorId, vi: &pb::ValueInfoProto) {
        let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return;
        };
        let Some(t) = self.g.tensors.get_mut(id) else { return };
        if t.data.is_some() {
            return;
        }
        if t.dtype.is_none() && tt.elem_type != 0 {
            t.dtype = Some(DType::from_onnx(tt.elem_type));
        }
        if t.shape.is_none()
            && let Some(shape) = &tt.shape
        {
            use pb::tensor_shape_proto::dimension::Value;
            t.shape = Some(
                shape
                    .dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(Value::DimValue(v)) if *v >= 0 => Dim::Known(v.unsigned_abs()),
                        Some(Value::DimParam(p)) => Dim::Symbolic(p.clone()),
                        _ => Dim::Symbolic(String::new()),
                    })
                    .collect(),
            );
        }
    }

    /// Validates and attaches the payload of an initializer or constant.
    fn fill_tensor(
        &mut self,
        id: TensorId,
        proto: &mut pb::TensorProto,
        shared: Option<(Arc<FileBytes>, std::ops::Range<usize>)>,
    ) {
        let dtype = DType::from_onnx(proto.data_type);
        let name = self.g.tensors.get(id).map(|t| t.name.clone()).unwrap_or_default();
        if let Some(t) = self.g.tensors.get_mut(id) {
            t.dtype = Some(dtype);
            t.shape = Some(
                proto
                    .dims
                    .iter()
                    .map(|&d| if d >= 0 { Dim::Known(d.unsigned_abs()) } else { Dim::Symbolic(d.to_string()) })
                    .collect(),
            );
        }
        match self.payload(proto, dtype, shared) {
            Ok(data) => {
                if let Some(t) = self.g.tensors.get_mut(id) {
                    t.data = Some(data);
                }
            }
            Err(msg) => self.issue(Severity::Error, &name, msg),
        }
    }

    fn payload(
        &self,
        proto: &mut pb::TensorProto,
        dtype: DType,
        shared: Option<(Arc<FileBytes>, std::ops::Range<usize>)>,
    ) -> Result<TensorData, String> {
        if let DType::Unsupported(code) = dtype {
            return Err(format!("unsupported data type {code}; tensor skipped"));
        }
        let mut shape = Vec::with_capacity(proto.dims.len());
        let mut count: u64 = 1;
        for &d in &proto.dims {
            let d = u64::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
            count = count.checked_mul(d).ok_or("declared shape overflows 64 bits")?;
            shape.push(d);
        }
        let expected = dtype.byte_len(count).ok_or("declared shape is too large for its data type")?;
        let is_external = proto.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
        if is_external {
            return self.external(proto, dtype, shape, expected);
        }
        if let Some((buf, range)) = shared.filter(|(_, r)| !r.is_empty()) {
            if range.len() as u64 != expected {
                return Err(format!(
                    "data holds {} bytes but shape {shape:?} of {} needs {expected}",
                    range.len(),
                    dtype.name()
                ));
            }
            return Ok(TensorData { dtype, shape, bytes: TensorBytes::Memory { buf, range } });
        }
        let bytes =
            if proto.raw_data.is_empty() { typed_bytes(proto, dtype)? } else { std::mem::take(&mut proto.raw_data) };
        if bytes.len() as u64 != expected {
            return Err(format!(
                "data holds {} bytes but shape {:?} of {} needs {expected}",
                bytes.len(),
                shape,
                dtype.name()
            ));
        }
        Ok(TensorData { dtype, shape, bytes: TensorBytes::from_vec(bytes) })
    }

    fn external(
        &self,
        proto: &pb::TensorProto,
        dtype: DType,
        shape: Vec<u64>,
        expected: u64,
    ) -> Result<TensorData, String> {
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for kv in &proto.external_data {
            match kv.key.as_str() {
                "location" => location = Some(kv.value.clone()),
                "offset" => {
                    offset = kv.value.parse().map_err(|_| format!("bad external-data offset {:?}", kv.value))?;
                }
                "length" => {
                    length =
                        Some(kv.value.parse::<u64>().map_err(|_| format!("bad external-data length {:?}", kv.value))?);
                }
                _ => {}
            }
        }
        let location = location.ok_or("external data without a location")?;
        let path = safe_join(&self.dir, &location)?;
        let file_len = std::fs::metadata(&path)
            .map_err(|e| format!("external data file cannot be read ({e}): {}", path.display()))?
            .len();
        let len = length.unwrap_or(expected);
        if len != expected {
            return Err(format!("external data length {len} does not match the {expected} bytes its shape needs"));
        }
        if offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(format!(
                "external data range {offset}..{} lies past the end of the {file_len}-byte file: {}",
                offset.saturating_add(len),
                path.display()
            ));
        }
        Ok(TensorData { dtype, shape, bytes: TensorBytes::External { path: Arc::new(path), offset, len } })
    }
}

/// Resolves an external-data location inside `dir`, refusing absolute paths and any path
/// that leaves the folder (`..`, or a symbolic link pointing out of it).
fn safe_join(dir: &Path, location: &str) -> Result<PathBuf, String> {
    let rel = Path::new(location);
    if rel.is_absolute() || location.starts_with('/') || location.starts_with('\\') || location.contains(':') {
        return Err(format!("external data path {location:?} is absolute; refused"));
    }
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(format!("external data path {location:?} leaves the model folder; refused"));
    }
    let joined = dir.join(rel);
    if let (Ok(real), Ok(base)) = (joined.canonicalize(), dir.canonicalize())
        && !real.starts_with(&base)
    {
        return Err(format!("external data path {location:?} resolves outside the model folder; refused"));
    }
    Ok(joined)
}

/// Little-endian bytes of the typed (non-raw) fields of a tensor.
fn typed_bytes(p: &pb::TensorProto, dtype: DType) -> Result<Vec<u8>, String> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes: Vec<u8> = match dtype {
        DType::Float32 => p.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::Float64 => p.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::Int64 => p.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::Uint64 | DType::Uint32 if !p.uint64_data.is_empty() => {
            if dtype == DType::Uint32 {
                p.uint64_data.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect()
            } else {
                p.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        }
        DType::Int32 | DType::Uint32 => p.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::Int8 | DType::Uint8 | DType::Bool => p.int32_data.iter().map(|&v| v as u8).collect(),
        DType::Int16 | DType::Uint16 | DType::Float16 | DType::BFloat16 => {
            p.int32_data.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect()
        }
        // 4-bit types store two elements per int32_data entry, already packed; float8 one
        DType::Int4 | DType::Uint4 | DType::UintBits(_) => p.int32_data.iter().map(|&v| v as u8).collect(),
        DType::Float8E4M3FN | DType::Float8E4M3FNUZ | DType::Float8E5M2 | DType::Float8E5M2FNUZ => {
            p.int32_data.iter().map(|&v| v as u8).collect()
        }
        DType::Uint64 => Vec::new(),
        DType::Unsupported(code) => return Err(format!("unsupported data type {code}")),
    };
    Ok(bytes)
}

fn float_proto(values: Vec<f32>, dims: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto { data_type: 1, dims, float_data: values, ..Default::default() }
}

fn int_proto(values: Vec<i64>, dims: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto { data_type: 7, dims, int64_data: values, ..Default::default() }
}
