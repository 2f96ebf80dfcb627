//! The registry port: fetch and push manifests and blobs (OCI distribution-spec v1.1).
//!
//! Level 2. [`Registry`] is the small trait the coordinator is generic over; [`OciRegistry`] is
//! the real implementation (our own distribution-spec client on reqwest, with retries,
//! authentication, TLS roots and digest checks) and [`fake::FakeRegistry`] an in-memory one that
//! records calls for the tests of higher layers. [`Reference`] parses image references the way
//! Docker does; [`auth`] finds credentials.
//!
//! Every blob and manifest that crosses this boundary is checked against its digest: what is
//! fetched is verified before it is handed on, and manifests are pushed as the exact bytes given
//! (never re-serialised) so that the digest the caller computed is the digest the registry
//! stores.

pub mod auth;
pub mod challenge;
mod client;
pub mod fake;
mod push_problem;
mod reference;
mod status;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::exit::{Classify, ExitCode};
use crate::oci::{
    Descriptor, Digest, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

pub use auth::{AuthError, CredentialSources, Credentials};
pub use client::{OciRegistry, RegistryOptions, RequestStats};
pub use push_problem::PushProblem;
pub use reference::{Reference, DEFAULT_REGISTRY};

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The document's bytes, unchanged (their sha256 is `digest`).
    pub bytes: Vec<u8>,
    /// One of the four manifest/index media types in [`crate::oci::MANIFEST_ACCEPT`].
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

impl RawManifest {
    /// True for an OCI image index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type == MEDIA_TYPE_OCI_INDEX || self.media_type == MEDIA_TYPE_DOCKER_LIST
    }

    /// A descriptor for this document (no platform).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// What [`Registry::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The blob was already in the repository (HEAD answered 200); nothing was sent.
    AlreadyPresent,
    /// The blob was uploaded (or copied through this client).
    Uploaded,
    /// The registry mounted the blob from another repository of its own; nothing was sent.
    Mounted,
}

/// How far a [`GrowingBlob`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobProgress {
    /// This many bytes (from the start) are written and readable from the file.
    Written(u64),
    /// The blob is complete: every byte of `descriptor.size` is in the file.
    Finished(Descriptor),
    /// Writing failed (the reason); nothing more will come.
    Abandoned(String),
}

/// A blob file that is still being written, uploaded as it grows: a layer sent while it is
/// compressed. Its digest is known only when it is [`BlobProgress::Finished`].
#[derive(Debug)]
pub struct GrowingBlob {
    /// The file, open for reading (positional reads; it may be renamed meanwhile).
    pub file: Arc<std::fs::File>,
    /// Its path when opened, for messages.
    pub path: PathBuf,
    /// How far it is; the writer sends each step and [`BlobProgress::Finished`] last.
    pub progress: tokio::sync::watch::Receiver<BlobProgress>,
}

/// A container registry, as the rest of polyarch sees it.
///
/// `repo` arguments name a repository (`registry` and `repository`; tag and digest are ignored).
/// Implementations retry transient failures themselves; an error returned is final.
pub trait Registry: Send + Sync {
    /// Fetches the manifest or index `reference` names (by digest if pinned, else by tag,
    /// else `latest`), asking for all four manifest/index media types.
    ///
    /// The body's sha256 is checked against the requested digest when fetched by digest, and
    /// against the registry's `Docker-Content-Digest` header when present. Errors:
    /// [`RegistryError::NotFound`], [`RegistryError::DigestMismatch`],
    /// [`RegistryError::UnsupportedManifest`], and the transport/auth/status errors.
    fn get_manifest(
        &self,
        reference: &Reference,
    ) -> impl Future<Output = Result<RawManifest, RegistryError>> + Send;

    /// Streams the blob `desc` names from `repo` into the file `dest` (created or truncated),
    /// never holding it whole in memory, and checks its size and digest.
    ///
    /// On any error `dest` is removed. Errors: [`RegistryError::NotFound`],
    /// [`RegistryError::SizeMismatch`], [`RegistryError::DigestMismatch`],
    /// [`RegistryError::Io`] for `dest`, and the transport/auth/status errors.
    fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// The descriptor (media type, digest, size; no platform) of the manifest `reference`
    /// names, from a HEAD request with all four media types accepted; `Ok(None)` on 404.
    ///
    /// Errors: [`RegistryError::DigestMismatch`] when the registry reports another digest than
    /// the one asked for, and the transport/auth/status errors.
    fn head_manifest(
        &self,
        reference: &Reference,
    ) -> impl Future<Output = Result<Option<Descriptor>, RegistryError>> + Send;

