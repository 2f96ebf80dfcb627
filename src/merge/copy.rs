//! Making every chosen child present in each target repository before any tag moves: nothing
//! when it is there already, else its manifest and blobs copied (cross-repository mounts on the
//! same registry, streamed copies from another one, foreign layers skipped), then waited for
//! until the registry serves it (read-after-write lag).
//!
//! Level 3 (orchestration over the [`Registry`] port). It writes blobs and manifests by digest
//! only: it must never push a tag (`publish` does, after this).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use super::error::{reg_err, MergeError};
use super::resolve::Entry;
use super::wait::pause;
use super::MergeRequest;
use crate::oci::{self, Descriptor, ImageIndex, ImageManifest};
use crate::progress::{Event, Sink};
use crate::registry::{BlobPush, Reference, Registry};

/// Makes every entry of `chosen` present in the repository of each of `req`'s tags (each
/// repository once), `req.jobs` entries at a time; returns how many blobs were copied or
/// mounted.
///
/// Errors: [`MergeError::Registry`], [`MergeError::Malformed`], [`MergeError::ChildMissing`].
pub(super) async fn into_targets<R: Registry>(
    registry: &R,
    chosen: &[Entry],
    req: &MergeRequest,
    sink: &dyn Sink,
) -> Result<usize, MergeError> {
    // Every child in every target repository before any tag moves.
    let mut targets: Vec<Reference> = Vec::new();
    for t in &req.tags {
        let repo = Reference {
            tag: None,
            digest: None,
            ..t.clone()
        };
        if !targets.contains(&repo) {
            targets.push(repo);
        }
    }
    let mut blobs_copied = 0;
    for target in &targets {
        let counts: Vec<usize> = futures::stream::iter(chosen)
            .map(|e| ensure_child(registry, e, target, req.visibility_timeout, sink))
            .buffer_unordered(req.jobs.max(1))
            .try_collect()
            .await?;
        blobs_copied += counts.iter().sum::<usize>();
    }
    Ok(blobs_copied)
}

/// Copies the manifest `desc` of `from` (and everything it refers to) into `to`.
fn copy_manifest<'a, R: Registry>(
    registry: &'a R,
    from: &'a Reference,
    to: &'a Reference,
    desc: &'a Descriptor,
    sink: &'a dyn Sink,
    label: &'a str,
) -> futures::future::BoxFuture<'a, Result<usize, MergeError>> {
    Box::pin(async move {
        let what = format!(
            "copy {}@{} to {}",
            from.repo_string(),
            desc.digest,
            to.repo_string()
        );
        let raw = registry
            .get_manifest(&from.with_digest(&desc.digest))
            .await
            .map_err(reg_err(what.clone()))?;
        let mut copied = 0;
        if raw.is_index() {
            let idx: ImageIndex =
                oci::from_bytes(&raw.bytes, &what).map_err(|source| MergeError::Malformed {
                    origin: what.clone(),
                    source,
                })?;
            for child in &idx.manifests {
                copied += copy_manifest(registry, from, to, child, sink, label).await?;
            }
        } else {
            let m: ImageManifest =
                oci::from_bytes(&raw.bytes, &what).map_err(|source| MergeError::Malformed {
                    origin: what.clone(),
                    source,
                })?;
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                // Foreign / non-distributable layers are fetched from their URLs by clients,
                // not from the registry (image-spec layer.md).
                if blob.media_type.contains("foreign")
                    || blob.media_type.contains("nondistributable")
                {
                    continue;
                }
                let how = registry
                    .copy_blob(from, to, blob)
                    .await
                    .map_err(reg_err(what.clone()))?;
                if how != BlobPush::AlreadyPresent {
                    copied += 1;
                }
                sink.emit(Event::BlobPushed {
                    platform: label.to_string(),
                    digest: blob.digest.clone(),
                    size: blob.size,
                    existed: how == BlobPush::AlreadyPresent,
                    mounted: how == BlobPush::Mounted,
                });
            }
        }
        registry
            .push_manifest(to, &desc.digest.to_string(), &raw.bytes, &raw.media_type)
            .await
            .map_err(reg_err(what))?;
        Ok(copied)
    })
}

/// Makes `entry` present in `target` and waits until the registry serves it there.
async fn ensure_child<R: Registry>(
    registry: &R,
    entry: &Entry,
    target: &Reference,
    timeout: Duration,
    sink: &dyn Sink,
) -> Result<usize, MergeError> {
    let here = target.with_digest(&entry.desc.digest);
    let label = entry
        .desc
        .platform
        .as_ref()
        .map(|p| p.normalized().to_string())
        .unwrap_or_default();
    let mut copied = 0;
    if entry.repo.repo_string() != target.repo_string()
        && registry
            .head_manifest(&here)
            .await
            .map_err(reg_err(format!("check {here}")))?
            .is_none()
    {
        copied = copy_manifest(registry, &entry.repo, target, &entry.desc, sink, &label).await?;
    }
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        let found = registry
            .head_manifest(&here)
            .await
            .map_err(reg_err(format!("check {here}")))?;
        if found.is_some() {
            return Ok(copied);
        }
        if !pause(deadline, &mut wait).await {
            return Err(MergeError::ChildMissing {
                reference: here.to_string(),
                waited_secs: timeout.as_secs(),
            });
        }
    }
}
