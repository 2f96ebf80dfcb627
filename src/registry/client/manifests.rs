//! Manifests and indexes on a registry: `GET`, `HEAD` and `PUT /v2/<name>/manifests/<reference>`
//! with the four manifest/index media types accepted, each answer checked against the digest
//! asked for and the registry's `Docker-Content-Digest` (distribution-spec v1.1 `spec.md`,
//! "Pulling manifests", "Pushing Manifests").
//!
//! Level 2, above the transport: it describes requests and checks answers, never sends or
//! retries a request by itself. Manifests are pushed as the exact bytes given, never re-serialised.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use tokio::sync::OnceCell;

use super::answer::{header_str, read_body};
use super::authorization::{pull, push};
use super::request::{Payload, Req};
use super::transport::{Host, Transport};
use crate::oci::{Descriptor, Digest, MANIFEST_ACCEPT};
use crate::registry::{
    check_manifest_push, manifest_media_type, RawManifest, Reference, RegistryError,
};

/// Manifests fetched by tag, kept for the client's life (see
/// [`super::RegistryOptions::remember_tags`]); concurrent readers of one tag share one fetch.
#[derive(Default)]
pub(super) struct TagMemo {
    tags: std::sync::Mutex<HashMap<String, Arc<OnceCell<RawManifest>>>>,
}

impl TagMemo {
    /// The manifest `reference` names: remembered, or fetched by `fetch` (a failure is not
    /// remembered).
    pub(super) async fn get<F, Fut>(
        &self,
        reference: &Reference,
        fetch: F,
    ) -> Result<RawManifest, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<RawManifest, RegistryError>>,
    {
        let cell = {
            let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
            tags.entry(reference.to_string()).or_default().clone()
        };
        cell.get_or_try_init(fetch).await.cloned()
    }

    /// Forgets what `repo` + `reference` (a tag) named: it is being pushed.
    pub(super) fn forget(&self, repo: &Reference, reference: &str) {
        let mut tags = self.tags.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = repo.clone();
        r.tag = Some(reference.to_string());
        r.digest = None;
        tags.remove(&r.to_string());
    }
}

/// The largest manifest or index accepted (distribution-spec: registries SHOULD accept 4 MiB).
const MANIFEST_LIMIT: usize = 8 << 20;

/// `manifest registry/repo:tag` or `manifest registry/repo@sha256:…`.
fn manifest_what(repo: &Reference, target: &str) -> String {
    let sep = if target.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    format!("manifest {}{sep}{target}", repo.repo_string())
}

/// The `/v2/<name>/manifests/<reference>` path of what `reference` names.
fn manifest_path(reference: &Reference) -> String {
    format!(
        "/v2/{}/manifests/{}",
        reference.repository,
        reference.manifest_reference()
    )
}

/// See [`crate::registry::Registry::get_manifest`].
pub(super) async fn get(
    t: &Transport,
    reference: &Reference,
) -> Result<RawManifest, RegistryError> {
    let what = reference.to_string();
    let host = t.host(&reference.registry)?;
    let _slot = t.permit(&host).await;
    get_once(t, &host, reference, &what).await
}

/// One `GET` of the manifest `reference` names, checked against the digest asked for (or the
/// `Docker-Content-Digest` header) and typed.
async fn get_once(
    t: &Transport,
    host: &Host,
    reference: &Reference,
    what: &str,
) -> Result<RawManifest, RegistryError> {
    let scopes = [pull(reference)];
    let url = t.url(host, &manifest_path(reference)).await?;
    let resp = t
        .expect(
            host,
            &scopes,
            what,
            Req::new(Method::GET, url).header("Accept", MANIFEST_ACCEPT),
            &[200],
        )
        .await?;
    let header_digest = header_str(resp.headers(), "Docker-Content-Digest");
    let content_type = header_str(resp.headers(), "Content-Type");
    let bytes = read_body(resp, MANIFEST_LIMIT, &host.registry, what).await?;
    let digest = Digest::of(&bytes);
    let expected = match &reference.digest {
        Some(d) => Some(d.to_string()),
        None => header_digest.filter(|d| d.starts_with("sha256:")),
    };
    if let Some(expected) = expected {
        if expected != digest.to_string() {
            let expected = expected.parse().map_err(|_| RegistryError::Protocol {
                registry: host.registry.clone(),
                what: what.to_string(),
                message: format!("bad Docker-Content-Digest {expected:?}"),
            })?;
            return Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected,
                found: digest.to_string(),
            });
        }
    }
    let media_type = manifest_media_type(&bytes, content_type.as_deref(), what)?;
    Ok(RawManifest {
        bytes: bytes.to_vec(),
        media_type,
        digest,
    })
}

