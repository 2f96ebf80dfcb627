//! `polyarch prune`: removes items of the state directory, least recently used first, never
//! one a live polyarch process uses.
//!
//! While it picks and removes, prune holds the state directory's use lock exclusively, so no
//! process can claim an item meanwhile; an item claimed since the oldest live session started
//! is in use and kept, and so is a cache mount whose lock a build holds. A process that finds
//! an item gone afterwards fetches or builds it again. Step cache entries whose layer blob was
//! removed are removed with it.
//!
//! Level 1: file I/O in the state directory, through the store's locks. Must not remove an
//! item without holding the use lock exclusively, nor look inside a live session's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};

use super::scan::{scan, Item, Kind};
use crate::store::{Store, StoreError};

/// What to prune.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// `--all`: everything not in use, the step cache and cache mounts too. Without it: blobs
    /// and unpacked layers no step cache entry refers to (base images' layers, configs,
    /// manifests), node contexts and leftovers; the step cache and what it needs are kept.
    pub all: bool,
    /// `--keep-storage SIZE` (bytes): stop once the state directory takes no more than this.
    pub keep_storage: Option<u64>,
    /// `--filter until=DURATION`: only items last used longer ago than this.
    pub until: Option<Duration>,
}

/// What prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Items removed.
    pub items: usize,
    /// Bytes they took.
    pub bytes: u64,
    /// Items kept because a live process uses them.
    pub in_use: usize,
    /// What the state directory takes afterwards, in bytes.
    pub left: u64,
}

/// Whether a cache mount directory is free: every lock in it (the main directory's and each
/// `private-N`'s) taken here, non-blocking. The locks are returned (held) on success.
fn take_mount_locks(dir: &Path) -> Option<Vec<fs::File>> {
    let mut held = Vec::new();
    let mut locks = vec![dir.join("lock")];
    if let Ok(rd) = fs::read_dir(dir) {
        locks.extend(
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("private-"))
                .map(|e| e.path().join("lock")),
        );
    }
    for l in locks {
        let Ok(f) = fs::File::open(&l) else {
            continue;
        };
        flock(&f, FlockOperation::NonBlockingLockExclusive).ok()?;
        held.push(f);
    }
    Some(held)
}

fn remove(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Whether `opts` lets prune take `item` at all (before use and size checks).
fn eligible(item: &Item, opts: &PruneOptions, now: SystemTime) -> bool {
    let kind_ok = opts.all
        || match item.kind {
            Kind::Blobs | Kind::Layers => !item.referenced,
            Kind::Contexts | Kind::InProgress => true,
            Kind::StepCache | Kind::CacheMounts => false,
        };
    let old_enough = opts
        .until
        .is_none_or(|d| now.duration_since(item.last_used).is_ok_and(|age| age >= d));
    kind_ok && old_enough
}

/// Prunes the state directory of `store` (see the module header).
///
/// Errors: [`StoreError::Io`] when the use lock cannot be taken or an item cannot be removed.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<Pruned, StoreError> {
    let _exclusive = store.lock_exclusive()?;
    let live = store.live_sessions();
    let mut live_dirs: Vec<PathBuf> = live.iter().map(|s| s.dir.clone()).collect();
    live_dirs.push(store.session_dir().to_path_buf());
    // Items used since the oldest live session began are that session's (or may be).
    let in_use_since = live.iter().map(|s| s.started).min();
    let now = SystemTime::now();
    let mut items = scan(store.root(), &live_dirs);
    let mut left: u64 = items.iter().map(|i| i.size).sum();
    items.sort_by_key(|i| i.last_used);
    let mut done = Pruned::default();
    for item in items.iter().filter(|i| eligible(i, opts, now)) {
        if opts.keep_storage.is_some_and(|keep| left <= keep) {
            break;
        }
        let claimed =
            item.kind != Kind::InProgress && in_use_since.is_some_and(|t| item.last_used >= t);
        let _mount_locks = if item.kind == Kind::CacheMounts {
            match take_mount_locks(&item.path) {
                Some(l) => Some(l),
                None => {
                    done.in_use += 1;
                    continue;
                }
            }
        } else {
            None
        };
        if claimed {
            done.in_use += 1;
            continue;
        }
        remove(&item.path).map_err(|source| StoreError::Io {
            action: "remove",
            path: item.path.clone(),
            source,
        })?;
        done.items += 1;
        done.bytes += item.size;
        left -= item.size;
    }
    done.items += drop_orphan_entries(store);
    done.left = left;
    Ok(done)
}

/// Removes step cache entries whose layer blob is gone; returns how many.
fn drop_orphan_entries(store: &Store) -> usize {
    let mut n = 0;
    for (path, entry) in
        crate::cache::entries::read_all(&crate::cache::entries::steps_dir(store.root()))
    {
        let orphan = match &entry {
            Some(e) => e
                .layer
                .as_ref()
                .is_some_and(|l| !store.blob_path(&l.digest).is_file()),
            // Not an entry at all (a temp file of a killed writer, a damaged file).
            None => true,
        };
        if orphan && fs::remove_file(&path).is_ok() {
            n += 1;
        }
    }
    n
}
