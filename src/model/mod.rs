//! The pure model layer: ONNX import into our own graph types, quantization parameters,
//! variants of one network and layer matching across them. No Bevy, no egui.

pub mod activation;
pub mod dtype;
pub mod format;
pub mod graph;
pub mod matching;
pub mod node_diff;
pub mod onnx;
pub mod quant;
pub mod shapes;
pub mod tensor;
pub mod torch;
pub mod variants;
pub mod weights;

pub use activation::{ActRole, ActivationQuant, layer_activations};
pub use dtype::DType;
pub use format::{Access, Format, ImportError, Model, load_model, load_model_with};
pub use graph::{Dim, Graph, Issue, Node, NodeId, Severity, Tensor, TensorId, TensorKind};
pub use matching::{MatchHow, MatchRow, match_layers};
pub use node_diff::{NodeDiff, NodeRef, node_differences};
pub use quant::{Layer, LayerParam, LayerWeight, ParamRole, QuantForm, QuantParams, QuantizedWeight};
pub use tensor::{FileBytes, TensorBytes, TensorData};
pub use variants::{Variant, VariantKind, VariantSpec, discover, load_variants};
pub use weights::{Weight, WeightId, weights};
