//! One platform's image: its target stage from the stage table ([`super::stage`]), then its
//! config and manifest written to the store and pushed by digest with its layers.
//!
//! Level 3 (coordinator), above `stage`; steps are run there, not here. Must not push the
//! index or move a tag (that is [`super::build_with`]'s, once every platform succeeded).

use super::smoke;
use super::stage::Stages;
use super::upload;
use super::*;
use crate::plan::StageGraph;

/// Builds `platform`'s image from `graph` (its target stage through `stages`), writes its
/// config and manifest to the store and, when the build pushes, pushes it by digest.
pub(super) async fn build_platform<'a, R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    stages: &'a Stages<'a, R, E>,
    platform: &Platform,
    graph: StageGraph,
) -> Result<PlatformImage, BuildError> {
    let claimed = graph.claimed_platform(platform, sh.req.buildx.implicit_platform);
    let platform = &claimed;
    let pname = platform.to_string();
    let graph = Arc::new(graph);
    let built = stages.stage(graph.target(), &graph).await?;
    let (steps_run, steps_cached) = step_counts(stages, &graph).await?;
    let mut config = built.config.clone();
    let layers = built.layers.clone();
    // The target platform as the user spelled it (normalised spelling) is what the config and
    // the index record (e.g. variant v8 for linux/arm64/v8).
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.os_version = platform.os_version.clone();
    config.created = image_created(sh, &config);
    sh.req.meta.apply_labels(&mut config);
    let annotations = sh
        .req
        .meta
        .annotations(oci::AnnotationLevel::Manifest, Some(platform));

    let image = store_image(deps, &pname, (&config, annotations), &layers)?;
    // The release gate: the finished image runs the smoke test before anything is pushed.
    smoke::smoke_test(sh, deps, &pname, &config, &layers).await?;
    if let Some(target) = push_target(sh.req) {
        push_image(deps, &sh.early, (&pname, target), &layers, &image).await?;
    }
    let image_size =
        image.manifest.config.size + image.manifest.layers.iter().map(|l| l.size).sum::<u64>();
    if !sh.req.outputs.is_empty() {
        // A local output holds every blob: layers reused from a shared cache or a base image
        // are fetched now if the store lacks them.
        for l in &layers {
            super::materialise::blob(deps, &pname, l).await?;
        }
    }
    deps.sink.emit(Event::PlatformDone {
        platform: pname.clone(),
        digest: image.manifest_digest.clone(),
        size: image.manifest_size,
        image_size,
        steps_run,
        steps_cached,
    });
    let mut blobs = vec![image.config_digest.clone()];
    blobs.extend(layers.iter().map(|l| l.descriptor.digest.clone()));
    let mut descriptor = Descriptor::new(
        MEDIA_TYPE_OCI_MANIFEST,
        image.manifest_digest,
        image.manifest_size,
    );
    descriptor.platform = Some(platform.clone());
    descriptor.annotations = sh
        .req
        .meta
        .annotations(oci::AnnotationLevel::ManifestDescriptor, Some(platform));
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: image.config_digest,
        blobs,
        node: None,
        steps_run,
        steps_cached,
    })
}

/// The image's `created` time: `SOURCE_DATE_EPOCH` when set, else the time of its last
/// history entry (BuildKit's rule), so that a rebuild whose steps all come from the step cache
/// writes the same config; the base's own time when the image has no history at all.
fn image_created(sh: &Shared<'_>, config: &ImageConfig) -> Option<String> {
    if let Some(epoch) = sh.req.source_date_epoch {
        return Some(oci::rfc3339(epoch));
    }
    config
        .history
        .iter()
        .rev()
        .find_map(|h| h.created.clone())
        .or_else(|| config.created.clone())
}

/// Steps run and reused over every stage of `graph` (all built by now).
async fn step_counts<'a, R: Registry, E: Executor>(
    stages: &'a Stages<'a, R, E>,
    graph: &Arc<StageGraph>,
) -> Result<(usize, usize), BuildError> {
    let (mut run, mut cached) = (0, 0);
    for sel in &graph.stages {
        let s = stages.stage(sel, graph).await?;
        run += s.run;
        cached += s.cached;
    }
    Ok((run, cached))
}

/// An image's config and manifest as written to the store: these bytes are what is hashed
/// and pushed.
struct StoredImage {
    manifest: ImageManifest,
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
    manifest_size: u64,
    config_digest: Digest,
}

