//! `type=registry` shared caches: the artifact under a tag of a repository.
//!
//! Export is a read-modify-write of the tag. The layer blobs go up first (existence checks,
//! cross-repository mounts, streamed copies); then, in rounds: read the tag, merge our entries
//! into what it holds (entries there win), push the config and the manifest to the tag, wait a
//! moment (jittered, and longer than our own read-to-push took, so that a writer who read
//! before our push has pushed by then) and read the tag back. If our entries are missing,
//! another job's push replaced ours: merge again, after a jittered backoff, up to
//! [`ROUNDS`] rounds. Pushing nothing when the tag already has all our entries keeps an
//! unchanged rebuild from moving the tag.
//!
//! The distribution API has no conditional PUT, so a writer whose stale push lands after our
//! read-back can still drop our entries; the wait before the read-back makes that window as
//! small as the other writer's own read-to-push time, which is a few requests long (blobs are
//! uploaded before the read).
//!
//! Level 3 (shared_cache). Must not push anything but the cache's blobs, config and
//! manifest, and only to the cache's own tag.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{BlobOrigin, ExportEntry, Exported, ImportedEntry, SharedCacheError};
use crate::cache::artifact::{check_manifest, CacheConfig, MEDIA_TYPE_CACHE_CONFIG};
use crate::cache::CacheKey;
use crate::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_OCI_MANIFEST};
use crate::registry::{Reference, Registry, RegistryError};
use crate::store::Store;

/// Read-modify-write rounds before an export gives up.
pub const ROUNDS: usize = 6;

fn reg_err(target: &Reference) -> impl Fn(RegistryError) -> SharedCacheError + '_ {
    move |source| SharedCacheError::Registry {
        target: target.to_string(),
        source,
    }
}

fn store_err(target: &str) -> impl Fn(crate::store::StoreError) -> SharedCacheError + '_ {
    move |source| SharedCacheError::Store {
        target: target.to_string(),
        source,
    }
}

/// The cache under the tag `r`, with its manifest; `None` when the tag does not exist.
async fn read<R: Registry>(
    registry: &R,
    store: &Store,
    r: &Reference,
) -> Result<Option<CacheConfig>, SharedCacheError> {
    let raw = match registry.get_manifest(r).await {
        Ok(raw) => raw,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(reg_err(r)(e)),
    };
    let what = format!("cache {r}");
    let malformed = |reason: String| SharedCacheError::Cache {
        target: r.to_string(),
        source: crate::cache::CacheError::Malformed {
            what: what.clone(),
            reason,
        },
    };
    if raw.media_type != MEDIA_TYPE_OCI_MANIFEST {
        return Err(malformed(format!("it is a {}", raw.media_type)));
    }
    let manifest: ImageManifest =
        oci::from_bytes(&raw.bytes, &what).map_err(|e| malformed(e.to_string()))?;
    if manifest.config.media_type != MEDIA_TYPE_CACHE_CONFIG {
        return Err(malformed(format!(
            "its config is {} (a step cache's is {MEDIA_TYPE_CACHE_CONFIG})",
            manifest.config.media_type
        )));
    }
    // The config goes through the store (verified), small as it is.
    fetch(registry, store, r, &manifest.config, &r.to_string()).await?;
    let bytes = store
        .read_blob(&manifest.config.digest)
        .map_err(store_err(&r.to_string()))?;
    let config = CacheConfig::parse(&bytes, &what).map_err(|source| SharedCacheError::Cache {
        target: r.to_string(),
        source,
    })?;
    check_manifest(&manifest, &config, &what).map_err(|source| SharedCacheError::Cache {
        target: r.to_string(),
        source,
    })?;
    Ok(Some(config))
}

/// Fetches the blob `desc` of `from` into the store unless it is there (then it is claimed).
pub(super) async fn fetch<R: Registry>(
    registry: &R,
    store: &Store,
    from: &Reference,
    desc: &Descriptor,
    target: &str,
) -> Result<(), SharedCacheError> {
    if store.claim_blob(&desc.digest).map_err(store_err(target))? {
        return Ok(());
    }
    let tmp = store.temp_dir("cache-fetch").map_err(store_err(target))?;
    let path = tmp.path().join("blob");
    registry
        .fetch_blob(from, desc, &path)
        .await
        .map_err(reg_err(from))?;
    store
        .import_file(&path, &desc.digest)
        .map_err(store_err(target))?;
    Ok(())
}

