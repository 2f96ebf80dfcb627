//! Turning registry answers into [`RegistryError`]s: HTTP statuses, distribution-spec error
//! envelopes ("Error Codes" in distribution-spec v1.1 `spec.md`), `Retry-After` (RFC 9110
//! section 10.2.3) and network failures, each naming the registry and the request, with response
//! bodies cut to a one-line excerpt.
//!
//! Pure: no I/O. The transport hands in the status, headers and the start of the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::RegistryError;

/// Longest excerpt of a response body kept in an error message.
const EXCERPT_CHARS: usize = 200;

/// The start of `text` on one line, at most [`EXCERPT_CHARS`] characters.
pub(super) fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// The distribution-spec error envelope: `{"errors":[{"code":..,"message":..,"detail":..}]}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<EnvelopeError>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: serde_json::Value,
}

impl EnvelopeError {
    /// `detail` as short text: a string as it is, other JSON compact, nothing when absent.
    fn detail_text(&self) -> String {
        match &self.detail {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => excerpt(s),
            other => excerpt(&other.to_string()),
        }
    }

    /// The message, then the detail: ` (detail: ...)`, or for `MANIFEST_BLOB_UNKNOWN` (whose
    /// detail is the blob's digest) which blob the repository of `what` lacks.
    fn message_with_detail(&self, what: &str) -> String {
        let detail = self.detail_text();
        let message = excerpt(&self.message);
        if detail.is_empty() {
            message
        } else if self.code == "MANIFEST_BLOB_UNKNOWN" {
            let repo = manifest_repository(what).unwrap_or(what);
            format!("{message} (the manifest refers to blob {detail}, which {repo} does not have)")
        } else {
            format!("{message} (detail: {detail})")
        }
    }

    /// `CODE: message (detail: ...)`, for messages that keep only one text.
    fn quoted(&self) -> String {
        let detail = self.detail_text();
        let mut s = format!("{}: {}", self.code, excerpt(&self.message));
        if !detail.is_empty() {
            s.push_str(&format!(" (detail: {detail})"));
        }
        s
    }
}

/// The `registry/repository` of a `manifest registry/repository[:tag|@digest]` description.
fn manifest_repository(what: &str) -> Option<&str> {
    let rest = what.strip_prefix("manifest ")?;
    let rest = rest.split('@').next()?;
    // A tag is a `:` after the last `/` (a registry's port comes before it).
    Some(match rest.rfind(':') {
        Some(i) if i > rest.rfind('/').unwrap_or(0) => &rest[..i],
        _ => rest,
    })
}

/// Parses `Retry-After`: delta-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// relative to `now`. `None` when absent or unparseable; a date in the past is zero.
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_imf_fixdate(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs((at - now).max(0) as u64))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the epoch (RFC 9110 section 5.6.7).
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from civil, Howard Hinnant's algorithm (public domain).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Whole seconds of `d`, rounded up, saturating.
fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(u32::MAX)
}

/// Maps a non-success answer to our error.
///
/// `status` is the HTTP status, `body` the start of the response body, `retry_after` the parsed
/// `Retry-After` header. 401/403 are [`RegistryError::Unauthorized`], 404 and the `*_UNKNOWN`
/// codes [`RegistryError::NotFound`], other envelopes [`RegistryError::Rejected`] (with the
/// status kept so that 5xx envelopes stay retryable), the rest [`RegistryError::Status`].
pub(super) fn from_answer(
    status: u16,
    body: &str,
    retry_after: Option<Duration>,
    registry: &str,
    what: &str,
) -> RegistryError {
    let envelope = serde_json::from_str::<Envelope>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    if let Some(first) = &envelope {
        match first.code.as_str() {
            "BLOB_UNKNOWN"
            | "MANIFEST_UNKNOWN"
            | "NAME_UNKNOWN"
            | "NOT_FOUND"
            | "BLOB_UPLOAD_UNKNOWN"
                if status == 404 =>
            {
                return RegistryError::NotFound {
                    reference: what.to_string(),
                };
            }
            "UNAUTHORIZED" | "DENIED" => {
                return RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    detail: format!("{what}: {}", first.quoted()),
                };
            }
            _ => {}
        }
    }
    match status {
        401 | 403 => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: if body.trim().is_empty() {
                format!("HTTP {status} for {what}")
            } else {
                excerpt(body)
            },
        },
        404 => RegistryError::NotFound {
            reference: what.to_string(),
        },
        408 | 429 | 500..=599 => RegistryError::Status {
            registry: registry.to_string(),
            what: what.to_string(),
            status,
            body_excerpt: excerpt(body),
            retry_after_secs: retry_after.map(secs),
        },
        _ => match envelope {
            Some(first) if !first.code.is_empty() => RegistryError::Rejected {
                registry: registry.to_string(),
                what: what.to_string(),
                message: first.message_with_detail(what),
                code: first.code,
            },
            _ => RegistryError::Status {
                registry: registry.to_string(),
                what: what.to_string(),
                status,
                body_excerpt: excerpt(body),
                retry_after_secs: retry_after.map(secs),
            },
        },
    }
}

