//! One blob upload that survives a flaky registry: open a session (`POST
//! /v2/<name>/blobs/uploads/`), send the blob in `PATCH` chunks as its bytes become available,
//! commit it with the closing `PUT ...?digest=` (distribution-spec v1.1 `spec.md`, "Pushing a
//! blob in chunks"). A `PATCH` that fails in a retryable way is not sent again blindly (the
//! registry may have taken part of it): the session's state is asked for (`GET` on the upload
//! URL, whose `Range: 0-<last>` says how much arrived) and the upload resumes from there. Only
//! when the registry lost the session (`404`, `BLOB_UPLOAD_UNKNOWN`/`BLOB_UPLOAD_INVALID`) is a
//! new one opened, from the start; a commit whose answer was lost is recognised by the blob
//! being there (`HEAD`).
//!
//! Level 2, above the transport (which sends and retries each request) and below `uploads`:
//! it follows the upload protocol for one [`BlobSource`] but must not decide what to upload,
//! mount or copy.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use super::answer::header_str;
use super::authorization::push;
use super::blobs;
use super::request::{Payload, Req};
use super::transport::{Host, Transport};
use crate::oci::Descriptor;
use crate::registry::{BlobProgress, GrowingBlob, Reference, RegistryError};

/// Where an upload's bytes come from: a finished file, or one still being written.
pub(super) enum BlobSource {
    /// A finished blob file of `desc`.
    File {
        /// The open file.
        file: Arc<std::fs::File>,
        /// Its path, for messages.
        path: std::path::PathBuf,
        /// The blob.
        desc: Descriptor,
    },
    /// A blob still being written.
    Growing(GrowingBlob),
}

/// How much of the source can be read now, and its descriptor once it is complete.
struct Available {
    bytes: u64,
    finished: Option<Descriptor>,
}

impl BlobSource {
    /// Waits until at least `want` bytes can be read or the blob is finished.
    async fn wait_for(&mut self, want: u64) -> Result<Available, RegistryError> {
        match self {
            BlobSource::File { desc, .. } => Ok(Available {
                bytes: desc.size,
                finished: Some(desc.clone()),
            }),
            BlobSource::Growing(g) => loop {
                let now = g.progress.borrow_and_update().clone();
                match now {
                    BlobProgress::Finished(d) => {
                        return Ok(Available {
                            bytes: d.size,
                            finished: Some(d),
                        })
                    }
                    BlobProgress::Abandoned(reason) => {
                        return Err(RegistryError::Abandoned {
                            path: g.path.clone(),
                            reason,
                        })
                    }
                    BlobProgress::Written(n) if n >= want => {
                        return Ok(Available {
                            bytes: n,
                            finished: None,
                        })
                    }
                    BlobProgress::Written(_) => {}
                }
                if g.progress.changed().await.is_err() {
                    return Err(RegistryError::Abandoned {
                        path: g.path.clone(),
                        reason: "the writer stopped without finishing it".into(),
                    });
                }
            },
        }
    }

    /// `len` bytes from `offset` as a body that can be sent again.
    fn slice(&self, offset: u64, len: u64) -> Payload {
        let (file, path) = match self {
            BlobSource::File { file, path, .. } => (file, path),
            BlobSource::Growing(g) => (&g.file, &g.path),
        };
        Payload::File {
            file: file.clone(),
            path: path.clone(),
            offset,
            len,
        }
    }
}

