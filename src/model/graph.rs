//! Our own graph types: nodes, tensors, edges and topological layer depth.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::dtype::DType;
use super::tensor::TensorData;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;
/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Dim {
    Known(u64),
    Symbolic(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(n) => write!(f, "{n}"),
            Self::Symbolic(s) if s.is_empty() => write!(f, "?"),
            Self::Symbolic(s) => write!(f, "{s}"),
        }
    }
}

/// Formats a shape like `[16, 3, 3, 3]`.
#[must_use]
pub fn shape_string(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// A node attribute value, kept small: tensors and graphs are summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Int(i64),
    Float(f32),
    Text(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Texts(Vec<String>),
    /// A tensor attribute (e.g. `Constant.value`), by dtype and dims.
    Tensor {
        dtype: String,
        dims: Vec<i64>,
    },
    /// A subgraph attribute (`If`, `Loop`, `Scan` bodies), by its scope name.
    Graph(String),
    Other,
}

/// A named attribute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

/// A graph node. Names can be empty or duplicated; tensors are the stable keys.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// `""` for the main graph, else the path of the subgraph (`loop_0/body/if_1/then_branch`).
    pub scope: String,
    /// Inputs in order; `None` where an optional input is omitted (`""`).
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
    pub attributes: Vec<Attribute>,
    /// The control-flow node owning this node's subgraph, if any.
    pub parent: Option<NodeId>,
    /// Topological layer depth; quantization plumbing (Q/DQ) adds no depth, so a
    /// quantized graph's layers stand at the same depth as their float originals.
    pub depth: u32,
    /// True when the node sits on a cycle (its depth is then only indicative).
    pub in_cycle: bool,
}

impl Node {
    /// A readable label: the name, or `op_type#index` when the name is empty.
    #[must_use]
    pub fn label(&self, id: NodeId) -> String {
        if self.name.is_empty() { format!("{}#{id}", self.op_type) } else { self.name.clone() }
    }

    /// Integer attribute by name.
    #[must_use]
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        self.attributes.iter().find(|a| a.name == name).and_then(|a| match a.value {
            AttrValue::Int(v) => Some(v),
            _ => None,
        })
    }

    /// An integer-list attribute.
    #[must_use]
    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        self.attributes.iter().find(|a| a.name == name).and_then(|a| match &a.value {
            AttrValue::Ints(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    /// A text attribute.
    #[must_use]
    pub fn attr_text(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|a| a.name == name).and_then(|a| match &a.value {
            AttrValue::Text(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Input `k` (absent or optional-and-empty: `None`).
    #[must_use]
    pub fn input(&self, k: usize) -> Option<TensorId> {
        self.inputs.get(k).copied().flatten()
    }
}

/// `axis` normalised against `rank` (ONNX: negative counts from the end); `None` when out
/// of range.
#[must_use]
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

/// What kind of value a tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    Initializer,
    /// The output of a `Constant` node.
    Constant,
    GraphInput,
    Activation,
}

/// A tensor (edge) of the graph.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub kind: TensorKind,
    pub dtype: Option<DType>,
    pub shape: Option<Vec<Dim>>,
    pub producer: Option<NodeId>,
    pub consumers: Vec<NodeId>,
    /// The payload of initializers and constants that could be decoded.
    pub data: Option<TensorData>,
}

/// How serious an import finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The value is still usable (NaN in weights, odd quant params).
    Warning,
    /// The value could not be used (data refused, missing or malformed).
    Error,
}

/// A finding about one tensor, node or layer; the rest of the model still loads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    /// The tensor, node or layer concerned.
    pub subject: String,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: {}: {}", self.subject, self.message)
    }
}

/// A whole model graph, subgraphs flattened into one node list.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub tensors: Vec<Tensor>,
    /// Main-graph tensor names to ids (subgraph-local names that shadow an outer one are not here).
    pub by_name: HashMap<String, TensorId>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    pub issues: Vec<Issue>,
    /// `quantization_annotation` entries: tensor name → (key → tensor name).
    pub annotations: HashMap<String, HashMap<String, String>>,
}

