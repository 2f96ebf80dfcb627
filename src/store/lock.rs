//! The state directory's use lock (`<root>/gc.lock`) and last-use times.
//!
//! Every item in the state directory (blob, unpacked layer, step cache entry, cache mount,
//! context bundle) has a last-use time: its mtime, set to now whenever a process starts using
//! it. A process that finds an item it is about to use checks for it and touches it while
//! holding `gc.lock` shared ([`Store::claim`]); `polyarch prune` holds the lock exclusively
//! while it picks and removes items, and never removes one used since the oldest live session
//! started. So an item is either claimed (touched) before prune looks, and kept, or found
//! missing afterwards, and fetched or built again: two processes sharing a state directory
//! never delete each other's inputs. New items are written after their session started, so
//! they are protected from the moment they appear.
//!
//! Level 1: synchronous file I/O under the store's root only.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::error::StoreError;
use super::Store;

/// A held lock on `gc.lock`, released when dropped.
#[derive(Debug)]
pub struct UseLock {
    _file: File,
}

/// Takes `gc.lock` at `path`, shared or exclusive, waiting for it.
pub(super) fn lock(path: &Path, exclusive: bool) -> Result<UseLock, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(super::error::io_err("open", path))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, op).map_err(|e| StoreError::Io {
        action: "lock",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(UseLock { _file: file })
}

/// Sets the mtime of `path` (a file or directory, not followed when a symlink) to now.
/// `false` when it does not exist.
pub fn touch(path: &Path) -> bool {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_NOW, UTIME_OMIT};
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

impl Store {
    pub(super) fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// Claims the item at `path` for this process: while holding `gc.lock` shared, checks that
    /// it exists and sets its last-use time to now. `Ok(false)` when it is missing (never
    /// made, or pruned: fetch or build it again).
    ///
    /// Errors: [`StoreError::Io`] when the lock cannot be taken.
    pub fn claim(&self, path: &Path) -> Result<bool, StoreError> {
        let _held = lock(&self.gc_lock_path(), false)?;
        Ok(touch(path))
    }

    /// Takes `gc.lock` exclusively (waiting for claims in progress): while it is held no
    /// process can claim an item, so nothing picked for removal is taken into use meanwhile.
    /// For `polyarch prune`.
    ///
    /// Errors: [`StoreError::Io`].
    pub fn lock_exclusive(&self) -> Result<UseLock, StoreError> {
        lock(&self.gc_lock_path(), true)
    }

    /// The sessions of other live polyarch processes using this state directory.
    pub fn live_sessions(&self) -> Vec<super::LiveSession> {
        super::session::live_sessions(&self.procs_dir(), &self.session.dir)
    }
}
