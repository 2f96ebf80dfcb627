//! Publishing a finished build to its tags, last: what a tag gets is what buildx pushes, the
//! image index for several platforms, and for one platform its image manifest alone (an index
//! only when `index:` annotations need one); a `--push-by-digest` job of several platforms
//! also pushes its index by digest.
//!
//! Level 3 (coordinator), called by [`super::build_with`] once every platform succeeded and
//! every image is in the registry. Must not push an image or a blob.

use super::*;

/// What the tags get: its descriptor (with the platform for a manifest) and exact bytes.
#[derive(Debug, Clone)]
pub(super) struct TagTarget {
    /// Media type, digest, size (and platform, for an image manifest).
    pub descriptor: Descriptor,
    /// The bytes pushed.
    pub bytes: Vec<u8>,
}

/// The document a build's tags name: the only image's manifest for a single platform (read
/// from the store), unless `index:` annotations ask for an index; else the index.
///
/// Errors: [`BuildError::Store`] when the manifest cannot be read back.
pub(super) fn tag_target<R, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    stitched: &StitchedIndex,
    images: &[PlatformImage],
) -> Result<TagTarget, BuildError> {
    // An attestation is listed beside its image in an index, as buildx pushes it.
    let index_wanted = req
        .meta
        .annotations(oci::AnnotationLevel::Index, None)
        .is_some()
        || req.meta.provenance.is_some();
    match images {
        [one] if !index_wanted => {
            let bytes = deps
                .store
                .read_blob(&one.manifest.digest)
                .map_err(|source| BuildError::Store {
                    platform: one.platform.to_string(),
                    source,
                })?;
            let mut descriptor = one.manifest.clone();
            descriptor.annotations = None;
            Ok(TagTarget { descriptor, bytes })
        }
        _ => Ok(TagTarget {
            descriptor: stitched.descriptor(),
            bytes: stitched.bytes.clone(),
        }),
    }
}

/// Pushes the stitched index by digest to the `--push-by-digest` repository when the build's
/// result is an index (several platforms, or one with its attestation), and `top` (the index,
/// or the one image's manifest) to every tag with `--push`; returns the tags pushed to.
pub(super) async fn publish<R: Registry, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    stitched: &StitchedIndex,
    top: &TagTarget,
) -> Result<Vec<String>, BuildError> {
    let mut pushed_tags = Vec::new();
    let is_index = top.descriptor.digest == stitched.digest;
    if let (Some(repo), true) = (&req.push_by_digest, is_index) {
        // An index pushed by digest (several platforms, or an image and its attestation): one
        // reference names the job's whole result (`polyarch merge` flattens it).
        deps.registry
            .push_manifest(
                repo,
                &stitched.digest.to_string(),
                &stitched.bytes,
                MEDIA_TYPE_OCI_INDEX,
            )
            .await
            .map_err(|source| BuildError::Registry {
                platform: "index".into(),
                source,
            })?;
        deps.sink.emit(Event::IndexPushed {
            tag: format!("{}@{}", repo.repo_string(), stitched.digest),
            digest: stitched.digest.clone(),
        });
    }
    if req.push {
        for (i, tag) in req.tags.iter().enumerate() {
            let name = tag.tag.clone().unwrap_or_else(|| "latest".into());
            let pushed = deps
                .registry
                .push_manifest(tag, &name, &top.bytes, &top.descriptor.media_type)
                .await;
            if let Err(source) = pushed {
                if i == 0 {
                    // No tag moved: a plain registry failure.
                    return Err(BuildError::Registry {
                        platform: "index".into(),
                        source,
                    });
                }
                return Err(BuildError::TagsPartlyMoved(Box::new(TagsPartlyMoved {
                    digest: top.descriptor.digest.clone(),
                    repository: tag.repo_string(),
                    moved: pushed_tags,
                    not_moved: req.tags[i..].iter().map(|t| t.to_string()).collect(),
                    failed: tag.to_string(),
                    source,
                })));
            }
            let full = tag.to_string();
            deps.sink.emit(Event::IndexPushed {
                tag: full.clone(),
                digest: top.descriptor.digest.clone(),
            });
            pushed_tags.push(full);
        }
    }
    Ok(pushed_tags)
}
