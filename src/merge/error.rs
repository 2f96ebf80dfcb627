//! [`MergeError`]: why a merge failed, with the exit code and hint of each cause, and how a
//! registry failure is named by the step it broke.
//!
//! Level 3, but pure: no I/O. It must not know how a merge runs; the other rooms of `merge`
//! build these values.

use std::path::PathBuf;

use crate::exit::{Classify, ExitCode};
use crate::index::IndexError;
use crate::metadata::MetadataError;
use crate::oci::{self, Digest};
use crate::platform::PlatformError;
use crate::registry::RegistryError;

/// Why a merge failed. Nothing was pushed to a tag when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No sources at all (e.g. an empty metadata directory).
    #[error("no sources to merge: refusing to publish an empty index")]
    NoSources,
    /// A flag value that makes no sense.
    #[error("{flag}: {message}")]
    Usage {
        /// The flag.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// A metadata file (`@FILE`) that cannot be used.
    #[error("metadata file {path}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: MetadataError,
    },
    /// A metadata file or directory that cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadSource {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A reference that does not parse.
    #[error("{origin}: {source}")]
    BadReference {
        /// The argument or file.
        origin: String,
        /// The parse error.
        #[source]
        source: Box<RegistryError>,
    },
    /// A platform that does not parse (in a metadata file or `--platforms`).
    #[error("{origin}: {source}")]
    BadPlatform {
        /// Where it was.
        origin: String,
        /// The parse error.
        #[source]
        source: PlatformError,
    },
    /// Required platforms that no source provides.
    #[error("missing platform(s) {}: not among the sources (found: {})", .missing.join(", "), .found.join(", "))]
    MissingPlatforms {
        /// The required platforms not found, normalised.
        missing: Vec<String>,
        /// The platforms the sources provide, normalised.
        found: Vec<String>,
    },
    /// A metadata file's platform is not the image's.
    #[error("{origin} says {claimed} but {reference} is an image for {actual}")]
    PlatformMismatch {
        /// The metadata file.
        origin: String,
        /// What the file says.
        claimed: String,
        /// What the image's config says.
        actual: String,
        /// The image.
        reference: String,
    },
    /// A `manifest-descriptor[PLATFORM]` annotation for a platform not in the index.
    #[error("--annotation {spec}: no entry for platform {platform} in the index")]
    AnnotationPlatform {
        /// The annotation as given.
        spec: String,
        /// The platform.
        platform: String,
    },
    /// A source document that is not a manifest or index we can read.
    #[error("{origin}: {source}")]
    Malformed {
        /// The source.
        origin: String,
        /// The parse error.
        #[source]
        source: oci::OciError,
    },
    /// The index could not be stitched.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A registry operation failed (after retries).
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// A child that should be in the target repository did not show up in time.
    #[error("{reference} is not in the target repository (waited {waited_secs} s)")]
    ChildMissing {
        /// The child, `repo@digest`.
        reference: String,
        /// How long it was waited for.
        waited_secs: u64,
    },
    /// After the push, a tag serves something else than what was pushed.
    #[error("{tag} serves {found} after pushing {expected}")]
    TagMismatch {
        /// The tag.
        tag: String,
        /// What was pushed.
        expected: Digest,
        /// What the tag serves.
        found: String,
    },
}

impl Classify for MergeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::Registry { source, .. } | MergeError::BadReference { source, .. } => {
                source.exit_code()
            }
            MergeError::ReadSource { .. } => ExitCode::BadInput,
            MergeError::Index(e) => e.exit_code(),
            MergeError::ChildMissing { .. } | MergeError::TagMismatch { .. } => ExitCode::Registry,
            _ => ExitCode::BadInput,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            MergeError::NoSources => {
                Some("check that every matrix job uploaded its metadata file".into())
            }
            MergeError::MissingPlatforms { .. } => Some(
                "a build for those platforms failed or its metadata file was not collected; \
                 nothing was pushed"
                    .into(),
            ),
            MergeError::Registry { source, .. } | MergeError::BadReference { source, .. } => {
                source.hint()
            }
            MergeError::Index(e) => e.hint(),
            MergeError::ChildMissing { .. } => Some(
                "the registry has not made the image visible yet (or it was deleted); \
                 retry, or raise --visibility-timeout"
                    .into(),
            ),
            MergeError::TagMismatch { .. } => {
                Some("someone else pushed to the tag at the same time; retry".into())
            }
            _ => None,
        }
    }
}

/// Names a registry failure by `what` was being done: a [`MergeError::Registry`].
pub(super) fn reg_err(what: impl Into<String>) -> impl FnOnce(RegistryError) -> MergeError {
    let what = what.into();
    move |source| MergeError::Registry {
        what,
        source: Box::new(source),
    }
}
