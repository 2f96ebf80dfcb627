//! Reading a registry's answer: a header as text, `Retry-After`, the start of an error body for
//! a message, and a whole bounded body (a manifest, a token answer).
//!
//! Level 2. It reads bodies already on their way but must not send requests, and must not decide
//! what a status means ([`crate::registry`]'s `status` module does).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Response;

use crate::registry::status::{from_reqwest, parse_retry_after};
use crate::registry::RegistryError;

/// The largest error body read for a message, bytes.
pub(super) const ERROR_BODY_LIMIT: usize = 64 << 10;

/// The header `name` as text; `None` when absent or not visible ASCII.
pub(super) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

/// How long the answer asks to wait before trying again (`Retry-After`, RFC 9110 section
/// 10.2.3), if it does.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, "Retry-After").and_then(|v| parse_retry_after(&v, SystemTime::now()))
}

/// The start of a body as text, at most `limit` bytes (for error messages); errors give what
/// was read.
pub(super) async fn read_limited(resp: Response, limit: usize) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(piece)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&piece[..piece.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole body of at most `limit` bytes.
///
/// Errors: [`RegistryError::Protocol`] when it is longer, [`RegistryError::Transport`] (or
/// another mapping of the HTTP client's error) when it breaks off.
pub(super) async fn read_body(
    resp: Response,
    limit: usize,
    registry: &str,
    what: &str,
) -> Result<Bytes, RegistryError> {
    let mut out = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| from_reqwest(e, registry, what))?;
        if out.len() + piece.len() > limit {
            return Err(RegistryError::Protocol {
                registry: registry.to_string(),
                what: what.to_string(),
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}
