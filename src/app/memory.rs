//! Gives freed memory back to the system once a model and its statistics are in, and once
//! each run of the variants is over. Opening a model while another is shown holds both for
//! a moment (a failed load keeps the old one); glibc's allocator then kept the old model's
//! freed heap, and the window's RSS grew with each reopen (980 → 1,400 MB over ten reopens
//! of a 20,000-node model). A run's captured tensors are kept free for the next sample
//! (`alloc::keep_freed_memory`) until the run ends.

use bevy::prelude::*;

use super::model::{OpenModel, Status};
use super::run::RunState;

/// Trims the allocator's free memory once per opened model and finished run.
pub struct MemoryPlugin;

impl Plugin for MemoryPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Trimmed>().add_systems(Last, trim_when_settled);
    }
}

/// The model, and the count of its finished runs, that the last trim followed.
#[derive(Resource, Default)]
struct Trimmed(Option<(Entity, u64)>);

fn trim_when_settled(
    open: Option<Res<OpenModel>>,
    status: Res<Status>,
    runs: Res<RunState>,
    mut trimmed: ResMut<Trimmed>,
) {
    let Some(open) = open else { return };
    let settled = (open.root, runs.finished);
    if trimmed.0 == Some(settled) || status.loading.is_some() || status.stats_done < status.stats_total {
        return;
    }
    trimmed.0 = Some(settled);
    crate::alloc::release_free_memory();
}
