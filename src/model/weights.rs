//! Every parameter tensor of every layer of every variant as one flat table, independent
//! of the file format: where it sits (variant, layer, role, slot), which tensor holds it
//! and its quantization parameters. The window makes each a `WeightEntity`; an edit of
//! its parameters (issue: edits with re-run) names it by [`WeightId`].

use super::graph::TensorId;
use super::quant::{LayerWeight, ParamRole, QuantForm, QuantParams};
use super::variants::Variant;

/// Index of a weight in the table [`weights`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeightId(pub usize);

/// One parameter of one layer of one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub variant: usize,
    /// Index into the variant's `layers`.
    pub layer: usize,
    pub role: ParamRole,
    /// Input slot in the float op's numbering (see [`super::LayerParam::slot`]).
    pub slot: usize,
    /// The stored tensor (float, or the integer one).
    pub tensor: TensorId,
    /// `None` for float parameters and unusable quantization.
    pub quant: Option<QuantParams>,
    pub form: Option<QuantForm>,
}

/// Every parameter of every layer of `variants`, variant by variant, each layer's main
/// weight first.
#[must_use]
pub fn weights(variants: &[Variant]) -> Vec<Weight> {
    let mut out = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        for (li, layer) in v.layers.iter().enumerate() {
            for (role, slot, w) in layer.params() {
                let (quant, form) = match w {
                    LayerWeight::Quantized(q) => (q.params.clone(), Some(q.form)),
                    LayerWeight::Float(_) => (None, None),
                };
                out.push(Weight { variant: vi, layer: li, role, slot, tensor: w.tensor(), quant, form });
            }
        }
    }
    out
}