/// The `Location` of an upload answer, resolved against the request URL (it may be relative).
pub(super) fn location(
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

/// Opens an upload session (`POST .../blobs/uploads/`); returns its location and the
/// registry's minimum chunk size (`OCI-Chunk-Min-Length`), if any.
pub(super) async fn start(
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
            &format!("start upload of {what}"),
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

/// Records in the upload journal that the session opened at `session` is over (committed,
/// abandoned, or lost by the registry): nothing is left for a later process to abandon.
pub(super) fn done(t: &Transport, session: &Url) {
    if let Some(j) = &t.options.upload_journal {
        crate::store::record_done(j, session.as_str());
    }
}

/// One upload, as the functions below share it.
struct Upload<'a> {
    t: &'a Transport,
    host: &'a Host,
    repo: &'a Reference,
    what: &'a str,
    scopes: [String; 1],
}

/// What became of a session.
enum Ended {
    /// The blob is in the repository.
    Committed(Descriptor),
    /// The registry lost the session: start a new one.
    Lost(RegistryError),
}

/// Uploads `src` to `repo` (see the module header); returns the blob's descriptor.
///
/// Errors: the transport/auth/status errors once a request's retries are used up, the
/// session was lost more often than the retries allow, or an answer is final.
pub(super) async fn upload(
    t: &Transport,
    host: &Host,
    repo: &Reference,
    src: &mut BlobSource,
    what: &str,
) -> Result<Descriptor, RegistryError> {
    let up = Upload {
        t,
        host,
        repo,
        what,
        scopes: [push(repo)],
    };
    let mut sessions = t.attempts();
    loop {
        match up.session(src).await? {
            Ended::Committed(desc) => return Ok(desc),
            Ended::Lost(err) => {
                let Some(delay) = sessions.next_delay_for(None) else {
                    return Err(err);
                };
                let request = format!("upload of {what} (new session)");
                t.counters
                    .retrying(&host.registry, &request, sessions.granted, &err, delay);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl Upload<'_> {
    /// One session: opened, fed chunk by chunk, committed.
    async fn session(&self, src: &mut BlobSource) -> Result<Ended, RegistryError> {
        let (loc, min_chunk) = start(self.t, self.host, self.repo, self.what).await?;
        let opened = loc.clone();
        let ended = self.feed(src, loc, min_chunk).await;
        // A session that failed for good stays in the journal: the next process abandons it.
        if ended.is_ok() {
            done(self.t, &opened);
        }
        ended
    }

    /// Feeds the session at `loc` chunk by chunk and commits it.
    async fn feed(
        &self,
        src: &mut BlobSource,
        mut loc: Url,
        min_chunk: u64,
    ) -> Result<Ended, RegistryError> {
        let chunk = self.t.options.chunk_size.max(min_chunk).max(1);
        let mut offset = 0u64;
        let mut stalls = self.t.attempts();
        loop {
            let avail = src.wait_for(offset + chunk).await?;
            if let Some(desc) = avail.finished.filter(|d| d.size - offset <= chunk) {
                return self.commit(src, loc, offset, desc).await;
            }
            let len = chunk.min(avail.bytes - offset);
            match self.patch(src, &loc, offset, len).await {
                Ok(next) => {
                    loc = next;
                    offset += len;
                    stalls = self.t.attempts();
                }
                Err(e) if e.is_upload_lost() => return Ok(Ended::Lost(e)),
                Err(e) if e.is_transient() || is_range_refused(&e) => {
                    let Some(delay) = stalls.next_delay_for(None) else {
                        return Err(e);
                    };
                    let request = format!("PATCH {} (resumed)", self.what);
                    self.t.counters.retrying(
                        &self.host.registry,
                        &request,
                        stalls.granted,
                        &e,
                        delay,
                    );
                    tokio::time::sleep(delay).await;
                    match self.status(&loc).await {
                        Ok((next, received)) => {
                            loc = next;
                            offset = received;
                        }
                        Err(e) if e.is_upload_lost() => return Ok(Ended::Lost(e)),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `PATCH` of `len` bytes from `offset`, sent once (a failure is resolved by asking the
    /// session's state); returns the next location.
    async fn patch(
        &self,
        src: &BlobSource,
        loc: &Url,
        offset: u64,
        len: u64,
    ) -> Result<Url, RegistryError> {
        let mut req = Req::new(Method::PATCH, loc.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", offset + len - 1))
            .body(src.slice(offset, len));
        let resp = self
            .t
            .expect_once(self.host, &self.scopes, self.what, &mut req, &[202, 204])
            .await?;
        location(loc, resp.headers(), &self.host.registry, self.what)
    }

    /// The session's state (`GET` on the upload URL): its next location and how many bytes
    /// the registry holds (`Range: 0-<last>`). distribution answers `0-0` for an empty
    /// session as for one byte; chunks are never one byte, so it is read as empty.
    async fn status(&self, loc: &Url) -> Result<(Url, u64), RegistryError> {
        let what = format!("state of the upload of {}", self.what);
        let resp = self
            .t
            .expect(
                self.host,
                &self.scopes,
                &what,
                Req::new(Method::GET, loc.clone()),
                &[204, 200],
            )
            .await?;
        let received = header_str(resp.headers(), "Range")
            .and_then(|r| parse_range_end(&r))
            .map_or(0, |last| if last == 0 { 0 } else { last + 1 });
        let next = location(loc, resp.headers(), &self.host.registry, &what)
            .unwrap_or_else(|_| loc.clone());
        Ok((next, received))
    }

    /// The closing `PUT ...?digest=` with the bytes from `offset` on. A commit the registry
    /// does not know (its answer to an earlier attempt was lost, or the session was lost) is
    /// settled by asking whether the blob is there.
    async fn commit(
        &self,
        src: &BlobSource,
        loc: Url,
        offset: u64,
        desc: Descriptor,
    ) -> Result<Ended, RegistryError> {
        let mut put = loc;
        put.query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let body = if offset < desc.size {
            src.slice(offset, desc.size - offset)
        } else {
            Payload::Empty
        };
        let req = Req::new(Method::PUT, put)
            .header("Content-Type", "application/octet-stream")
            .body(body);
        match self
            .t
            .expect(self.host, &self.scopes, self.what, req, &[201])
            .await
        {
            Ok(_) => Ok(Ended::Committed(desc)),
            Err(e) if e.is_upload_lost() => {
                if blobs::exists_once(self.t, self.host, self.repo, &desc.digest, self.what).await?
                {
                    Ok(Ended::Committed(desc))
                } else {
                    Ok(Ended::Lost(e))
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// `416 Range Not Satisfiable`: the registry holds another amount than the `PATCH` assumed.
fn is_range_refused(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Status { status: 416, .. })
}

/// The last byte of a `Range: 0-<last>` (or `bytes=0-<last>`) header.
fn parse_range_end(range: &str) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, end) = range.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range_end("0-1023"), Some(1023));
        assert_eq!(parse_range_end("bytes=0-9"), Some(9));
        assert_eq!(parse_range_end("5-9"), None);
        assert_eq!(parse_range_end("junk"), None);
    }
}
