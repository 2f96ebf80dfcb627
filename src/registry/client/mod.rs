//! [`OciRegistry`]: the real [`Registry`], a small distribution-spec v1.1 client on `reqwest`
//! (rustls), with our own authentication, TLS roots, retries, bounded concurrency and digest
//! checks.
//!
//! Why not oci-client (see `shared/CRATES.md`): it hides response headers (no `Retry-After`,
//! no `OCI-Chunk-Min-Length`), keeps one credential per registry with no token refresh on 401,
//! scopes tokens to one repository (no cross-repository mount), and cannot take per-registry
//! CA roots. The API used here is a dozen endpoints (distribution-spec `spec.md`, "Endpoints"):
//!
//! | request | endpoint |
//! |---|---|
//! | probe | `GET /v2/` |
//! | manifest | `GET`/`HEAD`/`PUT /v2/<name>/manifests/<reference>` |
//! | blob | `GET`/`HEAD /v2/<name>/blobs/<digest>` |
//! | upload | `POST /v2/<name>/blobs/uploads/` (optionally `?mount=<digest>&from=<other>`), `PATCH <location>` per chunk, `PUT <location>?digest=<digest>`, `DELETE <location>` to abandon |
//!
//! Blob bodies stream from and to files (memory stays flat whatever the size); blobs larger
//! than [`RegistryOptions::chunk_size`] go up in chunks, and a layer can go up while it is
//! still being written ([`Registry::push_growing_blob`]). Every request is retried on its own on
//! transient failures (connect errors, resets, timeouts, 408, 429, 5xx) with exponential
//! backoff and jitter, honouring `Retry-After`, within a per-request budget and the command's
//! deadline; a chunked upload that fails mid-way resumes from the offset the registry reports
//! and opens a new session only when the registry lost the old one.
//!
//! Level 2. The rooms, each using only those listed before it:
//!
//! | file | owns |
//! |---|---|
//! | `options` | [`RegistryOptions`], loopback and API host names |
//! | `tls` | the HTTP client per registry: roots, client certificate, timeouts |
//! | `peer_cert` | the subject of a registry's certificate, read untrusted, for messages |
//! | `request` | a request before it is sent, and its (replayable) body |
//! | `answer` | reading headers and bounded bodies of answers |
//! | `authorization` | schemes, Basic, bearer token requests, answers and cache, scopes |
//! | `retry` | backoff, `Retry-After`, the per-request budget and deadline; request counters |
//! | `transport` | sending: hosts, plain HTTP or TLS, `401` challenges, statuses, retries |
//! | `blobs` | `HEAD`/`GET` of blobs, verified while streaming |
//! | `manifests` | `GET`/`HEAD`/`PUT` of manifests with their media types and digests |
//! | `session` | one resumable upload: `POST`, chunked `PATCH`, resume from `Range`, `PUT` |
//! | `uploads` | blob pushes (files and growing files), mounts, streamed copies |
//! | `preflight` | before a build: name, connection, TLS, `/v2/`, push rights of a target |
//!
//! This file only holds the [`OciRegistry`] handle and hands each [`Registry`] call to its
//! room; it must not send requests itself.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

mod answer;
mod authorization;
mod blobs;
mod manifests;
mod options;
mod peer_cert;
mod preflight;
mod request;
mod retry;
mod session;
mod tls;
mod transport;
mod uploads;

pub use options::RegistryOptions;
pub use retry::RequestStats;

use super::{BlobPush, GrowingBlob, RawManifest, Reference, Registry, RegistryError};
use crate::oci::{Descriptor, Digest};
use transport::Transport;

/// The real registry client. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct OciRegistry {
    transport: Arc<Transport>,
    /// Manifests fetched by tag, when [`RegistryOptions::remember_tags`] is set.
    tags: Arc<manifests::TagMemo>,
}

impl fmt::Debug for OciRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciRegistry")
            .field("options", &self.transport.options)
            .finish_non_exhaustive()
    }
}

impl OciRegistry {
    /// A client with `options`. Errors with [`RegistryError::CaCert`] when a `ca_certs` file
    /// cannot be read or holds no certificate.
    pub fn new(options: RegistryOptions) -> Result<OciRegistry, RegistryError> {
        Ok(OciRegistry {
            transport: Arc::new(Transport::new(options)?),
            tags: Arc::default(),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.transport.options
    }

    /// Requests sent so far (retries included) and how many were retries.
    pub fn stats(&self) -> RequestStats {
        self.transport.counters.stats()
    }

    /// Reports each retry to `sink` as [`crate::progress::Event::RegistryRetry`] from now on
    /// (the first sink given wins).
    pub fn report_retries_to(&self, sink: Arc<dyn crate::progress::Sink>) {
        self.transport.counters.report_to(sink);
    }
}

impl Registry for OciRegistry {
    async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        if self.transport.options.remember_tags && reference.digest.is_none() {
            return self
                .tags
                .get(reference, || manifests::get(&self.transport, reference))
                .await;
        }
        manifests::get(&self.transport, reference).await
    }

    async fn head_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<Descriptor>, RegistryError> {
        manifests::head(&self.transport, reference).await
    }

    async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        blobs::fetch(&self.transport, repo, desc, dest).await
    }

    async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        blobs::exists(&self.transport, repo, digest).await
    }

    async fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<BlobPush, RegistryError> {
        uploads::push_file(&self.transport, repo, desc, path).await
    }

    async fn check_push(&self, repo: &Reference) -> Result<(), RegistryError> {
        preflight::check_push(&self.transport, repo).await
    }

    async fn push_growing_blob(
        &self,
        repo: &Reference,
        blob: GrowingBlob,
    ) -> Result<(Descriptor, BlobPush), RegistryError> {
        uploads::push_growing(&self.transport, repo, blob).await
    }

    async fn abandon_upload(&self, registry: &str, location: &str) -> Result<(), RegistryError> {
        uploads::abandon(&self.transport, registry, location).await
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
    ) -> Result<BlobPush, RegistryError> {
        uploads::copy(&self.transport, from, to, desc).await
    }

    async fn push_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.tags.forget(repo, reference);
        manifests::put(&self.transport, repo, reference, bytes, media_type).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::Credentials;

    #[test]
    fn credentials_are_never_printed() {
        let mut options = RegistryOptions::default();
        options.auth.insert(
            "ghcr.io".into(),
            Credentials {
                username: "me".into(),
                password: "hunter2".into(),
            },
        );
        let shown = format!("{options:?}");
        assert!(
            shown.contains("me") && !shown.contains("hunter2"),
            "{shown}"
        );
        let registry = OciRegistry::new(options).unwrap();
        assert!(!format!("{registry:?}").contains("hunter2"));
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = OciRegistry::new(RegistryOptions {
            ca_certs: vec![PathBuf::from("/nonexistent/ca.pem")],
            ..RegistryOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(
            crate::exit::Classify::exit_code(&err),
            crate::exit::ExitCode::BadInput
        );
    }
}