/// Serialises `config` and the manifest of `config` + `layers` (with `annotations`) once and
/// puts both in the store.
fn store_image<R, E>(
    deps: &Deps<R, E>,
    pname: &str,
    (config, annotations): (&ImageConfig, Option<BTreeMap<String, String>>),
    layers: &[BuiltLayer],
) -> Result<StoredImage, BuildError> {
    let config_bytes = oci::to_bytes(config);
    let store_err = |source| BuildError::Store {
        platform: pname.to_string(),
        source,
    };
    let (config_digest, config_size) = deps.store.put_bytes(&config_bytes).map_err(store_err)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let (manifest_digest, manifest_size) =
        deps.store.put_bytes(&manifest_bytes).map_err(store_err)?;
    Ok(StoredImage {
        manifest,
        manifest_bytes,
        manifest_digest,
        manifest_size,
        config_digest,
    })
}

/// Pushes `image` to `target` by digest: its layers and config, concurrently (the registry
/// client bounds requests per registry to `--jobs`), progress for each, then its manifest,
/// whose digest the registry must confirm. Layers uploaded while they were written are not
/// sent again.
async fn push_image<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    early: &upload::EarlyUploads,
    (pname, target): (&str, &Reference),
    layers: &[BuiltLayer],
    image: &StoredImage,
) -> Result<(), BuildError> {
    let reg_err = |source| BuildError::Registry {
        platform: pname.to_string(),
        source,
    };
    let manifest = &image.manifest;
    let origins = layers
        .iter()
        .map(|l| l.origin.as_ref())
        .chain(std::iter::once(None));
    let blobs = manifest
        .layers
        .iter()
        .chain(std::iter::once(&manifest.config))
        .zip(origins)
        .map(|(desc, origin)| async move {
            let _turn = early.turn(target, &desc.digest).await;
            let pushed = if early.has(target, &desc.digest) {
                BlobPush::Uploaded
            } else if early.was_pushed(target, &desc.digest) {
                BlobPush::AlreadyPresent
            } else {
                let pushed = push_blob(deps, pname, target, desc, origin).await?;
                early.pushed(target, &desc.digest);
                pushed
            };
            deps.sink.emit(Event::BlobPushed {
                platform: pname.to_string(),
                digest: desc.digest.clone(),
                size: desc.size,
                existed: pushed == BlobPush::AlreadyPresent,
                mounted: pushed == BlobPush::Mounted,
            });
            Ok::<_, BuildError>(())
        });
    futures::future::try_join_all(blobs).await?;
    let pushed = deps
        .registry
        .push_manifest(
            target,
            &image.manifest_digest.to_string(),
            &image.manifest_bytes,
            MEDIA_TYPE_OCI_MANIFEST,
        )
        .await
        .map_err(reg_err)?;
    if pushed != image.manifest_digest {
        return Err(BuildError::Oci {
            platform: pname.to_string(),
            source: OciError::DigestMismatch {
                what: format!("manifest pushed to {}", target.repo_string()),
                expected: image.manifest_digest.clone(),
                found: pushed,
            },
        });
    }
    Ok(())
}

/// Puts one blob in `target`: nothing when it is there already; mounted from `origin` when
/// that is another repository of the same registry; else uploaded from the store, or, when the
/// store lacks it (a layer reused from a shared cache), copied from its origin (streamed from
/// another registry, fetched first from a cache layout).
async fn push_blob<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    pname: &str,
    target: &Reference,
    desc: &Descriptor,
    origin: Option<&Origin>,
) -> Result<BlobPush, BuildError> {
    let reg_err = |source| BuildError::Registry {
        platform: pname.to_string(),
        source,
    };
    // A base layer from another repository of the same registry is mounted there
    // (distribution-spec "Mounting a blob from another repository"), not uploaded again;
    // when the registry declines, it is uploaded from the store as any other blob.
    if let Some(from) = origin.and_then(Origin::reference) {
        if from.registry == target.registry && from.repository != target.repository {
            match deps.registry.copy_blob(from, target, desc).await {
                Ok(how) => return Ok(how),
                Err(e) => {
                    tracing::info!(blob = %desc.digest, "mount from {from} failed, uploading: {e}");
                }
            }
        }
    }
    let local = deps
        .store
        .claim_blob(&desc.digest)
        .map_err(|source| BuildError::Store {
            platform: pname.to_string(),
            source,
        })?;
    match origin {
        Some(Origin::Registry(from)) if !local => deps
            .registry
            .copy_blob(from, target, desc)
            .await
            .map_err(reg_err),
        _ => {
            if !local {
                if deps
                    .registry
                    .blob_exists(target, &desc.digest)
                    .await
                    .map_err(reg_err)?
                {
                    return Ok(BlobPush::AlreadyPresent);
                }
                let layer = BuiltLayer {
                    descriptor: desc.clone(),
                    diff_id: desc.digest.clone(),
                    origin: origin.cloned(),
                };
                super::materialise::blob(deps, pname, &layer).await?;
            }
            let path = deps.store.blob_path(&desc.digest);
            deps.registry
                .push_blob(target, desc, &path)
                .await
                .map_err(reg_err)
        }
    }
}
