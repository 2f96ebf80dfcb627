//! Unpacked layers: each layer extracted once per diff_id under `layers/<hex>/root`, ready to be
//! an overlayfs lower directory, published with a rename so that concurrent unpackers agree.
//!
//! Level 1: synchronous file I/O under the store's root only; no tokio, no network.

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::error::{io_err, StoreError};
use super::{sync_dir, Store};
use crate::layer;
use crate::oci::Digest;

impl Store {
    /// Where the unpacked layer with diff_id `diff_id` is (or would be):
    /// `<root>/layers/<hex>/root`, usable as an overlayfs lowerdir.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex()).join("root")
    }

    /// Whether the layer with diff_id `diff_id` is unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Claims the unpacked layer `diff_id` ([`Store::claim`] of `layers/<hex>`): `Ok(true)`
    /// when it is unpacked, and now safe from `polyarch prune` for this process's life.
    ///
    /// Errors: [`StoreError::Io`] when the use lock cannot be taken.
    pub fn claim_layer(&self, diff_id: &Digest) -> Result<bool, StoreError> {
        Ok(self.claim(&self.layers_dir().join(diff_id.hex()))? && self.has_layer(diff_id))
    }

    /// Unpacks the stored layer blob `blob` (of media type `media_type`, see
    /// [`layer::unpack_layer`]) unless its layer is already there, and returns the layer
    /// directory. With `expected_diff_id`, an already unpacked layer is reused without reading
    /// the blob, and a blob whose content hashes differently is refused. The work happens in a
    /// temp dir renamed into place, so concurrent unpackers of one layer all succeed and one
    /// result is kept.
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::Unpack`],
    /// [`StoreError::DiffIdMismatch`], [`StoreError::Io`].
    pub fn unpack_blob(
        &self,
        blob: &Digest,
        media_type: &str,
        expected_diff_id: Option<&Digest>,
    ) -> Result<PathBuf, StoreError> {
        if let Some(diff_id) = expected_diff_id {
            if self.claim_layer(diff_id)? {
                return Ok(self.layer_dir(diff_id));
            }
        }
        let file = self.open_blob(blob)?;
        let work = self.temp_dir("unpack-")?;
        let root = work.path().join("root");
        fs::create_dir(&root).map_err(io_err("create directory", &root))?;
        let found = layer::unpack_layer(
            BufReader::with_capacity(256 * 1024, file),
            media_type,
            &root,
        )
        .map_err(|source| StoreError::Unpack {
            blob: blob.clone(),
            source,
        })?;
        if let Some(expected) = expected_diff_id {
            if expected != &found {
                return Err(StoreError::DiffIdMismatch {
                    blob: blob.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        self.install_layer(work, &found)
    }

    /// Moves a finished step's upper directory `dir` (already unmounted; its layer has diff_id
    /// `diff_id`) into the store as that layer, and returns the layer directory. Overlay
    /// whiteouts and opaque xattrs in it are already in lowerdir form. When the layer is already
    /// there, `dir` is removed and the existing one returned. `dir` must be on the state
    /// directory's filesystem (see [`Store::temp_dir`]).
    ///
    /// Errors: [`StoreError::Io`] (a different filesystem fails with `EXDEV`).
    pub fn adopt_layer_dir(&self, dir: &Path, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        if self.claim_layer(diff_id)? {
            fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
            return Ok(self.layer_dir(diff_id));
        }
        let work = self.temp_dir("adopt-")?;
        let root = work.path().join("root");
        fs::rename(dir, &root).map_err(io_err("move into the store", dir))?;
        self.install_layer(work, diff_id)
    }

    /// Publishes `work` (holding `root/`) as `layers/<hex>`. rename(2) onto an existing
    /// non-empty directory fails, which is how a concurrent winner is detected: its copy stays,
    /// ours is removed with `work`.
    fn install_layer(&self, mut work: TempDir, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let target = self.layers_dir().join(diff_id.hex());
        // tempfile makes 0700 directories; lowerdirs are read by whoever the container runs as.
        fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err("set permissions of", work.path()))?;
        match fs::rename(work.path(), &target) {
            Ok(()) => {
                work.disable_cleanup(true);
                sync_dir(&self.layers_dir())?;
                Ok(self.layer_dir(diff_id))
            }
            Err(_) if self.claim_layer(diff_id)? => Ok(self.layer_dir(diff_id)),
            Err(e) => Err(io_err("rename into place", &target)(e)),
        }
    }
}