/// See [`crate::registry::Registry::head_manifest`].
pub(super) async fn head(
    t: &Transport,
    reference: &Reference,
) -> Result<Option<Descriptor>, RegistryError> {
    let what = format!("manifest {reference}");
    let host = t.host(&reference.registry)?;
    let _slot = t.permit(&host).await;
    head_once(t, &host, reference, &what).await
}

/// One `HEAD` of the manifest `reference` names: its descriptor from the headers, or from the
/// document itself (a `GET`) when the registry gives no digest; `None` on 404.
async fn head_once(
    t: &Transport,
    host: &Host,
    reference: &Reference,
    what: &str,
) -> Result<Option<Descriptor>, RegistryError> {
    let url = t.url(host, &manifest_path(reference)).await?;
    let resp = t
        .expect(
            host,
            &[pull(reference)],
            what,
            Req::new(Method::HEAD, url).header("Accept", MANIFEST_ACCEPT),
            &[200, 404],
        )
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let digest = match (
        &reference.digest,
        header_str(resp.headers(), "Docker-Content-Digest"),
    ) {
        (Some(d), Some(h)) if h != d.to_string() => {
            return Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected: d.clone(),
                found: h,
            })
        }
        (Some(d), _) => d.clone(),
        (None, Some(h)) => h.parse().map_err(|_| RegistryError::Protocol {
            registry: host.registry.clone(),
            what: what.to_string(),
            message: format!("bad Docker-Content-Digest {h:?}"),
        })?,
        (None, None) => {
            // No digest header: fetch the document and hash it ourselves.
            let m = get_once(t, host, reference, what).await?;
            return Ok(Some(m.descriptor()));
        }
    };
    let media_type = header_str(resp.headers(), "Content-Type").unwrap_or_default();
    let size = resp.content_length().unwrap_or(0);
    Ok(Some(Descriptor::new(media_type, digest, size)))
}

/// Whether `err`, the answer to a manifest PUT whose digest was computed here, is a
/// registry's `DIGEST_INVALID` (distribution-spec "Error Codes"): one that a referenced
/// blob's link read mid-write gives, and that a second PUT does not.
fn blob_link_race(err: &RegistryError) -> bool {
    matches!(err, RegistryError::Rejected { code, .. } if code == "DIGEST_INVALID")
}

/// See [`crate::registry::Registry::push_manifest`].
pub(super) async fn put(
    t: &Transport,
    repo: &Reference,
    reference: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<Digest, RegistryError> {
    let digest = check_manifest_push(repo, reference, bytes)?;
    let what = manifest_what(repo, reference);
    if HeaderValue::from_str(media_type).is_err() {
        return Err(RegistryError::UnsupportedManifest {
            reference: what,
            media_type: media_type.to_string(),
        });
    }
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    let body = Bytes::copy_from_slice(bytes);
    let url = t
        .url(
            &host,
            &format!("/v2/{}/manifests/{reference}", repo.repository),
        )
        .await?;
    let mut attempts = t.attempts();
    let resp = loop {
        let req = Req::new(Method::PUT, url.clone())
            .header("Content-Type", media_type)
            .body(Payload::Bytes(body.clone()));
        let err = match t.expect(&host, &[push(repo)], &what, req, &[201]).await {
            Ok(resp) => break resp,
            Err(e) => e,
        };
        // The digest of these bytes was computed here, so DIGEST_INVALID is not about them:
        // the registry could not read one of the blobs the manifest names, which happens
        // while another push of the same blob to this repository rewrites its link
        // (distribution's filesystem driver). The same PUT succeeds once that write ends.
        let Some(delay) = blob_link_race(&err)
            .then(|| attempts.next_delay_for(None))
            .flatten()
        else {
            return Err(err);
        };
        let request = format!("PUT {what}");
        t.counters
            .retrying(&host.registry, &request, attempts.granted, &err, delay);
        tokio::time::sleep(delay).await;
    };
    let served = header_str(resp.headers(), "Docker-Content-Digest");
    // The digest the registry computed must be that of the bytes sent: a registry that
    // rewrote the document would otherwise go unnoticed.
    if let Some(served) = served {
        if served != digest.to_string() {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest,
                found: served,
            });
        }
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str) -> RegistryError {
        RegistryError::Rejected {
            registry: "r".into(),
            what: "manifest".into(),
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn only_digest_invalid_is_taken_for_a_blob_link_race() {
        assert!(blob_link_race(&rejected("DIGEST_INVALID")));
        assert!(!blob_link_race(&rejected("MANIFEST_BLOB_UNKNOWN")));
        assert!(!blob_link_race(&rejected("MANIFEST_INVALID")));
    }
}
