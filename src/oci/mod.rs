//! OCI data model: digests, descriptors, image manifests, image indexes and image configs.
//!
//! Level 0: pure values, no I/O. Every document polyarch hashes is serialised from these structs
//! (fields in declaration order, maps as `BTreeMap`), so the same value always gives the same
//! bytes and therefore the same digest. Sources: OCI image-spec v1.1 (`descriptor.md`,
//! `manifest.md`, `image-index.md`, `config.md`) and distribution-spec v1.1.
//!
//! One file per idea: `annotations` (`--annotation` levels), `media_types` (names), `digest` (digests, hashing while writing),
//! `manifest` (descriptors, manifests, indexes), `config` (image configs) and `json` (the
//! canonical bytes of every document). [`OciError`], which they share, lives here, and every
//! item is re-exported from here: callers write `crate::oci::Digest`.

mod annotations;
mod config;
mod digest;
mod json;
mod manifest;
mod media_types;

pub use annotations::{annotations_for, Annotation, AnnotationLevel};
pub use config::{
    rfc3339, ContainerConfig, EmptyObject, HealthConfig, History, ImageConfig, RootFs,
};
pub use digest::{Digest, DigestWriter};
pub use json::{from_bytes, to_bytes};
pub use manifest::{Descriptor, ImageIndex, ImageManifest};
pub use media_types::{
    ANNOTATION_REF_NAME, MANIFEST_ACCEPT, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_LAYER_TAR,
    MEDIA_TYPE_OCI_LAYER_ZSTD, MEDIA_TYPE_OCI_MANIFEST,
};

/// Errors from parsing or checking OCI values.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A digest string that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {value:?}: expected `sha256:` followed by 64 lowercase hex digits")]
    InvalidDigest {
        /// The string as given.
        value: String,
    },
    /// Content whose digest is not the one it was asked for under.
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was checked (e.g. "layer blob", "manifest 127.0.0.1:5000/x@sha256:…").
        what: String,
        /// The digest that was expected.
        expected: Digest,
        /// The digest of the bytes actually received.
        found: Digest,
    },
    /// A JSON document that does not parse as the expected OCI type.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which document.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl crate::exit::Classify for OciError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::BadInput
    }
}
