//! Resolving sources into index entries: each source's document is fetched (waited for when a
//! matrix job pushed it a moment ago); an index is flattened into its children, and an image
//! manifest (or a child without a platform) gets its platform from its config. With
//! `--append`, what the first tag holds now comes first.
//!
//! Level 3 (orchestration over the [`Registry`] port). It reads only: nothing is written to a
//! registry here, and nothing is chosen or dropped (`choose` does).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use super::error::{reg_err, MergeError};
use super::sources::Source;
use super::wait::pause;
use super::MergeRequest;
use crate::oci::{self, Descriptor, ImageConfig, ImageIndex, ImageManifest};
use crate::platform::Platform;
use crate::registry::{RawManifest, Reference, Registry, RegistryError};

/// An index entry and the repository its content is in now.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The entry as it goes into the index (platform filled in).
    pub(super) desc: Descriptor,
    /// The repository (no tag, no digest) that holds its content now.
    pub(super) repo: Reference,
}

/// Fetches a manifest, waiting up to `timeout` while the registry says it does not exist (a
/// matrix job may have pushed it a moment ago).
async fn get_eventually<R: Registry>(
    registry: &R,
    reference: &Reference,
    timeout: Duration,
) -> Result<RawManifest, RegistryError> {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        match registry.get_manifest(reference).await {
            Err(RegistryError::NotFound { .. }) if pause(deadline, &mut wait).await => continue,
            other => return other,
        }
    }
}

/// The platform of an image manifest, from its config blob.
async fn image_platform<R: Registry>(
    registry: &R,
    repo: &Reference,
    raw: &RawManifest,
    origin: &str,
) -> Result<Platform, MergeError> {
    let manifest: ImageManifest =
        oci::from_bytes(&raw.bytes, origin).map_err(|source| MergeError::Malformed {
            origin: origin.to_string(),
            source,
        })?;
    let dir = tempfile::tempdir().map_err(|source| MergeError::ReadSource {
        path: std::env::temp_dir(),
        source,
    })?;
    let path = dir.path().join("config");
    registry
        .fetch_blob(repo, &manifest.config, &path)
        .await
        .map_err(reg_err(format!("config of {origin}")))?;
    let bytes = std::fs::read(&path).map_err(|source| MergeError::ReadSource {
        path: path.clone(),
        source,
    })?;
    let config: ImageConfig =
        oci::from_bytes(&bytes, origin).map_err(|source| MergeError::Malformed {
            origin: origin.to_string(),
            source,
        })?;
    Ok(config.platform())
}

/// A source's index entries: an index's children, or the image itself with its platform.
async fn resolve<R: Registry>(
    registry: &R,
    source: &Source,
    timeout: Duration,
) -> Result<Vec<Entry>, MergeError> {
    let raw = get_eventually(registry, &source.reference, timeout)
        .await
        .map_err(reg_err(format!("source {}", source.origin)))?;
    let repo = Reference {
        tag: None,
        digest: None,
        ..source.reference.clone()
    };
    if raw.is_index() {
        let idx: ImageIndex =
            oci::from_bytes(&raw.bytes, &source.origin).map_err(|e| MergeError::Malformed {
                origin: source.origin.clone(),
                source: e,
            })?;
        let mut out = Vec::new();
        for mut desc in idx.manifests {
            if desc.platform.is_none() {
                let child = registry
                    .get_manifest(&repo.with_digest(&desc.digest))
                    .await
                    .map_err(reg_err(format!(
                        "child {} of {}",
                        desc.digest, source.origin
                    )))?;
                if !child.is_index() {
                    desc.platform =
                        Some(image_platform(registry, &repo, &child, &source.origin).await?);
                }
            }
            out.push(Entry {
                desc,
                repo: repo.clone(),
            });
        }
        return Ok(out);
    }
    let platform = image_platform(registry, &repo, &raw, &source.origin).await?;
    if let Some(claimed) = &source.platform {
        if !claimed.same_as(&platform) {
            return Err(MergeError::PlatformMismatch {
                origin: source.origin.clone(),
                claimed: claimed.normalized().to_string(),
                actual: platform.normalized().to_string(),
                reference: source.reference.to_string(),
            });
        }
    }
    let mut desc = raw.descriptor();
    desc.platform = Some(platform);
    Ok(vec![Entry { desc, repo }])
}

/// Every entry the merge starts from, in order: with `--append`, those of what the first tag
/// holds now (nothing when it does not exist yet), then those of each source (resolved
/// `jobs` at a time, kept in source order).
pub(super) async fn gather<R: Registry>(
    registry: &R,
    req: &MergeRequest,
) -> Result<Vec<Entry>, MergeError> {
    let mut entries = Vec::new();
    if req.append {
        let first = &req.tags[0];
        match registry.get_manifest(first).await {
            Ok(_) => {
                let current = Source {
                    reference: first.clone(),
                    origin: format!("{first} (--append)"),
                    platform: None,
                };
                entries.extend(resolve(registry, &current, Duration::ZERO).await?);
            }
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(reg_err(format!("read {first} for --append"))(e)),
        }
    }
    // A source is looked up once: one that does not exist fails at once (issue 13: a 404 is
    // final). The visibility wait is for what this merge itself makes present in the target.
    let resolved: Vec<Vec<Entry>> = futures::stream::iter(&req.sources)
        .map(|s| resolve(registry, s, Duration::ZERO))
        .buffered(req.jobs.max(1))
        .try_collect()
        .await?;
    entries.extend(resolved.into_iter().flatten());
    Ok(entries)
}
