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
//! <root>/layer-tars/<blake3>  "<diff_id>" of the layer whose tar stream has that BLAKE3 hash
//!                             (`crate::layer::layer_fingerprint`)
//! <root>/locks/layer-tar-<blake3>   flock(2)ed while the layer with that tar is being made
//! ```
//!
//! A step's layer is looked up by its tar's BLAKE3 fingerprint, which is several times faster
//! to compute than its diff_id (sha256), before it is compressed; the diff_id comes with the
//! compression.

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

/// `fingerprint` when it is a BLAKE3 hash in hex (so it is a safe file name).
fn fingerprint_name(fingerprint: &str) -> Option<&str> {
    (fingerprint.len() == 64 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(fingerprint)
}

fn bad_fingerprint(store: &Store, fingerprint: &str) -> StoreError {
    io_err("name a layer by its tar fingerprint in", store.root())(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{fingerprint:?} is not a BLAKE3 hash in hex"),
    ))
}

/// A held layer lock: released when dropped (the descriptor is closed).
pub struct LayerLock {
    _file: File,
}

impl Store {
    /// Takes the lock for making the blob of the layer whose tar stream has the BLAKE3
    /// `fingerprint` (64 hex digits, [`crate::layer::layer_fingerprint`]; its diff_id is not
    /// known until it is compressed), waiting (this thread blocks) while another thread or
    /// process holds it.
    ///
    /// Errors: [`StoreError::Io`], also for a fingerprint that is not 64 hex digits.
    pub fn lock_layer_tar(&self, fingerprint: &str) -> Result<LayerLock, StoreError> {
        let name =
            fingerprint_name(fingerprint).ok_or_else(|| bad_fingerprint(self, fingerprint))?;
        self.lock(&format!("layer-tar-{name}"))
    }

    /// The blob made earlier, with the compression labelled `compression`, for the layer whose
    /// tar stream has the BLAKE3 `fingerprint`: through the diff_id recorded for it
    /// ([`Store::record_layer_tar`]), then as [`Store::layer_blob`].
    pub fn layer_blob_by_tar(&self, fingerprint: &str, compression: &str) -> Option<LayerBlob> {
        let path = self
            .root()
            .join("layer-tars")
            .join(fingerprint_name(fingerprint)?);
        let diff_id: Digest = fs::read_to_string(path).ok()?.trim().parse().ok()?;
        self.layer_blob(&diff_id, compression)
    }

    /// Records that the tar stream with the BLAKE3 `fingerprint` has `diff_id`, for
    /// [`Store::layer_blob_by_tar`]. Written to a temp file and renamed.
    ///
    /// Errors: [`StoreError::Io`], also for a fingerprint that is not 64 hex digits.
    pub fn record_layer_tar(&self, fingerprint: &str, diff_id: &Digest) -> Result<(), StoreError> {
        let name =
            fingerprint_name(fingerprint).ok_or_else(|| bad_fingerprint(self, fingerprint))?;
        let dir = self.root().join("layer-tars");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        fs::write(&tmp, format!("{diff_id}\n")).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))
    }

    /// Takes the lock file `locks/<name>`, waiting while another holder has it.
    fn lock(&self, name: &str) -> Result<LayerLock, StoreError> {
        let dir = self.root().join("locks");
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(name);
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