/// Maps a failure of the HTTP client (no answer, or the body broke off) to our error.
///
/// Builder errors (a URL we made wrong) are [`RegistryError::Protocol`]; everything else
/// (connect, TLS, reset, timeout, a body cut short) is [`RegistryError::Transport`], which is
/// retried.
pub(super) fn from_reqwest(err: reqwest::Error, registry: &str, what: &str) -> RegistryError {
    if err.is_builder() {
        return RegistryError::Protocol {
            registry: registry.to_string(),
            what: what.to_string(),
            message: err.to_string(),
        };
    }
    tracing::debug!(error = ?err, %what, "request failed without an answer");
    if let Some(problem) = tls_problem(&err) {
        return RegistryError::Tls {
            registry: registry.to_string(),
            problem,
        };
    }
    // reqwest's messages carry the URL; ours never carries credentials in URLs, but the error
    // is stripped of it anyway to keep messages short.
    RegistryError::Transport {
        registry: registry.to_string(),
        what: what.to_string(),
        source: Box::new(err.without_url()),
    }
}

/// A certificate or handshake failure somewhere in `err`'s causes (rustls's error, carried
/// inside one or more `io::Error`s by the connector), as a message. Such failures are not
/// retried.
fn tls_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    while let Some(e) = pending.pop() {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType
                | rustls::Error::AlertReceived(_)
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::PeerMisbehaved(_) => Some(tls.to_string()),
                _ => None,
            };
        }
        // `io::Error::source` skips the error it wraps: look inside it too.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        if let Some(next) = e.source() {
            pending.push(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_envelopes_map_to_ours() {
        let what = "manifest r/x:1";
        let answer = |status, body: &str| from_answer(status, body, None, "r", what);
        assert!(matches!(
            answer(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"}]}"#),
            RegistryError::NotFound { reference } if reference == what
        ));
        assert!(matches!(
            answer(401, ""),
            RegistryError::Unauthorized { .. }
        ));
        assert!(matches!(
            answer(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#),
            RegistryError::Unauthorized { detail, .. } if detail == "manifest r/x:1: DENIED: no"
        ));
        let e = answer(503, "busy\n  now");
        assert!(e.is_transient());
        assert!(e.to_string().contains("503") && !e.to_string().contains('\n'));
        let limited = answer(
            429,
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"m"}]}"#,
        );
        assert!(limited.is_transient(), "{limited:?}");
        match answer(
            400,
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"m"}]}"#,
        ) {
            RegistryError::Rejected { code, .. } => assert_eq!(code, "MANIFEST_INVALID"),
            other => panic!("{other:?}"),
        }
        // The registry's code, message and detail are all quoted; a missing blob names the
        // digest and the repository.
        let e = from_answer(
            400,
            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"}]}"#,
            None,
            "127.0.0.1:5000",
            "manifest 127.0.0.1:5000/team/app@sha256:def",
        );
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000 refused manifest 127.0.0.1:5000/team/app@sha256:def: \
             MANIFEST_BLOB_UNKNOWN: blob unknown to registry (the manifest refers to blob \
             sha256:abc, which 127.0.0.1:5000/team/app does not have)"
        );
        let e = answer(
            400,
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"bad","detail":{"field":"layers"}}]}"#,
        );
        assert!(
            e.to_string()
                .ends_with(r#"MANIFEST_INVALID: bad (detail: {"field":"layers"})"#),
            "{e}"
        );
        match answer(409, "conflict") {
            e @ RegistryError::Status { status: 409, .. } => assert!(!e.is_transient()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(
                "Sun, 06 Nov 1994 08:49:37 GMT",
                now + Duration::from_secs(60)
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49 GMT", now), None);
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(" a\n b\t c "), "a b c");
        let long = "é".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
