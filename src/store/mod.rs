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
//! <root>/tmp/                   work in progress; renamed into place when complete
//! ```
//!
//! Writers hash while writing, verify on commit, fsync, then rename atomically, so a reader never
//! sees a partial blob or layer, and two processes producing the same content both succeed with
//! one copy kept (the habit of ocidir's `BlobWriter`).
//!
//! Files: `error.rs` ([`StoreError`]), `blobs.rs` (content by digest, [`BlobWriter`]),
//! `discard.rs` (directories thrown away in the background), `layers.rs` (unpacked layers by
//! diff_id), `layer_blobs.rs` (the blob made from a layer, so
//! the same layer is compressed once), `anchors.rs` (the bottom layer that keeps
//! whiteouts out of listings), `layout.rs` (export as an OCI image layout); this
//! file holds [`Store`] itself: its directories and temporary work space.

mod anchors;
mod blobs;
mod discard;
mod error;
mod layer_blobs;
mod layers;
mod layout;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

pub use blobs::BlobWriter;
pub use error::StoreError;
pub use layer_blobs::LayerLock;

use error::io_err;

/// The local content-addressed store, rooted at the state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating `blobs/sha256/`, `layers/` and `tmp/` as needed.
    ///
    /// Errors: [`StoreError::Io`] naming the directory that could not be created.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.layers_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        store.sweep_discarded();
        Ok(store)
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

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A new empty directory under `<root>/tmp/`, named `<prefix><random>`, removed when dropped.
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
