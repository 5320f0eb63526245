//! Edits of quantization parameters in the window: an [`EditRequest`] sets a weight's
//! `Quant` (its scale as a factor on the file's, or its zero point) or marks its layer
//! [`InFloat`]; change detection then computes its row's statistics again (`stats.rs`),
//! the towers recolour, and accuracy runs take the edits (`run.rs`). Every edit can be
//! undone, one at a time ([`EditHistory`]), or all at once. The model's files are never
//! touched (File → Export and `quantlens export` write edited copies).

use bevy::prelude::*;

use super::AppSystems;
use super::model::{ActScale, ActivationEntity, OpenModel, Quant, WeightEntity};
use crate::report::ParamKey;
pub use crate::view::inspector::WeightEdit;

/// Applies edits before statistics are computed.
pub struct EditPlugin;

impl Plugin for EditPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<EditRequest>()
            .init_resource::<EditHistory>()
            .add_systems(Update, apply_edit_requests.in_set(AppSystems::Edit));
    }
}

/// An edit of layer `layer` (index into the variant's layers) of variant `variant`; or
/// an undo of the last edit, or of all.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum EditRequest {
    Weight {
        variant: usize,
        layer: usize,
        edit: WeightEdit,
    },
    /// The scale of the activation named `tensor` in variant `variant`: `factor` times the
    /// file's (its `QuantizeLinear` and `DequantizeLinear`s, for runs).
    Activation {
        variant: usize,
        tensor: String,
        factor: f64,
    },
    Undo,
    ResetAll,
}

/// What one edit replaced.
#[derive(Debug, Clone)]
enum Before {
    Weight(Entity, Quant, bool),
    Activation(Entity, ActScale),
}

/// Marks the main weight of a layer kept in float.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFloat;

/// The edits made, oldest first: each with what it replaced, so that it can be undone.
#[derive(Resource, Debug, Default)]
pub struct EditHistory {
    undo: Vec<Before>,
    model: Option<Entity>,
}

impl EditHistory {
    /// Edits that can be undone.
    #[must_use]
    pub fn len(&self) -> usize {
        self.undo.len()
    }

    /// True when nothing was edited.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.undo.is_empty()
    }
}

fn apply_edit_requests(
    mut commands: Commands,
    mut requests: MessageReader<EditRequest>,
    open: Option<Res<OpenModel>>,
    mut history: ResMut<EditHistory>,
    mut weights: Query<(Entity, &WeightEntity, &mut Quant, Has<InFloat>)>,
    mut activations: Query<(Entity, &ActivationEntity, &mut ActScale)>,
) {
    let Some(open) = open else { return };
    if history.model != Some(open.root) {
        *history = EditHistory { model: Some(open.root), ..EditHistory::default() };
    }
    for r in requests.read() {
        let (variant, layer, edit) = match r {
            EditRequest::Weight { variant, layer, edit } => (*variant, *layer, *edit),
            EditRequest::Activation { variant, tensor, factor } => {
                let target = activations.iter_mut().find(|(_, a, _)| a.variant == *variant && &a.tensor == tensor);
                if let Some((e, _, mut scale)) = target
                    && scale.0 != *factor
                {
                    history.undo.push(Before::Activation(e, *scale));
                    scale.0 = *factor;
                }
                continue;
            }
            EditRequest::Undo => {
                if let Some(before) = history.undo.pop() {
                    restore(&mut commands, &mut weights, &mut activations, before);
                }
                continue;
            }
            EditRequest::ResetAll => {
                // the oldest state of each is the file's
                while let Some(before) = history.undo.pop() {
                    restore(&mut commands, &mut weights, &mut activations, before);
                }
                continue;
            }
        };
        let file = open.data.variants.get(variant).and_then(|v| v.layers.get(layer)).and_then(|l| l.weight.params());
        let Some(file) = file else { continue };
        let target = weights
            .iter_mut()
            .find(|(_, w, _, _)| w.variant == variant && w.layer == layer && w.key == ParamKey::WEIGHT);
        let Some((e, _, mut quant, float)) = target else { continue };
        let before = (quant.clone(), float);
        let mut edited = quant.0.clone();
        let mut now_float = float;
        match edit {
            WeightEdit::ScaleFactor(factor) =>
            {
                #[allow(clippy::cast_possible_truncation)]
                for (s, f) in edited.scale.iter_mut().zip(&file.scale) {
                    *s = (f64::from(*f) * factor) as f32;
                }
            }
            WeightEdit::ZeroPoint(z) => edited.zero_point.iter_mut().for_each(|p| *p = z),
            WeightEdit::Float(on) => now_float = on,
        }
        if edited == quant.0 && now_float == float {
            continue;
        }
        history.undo.push(Before::Weight(e, before.0, before.1));
        // (an unchanged value does not start a computation)
        quant.set_if_neq(Quant(edited));
        set_in_float(&mut commands, e, float, now_float);
    }
}

/// Marks or unmarks `e` as kept in float, touching it only when `was` differs from `on`.
fn set_in_float(commands: &mut Commands, e: Entity, was: bool, on: bool) {
    if was == on {
        return;
    }
    if on {
        commands.entity(e).insert(InFloat);
    } else {
        commands.entity(e).remove::<InFloat>();
    }
}

fn restore(
    commands: &mut Commands,
    weights: &mut Query<(Entity, &WeightEntity, &mut Quant, Has<InFloat>)>,
    activations: &mut Query<(Entity, &ActivationEntity, &mut ActScale)>,
    before: Before,
) {
    let (e, quant, float) = match before {
        Before::Weight(e, quant, float) => (e, quant, float),
        Before::Activation(e, scale) => {
            if let Ok((_, _, mut s)) = activations.get_mut(e) {
                *s = scale;
            }
            return;
        }
    };
    if let Ok((_, _, mut q, was_float)) = weights.get_mut(e) {
        q.set_if_neq(quant);
        set_in_float(commands, e, was_float, float);
    }
}
