//! The local content-addressed store under the state directory: blobs by digest, unpacked layers
//! by diff_id (ready to be overlayfs lower directories), and export as an OCI image layout.
//!
//! Level 1: synchronous file I/O only, no tokio. Layout on disk (all on one filesystem, so that
//! every publish is a `rename(2)`):
//!
//! ```text
//! <root>/blobs/sha256/<hex>     blob content, read-only, named by its sha256
//! <root>/layers/<hex>/root      an unpacked layer, <hex> its diff_id; usable as a lowerdir
//! <root>/layers/<hex>/blob      the compressed blob made here from that layer, when one was
//! <root>/anchors/<hex>/root     empty directories that make overlayfs merge whiteout directories
//! <root>/locks/                 one writer at a time compresses a layer
//! <root>/procs/<pid>-<random>/  one per live process: its work in progress, renamed into
//!                               place when complete; locked for the process's life
//! <root>/gc.lock                claims (shared) against `polyarch prune` (exclusive)
//! ```
//!
//! Every item's mtime is its last-use time; see `lock.rs` for how processes claim items and
//! `session.rs` for how a killed process's leftovers are found and removed (`uploads.rs`: the
//! registry upload sessions it left open).
//!
//! Writers hash while writing, verify on commit, fsync, then rename atomically, so a reader never
//! sees a partial blob or layer, and two processes producing the same content both succeed with
//! one copy kept (the habit of ocidir's `BlobWriter`).
//!
//! Files: `error.rs` ([`StoreError`]), `session.rs` (the process's own directory, leftovers of
//! killed ones), `lock.rs` (claims and last-use times), `blobs.rs` (content by digest,
//! [`BlobWriter`]), `layers.rs` (unpacked layers by diff_id), `layer_blobs.rs` (the blob made
//! from a layer, so the same layer is compressed once), `anchors.rs` (the bottom layer that
//! keeps whiteouts out of listings), `discard.rs` (directories thrown away in the background),
//! `layout.rs` (export as an OCI image layout); this file holds [`Store`] itself: its
//! directories and temporary work space.

mod anchors;
mod archive;
mod blobs;
mod discard;
mod error;
mod layer_blobs;
mod layers;
mod layout;
mod lock;
mod session;
mod uploads;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

pub use archive::{tar_tree, DockerArchiveImage};
pub use blobs::BlobWriter;
pub use error::StoreError;
pub use layer_blobs::LayerLock;
pub use layout::collect_garbage;
pub use lock::{touch, UseLock};
pub use session::LiveSession;
pub use uploads::{record_done, record_open, AbandonedUpload};

use error::io_err;
use session::Session;

/// The local content-addressed store, rooted at the state directory. Clones share one session
/// (this process's directory under `procs/`), removed when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    session: Arc<Session>,
}

impl Store {
    /// Opens the store at `root`, creating `blobs/sha256/`, `layers/` and `procs/` as needed,
    /// removes what killed processes left behind (their session directories whose lock is
    /// free), and starts this process's session.
    ///
    /// Errors: [`StoreError::Io`] naming the directory that could not be created.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let procs = root.join("procs");
        for dir in [
            root.join("blobs").join("sha256"),
            root.join("layers"),
            procs.clone(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        for gone in session::clean_leftovers(root, &procs) {
            tracing::info!("removed {} (left by a killed polyarch)", gone.display());
        }
        let session = Session::start(&procs)?;
        Ok(Store {
            root: root.to_path_buf(),
            session: Arc::new(session),
        })
    }

    /// The state directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn procs_dir(&self) -> PathBuf {
        self.root.join("procs")
    }

    /// This process's session directory (`<root>/procs/<pid>-<random>`): where its work in
    /// progress lives.
    pub fn session_dir(&self) -> &Path {
        &self.session.dir
    }

    fn tmp_dir(&self) -> PathBuf {
        self.session.dir.clone()
    }

    /// A new empty directory in this process's session directory, named `<prefix><random>`,
    /// removed when dropped (and by the next process to open the store if this one is killed).
    /// It is on the same filesystem as the layers, so [`Store::adopt_layer_dir`] can rename out
    /// of it (e.g. a step's upper and work directories).
    ///
    /// Errors: [`StoreError::Io`].
    pub fn temp_dir(&self, prefix: &str) -> Result<TempDir, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(io_err("create a temp directory in", &tmp))
    }
}

/// fsyncs a directory so that a rename into it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}
