//! Throwing directories away off the critical path: a directory nobody needs any more (the
//! upper directory of a step whose layer the store already had, an unpacked archive) is
//! renamed into `<root>/tmp/discard-*` at once and removed by a background thread. Whatever a
//! process did not finish removing before it exited is removed by the next one that opens the
//! store: a discarded directory is garbage to everyone, so no lock is needed.
//!
//! Removing many files can take seconds on a busy disk (each unlink is a journal update); a
//! build should not wait for it.
//!
//! Level 1: synchronous file I/O under the store's root only (plus a detached thread).

use std::fs;
use std::path::Path;

use super::error::{io_err, StoreError};
use super::Store;

/// Prefix of the directories being thrown away, under `<root>/tmp/`.
const DISCARD_PREFIX: &str = "discard-";

impl Store {
    /// Moves `dir` (on the store's filesystem) out of the way and removes it in the background.
    ///
    /// Errors: [`StoreError::Io`] when it cannot be moved (it is then left where it was).
    pub fn discard(&self, dir: &Path) -> Result<(), StoreError> {
        let target = self.temp_dir(DISCARD_PREFIX)?.keep();
        let inner = target.join("d");
        fs::rename(dir, &inner).map_err(io_err("move out of the way", dir))?;
        std::thread::spawn(move || {
            let _ = fs::remove_dir_all(&target);
        });
        Ok(())
    }

    /// Removes, in the background, what earlier processes discarded but did not finish
    /// removing.
    pub(super) fn sweep_discarded(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        let stale: Vec<_> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(DISCARD_PREFIX))
            .map(|e| e.path())
            .collect();
        if !stale.is_empty() {
            std::thread::spawn(move || {
                for d in stale {
                    let _ = fs::remove_dir_all(d);
                }
            });
        }
    }
}
