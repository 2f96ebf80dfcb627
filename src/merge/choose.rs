//! Choosing the index's entries from everything resolved, in the order the sources list them
//! (an image followed by its attestation manifest, as buildx `imagetools create` keeps them):
//! the `--platform` filter (images of other platforms and the attestation manifests about them
//! left out), [`index::select`] (duplicates, `--replace`, `--drop-attestations`), checking that
//! every platform asked for is there, and placing `--annotation`s on the index and its entries.
//!
//! Level 3, but pure: no I/O. It must not fetch or write anything, and must not change what an
//! entry points at (only its annotations).

use std::collections::BTreeMap;

use super::annotation::{Annotation, AnnotationTarget};
use super::error::MergeError;
use super::resolve::Entry;
use super::MergeRequest;
use crate::index::{self, IndexFormat, IndexOptions, Selection};
use crate::oci::Descriptor;
use crate::platform::Platform;

/// The entries of the index, in order, with their annotations, and the options (format and
/// index annotations) to stitch it with.
///
/// Errors: [`MergeError::Index`] from the selection, [`MergeError::MissingPlatforms`],
/// [`MergeError::AnnotationPlatform`].
pub(super) fn choose(
    entries: Vec<Entry>,
    req: &MergeRequest,
) -> Result<(Vec<Entry>, IndexOptions), MergeError> {
    let entries = filter_platforms(entries, &req.platforms);
    let descs: Vec<Descriptor> = entries.iter().map(|e| e.desc.clone()).collect();
    // Source order is kept (buildx `imagetools create`); `select` also drops the attestation
    // manifests whose image is gone, filtered out above or replaced.
    let kept = index::select(
        &descs,
        Selection {
            replace: req.replace,
            drop_attestations: req.drop_attestations,
        },
    )?;
    let mut chosen: Vec<Entry> = kept.into_iter().map(|i| entries[i].clone()).collect();
    check_platforms(&chosen, &req.platforms)?;
    let options = annotate(&mut chosen, &req.annotations, req.format)?;
    Ok((chosen, options))
}

/// With `--platform` given, leaves out the images of other platforms (their attestation
/// manifests go with them in [`index::select`]); attestations stay for now.
fn filter_platforms(entries: Vec<Entry>, only: &[Platform]) -> Vec<Entry> {
    if only.is_empty() {
        return entries;
    }
    entries
        .into_iter()
        .filter(|e| {
            index::is_attestation(&e.desc)
                || e.desc
                    .platform
                    .as_ref()
                    .is_some_and(|p| only.iter().any(|q| q.same_as(p)))
        })
        .collect()
}

/// Checks that every platform in `required` has an image among `chosen`.
fn check_platforms(chosen: &[Entry], required: &[Platform]) -> Result<(), MergeError> {
    let found: Vec<Platform> = chosen
        .iter()
        .filter(|e| !index::is_attestation(&e.desc))
        .filter_map(|e| e.desc.platform.clone())
        .collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|p| !found.iter().any(|f| f.same_as(p)))
        .map(|p| p.normalized().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingPlatforms {
            missing,
            found: found.iter().map(|p| p.normalized().to_string()).collect(),
        });
    }
    Ok(())
}

/// Places `annotations` on the entries they name (images only, never attestations) and
/// returns the index options of `format` with the index's own annotations.
fn annotate(
    chosen: &mut [Entry],
    annotations: &[Annotation],
    format: IndexFormat,
) -> Result<IndexOptions, MergeError> {
    let mut options = IndexOptions {
        format,
        annotations: BTreeMap::new(),
    };
    for a in annotations {
        match &a.target {
            AnnotationTarget::Index => {
                options.annotations.insert(a.key.clone(), a.value.clone());
            }
            AnnotationTarget::Descriptor(platform) => {
                let mut hit = false;
                for e in chosen
                    .iter_mut()
                    .filter(|e| !index::is_attestation(&e.desc))
                {
                    let matches = match (platform, &e.desc.platform) {
                        (None, _) => true,
                        (Some(want), Some(have)) => want.same_as(have),
                        (Some(_), None) => false,
                    };
                    if matches {
                        hit = true;
                        e.desc
                            .annotations
                            .get_or_insert_with(BTreeMap::new)
                            .insert(a.key.clone(), a.value.clone());
                    }
                }
                if let (Some(p), false) = (platform, hit) {
                    return Err(MergeError::AnnotationPlatform {
                        spec: format!("manifest-descriptor[{p}]:{}={}", a.key, a.value),
                        platform: p.normalized().to_string(),
                    });
                }
            }
        }
    }
    Ok(options)
}
