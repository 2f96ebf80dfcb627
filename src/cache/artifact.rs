//! The shared step cache as an OCI artifact (image-spec v1.1 manifest.md, "Guidelines for
//! Artifact Usage"): an image manifest whose config is a polyarch document listing the step
//! cache entries, and whose layers are the layer blobs those entries name, so that a registry
//! keeps them (and garbage collection spares them) as long as the manifest is tagged.
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json
//!   config  application/vnd.polyarch.cache.config.v1+json   {"version":1,"entries":[...]}
//!   layers  the entries' layer blobs (their own media types), sorted by digest
//! ```
//!
//! Each entry is an [`Entry`]: `key`, `created`, `createdBy`, and `layer` (`mediaType`,
//! `digest`, `size`, `diffId`) for steps that made one. Entries are sorted by key, so the same
//! entries always give the same bytes.
//!
//! Level 0 inside the cache room: values and their bytes, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::error::CacheError;
use super::key::CacheKey;
use crate::oci::{self, Descriptor, Digest, ImageManifest, MEDIA_TYPE_OCI_MANIFEST};

/// The config media type of a polyarch step cache artifact.
pub const MEDIA_TYPE_CACHE_CONFIG: &str = "application/vnd.polyarch.cache.config.v1+json";

/// The version of the config document this polyarch writes and reads.
pub const CACHE_CONFIG_VERSION: u32 = 1;

/// The config document: every entry of the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// [`CACHE_CONFIG_VERSION`].
    pub version: u32,
    /// The entries, sorted by key, one per key.
    pub entries: Vec<Entry>,
}

impl CacheConfig {
    /// A config holding `entries` (the first of several with one key is kept), sorted.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> CacheConfig {
        let mut map = BTreeMap::new();
        for e in entries {
            map.entry(e.key.clone()).or_insert(e);
        }
        CacheConfig {
            version: CACHE_CONFIG_VERSION,
            entries: map.into_values().collect(),
        }
    }

    /// The config's bytes (what is hashed and pushed).
    pub fn to_bytes(&self) -> Vec<u8> {
        oci::to_bytes(self)
    }

    /// Whether it has an entry for `key`.
    pub fn has(&self, key: &CacheKey) -> bool {
        self.entries.binary_search_by(|e| e.key.cmp(key)).is_ok()
    }

    /// `self` with the entries of `ours` it lacks added: an entry already there wins (it may
    /// be what other steps in the cache were built on). Returns the merged config and how
    /// many entries were added.
    pub fn merge(&self, ours: &[Entry]) -> (CacheConfig, usize) {
        let added = ours.iter().filter(|e| !self.has(&e.key)).count();
        let merged = CacheConfig::new(self.entries.iter().cloned().chain(ours.iter().cloned()));
        (merged, added)
    }

    /// The layer blobs the entries name, one each, sorted by digest.
    pub fn layers(&self) -> Vec<Descriptor> {
        let mut map: BTreeMap<&Digest, Descriptor> = BTreeMap::new();
        for e in &self.entries {
            if let Some(l) = &e.layer {
                map.entry(&l.digest).or_insert_with(|| l.descriptor());
            }
        }
        map.into_values().collect()
    }

    /// The artifact manifest for this config, stored as `config` (its descriptor).
    pub fn manifest(&self, config: Descriptor) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
            config,
            layers: self.layers(),
            annotations: None,
        }
    }

    /// Reads a config document; `what` names where it came from in errors.
    ///
    /// Errors: [`CacheError::Malformed`] for another version or unparsable bytes.
    pub fn parse(bytes: &[u8], what: &str) -> Result<CacheConfig, CacheError> {
        let c: CacheConfig = oci::from_bytes(bytes, what).map_err(|e| CacheError::Malformed {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        if c.version != CACHE_CONFIG_VERSION {
            return Err(CacheError::Malformed {
                what: what.to_string(),
                reason: format!(
                    "config version {} (this polyarch reads version {CACHE_CONFIG_VERSION})",
                    c.version
                ),
            });
        }
        // Sorted and one per key, whatever wrote it.
        Ok(CacheConfig::new(c.entries))
    }
}

/// Checks that `manifest` is a step cache artifact whose layers include every layer its
/// config's entries name; `what` names it in errors.
///
/// Errors: [`CacheError::Malformed`].
pub fn check_manifest(
    manifest: &ImageManifest,
    config: &CacheConfig,
    what: &str,
) -> Result<(), CacheError> {
    if manifest.config.media_type != MEDIA_TYPE_CACHE_CONFIG {
        return Err(CacheError::Malformed {
            what: what.to_string(),
            reason: format!(
                "its config is {} (a step cache's is {MEDIA_TYPE_CACHE_CONFIG})",
                manifest.config.media_type
            ),
        });
    }
    for l in config.layers() {
        if !manifest.layers.iter().any(|m| m.digest == l.digest) {
            return Err(CacheError::Malformed {
                what: what.to_string(),
                reason: format!("an entry names layer {} that it does not hold", l.digest),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::EntryLayer;

    fn entry(k: &str, layer: Option<&str>) -> Entry {
        Entry {
            key: CacheKey(Digest::of(k.as_bytes())),
            created: "2024-01-01T00:00:00Z".into(),
            created_by: format!("RUN {k}"),
            layer: layer.map(|l| EntryLayer {
                media_type: oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
                digest: Digest::of(l.as_bytes()),
                size: 1,
                diff_id: Digest::of(format!("diff {l}").as_bytes()),
            }),
        }
    }

    #[test]
    fn merge_keeps_what_is_there_and_adds_the_rest_deterministically() {
        let a = CacheConfig::new([entry("a", Some("la")), entry("b", None)]);
        let mut other_a = entry("a", Some("other"));
        other_a.created = "2030-01-01T00:00:00Z".into();
        let (m, added) = a.merge(&[other_a, entry("c", Some("la"))]);
        assert_eq!(added, 1);
        assert_eq!(m.entries.len(), 3);
        let got_a = m
            .entries
            .iter()
            .find(|e| e.key == entry("a", None).key)
            .unwrap();
        assert_eq!(
            got_a.created, "2024-01-01T00:00:00Z",
            "the entry there wins"
        );
        assert_eq!(m.layers().len(), 1, "one blob for two entries");
        // Order of insertion does not change the bytes.
        let (m2, _) = CacheConfig::new([entry("c", Some("la"))]).merge(&a.entries);
        assert_eq!(m.to_bytes(), m2.to_bytes());
        let back = CacheConfig::parse(&m.to_bytes(), "t").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn manifests_are_checked() {
        let c = CacheConfig::new([entry("a", Some("la"))]);
        let (digest, size) = (Digest::of(&c.to_bytes()), c.to_bytes().len() as u64);
        let m = c.manifest(Descriptor::new(
            MEDIA_TYPE_CACHE_CONFIG,
            digest.clone(),
            size,
        ));
        check_manifest(&m, &c, "t").unwrap();
        let mut wrong = m.clone();
        wrong.config.media_type = oci::MEDIA_TYPE_OCI_CONFIG.into();
        assert!(check_manifest(&wrong, &c, "t").is_err());
        let mut missing = m.clone();
        missing.layers.clear();
        assert!(check_manifest(&missing, &c, "t").is_err());
        let v2 = br#"{"version":2,"entries":[]}"#;
        assert!(CacheConfig::parse(v2, "t")
            .unwrap_err()
            .to_string()
            .contains("version 2"));
    }
}
