//! Gives freed memory back to the system once a model and its statistics are in. Opening
//! a model while another is shown holds both for a moment (a failed load keeps the old
//! one); glibc's allocator then kept the old model's freed heap, and the window's RSS grew
//! with each reopen (980 → 1,400 MB over ten reopens of a 20,000-node model).

use bevy::prelude::*;

use super::model::{OpenModel, Status};

/// Trims the allocator's free memory once per opened model.
pub struct MemoryPlugin;

impl Plugin for MemoryPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Trimmed>().add_systems(Last, trim_when_settled);
    }
}

/// The model whose load was followed by a trim.
#[derive(Resource, Default)]
struct Trimmed(Option<Entity>);

fn trim_when_settled(open: Option<Res<OpenModel>>, status: Res<Status>, mut trimmed: ResMut<Trimmed>) {
    let Some(open) = open else { return };
    if trimmed.0 == Some(open.root) || status.loading.is_some() || status.stats_done < status.stats_total {
        return;
    }
    trimmed.0 = Some(open.root);
    crate::alloc::release_free_memory();
}
