//! The step cache: unchanged steps are never run twice. Each step gets a key covering
//! everything that can change its result ([`key`]); a step whose key has an [`Entry`] is not
//! run, its layer and history entry are reused as they were.
//!
//! Level 1 (sync file I/O) for the room as a whole; [`key`], [`entry`] and [`artifact`] are
//! pure values inside it. The rooms:
//!
//! | file | owns |
//! |---|---|
//! | `key` | the key: canonical inputs → sha256 (pure) |
//! | `entry` | an entry and its stored bytes, with a digest line (pure) |
//! | `hash` | content digests of selected context files, with the memo in the state dir |
//! | `entries` | the local entry store under `<state>/cache/steps/` |
//! | `artifact` | the shared cache's OCI artifact: config and manifest (pure) |
//! | `layout` | a shared cache as an OCI image layout directory (`type=local`), locked while merged |
//!
//! Must not run steps, talk to a registry or know about stages: the coordinator gathers the
//! key inputs, looks keys up and records entries; `shared_cache` moves artifacts.

pub mod artifact;
pub mod entries;
pub mod entry;
mod error;
pub mod hash;
pub mod key;
pub mod layout;

use std::io::Write;
use std::path::Path;

pub use entries::{Entries, Lookup};
pub use entry::{Entry, EntryLayer};
pub use error::CacheError;
pub use hash::{ContentHash, ContentHasher};
pub use key::{base_key, state_after, step_key, BaseInput, CacheKey, SourceInput, StepInputs};

use error::io_err;

/// Where the file digest memo of the state directory `root` is.
pub fn memo_path(root: &Path) -> std::path::PathBuf {
    root.join("cache").join("file-hashes-blake3")
}

/// Writes `bytes` to `path` through a synced temp file in the same directory and a rename,
/// creating the directory when missing.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).map_err(io_err("create a temp file in", dir))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err("write", path))?;
    temp.persist(path)
        .map_err(|e| io_err("rename into place", path)(e.error))?;
    Ok(())
}
