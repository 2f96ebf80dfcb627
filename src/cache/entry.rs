//! A step cache entry: what a step made (its layer, if any) and the `created` time of its
//! history entry, under its key; and the bytes an entry is stored as, with a digest that
//! detects a truncated or corrupt file.
//!
//! Level 0 inside the cache room: values and their encoding, no I/O.

use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use crate::oci::{Descriptor, Digest};

/// The layer a cached step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryLayer {
    /// The layer blob's media type.
    pub media_type: String,
    /// The layer blob's digest.
    pub digest: Digest,
    /// The layer blob's size in bytes.
    pub size: u64,
    /// sha256 of the uncompressed layer (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
}

impl EntryLayer {
    /// The blob's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// What one step made, replayed as it was on a hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The step's key.
    pub key: CacheKey,
    /// The history entry's `created` time (RFC 3339) when the step ran.
    pub created: String,
    /// The history entry's `created_by` (for people reading the cache; the key covers it).
    pub created_by: String,
    /// The layer it made; `None` for config-only steps and steps that changed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<EntryLayer>,
}

/// Why stored bytes are not a usable entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    /// The digest line is missing (a truncated write).
    #[error("truncated (no digest line)")]
    Truncated,
    /// The body does not hash to its digest line.
    #[error("its content does not match its digest")]
    Digest,
    /// The body is not an entry, or one for another key.
    #[error("unreadable: {0}")]
    Unreadable(String),
}

impl Entry {
    /// The stored form: the entry as one line of JSON, then a line with the sha256 of that
    /// first line (without its newline).
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("entries always serialise");
        let mut out = body.clone();
        out.push(b'\n');
        out.extend_from_slice(Digest::of(&body).to_string().as_bytes());
        out.push(b'\n');
        out
    }

    /// Reads the stored form of the entry for `key`, checking its digest line.
    ///
    /// Errors: [`Corrupt`] saying why the bytes cannot be trusted.
    pub fn decode(bytes: &[u8], key: &CacheKey) -> Result<Entry, Corrupt> {
        let text = std::str::from_utf8(bytes).map_err(|e| Corrupt::Unreadable(e.to_string()))?;
        let mut lines = text.split_terminator('\n');
        let body = lines.next().ok_or(Corrupt::Truncated)?;
        let digest = lines.next().ok_or(Corrupt::Truncated)?;
        if !text.ends_with('\n') || lines.next().is_some() {
            return Err(Corrupt::Truncated);
        }
        if Digest::of(body.as_bytes()).to_string() != digest {
            return Err(Corrupt::Digest);
        }
        let entry: Entry =
            serde_json::from_str(body).map_err(|e| Corrupt::Unreadable(e.to_string()))?;
        if &entry.key != key {
            return Err(Corrupt::Unreadable(format!(
                "it is the entry of {}, not of {key}",
                entry.key
            )));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            key: CacheKey(Digest::of(b"k")),
            created: "2024-01-01T00:00:00Z".into(),
            created_by: "RUN /bin/sh -c true # buildkit".into(),
            layer: Some(EntryLayer {
                media_type: crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
                digest: Digest::of(b"blob"),
                size: 4,
                diff_id: Digest::of(b"tar"),
            }),
        }
    }

    #[test]
    fn round_trip_and_every_damage_is_caught() {
        let e = entry();
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes, &e.key).unwrap(), e);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                Entry::decode(&bytes[..cut], &e.key).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(Entry::decode(&flipped, &e.key).is_err());
        let other = CacheKey(Digest::of(b"other"));
        assert!(matches!(
            Entry::decode(&bytes, &other),
            Err(Corrupt::Unreadable(_))
        ));
        let zeros = vec![0u8; bytes.len()];
        assert!(Entry::decode(&zeros, &e.key).is_err());
    }
}
