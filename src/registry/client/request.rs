//! One registry request before it is sent ([`Req`]), and its body ([`Payload`]): empty, bytes,
//! a slice of an open file read while it is sent (again from its offset for every attempt), or
//! a one-shot stream; and how that becomes an HTTP request with `Content-Length` and
//! `Authorization`.
//!
//! Level 2. It reads blob files (positional reads on a blocking thread) but must not send
//! anything: the transport sends, and decides whether a body may be sent again
//! ([`Payload::replayable`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::{Method, Url};

use crate::registry::RegistryError;

/// Bytes read from a blob file per piece handed to the HTTP body.
const UPLOAD_PIECE: usize = 1 << 20;

/// A request body that can be made again for a second attempt (except a one-shot stream).
pub(super) enum Payload {
    /// No body (`Content-Length: 0` on PUT, PATCH and POST).
    Empty,
    /// Bytes in memory (a manifest).
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset` (a blob or one chunk of it), read anew for every
    /// attempt. The file is open, so a blob renamed into the store while it is uploaded (a
    /// layer written and sent at once) is still read.
    File {
        /// The blob file, open for reading.
        file: Arc<File>,
        /// Its path, for messages.
        path: PathBuf,
        /// Where the slice starts, bytes.
        offset: u64,
        /// The slice's length, bytes.
        len: u64,
    },
    /// A body that can be sent once (another registry's answer), and its length in bytes.
    Stream(Option<reqwest::Body>, u64),
}

impl Payload {
    /// Whether the body can be made again for a second send.
    pub(super) fn replayable(&self) -> bool {
        !matches!(self, Payload::Stream(..))
    }

    /// The body and its length, made anew (a stream only once).
    async fn make(&mut self) -> Result<(reqwest::Body, u64), RegistryError> {
        Ok(match self {
            Payload::Empty => (reqwest::Body::from(Bytes::new()), 0),
            Payload::Bytes(b) => (reqwest::Body::from(b.clone()), b.len() as u64),
            Payload::File {
                file,
                path,
                offset,
                len,
            } => (
                reqwest::Body::wrap_stream(file_stream(file.clone(), path.clone(), *offset, *len)),
                *len,
            ),
            Payload::Stream(body, len) => (
                body.take().ok_or_else(|| RegistryError::Protocol {
                    registry: String::new(),
                    what: "a streamed upload".into(),
                    message: "the body was already sent".into(),
                })?,
                *len,
            ),
        })
    }
}

/// One request, before authentication.
pub(super) struct Req {
    /// The HTTP method.
    pub(super) method: Method,
    /// The whole URL (base, `/v2/` path, query).
    pub(super) url: Url,
    headers: Vec<(&'static str, String)>,
    /// The body, made anew for each send.
    pub(super) body: Payload,
}

impl Req {
    /// A request with no headers and no body.
    pub(super) fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: Payload::Empty,
        }
    }

    /// Adds the header `name: value`.
    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub(super) fn body(mut self, body: Payload) -> Req {
        self.body = body;
        self
    }

    /// The HTTP request on `client`, with its body made anew, `Content-Length` for the methods
    /// that carry a body, the headers, and `authorization` as `Authorization` when given.
    ///
    /// Errors: [`RegistryError::Protocol`] when a one-shot stream was already sent (a file
    /// body that cannot be read fails while it is sent, as a transport error).
    pub(super) async fn prepare(
        &mut self,
        client: &reqwest::Client,
        authorization: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        let (body, len) = self.body.make().await?;
        let mut builder = client
            .request(self.method.clone(), self.url.clone())
            .body(body);
        if self.method == Method::PUT || self.method == Method::PATCH || self.method == Method::POST
        {
            builder = builder.header("Content-Length", len.to_string());
        }
        for (k, v) in &self.headers {
            builder = builder.header(*k, v.as_str());
        }
        if let Some(a) = authorization {
            builder = builder.header("Authorization", a);
        }
        Ok(builder)
    }
}

/// `len` bytes of `file` from `offset`, as a stream of pieces of at most [`UPLOAD_PIECE`]
/// bytes read with positional reads on a blocking thread; an error when the file ends early.
/// `path` names the file in errors.
fn file_stream(
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold((file, offset, len), move |(file, at, left)| {
        let path = path.clone();
        async move {
            if left == 0 {
                return Ok(None);
            }
            let want = (left as usize).min(UPLOAD_PIECE);
            let reader = file.clone();
            let piece = tokio::task::spawn_blocking(move || {
                let mut buf = BytesMut::zeroed(want);
                reader.read_exact_at(&mut buf, at).map(|()| buf.freeze())
            })
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| {
                let short = e.kind() == std::io::ErrorKind::UnexpectedEof;
                std::io::Error::new(
                    e.kind(),
                    if short {
                        format!("{} is shorter than its descriptor says", path.display())
                    } else {
                        format!("reading {}: {e}", path.display())
                    },
                )
            })?;
            let n = piece.len() as u64;
            Ok::<_, std::io::Error>(Some((piece, (file, at + n, left - n))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn file_bodies_are_the_requested_slice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * UPLOAD_PIECE + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let offset = UPLOAD_PIECE as u64 + 3;
        let len = 2 * UPLOAD_PIECE as u64;
        let mut got = Vec::new();
        let file = Arc::new(File::open(&path).unwrap());
        let mut stream = Box::pin(file_stream(file.clone(), path.clone(), offset, len));
        while let Some(piece) = stream.next().await {
            got.extend_from_slice(&piece.unwrap());
        }
        assert!(got == data[offset as usize..(offset + len) as usize]);
        // A file shorter than asked for is an error, not a short body.
        let mut stream = Box::pin(file_stream(file, path, data.len() as u64 - 2, 10));
        let mut failed = false;
        while let Some(piece) = stream.next().await {
            failed |= piece.is_err();
        }
        assert!(failed);
    }
}
