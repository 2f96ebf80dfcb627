//! Mapping oci-client's errors to [`RegistryError`]: HTTP statuses, distribution-spec error
//! envelopes ("Error Codes"), digest checks and network failures, each naming the registry and
//! the request, with response bodies cut to a one-line excerpt.

use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};

use super::RegistryError;
use crate::oci::Digest;

/// Longest excerpt of a response body kept in an error message.
const EXCERPT_CHARS: usize = 200;

/// The start of `text` on one line, at most [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Maps an HTTP status to our error: 401/403 unauthorized, 404 not found, the rest `Status`.
fn from_status(status: u16, body: &str, registry: &str, what: &str) -> RegistryError {
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
        _ => RegistryError::Status {
            registry: registry.to_string(),
            what: what.to_string(),
            status,
            body_excerpt: excerpt(body),
        },
    }
}

/// Maps a distribution-spec error envelope (the first error in it) to our error.
fn from_envelope(envelope: &OciEnvelope, registry: &str, what: &str) -> RegistryError {
    let Some(first) = envelope.errors.first() else {
        return RegistryError::Protocol {
            registry: registry.to_string(),
            what: what.to_string(),
            message: "an error response with no errors in it".into(),
        };
    };
    match &first.code {
        OciErrorCode::BlobUnknown
        | OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::NotFound => RegistryError::NotFound {
            reference: what.to_string(),
        },
        OciErrorCode::Unauthorized | OciErrorCode::Denied => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: excerpt(&first.message),
        },
        code => RegistryError::Rejected {
            registry: registry.to_string(),
            what: what.to_string(),
            code: serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{code:?}")),
            message: excerpt(&first.message),
        },
    }
}

/// Maps an oci-client error for the request `what` to `registry`.
pub(super) fn map_error(err: OciDistributionError, registry: &str, what: &str) -> RegistryError {
    use OciDistributionError as E;
    match err {
        E::RequestError(e) => match e.status() {
            Some(status) => from_status(status.as_u16(), "", registry, what),
            None if e.is_builder() => RegistryError::Protocol {
                registry: registry.to_string(),
                what: what.to_string(),
                message: e.to_string(),
            },
            None => RegistryError::Transport {
                registry: registry.to_string(),
                source: Box::new(e),
            },
        },
        E::IoError(e) => RegistryError::Transport {
            registry: registry.to_string(),
            source: Box::new(e),
        },
        E::ServerError { code, message, .. } => from_status(code, &message, registry, what),
        E::RegistryError { envelope, .. } => from_envelope(&envelope, registry, what),
        E::UnauthorizedError { .. } => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: format!("authentication required for {what}"),
        },
        E::AuthenticationFailure(reason) => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: excerpt(&reason),
        },
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            match expected.parse::<Digest>() {
                Ok(expected) => RegistryError::DigestMismatch {
                    what: what.to_string(),
                    expected,
                    found: actual,
                },
                Err(_) => RegistryError::Protocol {
                    registry: registry.to_string(),
                    what: what.to_string(),
                    message: format!("digest {actual} does not match {expected}"),
                },
            }
        }
        other => RegistryError::Protocol {
            registry: registry.to_string(),
            what: what.to_string(),
            message: other.to_string(),
        },
    }
}

/// Maps an error from a blob body stream: oci-client's digest check at the end, or the network.
pub(super) fn stream_error(
    err: std::io::Error,
    registry: &str,
    what: &str,
    expected: &Digest,
) -> RegistryError {
    if let Some(DigestError::VerificationError { actual, .. }) =
        err.get_ref().and_then(|e| e.downcast_ref::<DigestError>())
    {
        return RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            found: actual.clone(),
        };
    }
    RegistryError::Transport {
        registry: registry.to_string(),
        source: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_errors_map_to_ours() {
        let what = "manifest r/x:1";
        let status = |code: u16| OciDistributionError::ServerError {
            code,
            url: "http://r/v2/x/manifests/1".into(),
            message: "{\"errors\":[]}\n  details".into(),
        };
        assert!(matches!(
            map_error(status(404), "r", what),
            RegistryError::NotFound { reference } if reference == what
        ));
        assert!(matches!(
            map_error(status(401), "r", what),
            RegistryError::Unauthorized { .. }
        ));
        match map_error(status(503), "r", what) {
            e @ RegistryError::Status { .. } => {
                assert!(e.is_transient());
                assert!(e.to_string().contains("503") && !e.to_string().contains('\n'));
            }
            other => panic!("{other:?}"),
        }
        let envelope = |code: &str| OciDistributionError::RegistryError {
            envelope: serde_json::from_str(&format!(
                r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#
            ))
            .unwrap(),
            url: "u".into(),
        };
        assert!(matches!(
            map_error(envelope("MANIFEST_UNKNOWN"), "r", what),
            RegistryError::NotFound { .. }
        ));
        assert!(matches!(
            map_error(envelope("DENIED"), "r", what),
            RegistryError::Unauthorized { .. }
        ));
        let limited = map_error(envelope("TOOMANYREQUESTS"), "r", what);
        assert!(limited.is_transient(), "{limited:?}");
        match map_error(envelope("MANIFEST_INVALID"), "r", what) {
            RegistryError::Rejected { code, .. } => assert_eq!(code, "MANIFEST_INVALID"),
            other => panic!("{other:?}"),
        }
        let d = Digest::of(b"a");
        let mismatch = map_error(
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected: d.to_string(),
                actual: Digest::of(b"b").to_string(),
            }),
            "r",
            what,
        );
        assert!(
            matches!(mismatch, RegistryError::DigestMismatch { expected, .. } if expected == d)
        );
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(" a\n b\t c "), "a b c");
        let long = "é".repeat(500);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
    }
}
