//! Resolving, pulling and unpacking a platform's base image (variant-aware, digests verified).
//!
//! Level 3 (coordinator), under [`super::stage`]. Reads the registry and fills the store only:
//! must not run steps or push anything.

use super::*;
use crate::registry::RawManifest;

/// A resolved base image: its config, its layers (not fetched: materialised when a step runs
/// on them), and the manifest digest resolved for the platform.
pub(super) struct PulledBase {
    pub config: ImageConfig,
    pub layers: Vec<BuiltLayer>,
    pub manifest: Digest,
}

/// Resolves the base image for `platform` (the tag every time; only the digest goes into step
/// keys) and reads its config: from the store when it has it, unless `pull` says to read it
/// from the registry again. Its layers are only described, not fetched.
pub(super) async fn pull_base<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    platform: &Platform,
    reference: &str,
    pull: bool,
) -> Result<PulledBase, BuildError> {
    let pname = platform.to_string();
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let oci_err = |source| BuildError::Oci {
        platform: pname.clone(),
        source,
    };
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let r: Reference = reference.parse().map_err(reg_err)?;
    let manifest_raw = platform_manifest(deps, &r, platform, reference).await?;
    if !is_image_manifest(&manifest_raw.media_type) {
        return Err(BuildError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type: manifest_raw.media_type,
        });
    }
    let manifest: ImageManifest =
        oci::from_bytes(&manifest_raw.bytes, reference).map_err(oci_err)?;
    deps.sink.emit(Event::BaseResolved {
        platform: pname.clone(),
        reference: reference.to_string(),
        digest: Some(manifest_raw.digest.clone()),
    });
    let config_bytes = fetch_small_blob(deps, &r, &manifest.config, pull)
        .await
        .map_err(|e| match e {
            FetchError::Registry(source) => reg_err(source),
            FetchError::Store(source) => store_err(source),
        })?;
    let config: ImageConfig = oci::from_bytes(&config_bytes, reference).map_err(oci_err)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(BuildError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type: format!(
                "{} (config lists {} diff_ids for {} layers)",
                manifest_raw.media_type,
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    if !config.platform().same_as(platform) && !platform_compatible(&config.platform(), platform) {
        return Err(BuildError::NoMatchingPlatform {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            available: config.platform().to_string(),
        });
    }
    let layers = describe_layers(&r, &manifest, &config);
    Ok(PulledBase {
        config,
        layers,
        manifest: manifest_raw.digest,
    })
}

/// The manifest `r` names for `platform`: the best match of its index (variant-aware), or
/// `r`'s own manifest when it is not an index.
pub(super) async fn platform_manifest<R: Registry, E>(
    deps: &Deps<R, E>,
    r: &Reference,
    platform: &Platform,
    reference: &str,
) -> Result<RawManifest, BuildError> {
    let pname = platform.to_string();
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let top = deps.registry.get_manifest(r).await.map_err(reg_err)?;
    match top.media_type.as_str() {
        MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_LIST => {
            let idx: ImageIndex =
                oci::from_bytes(&top.bytes, reference).map_err(|source| BuildError::Oci {
                    platform: pname.clone(),
                    source,
                })?;
            let offered: Vec<Platform> = idx
                .manifests
                .iter()
                .map(|d| {
                    d.platform.clone().unwrap_or_else(|| Platform {
                        architecture: "unknown".into(),
                        os: "unknown".into(),
                        os_version: None,
                        variant: None,
                    })
                })
                .collect();
            let i = platform::best_match(platform, &offered).ok_or_else(|| {
                BuildError::NoMatchingPlatform {
                    reference: reference.to_string(),
                    wanted: platform.to_string(),
                    available: offered
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            let child = r.with_digest(&idx.manifests[i].digest);
            deps.registry.get_manifest(&child).await.map_err(reg_err)
        }
        _ => Ok(top),
    }
}

/// `manifest`'s layers with `config`'s diff_ids, base first, to be fetched from `r` when a
/// step needs them. The descriptors keep exactly the bytes this manifest names (pushing the
/// image and writing an OCI layout need those; the same diff_id may be stored under another
/// compression), with Docker media types turned into their OCI equivalents.
fn describe_layers(
    r: &Reference,
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Vec<BuiltLayer> {
    manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(desc, diff_id)| {
            let mut d = desc.clone();
            d.media_type = oci_layer_media_type(&d.media_type);
            d.platform = None;
            BuiltLayer {
                descriptor: d,
                diff_id: diff_id.clone(),
                origin: Some(Origin::Registry(r.clone())),
            }
        })
        .collect()
}

/// Docker layer media types become their OCI equivalents in the OCI manifest we write (the
/// bytes are the same format).
pub(super) fn oci_layer_media_type(mt: &str) -> String {
    match mt {
        oci::MEDIA_TYPE_DOCKER_LAYER_GZIP => MEDIA_TYPE_OCI_LAYER_GZIP.into(),
        other => other.into(),
    }
}

pub(super) fn is_image_manifest(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_MANIFEST || mt == oci::MEDIA_TYPE_DOCKER_MANIFEST
}

/// A single-manifest base whose config names a compatible (older) variant, e.g. an arm/v6 image
/// used for arm/v7.
pub(super) fn platform_compatible(have: &Platform, want: &Platform) -> bool {
    platform::best_match(want, std::slice::from_ref(have)).is_some()
}

pub(super) enum FetchError {
    Registry(RegistryError),
    Store(StoreError),
}

/// Downloads a blob into the store unless it is there already (then it is claimed); the
/// registry client verifies the digest while streaming and the store checks it again before
/// renaming it into place.
pub(super) async fn fetch_into_store<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    r: &Reference,
    desc: &Descriptor,
) -> Result<(), FetchError> {
    if deps
        .store
        .claim_blob(&desc.digest)
        .map_err(FetchError::Store)?
    {
        return Ok(());
    }
    download(deps, r, desc).await
}

/// Downloads a blob into the store whether or not it has it (a copy it has is kept).
async fn download<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    r: &Reference,
    desc: &Descriptor,
) -> Result<(), FetchError> {
    let tmp = deps.store.temp_dir("fetch").map_err(FetchError::Store)?;
    let path = tmp.path().join("blob");
    deps.registry
        .fetch_blob(r, desc, &path)
        .await
        .map_err(FetchError::Registry)?;
    deps.store
        .import_file(&path, &desc.digest)
        .map_err(FetchError::Store)?;
    Ok(())
}

/// Fetches a small blob (a config) through the store, verified; with `again`, from the
/// registry even when the store has it.
pub(super) async fn fetch_small_blob<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    r: &Reference,
    desc: &Descriptor,
    again: bool,
) -> Result<Vec<u8>, FetchError> {
    if again {
        download(deps, r, desc).await?;
    } else {
        fetch_into_store(deps, r, desc).await?;
    }
    deps.store
        .read_blob(&desc.digest)
        .map_err(FetchError::Store)
}
