//! Putting blobs into a repository: a finished file or one still being written, through a
//! resumable upload session ([`super::session`]), cross-repository mounts (`POST
//! ...?mount=<digest>&from=<other>`), and streamed copies from another repository or registry
//! (distribution-spec v1.1 `spec.md`, "Pushing blobs", "Mounting a blob from another
//! repository").
//!
//! Level 2, above the transport, [`super::blobs`] and [`super::session`]: it decides what to
//! send (nothing when the blob is there, a mount, an upload, a copy) and never sends or retries
//! a request by itself. Blob files are streamed, never read whole; the registry checks the
//! digest when the upload is committed.

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode, Url};

use super::authorization::{pull, push};
use super::blobs;
use super::request::{Payload, Req};
use super::session::{self, location, BlobSource};
use super::transport::{Host, Transport};
use crate::oci::{Descriptor, Digest};
use crate::registry::{BlobPush, GrowingBlob, Reference, RegistryError};

/// See [`crate::registry::Registry::push_blob`].
pub(super) async fn push_file(
    t: &Transport,
    repo: &Reference,
    desc: &Descriptor,
    path: &Path,
) -> Result<BlobPush, RegistryError> {
    let what = format!("blob {} to {}", desc.digest, repo.repo_string());
    let io = |action| {
        move |source| RegistryError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = std::fs::File::open(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    if len != desc.size {
        return Err(RegistryError::BlobFileSize {
            path: path.to_path_buf(),
            expected: desc.size,
            found: len,
        });
    }
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    if blobs::exists_once(t, &host, repo, &desc.digest, &what).await? {
        return Ok(BlobPush::AlreadyPresent);
    }
    let mut src = BlobSource::File {
        file: Arc::new(file),
        path: path.to_path_buf(),
        desc: desc.clone(),
    };
    session::upload(t, &host, repo, &mut src, &what).await?;
    Ok(BlobPush::Uploaded)
}

/// See [`crate::registry::Registry::push_growing_blob`].
pub(super) async fn push_growing(
    t: &Transport,
    repo: &Reference,
    blob: GrowingBlob,
) -> Result<(Descriptor, BlobPush), RegistryError> {
    let what = format!("layer {} to {}", blob.path.display(), repo.repo_string());
    let host = t.host(&repo.registry)?;
    let _slot = t.permit(&host).await;
    let mut src = BlobSource::Growing(blob);
    let desc = session::upload(t, &host, repo, &mut src, &what).await?;
    Ok((desc, BlobPush::Uploaded))
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
    // The GET body is the PUT body: it cannot be sent twice, so a failed copy is tried again
    // as a whole (each of its requests is retried on its own first where it can be).
    t.retry_operation(&dst.registry, &what, || async {
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
            .send(host, &scopes, what, &mut Req::new(Method::DELETE, loc))
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
    let (loc, _) = session::start(t, dst, to, what).await?;
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
    session::done(t, &session);
    Ok(())
}
