//! Which compressed blob this store made for a layer, and the lock that lets one writer at a
//! time compress a layer: when two platforms (or two polyarch processes) make the same layer
//! (an `ADD` of the same archive `FROM scratch`, a `COPY` of the same files), the second one
//! takes the first one's blob instead of compressing the same bytes again.
//!
//! Level 1: synchronous file I/O under the store's root only.
//!
//! ```text
//! <root>/layers/<hex>/blob-<compression>    "<digest> <size> <media type>" of the blob made
//!                                           from that layer with that compression (`gzip-6`)
//! <root>/locks/layer-<hex>    flock(2)ed while that layer's blob is being made
//! ```

use std::fs::{self, File};

use super::error::{io_err, StoreError};
use super::Store;
use crate::layer::LayerBlob;
use crate::oci::Digest;

/// Name of the record next to an unpacked layer's `root` for blobs compressed as `label` says
/// ([`crate::layer::Compression::label`], e.g. `gzip:6`): one record per compression, since the
/// same layer compressed otherwise is another blob.
fn blob_record(label: &str) -> String {
    format!("blob-{}", label.replace([':', '/'], "-"))
}

/// A held layer lock: released when dropped (the descriptor is closed).
pub struct LayerLock {
    _file: File,
}

impl Store {
    /// Takes the lock for making the blob of the layer with diff_id `diff_id`, waiting (this
    /// thread blocks) while another thread or process holds it.
    ///
    /// Errors: [`StoreError::Io`].
    pub fn lock_layer(&self, diff_id: &Digest) -> Result<LayerLock, StoreError> {
        let dir = self.root().join("locks");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(format!("layer-{}", diff_id.hex()));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err("lock", &path)(e.into()))?;
        Ok(LayerLock { _file: file })
    }

    /// The blob this store made earlier for the layer `diff_id` with the compression labelled
    /// `compression`, when it is recorded and the blob is still there (claimed: `polyarch
    /// prune` does not take it meanwhile).
    pub fn layer_blob(&self, diff_id: &Digest, compression: &str) -> Option<LayerBlob> {
        let record = self
            .layers_dir()
            .join(diff_id.hex())
            .join(blob_record(compression));
        let text = fs::read_to_string(record).ok()?;
        let mut words = text.split_whitespace();
        let digest: Digest = words.next()?.parse().ok()?;
        let size: u64 = words.next()?.parse().ok()?;
        let media_type = words.next()?.to_string();
        let claimed = self.claim_blob(&digest).unwrap_or(false) && self.has_blob(&digest);
        claimed.then_some(LayerBlob {
            diff_id: diff_id.clone(),
            digest,
            size,
            media_type,
        })
    }

    /// Records that `blob` was made from its layer (whose directory must be in the store) with
    /// the compression labelled `compression`, for [`Store::layer_blob`]. Written to a temp file and renamed, so readers see all or nothing.
    ///
    /// Errors: [`StoreError::Io`].
    pub fn record_layer_blob(&self, blob: &LayerBlob, compression: &str) -> Result<(), StoreError> {
        let dir = self.layers_dir().join(blob.diff_id.hex());
        let name = blob_record(compression);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let text = format!("{} {} {}\n", blob.digest, blob.size, blob.media_type);
        fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))
    }
}
