//! One platform's image: its target stage from the stage table ([`super::stage`]), then its
//! config and manifest written to the store and pushed by digest with its layers.
//!
//! Level 3 (coordinator), above `stage`; steps are run there, not here. Must not push the
//! index or move a tag (that is [`super::build_with`]'s, once every platform succeeded).

use super::stage::Stages;
use super::*;
use crate::plan::StageGraph;

pub(super) async fn build_platform<'a, R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    stages: &'a Stages<'a, R, E>,
    platform: &Platform,
    graph: StageGraph,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let graph = Arc::new(graph);
    let built = stages.stage(graph.target(), &graph).await?;
    let mut config = built.config.clone();
    let layers = built.layers.clone();
    // The target platform as the user spelled it (normalised spelling) is what the config and
    // the index record (e.g. variant v8 for linux/arm64/v8).
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.os_version = platform.os_version.clone();
    config.created = Some(sh.created.clone());

    // Config and manifest: serialised once; these bytes are stored, hashed and pushed.
    let config_bytes = oci::to_bytes(&config);
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let (config_digest, config_size) = deps.store.put_bytes(&config_bytes).map_err(store_err)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations: None,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let (manifest_digest, manifest_size) =
        deps.store.put_bytes(&manifest_bytes).map_err(store_err)?;
    let mut blobs = vec![config_digest.clone()];
    blobs.extend(layers.iter().map(|l| l.descriptor.digest.clone()));

    if let Some(target) = push_target(sh.req) {
        let reg_err = |source| BuildError::Registry {
            platform: pname.clone(),
            source,
        };
        let origins = layers
            .iter()
            .map(|l| l.origin.as_ref())
            .chain(std::iter::once(None));
        for (desc, origin) in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
            .zip(origins)
        {
            // A base layer from another repository of the same registry is mounted there
            // (distribution-spec "Mounting a blob from another repository"), not uploaded again;
            // when the registry declines, it is uploaded from the store as any other blob.
            let mounted = match origin {
                Some(from)
                    if from.registry == target.registry && from.repository != target.repository =>
                {
                    match deps.registry.copy_blob(from, target, desc).await {
                        Ok(how) => Some(how),
                        Err(e) => {
                            tracing::info!(blob = %desc.digest, "mount from {from} failed, uploading: {e}");
                            None
                        }
                    }
                }
                _ => None,
            };
            let pushed = match mounted {
                Some(how) => how,
                None => {
                    let path = deps.store.blob_path(&desc.digest);
                    deps.registry
                        .push_blob(target, desc, &path)
                        .await
                        .map_err(reg_err)?
                }
            };
            deps.sink.emit(Event::BlobPushed {
                platform: pname.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                existed: pushed == BlobPush::AlreadyPresent,
                mounted: pushed == BlobPush::Mounted,
            });
        }
        let pushed = deps
            .registry
            .push_manifest(
                target,
                &manifest_digest.to_string(),
                &manifest_bytes,
                MEDIA_TYPE_OCI_MANIFEST,
            )
            .await
            .map_err(reg_err)?;
        if pushed != manifest_digest {
            return Err(BuildError::Oci {
                platform: pname.clone(),
                source: OciError::DigestMismatch {
                    what: format!("manifest pushed to {}", target.repo_string()),
                    expected: manifest_digest,
                    found: pushed,
                },
            });
        }
    }
    deps.sink.emit(Event::PlatformDone {
        platform: pname.clone(),
        digest: manifest_digest.clone(),
        size: manifest_size,
    });
    let mut descriptor = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, manifest_digest, manifest_size);
    descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: config_digest,
        blobs,
        node: None,
    })
}
