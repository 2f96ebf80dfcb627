//! Putting blobs into a repository: upload sessions (`POST /v2/<name>/blobs/uploads/`), a
//! file sent in one `PUT` or in `PATCH` chunks then a closing `PUT`, cross-repository mounts
//! (`POST ...?mount=<digest>&from=<other>`), and streamed copies from another repository or
//! registry (distribution-spec v1.1 `spec.md`, "Pushing blobs", "Pushing a blob in chunks",
//! "Mounting a blob from another repository").
//!
//! Level 2, above the transport and [`super::blobs`]: it describes requests and follows the
//! upload protocol, never sends or retries by itself. Blob files are streamed, never read
//! whole; the registry checks the digest when the upload is committed.

use std::path::Path;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};

use super::answer::header_str;
use super::authorization::{pull, push};
use super::blobs;
use super::request::{Payload, Req};
use super::transport::{Host, Transport};
use crate::oci::{Descriptor, Digest};
use crate::registry::{BlobPush, Reference, RegistryError};

/// The `Location` of an upload answer, resolved against the request URL (it may be relative).
fn location(
    base: &Url,
    headers: &HeaderMap,
    registry: &str,
    what: &str,
) -> Result<Url, RegistryError> {
    let raw = header_str(headers, "Location").ok_or_else(|| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        message: "an upload answer without Location".into(),
    })?;
    base.join(&raw).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        message: format!("bad Location {raw:?}: {e}"),
    })
}

/// See [`crate::registry::Registry::push_blob`].
pub(super) async fn push_file(
    t: &Transport,
    repo: &Reference,
    desc: &Descriptor,
    path: &Path,
) -> Result<BlobPush, RegistryError> {
    let what = format!("blob {} to {}", desc.digest, repo.repo_string());
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|source| RegistryError::Io {
            action: "stat",
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len != desc.size {
        return Err(RegistryError::BlobFileSize {
            path: path.to_path_buf(),
            expected: desc.size,
            found: len,
        });
    }
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    t.retry(&what, |_| async {
        // Also on every retry: an upload whose answer was lost may have arrived.
        if blobs::exists_once(t, &host, repo, &desc.digest, &what).await? {
            return Ok(BlobPush::AlreadyPresent);
        }
        upload_once(t, &host, repo, desc, path, &what).await?;
        Ok(BlobPush::Uploaded)
    })
    .await
}

/// Opens an upload session (`POST .../blobs/uploads/`); returns its location and the
/// registry's minimum chunk size (`OCI-Chunk-Min-Length`), if any.
async fn start_upload(
    t: &Transport,
    host: &Host,
    repo: &Reference,
    what: &str,
) -> Result<(Url, u64), RegistryError> {
    let url = t
        .url(host, &format!("/v2/{}/blobs/uploads/", repo.repository))
        .await?;
    let resp = t
        .expect(
            host,
            &[push(repo)],
            what,
            Req::new(Method::POST, url.clone()),
            &[202],
        )
        .await?;
    let min_chunk = header_str(resp.headers(), "OCI-Chunk-Min-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let loc = location(&url, resp.headers(), &host.registry, what)?;
    if let Some(j) = &t.options.upload_journal {
        crate::store::record_open(j, &host.registry, loc.as_str());
    }
    Ok((loc, min_chunk))
}

/// Records in the upload journal that the session opened at `session` is over.
fn session_done(t: &Transport, session: &Url) {
    if let Some(j) = &t.options.upload_journal {
        crate::store::record_done(j, session.as_str());
    }
}

/// See [`crate::registry::Registry::abandon_upload`].
pub(super) async fn abandon(
    t: &Transport,
    registry: &str,
    location: &str,
) -> Result<(), RegistryError> {
    let what = format!("abandoning the upload session {location}");
    let host = t.host(registry)?;
    let url = Url::parse(location).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.clone(),
        message: format!("bad session URL: {e}"),
    })?;
    // The repository, for the token's scope: /v2/<name>/blobs/uploads/<id>.
    let name = url
        .path()
        .strip_prefix("/v2/")
        .and_then(|p| p.split("/blobs/uploads/").next())
        .unwrap_or_default();
    let repo: Reference = format!("{registry}/{name}").parse()?;
    t.expect(
        &host,
        &[push(&repo)],
        &what,
        Req::new(Method::DELETE, url),
        &[202, 204, 404],
    )
    .await?;
    Ok(())
}

/// One upload attempt of the file at `path` as `desc`: one PUT, or PATCHes of `chunk_size`
/// then a closing PUT (distribution-spec "Pushing a blob in chunks").
async fn upload_once(
    t: &Transport,
    host: &Host,
    repo: &Reference,
    desc: &Descriptor,
    path: &Path,
    what: &str,
) -> Result<(), RegistryError> {
    let scopes = [push(repo)];
    let (mut loc, min_chunk) = start_upload(t, host, repo, what).await?;
    let session = loc.clone();
    let chunk = t.options.chunk_size.max(min_chunk).max(1);
    let mut offset = 0u64;
    if desc.size > chunk {
        while offset < desc.size {
            let len = chunk.min(desc.size - offset);
            let req = Req::new(Method::PATCH, loc.clone())
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                .body(Payload::File {
                    path: path.to_path_buf(),
                    offset,
                    len,
                });
            let resp = t.expect(host, &scopes, what, req, &[202, 204]).await?;
            loc = location(&loc, resp.headers(), &host.registry, what)?;
            offset += len;
        }
    }
    let mut put = loc.clone();
    put.query_pairs_mut()
        .append_pair("digest", &desc.digest.to_string());
    let body = if offset < desc.size {
        Payload::File {
            path: path.to_path_buf(),
            offset,
            len: desc.size - offset,
        }
    } else {
        Payload::Empty
    };
    let req = Req::new(Method::PUT, put)
        .header("Content-Type", "application/octet-stream")
        .body(body);
    t.expect(host, &scopes, what, req, &[201]).await?;
    session_done(t, &session);
    Ok(())
}

