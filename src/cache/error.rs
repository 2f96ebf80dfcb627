//! [`CacheError`]: what can go wrong in the step cache's files, and its exit code class.
//!
//! Level 1, values only: no I/O.

use std::io;
use std::path::{Path, PathBuf};

use crate::exit::{Classify, ExitCode};
use crate::store::StoreError;

/// Errors from the step cache's files (entries, the digest memo, cache layouts).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cache document (an artifact config, a layout's index) that cannot be used.
    #[error("{what} is not a polyarch step cache: {reason}")]
    Malformed {
        /// What was read (`cache layout DIR`, `cache REF`).
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for CacheError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CacheError::Io { .. } => ExitCode::Host,
            CacheError::Malformed { .. } => ExitCode::BadInput,
            CacheError::Store(e) => e.exit_code(),
        }
    }
}

/// For `map_err`: [`CacheError::Io`] naming what was being done to which path.
pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
