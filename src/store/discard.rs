//! Throwing directories away off the critical path: a directory nobody needs any more (the
//! upper directory of a step whose layer the store already had, what is left of a step's
//! directory) is renamed to `<root>/procs/discard-*` at once and removed by a background
//! thread. It holds no session lock, so if this process exits before the thread is done, the
//! next process that opens the store removes it with the other leftovers (`session.rs`); a
//! discarded directory is garbage to everyone, so no lock is needed.
//!
//! Removing many files can take seconds on a busy disk (each unlink is a journal update); a
//! build should not wait for it.
//!
//! Level 1: synchronous file I/O under the store's root only (plus a detached thread).

use std::fs;
use std::path::Path;

use super::error::{io_err, StoreError};
use super::Store;

/// Prefix of the directories being thrown away, under `<root>/procs/`.
const DISCARD_PREFIX: &str = "discard-";

impl Store {
    /// Moves `dir` (on the store's filesystem) out of the way and removes it in the background.
    ///
    /// Errors: [`StoreError::Io`] when it cannot be moved (it is then left where it was).
    pub fn discard(&self, dir: &Path) -> Result<(), StoreError> {
        let procs = self.procs_dir();
        let target = tempfile::Builder::new()
            .prefix(DISCARD_PREFIX)
            .tempdir_in(&procs)
            .map_err(io_err("create a temp directory in", &procs))?
            .keep();
        let inner = target.join("d");
        if let Err(e) = fs::rename(dir, &inner) {
            let _ = fs::remove_dir(&target);
            return Err(io_err("move out of the way", dir)(e));
        }
        std::thread::spawn(move || {
            let _ = fs::remove_dir_all(&target);
        });
        Ok(())
    }
}
