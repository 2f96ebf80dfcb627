//! Managing the state directory's storage: `polyarch du` (usage by kind, and what prune could
//! take now) and `polyarch prune` (least recently used first, never what a running build
//! holds; see `prune.rs` for the locking).
//!
//! Level 1: file I/O in the state directory through the [`Store`]'s locks; knows the layout of
//! the store, the step cache and the cache mounts, and runs no builds.

mod prune;
mod scan;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use prune::{prune, PruneOptions, Pruned};
pub use scan::{scan, tree_size, Item, Kind};

use crate::store::Store;

/// One line of `polyarch du`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// The kind.
    pub kind: Kind,
    /// How many items.
    pub items: usize,
    /// Bytes they take.
    pub size: u64,
    /// Bytes `polyarch prune --all` would free now (not used by a live polyarch process).
    pub reclaimable: u64,
}

/// Usage of the state directory of `store` by kind, every kind listed.
pub fn usage(store: &Store) -> Vec<Usage> {
    let live = store.live_sessions();
    let mut live_dirs: Vec<_> = live.iter().map(|s| s.dir.clone()).collect();
    live_dirs.push(store.session_dir().to_path_buf());
    let in_use_since = live.iter().map(|s| s.started).min();
    let items = scan(store.root(), &live_dirs);
    Kind::ALL
        .iter()
        .map(|&kind| {
            let of_kind: Vec<&Item> = items.iter().filter(|i| i.kind == kind).collect();
            Usage {
                kind,
                items: of_kind.len(),
                size: of_kind.iter().map(|i| i.size).sum(),
                reclaimable: of_kind
                    .iter()
                    .filter(|i| {
                        kind == Kind::InProgress || in_use_since.is_none_or(|t| i.last_used < t)
                    })
                    .map(|i| i.size)
                    .sum(),
            }
        })
        .collect()
}