    /// Makes the blob `desc` of `from` present in `to`: nothing when it is there already, a
    /// cross-repository mount when both are on one registry and it agrees, else a streamed
    /// copy (the source's body is the upload's body; the target checks the digest).
    ///
    /// Errors: [`RegistryError::NotFound`] when `from` lacks the blob,
    /// [`RegistryError::SizeMismatch`], and the transport/auth/status errors of either side.
    fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
    ) -> impl Future<Output = Result<BlobPush, RegistryError>> + Send;

    /// Whether `repo` holds the blob `digest` (a HEAD request; 404 is `Ok(false)`).
    fn blob_exists(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;

    /// Uploads the file at `path` as the blob `desc` to `repo`, unless the repository already
    /// has it. The file is streamed (memory stays flat for any size); the registry checks the
    /// digest on commit.
    ///
    /// Errors: [`RegistryError::BlobFileSize`] when the file's length is not `desc.size`,
    /// [`RegistryError::Io`] when it cannot be read, and the transport/auth/status errors.
    fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> impl Future<Output = Result<BlobPush, RegistryError>> + Send;

    /// Uploads `blob` to `repo` while it is being written: chunks go up as they are written,
    /// and the upload is committed under the digest given when the blob is finished. Memory
    /// stays flat; every chunk is read from the file (so it can be sent again).
    ///
    /// Returns the finished blob's descriptor and what was done. Errors:
    /// [`RegistryError::Abandoned`] when writing the blob failed, [`RegistryError::Io`] when
    /// the file cannot be read, and the transport/auth/status errors.
    fn push_growing_blob(
        &self,
        repo: &Reference,
        blob: GrowingBlob,
    ) -> impl Future<Output = Result<(Descriptor, BlobPush), RegistryError>> + Send;

    /// Checks, before anything is built, that `repo` can be pushed to: its registry's name
    /// resolves, it accepts connections, TLS verifies, its `/v2/` answers and the credentials
    /// may push there.
    ///
    /// Errors: [`RegistryError::NotReady`] naming the failed check ([`PushProblem`]), and the
    /// transport/status errors after retries.
    fn check_push(
        &self,
        repo: &Reference,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// Abandons the upload session at `location` on `registry` (`DELETE`; one already gone
    /// is fine): a session a killed process left open (see the store's upload journal).
    ///
    /// Errors: [`RegistryError::Protocol`] for a URL that is not a session's, and the
    /// transport/auth/status errors.
    fn abandon_upload(
        &self,
        registry: &str,
        location: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// Uploads `bytes` unchanged as a manifest of `media_type` to `repo` under `reference` (a
    /// tag, or the digest string `sha256:...` of `bytes`) and returns the sha256 of `bytes`.
    ///
    /// Errors: [`RegistryError::InvalidReference`] for a bad tag,
    /// [`RegistryError::DigestMismatch`] when `reference` is a digest other than that of
    /// `bytes` or the registry reports another digest, and the transport/auth/status errors.
    fn push_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> impl Future<Output = Result<Digest, RegistryError>> + Send;
}

/// Errors from talking to a registry. Messages name the reference or registry and never carry
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference string that breaks the grammar.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The manifest, blob or repository does not exist (HTTP 404 or an `*_UNKNOWN` error code).
    #[error("not found: {reference}")]
    NotFound {
        /// What was asked for, e.g. `docker.io/library/busybox:1.36` or `blob sha256:… in …`.
        reference: String,
    },
    /// The registry refused the credentials, or asked for some and none were given.
    #[error("unauthorized at {registry}: {detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The registry's explanation (never our credentials).
        detail: String,
    },
    /// The connection failed, was reset or timed out (after retries).
    #[error("cannot talk to registry {registry} ({what})")]
    Transport {
        /// The registry host.
        registry: String,
        /// The request.
        what: String,
        /// The underlying network error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake failed: an untrusted or wrong certificate, or a peer that does not
    /// speak TLS as expected. Not retried.
    #[error("TLS with registry {registry} failed: {problem}")]
    Tls {
        /// The registry host.
        registry: String,
        /// What the TLS library reported.
        problem: String,
    },
    /// A CA or client certificate file that cannot be used.
    #[error("cannot use certificate file {path}: {reason}")]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Looking up the credentials for a registry failed (a config file or helper).
    #[error("cannot get credentials for {registry}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// The cause (boxed: it is large and rare).
        #[source]
        source: Box<AuthError>,
    },
    /// A token expired while a body that cannot be sent twice was on its way; the whole
    /// operation is started again (transient).
    #[error("the credentials for {registry} expired during a streamed upload")]
    AuthExpired {
        /// The registry host.
        registry: String,
    },
    /// An unexpected HTTP status (after retries for 408, 429 and 5xx).
    #[error("registry {registry} answered HTTP {status} for {what}: {body_excerpt}")]
    Status {
        /// The registry host.
        registry: String,
        /// The request, e.g. `manifest 127.0.0.1:5000/x:1`.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, on one line.
        body_excerpt: String,
        /// How long the registry asked to wait (`Retry-After`), in whole seconds, if it did
        /// (seconds are the header's own resolution; a small field keeps the error small).
        retry_after_secs: Option<u32>,
    },
    /// The registry answered with an error envelope (distribution-spec "Error Codes"): its
    /// `code`, `message` and `detail` are quoted.
    #[error("registry {registry} refused {what}: {code}: {message}")]
    Rejected {
        /// The registry host.
        registry: String,
        /// The request.
        what: String,
        /// The error code, e.g. `MANIFEST_INVALID`, `DENIED`, `TOOMANYREQUESTS`.
        code: String,
        /// The registry's message, then its `detail` when it gave one (for
        /// `MANIFEST_BLOB_UNKNOWN`: the missing blob and the repository it is missing from).
        message: String,
    },
    /// A push target failed its pre-flight check (before anything was built).
    #[error("cannot push to {repository}: {problem}")]
    NotReady {
        /// The registry host.
        registry: String,
        /// `registry/repository`.
        repository: String,
        /// What failed.
        problem: Box<PushProblem>,
    },
    /// A blob that was being uploaded while written was never finished.
    #[error("the blob {path} was abandoned before it was finished: {reason}")]
    Abandoned {
        /// The blob file.
        path: PathBuf,
        /// Why writing it stopped.
        reason: String,
    },
    /// Content whose sha256 is not the digest it was asked for under.
    #[error("digest mismatch for {what}: expected {expected}, got {found}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest found (of the bytes, or as reported by the registry).
        found: String,
    },
    /// A blob whose length is not its descriptor's size.
    #[error("size mismatch for {what}: expected {expected} bytes, got {found}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The descriptor's size, bytes.
        expected: u64,
        /// Bytes received (or announced by `Content-Length`).
        found: u64,
    },
    /// A manifest of a media type polyarch does not handle (not one of the four in
    /// [`crate::oci::MANIFEST_ACCEPT`]), or whose kind cannot be told.
    #[error("manifest {reference} has unsupported media type {media_type:?}")]
    UnsupportedManifest {
        /// The reference it was fetched by.
        reference: String,
        /// Its media type (empty when none could be found).
        media_type: String,
    },
    /// A manifest that is not JSON.
    #[error("manifest {reference} is not valid JSON")]
    MalformedManifest {
        /// The reference it was fetched by.
        reference: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The registry broke the protocol (missing `Location`, unexpected success code, ...).
    #[error("registry {registry} broke the distribution protocol during {what}: {message}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// The request.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A local blob file whose length is not the descriptor's size.
    #[error("blob file {path} is {found} bytes but its descriptor says {expected}")]
    BlobFileSize {
        /// The file.
        path: PathBuf,
        /// The descriptor's size, bytes.
        expected: u64,
        /// The file's length, bytes.
        found: u64,
    },
    /// A local file could not be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done (`open`, `write`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether the registry lost (or never had) the upload session the request used:
    /// `404` on an upload URL, `BLOB_UPLOAD_UNKNOWN` or `BLOB_UPLOAD_INVALID`
    /// (distribution-spec "Error Codes"). The upload starts over in a new session.
    pub fn is_upload_lost(&self) -> bool {
        match self {
            RegistryError::NotFound { .. } => true,
            RegistryError::Rejected { code, .. } => {
                code == "BLOB_UPLOAD_UNKNOWN" || code == "BLOB_UPLOAD_INVALID"
            }
            _ => false,
        }
    }

    /// Whether retrying the same request may succeed: connection failures, resets and timeouts,
    /// HTTP 408, 429 and 5xx, and the `TOOMANYREQUESTS` error code. 4xx answers such as 400,
    /// 401, 403 and 404 are final.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::AuthExpired { .. } => true,
            RegistryError::Status { status, .. } => {
                *status == 408 || *status == 429 || (500..600).contains(status)
            }
            RegistryError::Rejected { code, .. } => code == "TOOMANYREQUESTS",
            _ => false,
        }
    }
}