/// One blob to copy from a repository to another, possibly on another registry.
struct BlobCopy<'a> {
    /// The registry the blob is read from.
    src: &'a Host,
    /// The registry the blob goes to (the same [`Host`] as `src` on one registry).
    dst: &'a Host,
    /// The repository the blob is read from.
    from: &'a Reference,
    /// The repository the blob goes to.
    to: &'a Reference,
    /// The blob.
    desc: &'a Descriptor,
    /// The operation, for messages.
    what: &'a str,
}

/// See [`crate::registry::Registry::copy_blob`].
pub(super) async fn copy(
    t: &Transport,
    from: &Reference,
    to: &Reference,
    desc: &Descriptor,
) -> Result<BlobPush, RegistryError> {
    let what = format!(
        "blob {} from {} to {}",
        desc.digest,
        from.repo_string(),
        to.repo_string()
    );
    let dst = t.host(&to.registry)?;
    let src = t.host(&from.registry)?;
    let same = Arc::ptr_eq(&src, &dst);
    // Slots are taken in registry-name order so that two copies in opposite directions
    // cannot each hold one and wait for the other.
    let (_a, _b) = if same {
        (t.permit(&dst).await, None)
    } else if src.registry < dst.registry {
        let a = t.permit(&src).await;
        (a, Some(t.permit(&dst).await))
    } else {
        let a = t.permit(&dst).await;
        (a, Some(t.permit(&src).await))
    };
    let job = BlobCopy {
        src: &src,
        dst: &dst,
        from,
        to,
        desc,
        what: &what,
    };
    t.retry(&what, |_| async {
        if blobs::exists_once(t, &dst, to, &desc.digest, &what).await? {
            return Ok(BlobPush::AlreadyPresent);
        }
        if same
            && from.repository != to.repository
            && mount_once(t, &dst, to, from, &desc.digest, &what).await?
        {
            return Ok(BlobPush::Mounted);
        }
        copy_once(t, &job).await?;
        Ok(BlobPush::Uploaded)
    })
    .await
}

/// Tries a cross-repository mount (distribution-spec "Mounting a blob from another
/// repository"): `true` when the registry answered 201. A 202 means it opened an upload
/// instead; that session is abandoned (DELETE, best effort) and `false` returned.
async fn mount_once(
    t: &Transport,
    host: &Host,
    to: &Reference,
    from: &Reference,
    digest: &Digest,
    what: &str,
) -> Result<bool, RegistryError> {
    let mut url = t
        .url(host, &format!("/v2/{}/blobs/uploads/", to.repository))
        .await?;
    url.query_pairs_mut()
        .append_pair("mount", &digest.to_string())
        .append_pair("from", &from.repository);
    let mut scopes = vec![push(to), pull(from)];
    scopes.sort();
    let resp = t
        .expect(
            host,
            &scopes,
            what,
            Req::new(Method::POST, url.clone()),
            &[201, 202],
        )
        .await?;
    if resp.status() == StatusCode::CREATED {
        return Ok(true);
    }
    if let Ok(loc) = location(&url, resp.headers(), &host.registry, what) {
        let _ = t
            .send(host, &scopes, what, Req::new(Method::DELETE, loc))
            .await;
    }
    Ok(false)
}

/// One streamed copy of `job.desc` from `job.from` (on `job.src`) to `job.to` (on
/// `job.dst`): the GET body is the PUT body; the target registry checks the digest on commit.
async fn copy_once(t: &Transport, job: &BlobCopy<'_>) -> Result<(), RegistryError> {
    let BlobCopy {
        src,
        dst,
        from,
        to,
        desc,
        what,
    } = *job;
    // The session first, so that authentication with the target is settled before a
    // body that cannot be replayed is sent.
    let (loc, _) = start_upload(t, dst, to, what).await?;
    let session = loc.clone();
    let url = t
        .url(
            src,
            &format!("/v2/{}/blobs/{}", from.repository, desc.digest),
        )
        .await?;
    let resp = t
        .expect(src, &[pull(from)], what, Req::new(Method::GET, url), &[200])
        .await?;
    if let Some(announced) = resp.content_length() {
        if announced != desc.size {
            return Err(RegistryError::SizeMismatch {
                what: what.to_string(),
                expected: desc.size,
                found: announced,
            });
        }
    }
    let body = reqwest::Body::wrap_stream(resp.bytes_stream());
    let mut put = loc;
    put.query_pairs_mut()
        .append_pair("digest", &desc.digest.to_string());
    let req = Req::new(Method::PUT, put)
        .header("Content-Type", "application/octet-stream")
        .body(Payload::Stream(Some(body), desc.size));
    t.expect(dst, &[push(to)], what, req, &[201]).await?;
    session_done(t, &session);
    Ok(())
}