/// Reads the cache under the tag `r`; `None` when the tag does not exist.
pub(super) async fn import<R: Registry>(
    registry: &R,
    store: &Store,
    r: &Reference,
) -> Result<Option<Vec<ImportedEntry>>, SharedCacheError> {
    let Some(config) = read(registry, store, r).await? else {
        return Ok(None);
    };
    let origin = BlobOrigin::Registry(r.clone());
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

/// Puts one layer blob of an exported entry into `repo`: nothing when it is there, a mount or
/// streamed copy from a registry origin, else an upload from the store or a cache layout.
async fn put_layer<R: Registry>(
    registry: &R,
    store: &Store,
    repo: &Reference,
    desc: &Descriptor,
    origin: Option<&BlobOrigin>,
) -> Result<(), SharedCacheError> {
    let local = store
        .claim_blob(&desc.digest)
        .map_err(store_err(&repo.to_string()))?;
    match origin {
        Some(BlobOrigin::Registry(from)) if !local || from.registry == repo.registry => {
            registry
                .copy_blob(from, repo, desc)
                .await
                .map_err(reg_err(repo))?;
        }
        Some(o @ BlobOrigin::Layout(_)) if !local => {
            let path = o.layout_blob(&desc.digest).unwrap_or_default();
            registry
                .push_blob(repo, desc, &path)
                .await
                .map_err(reg_err(repo))?;
        }
        _ => {
            registry
                .push_blob(repo, desc, &store.blob_path(&desc.digest))
                .await
                .map_err(reg_err(repo))?;
        }
    }
    Ok(())
}

/// Pushes `config` and its manifest to the tag `r`.
async fn push<R: Registry>(
    registry: &R,
    store: &Store,
    r: &Reference,
    config: &CacheConfig,
) -> Result<(), SharedCacheError> {
    let bytes = config.to_bytes();
    let (digest, size) = store.put_bytes(&bytes).map_err(store_err(&r.to_string()))?;
    let desc = Descriptor::new(MEDIA_TYPE_CACHE_CONFIG, digest.clone(), size);
    registry
        .push_blob(r, &desc, &store.blob_path(&digest))
        .await
        .map_err(reg_err(r))?;
    let manifest = oci::to_bytes(&config.manifest(desc));
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    registry
        .push_manifest(r, &tag, &manifest, MEDIA_TYPE_OCI_MANIFEST)
        .await
        .map_err(reg_err(r))?;
    Ok(())
}

/// A random duration in `[from, from + spread)`.
fn jitter(from: Duration, spread: Duration) -> Duration {
    from + spread.mul_f64(rand::random::<f64>())
}

/// Merges `entries` into the cache under the tag `r` (see the module header).
pub(super) async fn export<R: Registry>(
    registry: &R,
    store: &Store,
    r: &Reference,
    entries: &[ExportEntry],
) -> Result<Exported, SharedCacheError> {
    let mut seen = BTreeSet::new();
    for e in entries {
        if let Some(l) = &e.entry.layer {
            if seen.insert(l.digest.clone()) {
                put_layer(registry, store, r, &l.descriptor(), e.origin.as_ref()).await?;
            }
        }
    }
    let ours: Vec<_> = entries.iter().map(|e| e.entry.clone()).collect();
    let keys: Vec<&CacheKey> = ours.iter().map(|e| &e.key).collect();
    let mut backoff = Duration::from_millis(200);
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let current = read(registry, store, r).await?.unwrap_or_default();
        let (merged, added) = current.merge(&ours);
        if added == 0 {
            return Ok(Exported {
                added: 0,
                total: merged.entries.len(),
                rounds: round,
            });
        }
        push(registry, store, r, &merged).await?;
        let took = started.elapsed();
        tokio::time::sleep(jitter(
            took * 2 + Duration::from_millis(50),
            Duration::from_millis(150),
        ))
        .await;
        let back = read(registry, store, r).await?.unwrap_or_default();
        if keys.iter().all(|k| back.has(k)) {
            return Ok(Exported {
                added,
                total: back.entries.len(),
                rounds: round,
            });
        }
        tracing::info!(cache = %r, round, "another writer replaced the cache; merging again");
        tokio::time::sleep(jitter(backoff, backoff)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    Err(SharedCacheError::Contended {
        target: r.to_string(),
        rounds: ROUNDS,
    })
}