impl Classify for RegistryError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A missing base image or a bad name is the user's input, not the network.
            RegistryError::InvalidReference { .. }
            | RegistryError::NotFound { .. }
            | RegistryError::UnsupportedManifest { .. }
            | RegistryError::MalformedManifest { .. } => ExitCode::BadInput,
            RegistryError::BlobFileSize { .. }
            | RegistryError::Io { .. }
            | RegistryError::Abandoned { .. } => ExitCode::Host,
            RegistryError::CaCert { .. } => ExitCode::BadInput,
            RegistryError::Credentials { source, .. } => source.exit_code(),
            RegistryError::Unauthorized { .. }
            | RegistryError::Tls { .. }
            | RegistryError::AuthExpired { .. }
            | RegistryError::NotReady { .. }
            | RegistryError::Transport { .. }
            | RegistryError::Status { .. }
            | RegistryError::Rejected { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::SizeMismatch { .. }
            | RegistryError::Protocol { .. } => ExitCode::Registry,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::InvalidReference { .. } => Some(
                "write references as [registry[:port]/]repository[:tag][@sha256:<hex>], \
                 with a lowercase repository"
                    .into(),
            ),
            RegistryError::NotFound { .. } => {
                Some("check the repository name and tag, and that you may read it".into())
            }
            RegistryError::Unauthorized { registry, .. } => Some(format!(
                "check the credentials for {registry}: --creds USER:PASSWORD, \
                 --password-stdin, or docker/podman login"
            )),
            RegistryError::Transport { registry, .. } => Some(format!(
                "check that {registry} is reachable; if it serves plain HTTP, mark it \
                 --insecure-registry {registry}"
            )),
            RegistryError::Tls { registry, .. } => Some(format!(
                "trust the registry's CA with --ca-cert FILE or certs.d/{registry}/ca.crt"
            )),
            RegistryError::NotReady {
                registry,
                repository,
                problem,
            } => Some(problem.fix(registry, repository)),
            RegistryError::Credentials { source, .. } => source.hint(),
            RegistryError::Rejected { code, .. } if code == "MANIFEST_BLOB_UNKNOWN" => Some(
                "a manifest is pushed only after its blobs; the registry lost one (garbage \
                 collection or a storage fault): push the build again"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Checks the `reference` a manifest is pushed to (see [`Registry::push_manifest`]) and returns
/// the sha256 of `bytes`: a digest string must be that digest, anything else a valid tag.
pub(crate) fn check_manifest_push(
    repo: &Reference,
    reference: &str,
    bytes: &[u8],
) -> Result<Digest, RegistryError> {
    let digest = Digest::of(bytes);
    if reference.starts_with("sha256:") {
        let wanted = reference
            .parse::<Digest>()
            .map_err(|_| RegistryError::InvalidReference {
                input: format!("{}@{reference}", repo.repo_string()),
                reason: "the digest must be `sha256:` and 64 lowercase hex digits".into(),
            })?;
        if wanted != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {}@{reference}", repo.repo_string()),
                expected: wanted,
                found: digest.to_string(),
            });
        }
    } else {
        reference::check_tag(reference).map_err(|reason| RegistryError::InvalidReference {
            input: format!("{}:{reference}", repo.repo_string()),
            reason: reason.to_string(),
        })?;
    }
    Ok(digest)
}

