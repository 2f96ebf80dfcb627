//! [`StoreError`]: what can go wrong in the local store, and its exit code class.
//!
//! Level 1, values only: no I/O.

use std::io;
use std::path::{Path, PathBuf};

use crate::exit::{Classify, ExitCode};
use crate::layer::LayerError;
use crate::oci::{Digest, OciError};

/// Errors from the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation on the state directory (or an export destination) failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create directory", "rename into place".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Content whose sha256 is not the digest it was written or stored under.
    #[error("digest mismatch for blob: expected {expected}, found {found}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes actually there.
        found: Digest,
    },
    /// A layer blob whose uncompressed content does not hash to the expected diff_id.
    #[error("layer blob {blob} has diff_id {found}, expected {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        blob: Digest,
        /// The diff_id the image config names.
        expected: Digest,
        /// The diff_id of the unpacked stream.
        found: Digest,
    },
    /// A blob that is not in the store.
    #[error("blob {digest} is not in the store (looked for {path})")]
    MissingBlob {
        /// The digest asked for.
        digest: Digest,
        /// Where it would be.
        path: PathBuf,
    },
    /// A layer blob could not be unpacked.
    #[error("cannot unpack layer blob {blob}: {source}")]
    Unpack {
        /// The layer blob.
        blob: Digest,
        /// What went wrong.
        #[source]
        source: LayerError,
    },
    /// An existing `index.json` of an image layout that does not parse.
    #[error("cannot update the image layout index {path}: {source}")]
    MalformedIndex {
        /// The `index.json` file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: OciError,
    },
}

impl Classify for StoreError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StoreError::Io { .. } | StoreError::MissingBlob { .. } => ExitCode::Host,
            StoreError::DigestMismatch { .. }
            | StoreError::DiffIdMismatch { .. }
            | StoreError::MalformedIndex { .. } => ExitCode::BadInput,
            StoreError::Unpack { source, .. } => source.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StoreError::Unpack { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// For `map_err`: [`StoreError::Io`] naming what was being done to which path.
pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
