//! Canonical JSON: the one way OCI documents become bytes (and bytes become documents), so that
//! the same value always hashes to the same digest.
//!
//! Level 0: no I/O.

use serde::{Deserialize, Serialize};

use super::OciError;

/// Serialises a document to the exact bytes that are hashed, stored and pushed: compact JSON,
/// fields in declaration order, maps sorted by key. The same value always gives the same bytes.
pub fn to_bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).expect("OCI documents always serialise")
}

/// Parses a JSON document of type `T`, naming `what` in the error.
pub fn from_bytes<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Malformed {
        what: what.to_string(),
        source,
    })
}
