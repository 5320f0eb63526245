//! Edits of quantization parameters in the window: an [`EditRequest`] sets a weight's
//! `Quant`; change detection then computes its row's statistics again (`stats.rs`) and the
//! towers recolour. The model's files are never touched (`quantlens export` writes one).

use bevy::prelude::*;

use super::AppSystems;
use super::model::{OpenModel, Quant, WeightEntity};
use crate::report::ParamKey;

/// Applies edits before statistics are computed.
pub struct EditPlugin;

impl Plugin for EditPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<EditRequest>().add_systems(Update, apply_edit_requests.in_set(AppSystems::Edit));
    }
}

/// Scale the main weight of layer `layer` of variant `variant` by `factor` against the
/// file's scale (1 restores it).
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct EditRequest {
    pub variant: usize,
    pub layer: usize,
    pub factor: f64,
}

fn apply_edit_requests(
    mut requests: MessageReader<EditRequest>,
    open: Option<Res<OpenModel>>,
    mut weights: Query<(&WeightEntity, &mut Quant)>,
) {
    let Some(open) = open else { return };
    for r in requests.read() {
        let file =
            open.data.variants.get(r.variant).and_then(|v| v.layers.get(r.layer)).and_then(|l| l.weight.params());
        let Some(file) = file else { continue };
        let target =
            weights.iter_mut().find(|(w, _)| w.variant == r.variant && w.layer == r.layer && w.key == ParamKey::WEIGHT);
        if let Some((_, mut quant)) = target {
            let mut edited = file.clone();
            #[allow(clippy::cast_possible_truncation)]
            edited.scale.iter_mut().for_each(|s| *s = (f64::from(*s) * r.factor) as f32);
            // (an unchanged value does not start a computation)
            quant.set_if_neq(Quant(edited));
        }
    }
}