/// Ops that only carry quantization and add no layer of their own.
#[must_use]
pub fn is_quant_plumbing(op_type: &str) -> bool {
    matches!(op_type, "QuantizeLinear" | "DequantizeLinear" | "DynamicQuantizeLinear")
}

impl Graph {
    /// Looks a main-graph tensor up by name.
    #[must_use]
    pub fn tensor_by_name(&self, name: &str) -> Option<TensorId> {
        self.by_name.get(name).copied()
    }

    /// The tensor with this id.
    #[must_use]
    pub fn tensor(&self, id: TensorId) -> Option<&Tensor> {
        self.tensors.get(id)
    }

    /// The node with this id.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Input tensor `k` of node `n`, if present.
    #[must_use]
    pub fn input(&self, n: NodeId, k: usize) -> Option<TensorId> {
        self.nodes.get(n)?.input(k)
    }

    /// The producer node of input `k` of node `n`.
    #[must_use]
    pub fn input_producer(&self, n: NodeId, k: usize) -> Option<NodeId> {
        self.tensor(self.input(n, k)?)?.producer
    }

    /// Number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a graph with no node.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Highest layer depth.
    #[must_use]
    pub fn max_depth(&self) -> u32 {
        self.nodes.iter().map(|n| n.depth).max().unwrap_or(0)
    }

    /// Computes [`Node::depth`] for every node with Kahn's algorithm (no recursion, so
    /// 20,000-node chains are fine) and a stable topological order. Nodes on cycles get a
    /// depth past the rest, are flagged, and reported once as an issue.
    /// Returns the topological order (cycle members last, in file order).
    pub fn compute_depths(&mut self) -> Vec<NodeId> {
        let n = self.nodes.len();
        let mut succ: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        for (id, node) in self.nodes.iter().enumerate() {
            let mut preds: Vec<NodeId> =
                node.inputs.iter().flatten().filter_map(|&t| self.tensors.get(t).and_then(|t| t.producer)).collect();
            preds.sort_unstable();
            preds.dedup();
            for p in preds {
                if let Some(s) = succ.get_mut(p) {
                    s.push(id);
                    indeg[id] += 1;
                }
            }
            // A control-flow node comes after every node of its subgraphs.
            if let Some(parent) = node.parent
                && let Some(s) = succ.get_mut(id)
            {
                s.push(parent);
                if let Some(d) = indeg.get_mut(parent) {
                    *d += 1;
                }
            }
        }
        let mut depth = vec![0u32; n];
        let mut order = Vec::with_capacity(n);
        let mut queue: VecDeque<NodeId> = (0..n).filter(|&i| indeg[i] == 0).collect();
        while let Some(id) = queue.pop_front() {
            order.push(id);
            let step = u32::from(!is_quant_plumbing(&self.nodes[id].op_type));
            let d = depth[id] + step;
            for &s in &succ[id] {
                depth[s] = depth[s].max(d);
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    queue.push_back(s);
                }
            }
        }
        if order.len() < n {
            let next = order.iter().map(|&i| depth[i] + 1).max().unwrap_or(0);
            let stuck: Vec<NodeId> = (0..n).filter(|&i| indeg[i] > 0).collect();
            let names: Vec<String> = stuck.iter().take(5).map(|&i| self.nodes[i].label(i)).collect();
            self.issues.push(Issue {
                severity: Severity::Error,
                subject: names.join(", "),
                message: format!("graph has a cycle: {} node(s) cannot be ordered; shown after the rest", stuck.len()),
            });
            for &i in &stuck {
                depth[i] = next;
                self.nodes[i].in_cycle = true;
            }
            order.extend(stuck);
        }
        for (node, d) in self.nodes.iter_mut().zip(depth) {
            node.depth = d;
        }
        order
    }
}
