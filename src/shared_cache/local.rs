//! `type=local` shared caches: an OCI image layout directory, read and merged through
//! [`crate::cache::layout`] (which locks the directory). Layer blobs the store lacks (entries
//! reused from another shared cache) are fetched into the store first.
//!
//! Level 3 (shared_cache). Must not write the layout itself (that is `cache::layout`'s, under
//! its lock).

use std::path::Path;

use super::{BlobOrigin, ExportEntry, Exported, ImportedEntry, SharedCacheError};
use crate::cache::layout;
use crate::registry::Registry;
use crate::store::Store;

/// Reads the cache in the layout `dir`; `None` when there is none.
pub(super) fn import(dir: &Path) -> Result<Option<Vec<ImportedEntry>>, SharedCacheError> {
    let target = dir.display().to_string();
    let Some(config) = layout::read(dir).map_err(|source| SharedCacheError::Cache {
        target: target.clone(),
        source,
    })?
    else {
        return Ok(None);
    };
    let origin = BlobOrigin::Layout(dir.to_path_buf());
    Ok(Some(
        config
            .entries
            .into_iter()
            .map(|entry| ImportedEntry {
                entry,
                origin: origin.clone(),
            })
            .collect(),
    ))
}

/// Merges `entries` into the layout `dir`.
pub(super) async fn export<R: Registry>(
    registry: &R,
    store: &Store,
    dir: &Path,
    entries: &[ExportEntry],
) -> Result<Exported, SharedCacheError> {
    let target = dir.display().to_string();
    // Blobs from a registry cache are fetched into the store so the layout can hold them.
    for e in entries {
        if let (Some(l), Some(BlobOrigin::Registry(from))) = (&e.entry.layer, &e.origin) {
            super::registry::fetch(registry, store, from, &l.descriptor(), &target).await?;
        }
    }
    let ours: Vec<_> = entries.iter().map(|e| e.entry.clone()).collect();
    let mut paths = std::collections::HashMap::new();
    for e in entries {
        if let Some(l) = &e.entry.layer {
            let path = e
                .origin
                .as_ref()
                .and_then(|o| o.layout_blob(&l.digest))
                .filter(|p| p.is_file())
                .unwrap_or_else(|| store.blob_path(&l.digest));
            paths.insert(l.digest.clone(), path);
        }
    }
    let dir2 = dir.to_path_buf();
    let added =
        tokio::task::spawn_blocking(move || layout::write(&dir2, &ours, |d| paths.get(d).cloned()))
            .await
            .map_err(|e| SharedCacheError::Cache {
                target: target.clone(),
                source: crate::cache::CacheError::Malformed {
                    what: target.clone(),
                    reason: format!("the writer task died: {e}"),
                },
            })?
            .map_err(|source| SharedCacheError::Cache {
                target: target.clone(),
                source,
            })?;
    let total = layout::read(dir)
        .map_err(|source| SharedCacheError::Cache {
            target: target.clone(),
            source,
        })?
        .map_or(0, |c| c.entries.len());
    Ok(Exported {
        added,
        total,
        rounds: 1,
    })
}
