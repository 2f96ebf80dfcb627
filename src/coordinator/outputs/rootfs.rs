//! `type=local` and `type=tar`: each platform's final root filesystem (its layers applied in
//! order, whiteouts honoured) as files in a directory, or as one tar; with several platforms
//! one subdirectory per platform named `os_arch[_variant]` (buildx's `platform-split`).
//!
//! Level 3 (coordinator, outputs). Unpacks layers into the store (once per diff_id) and copies
//! their merged view with the executor's copy of the layers; writes only under the destination
//! and a temp directory of the state directory.

use super::error::OutputError;
use super::{store_err, to_dest, BuildError, Deps, Dest, PlatformImage};
use crate::oci::{self, ImageConfig, ImageManifest};
use std::path::{Path, PathBuf};

/// How a root filesystem tar is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct TarOptions {
    /// `platform-split` (`None`: when there are several platforms).
    pub split: Option<bool>,
    /// `SOURCE_DATE_EPOCH`: mtimes clamped to it.
    pub epoch: Option<u64>,
}

/// buildx's directory name for a platform: its normalised form with `/` as `_`
/// (`linux_amd64`, `linux_arm64`, `linux_arm_v7`).
pub(super) fn split_name(p: &crate::platform::Platform) -> String {
    p.normalized().to_string().replace('/', "_")
}

/// The unpacked layer directories of `image`, top-most first (overlayfs `lowerdir` order).
fn layer_dirs<R, E>(deps: &Deps<R, E>, image: &PlatformImage) -> Result<Vec<PathBuf>, BuildError> {
    let oci_err = |source| BuildError::Oci {
        platform: image.platform.to_string(),
        source,
    };
    let manifest: ImageManifest = oci::from_bytes(
        &deps
            .store
            .read_blob(&image.manifest.digest)
            .map_err(store_err)?,
        "manifest",
    )
    .map_err(oci_err)?;
    let config: ImageConfig = oci::from_bytes(
        &deps.store.read_blob(&image.config).map_err(store_err)?,
        "config",
    )
    .map_err(oci_err)?;
    let mut dirs = Vec::new();
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        dirs.push(
            deps.store
                .unpack_blob(&layer.digest, &layer.media_type, Some(diff_id))
                .map_err(store_err)?,
        );
    }
    dirs.reverse();
    Ok(dirs)
}

/// Materialises every image's root filesystem under `root` (an existing empty directory):
/// in it for one platform without split, else in `root/<split_name>`.
fn materialise<R, E>(
    deps: &Deps<R, E>,
    images: &[PlatformImage],
    root: &Path,
    split: Option<bool>,
) -> Result<(), BuildError> {
    let split = split.unwrap_or(images.len() > 1);
    for image in images {
        let dest = if split {
            let d = root.join(split_name(&image.platform));
            std::fs::create_dir(&d).map_err(|source| {
                store_err(crate::store::StoreError::Io {
                    action: "create directory",
                    path: d.clone(),
                    source,
                })
            })?;
            d
        } else {
            root.to_path_buf()
        };
        let lowers = layer_dirs(deps, image)?;
        crate::executor::materialise_rootfs(&lowers, &dest).map_err(|source| {
            BuildError::Output(Box::new(OutputError::Rootfs {
                platform: image.platform.to_string(),
                dest: dest.display().to_string(),
                source,
            }))
        })?;
    }
    Ok(())
}

/// Materialises `image`'s root filesystem in `dest` (an existing empty directory).
pub(super) fn materialise_one<R, E>(
    deps: &Deps<R, E>,
    image: &PlatformImage,
    dest: &Path,
) -> Result<(), BuildError> {
    materialise(deps, std::slice::from_ref(image), dest, Some(false))
}

/// `type=local,dest=DIR`: the root filesystems as files under `dest` (created; checked before
/// the build to be absent or empty).
pub(super) fn write_local<R, E>(
    deps: &Deps<R, E>,
    images: &[PlatformImage],
    dest: &Path,
    split: Option<bool>,
) -> Result<(), BuildError> {
    std::fs::create_dir_all(dest).map_err(|source| {
        store_err(crate::store::StoreError::Io {
            action: "create directory",
            path: dest.to_path_buf(),
            source,
        })
    })?;
    materialise(deps, images, dest, split)
}

/// `type=tar,dest=FILE|-`: the root filesystems materialised in a temp directory of the state
/// directory, then written as one uncompressed tar (the layer writer's format: sorted entries,
/// numeric owners, PAX for long names and xattrs).
pub(super) fn write_tar<R, E>(
    deps: &Deps<R, E>,
    images: &[PlatformImage],
    dest: &Dest,
    options: TarOptions,
) -> Result<(), BuildError> {
    let tmp = deps.store.temp_dir("rootfs-").map_err(store_err)?;
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).map_err(|source| {
        store_err(crate::store::StoreError::Io {
            action: "create directory",
            path: root.clone(),
            source,
        })
    })?;
    materialise(deps, images, &root, options.split)?;
    let layer_options = crate::layer::LayerOptions {
        source_date_epoch: options.epoch,
        compression: crate::layer::Compression::Uncompressed,
        threads: 1,
        exact: Vec::new(),
    };
    to_dest(dest, |w, shown| {
        crate::layer::write_layer(&root, w, &layer_options)
            .map(|_| ())
            .map_err(|source| {
                BuildError::Output(Box::new(OutputError::RootfsTar {
                    dest: shown.display().to_string(),
                    source,
                }))
            })
    })
}
