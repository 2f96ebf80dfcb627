//! Blobs on a registry: whether a repository has one (`HEAD /v2/<name>/blobs/<digest>`) and
//! fetching one (`GET`) into a file while checking its size and sha256 as it streams
//! (distribution-spec v1.1 `spec.md`, "Pulling blobs", "Checking if content exists").
//!
//! Level 2, above the transport: it describes requests and checks answers, never sends or
//! retries a request by itself (a download whose body breaks off starts over). A fetched blob
//! never sits whole in memory, and a file that failed its checks is removed.

use std::path::Path;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::authorization::pull;
use super::request::Req;
use super::transport::{Host, Transport};
use crate::oci::{Descriptor, Digest};
use crate::registry::status::from_reqwest;
use crate::registry::{Reference, RegistryError};

/// See [`crate::registry::Registry::fetch_blob`].
pub(super) async fn fetch(
    t: &Transport,
    repo: &Reference,
    desc: &Descriptor,
    dest: &Path,
) -> Result<(), RegistryError> {
    let what = format!("blob {} in {}", desc.digest, repo.repo_string());
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    // The GET is retried by the transport; a body that breaks off is fetched again from the
    // start, truncating `dest`.
    let result = t
        .retry_operation(&host.registry, &what, || {
            fetch_once(t, &host, repo, desc, dest, &what)
        })
        .await;
    if result.is_err() {
        // Best effort: a partial or unverified file must not be mistaken for the blob.
        let _ = tokio::fs::remove_file(dest).await;
    }
    result
}

/// One `GET` of `desc` from `repo` into `dest` (created or truncated), hashing and counting
/// while writing.
async fn fetch_once(
    t: &Transport,
    host: &Host,
    repo: &Reference,
    desc: &Descriptor,
    dest: &Path,
    what: &str,
) -> Result<(), RegistryError> {
    let url = t
        .url(
            host,
            &format!("/v2/{}/blobs/{}", repo.repository, desc.digest),
        )
        .await?;
    let resp = t
        .expect(
            host,
            &[pull(repo)],
            what,
            Req::new(Method::GET, url),
            &[200],
        )
        .await?;
    let size_mismatch = |found| RegistryError::SizeMismatch {
        what: what.to_string(),
        expected: desc.size,
        found,
    };
    if let Some(announced) = resp.content_length() {
        if announced != desc.size {
            return Err(size_mismatch(announced));
        }
    }
    let io = |action| {
        move |source| RegistryError::Io {
            action,
            path: dest.to_path_buf(),
            source,
        }
    };
    let mut file = tokio::fs::File::create(dest).await.map_err(io("create"))?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| from_reqwest(e, &host.registry, what))?;
        received += piece.len() as u64;
        // Stop early rather than fill the disk when the registry sends too much.
        if received > desc.size {
            return Err(size_mismatch(received));
        }
        hasher.update(&piece);
        file.write_all(&piece).await.map_err(io("write"))?;
    }
    if received != desc.size {
        return Err(size_mismatch(received));
    }
    let found = Digest::from_hasher(hasher);
    if found != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: desc.digest.clone(),
            found: found.to_string(),
        });
    }
    file.flush().await.map_err(io("write"))?;
    Ok(())
}

/// See [`crate::registry::Registry::blob_exists`].
pub(super) async fn exists(
    t: &Transport,
    repo: &Reference,
    digest: &Digest,
) -> Result<bool, RegistryError> {
    let what = format!("blob {digest} in {}", repo.repo_string());
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    exists_once(t, &host, repo, digest, &what).await
}

/// A `HEAD` of the blob `digest` in `repo` (retried by the transport): `true` on 200, `false`
/// on 404.
pub(super) async fn exists_once(
    t: &Transport,
    host: &Host,
    repo: &Reference,
    digest: &Digest,
    what: &str,
) -> Result<bool, RegistryError> {
    let url = t
        .url(host, &format!("/v2/{}/blobs/{digest}", repo.repository))
        .await?;
    let resp = t
        .expect(
            host,
            &[pull(repo)],
            what,
            Req::new(Method::HEAD, url),
            &[200, 404],
        )
        .await?;
    Ok(resp.status() == StatusCode::OK)
}