/// Tells a manifest's media type from its bytes and the `Content-Type` it was served with.
///
/// The `mediaType` field decides (Docker schema 2 documents always carry it; image-spec v1.1
/// says OCI ones SHOULD); then the `Content-Type` when it is one of the four; then the shape: an
/// OCI document with `manifests` is an index and one with `config` an image manifest
/// (image-spec manifest.md and image-index.md, the only two kinds we ask for).
pub(crate) fn manifest_media_type(
    bytes: &[u8],
    content_type: Option<&str>,
    reference: &str,
) -> Result<String, RegistryError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<IgnoredAny>,
        config: Option<IgnoredAny>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|source| RegistryError::MalformedManifest {
            reference: reference.to_string(),
            source,
        })?;
    let known = [
        MEDIA_TYPE_OCI_INDEX,
        MEDIA_TYPE_OCI_MANIFEST,
        MEDIA_TYPE_DOCKER_LIST,
        MEDIA_TYPE_DOCKER_MANIFEST,
    ];
    let served = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| known.contains(c));
    let media_type = match (probe.media_type, probe.manifests, probe.config) {
        (Some(media_type), _, _) => media_type,
        (None, _, _) if served.is_some() => served.unwrap_or_default().to_string(),
        (None, Some(_), _) => MEDIA_TYPE_OCI_INDEX.to_string(),
        (None, None, Some(_)) => MEDIA_TYPE_OCI_MANIFEST.to_string(),
        (None, None, None) => String::new(),
    };
    if [
        MEDIA_TYPE_OCI_INDEX,
        MEDIA_TYPE_OCI_MANIFEST,
        MEDIA_TYPE_DOCKER_LIST,
        MEDIA_TYPE_DOCKER_MANIFEST,
    ]
    .contains(&media_type.as_str())
    {
        Ok(media_type)
    } else {
        Err(RegistryError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_field_or_shape() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#,
                Some(MEDIA_TYPE_DOCKER_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#,
                Some(MEDIA_TYPE_DOCKER_LIST),
            ),
            (
                r#"{"schemaVersion":2,"manifests":[]}"#,
                Some(MEDIA_TYPE_OCI_INDEX),
            ),
            (
                r#"{"schemaVersion":2,"config":{},"layers":[]}"#,
                Some(MEDIA_TYPE_OCI_MANIFEST),
            ),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            (
                r#"{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#,
                None,
            ),
        ];
        for (doc, want) in cases {
            let got = manifest_media_type(doc.as_bytes(), None, "r");
            match want {
                Some(want) => assert_eq!(got.unwrap(), *want, "{doc}"),
                None => assert!(
                    matches!(got, Err(RegistryError::UnsupportedManifest { .. })),
                    "{doc}"
                ),
            }
        }
        assert!(matches!(
            manifest_media_type(b"not json", None, "r"),
            Err(RegistryError::MalformedManifest { .. })
        ));
        // Without a mediaType field, a known Content-Type decides over the shape.
        assert_eq!(
            manifest_media_type(
                br#"{"schemaVersion":2,"manifests":[]}"#,
                Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=x"),
                "r"
            )
            .unwrap(),
            MEDIA_TYPE_DOCKER_LIST
        );
    }

    #[test]
    fn transient_errors_and_exit_codes() {
        let status = |status| RegistryError::Status {
            registry: "r".into(),
            what: "w".into(),
            status,
            body_excerpt: String::new(),
            retry_after_secs: None,
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status(s).is_transient(), "{s}");
            assert_eq!(status(s).exit_code(), ExitCode::Registry);
        }
        for s in [400, 401, 403, 404, 405, 409] {
            assert!(!status(s).is_transient(), "{s}");
        }
        let not_found = RegistryError::NotFound {
            reference: "docker.io/library/nope:1".into(),
        };
        assert!(!not_found.is_transient());
        assert_eq!(not_found.exit_code(), ExitCode::BadInput);
        assert!(not_found.to_string().contains("docker.io/library/nope:1"));
        let unauthorized = RegistryError::Unauthorized {
            registry: "ghcr.io".into(),
            detail: "authentication required".into(),
        };
        assert!(!unauthorized.is_transient());
        assert_eq!(unauthorized.exit_code(), ExitCode::Registry);
        assert!(unauthorized.hint().unwrap().contains("ghcr.io"));
    }
}
