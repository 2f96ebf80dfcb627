//! Taking a node's result: the manifest it pushed, read back from the registry by digest (only
//! what really arrived is used) and checked, and its blobs fetched into the store when a local
//! output needs them.
//!
//! Level 3 (coordinator). Reads the registry and writes the store only; never talks to the
//! node.

use crate::coordinator::base::{self, FetchError};
use crate::coordinator::{BuildError, Deps, PlatformImage, Shared};
use crate::executor::Executor;
use crate::node::protocol::RemoteImage;
use crate::oci::{self, Descriptor, ImageManifest, MEDIA_TYPE_OCI_MANIFEST};
use crate::platform::Platform;
use crate::registry::{Reference, Registry};

/// Reads a node's result back from the registry by digest (only what really arrived is used),
/// checks it, and fetches its blobs into the store when a local output needs them.
pub(super) async fn adopt<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    target: &Reference,
    node: &str,
    image: RemoteImage,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let oci_err = |source| BuildError::Oci {
        platform: pname.clone(),
        source,
    };
    let raw = deps
        .registry
        .get_manifest(&target.with_digest(&image.manifest.digest))
        .await
        .map_err(reg_err)?;
    if raw.media_type != MEDIA_TYPE_OCI_MANIFEST || raw.bytes.len() as u64 != image.manifest.size {
        return Err(BuildError::UnsupportedManifest {
            reference: format!(
                "{}@{} (pushed by node {node})",
                target.repo_string(),
                raw.digest
            ),
            media_type: format!("{} ({} bytes)", raw.media_type, raw.bytes.len()),
        });
    }
    let manifest: ImageManifest =
        oci::from_bytes(&raw.bytes, &target.repo_string()).map_err(oci_err)?;
    manifest
        .config
        .digest
        .verify(
            &image.config,
            format!("config of the image node {node} pushed"),
        )
        .map_err(oci_err)?;
    deps.store
        .put_bytes(&raw.bytes)
        .map_err(|source| BuildError::Store {
            platform: pname.clone(),
            source,
        })?;
    let mut blobs = vec![manifest.config.digest.clone()];
    blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
    if !sh.req.outputs.is_empty() {
        for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
            base::fetch_into_store(deps, target, desc)
                .await
                .map_err(|e| match e {
                    FetchError::Registry(source) => reg_err(source),
                    FetchError::Store(source) => BuildError::Store {
                        platform: pname.clone(),
                        source,
                    },
                })?;
        }
    }
    let mut descriptor = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, raw.digest, image.manifest.size);
    descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: image.config,
        blobs,
        node: Some(node.to_string()),
        steps_run: image.steps_run,
        steps_cached: image.steps_cached,
    })
}
