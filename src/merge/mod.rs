//! `polyarch merge`: stitch images that are already pushed (by a CI matrix, one job per
//! platform) into one index and publish it to tags, in a way that cannot go half-right.
//!
//! Level 3 (orchestration over the [`Registry`] port). In order, and nothing is written before
//! every check passed:
//! 1. resolve every source (`REPO@DIGEST`, `REPO:TAG`, or a metadata file) to index entries:
//!    an index is flattened into its children, an image manifest gets its platform from its
//!    config; a just-pushed source that is not visible yet is waited for;
//! 2. with `--append`, what the first tag holds now goes first;
//! 3. choose the entries in source order: the `--platform` filter (attestation manifests of
//!    images left out go with them), [`index::select`] (duplicates, `--replace`,
//!    `--drop-attestations`), a check that every platform asked for is there, and the
//!    `--annotation`s;
//! 4. stitch the index with the same code `polyarch build` uses ([`index::stitch_with`]);
//! 5. unless `--dry-run`: make every child present in each target repository (a HEAD, waited
//!    for read-after-write lag when it should already be there; cross-repository mounts on the
//!    same registry; streamed copies from other registries), push the index to every tag, and
//!    read each tag back to check that it serves what was pushed.
//!
//! The rooms, in the order a merge runs through them: `sources` and `annotation` (the command
//! line's inputs), `resolve` (step 1 and 2), `choose` (step 3), `copy` and `publish` (step 5),
//! with `error` and `wait` below them all. This file holds the request and outcome and runs the
//! steps in order; it must not do a step's work itself.

use std::time::Duration;

mod annotation;
mod choose;
mod copy;
mod error;
mod publish;
mod resolve;
mod sources;
mod wait;

pub use annotation::{parse_annotation, Annotation, AnnotationTarget};
pub use error::MergeError;
pub use sources::{read_sources, Source};

use crate::index::{self, IndexFormat, StitchedIndex};
use crate::oci::Descriptor;
use crate::platform::Platform;
use crate::progress::Sink;
use crate::registry::{Reference, Registry};

/// Everything a merge needs, resolved and validated from the command line.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    /// The tags to push the index to (at least one; tags only, no digests).
    pub tags: Vec<Reference>,
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// OCI index or Docker list.
    pub format: IndexFormat,
    /// `--annotation`s.
    pub annotations: Vec<Annotation>,
    /// `--platform`: only images of these platforms (and their attestation manifests), each of
    /// which must be there. Empty: every image of the sources.
    pub platforms: Vec<Platform>,
    /// `--replace`: a later image for a platform wins.
    pub replace: bool,
    /// `--drop-attestations`.
    pub drop_attestations: bool,
    /// `--append`: start from what the first tag holds now.
    pub append: bool,
    /// `--dry-run`: resolve and stitch, write nothing.
    pub dry_run: bool,
    /// How long to wait for content that should be visible (read-after-write lag).
    pub visibility_timeout: Duration,
    /// Children made present at once per target repository.
    pub jobs: usize,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The index (pushed unless a dry run).
    pub index: StitchedIndex,
    /// Tags it was pushed to and read back from.
    pub pushed_tags: Vec<String>,
    /// Blobs copied or mounted into target repositories.
    pub blobs_copied: usize,
}

/// Runs a merge; see the module documentation for the steps.
///
/// Errors: see [`MergeError`]. On any error no tag has been pushed (children may have been
/// copied into the target repository, which is harmless).
pub async fn merge<R: Registry>(
    req: &MergeRequest,
    registry: &R,
    sink: &dyn Sink,
) -> Result<MergeOutcome, MergeError> {
    if req.tags.is_empty() {
        return Err(MergeError::Usage {
            flag: "--tag".into(),
            message: "at least one -t/--tag is needed to say where the index goes".into(),
        });
    }
    if req.sources.is_empty() {
        return Err(MergeError::NoSources);
    }
    let entries = resolve::gather(registry, req).await?;
    let (chosen, options) = choose::choose(entries, req)?;
    let children: Vec<Descriptor> = chosen.iter().map(|e| e.desc.clone()).collect();
    let stitched = index::stitch_with(&children, &options)?;
    if req.dry_run {
        return Ok(MergeOutcome {
            index: stitched,
            pushed_tags: Vec::new(),
            blobs_copied: 0,
        });
    }
    let blobs_copied = copy::into_targets(registry, &chosen, req, sink).await?;
    let pushed_tags = publish::to_tags(registry, req, &stitched, sink).await?;
    Ok(MergeOutcome {
        index: stitched,
        pushed_tags,
        blobs_copied,
    })
}

#[cfg(test)]
mod tests;
