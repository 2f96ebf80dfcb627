//! Layers are materialised lazily: a layer of the image being built (a base image's, or one a
//! step cache hit reused) is only a descriptor and a diff_id until something needs its bytes
//! or its files. A `RUN` or `COPY` needs the unpacked directories of the layers it runs on
//! ([`dirs`]); an output or a push to another registry needs the blob ([`blob`]). Everything
//! else (a cached stage whose results are only pushed to the registry they came from) never
//! downloads a layer.
//!
//! Level 3 (coordinator), under [`super::actions`] and [`super::image`]: fills the store from
//! a layer's origin (a registry repository or a cache layout directory). Must not run steps or
//! push anything.

use super::base::{fetch_into_store, FetchError};
use super::*;

/// Where a layer's blob can be fetched when it is not in the store: a registry repository (a
/// base image's, a registry cache's) or a cache layout directory.
pub(super) type Origin = crate::shared_cache::BlobOrigin;

/// Makes sure `layer`'s blob is in the store (claimed for this build): fetched from its origin
/// when missing.
///
/// Errors: [`BuildError::Registry`] or [`BuildError::Store`] when it cannot be fetched,
/// [`BuildError::Internal`] when it is missing and has no origin.
pub(super) async fn blob<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    platform: &str,
    layer: &BuiltLayer,
) -> Result<(), BuildError> {
    let store_err = |source| BuildError::Store {
        platform: platform.to_string(),
        source,
    };
    let desc = &layer.descriptor;
    if deps.store.claim_blob(&desc.digest).map_err(store_err)? {
        return Ok(());
    }
    match &layer.origin {
        Some(Origin::Registry(r)) => fetch_into_store(deps, r, desc).await.map_err(|e| match e {
            FetchError::Registry(source) => BuildError::Registry {
                platform: platform.to_string(),
                source,
            },
            FetchError::Store(source) => store_err(source),
        }),
        Some(Origin::Layout(dir)) => {
            let src = dir.join("blobs").join("sha256").join(desc.digest.hex());
            let tmp = deps.store.temp_dir("import").map_err(store_err)?;
            let copy = tmp.path().join("blob");
            std::fs::copy(&src, &copy).map_err(|source| {
                store_err(StoreError::Io {
                    action: "copy the cached layer",
                    path: src.clone(),
                    source,
                })
            })?;
            deps.store
                .import_file(&copy, &desc.digest)
                .map(|_| ())
                .map_err(store_err)
        }
        None => Err(BuildError::Internal(format!(
            "layer blob {} is neither in the store nor anywhere to fetch it from",
            desc.digest
        ))),
    }
}

/// The unpacked directory of `layer` (claimed for this build): unpacked from its blob, fetched
/// first when needed, unless the store has it.
///
/// Errors: as [`blob`], and [`BuildError::Store`] when the blob cannot be unpacked.
async fn dir<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    platform: &str,
    layer: &BuiltLayer,
) -> Result<PathBuf, BuildError> {
    let store_err = |source| BuildError::Store {
        platform: platform.to_string(),
        source,
    };
    if deps.store.claim_layer(&layer.diff_id).map_err(store_err)? {
        return Ok(deps.store.layer_dir(&layer.diff_id));
    }
    blob(deps, platform, layer).await?;
    let store = deps.store.clone();
    let (digest, media_type, diff_id) = (
        layer.descriptor.digest.clone(),
        layer.descriptor.media_type.clone(),
        layer.diff_id.clone(),
    );
    tokio::task::spawn_blocking(move || store.unpack_blob(&digest, &media_type, Some(&diff_id)))
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))?
        .map_err(store_err)
}

/// The unpacked directories of `layers` in overlayfs order (top-most first), materialised.
///
/// Errors: as [`dir`].
pub(super) async fn dirs<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    platform: &str,
    layers: &[BuiltLayer],
) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = Vec::with_capacity(layers.len());
    for l in layers.iter().rev() {
        out.push(dir(deps, platform, l).await?);
    }
    Ok(out)
}
