//! `--sbom`: each image's root filesystem is materialised in a temp directory and its package
//! databases read ([`crate::attest::sbom`]: dpkg, apk, Python dist-info), to make the SPDX
//! statement that goes beside the provenance in the image's attestation manifest.
//!
//! Level 3 (coordinator), under [`super::attest`]. Reads only inside the materialised tree and
//! never through a symlink (an image's `/var -> /somewhere` cannot make the SBOM read a host
//! file); writes only in a temp directory of the state directory.

use std::path::{Component, Path};

use super::*;
use crate::attest::sbom::{self, Package, SbomInput};

/// The SBOM statement of `image` (subject name `name`, created at `created`).
///
/// Errors: [`BuildError::Store`], [`BuildError::Output`] when the root filesystem cannot be
/// materialised.
pub(super) fn statement<R, E>(
    deps: &Deps<R, E>,
    image: &PlatformImage,
    name: &str,
    created: &str,
) -> Result<Vec<u8>, BuildError> {
    let tmp = deps
        .store
        .temp_dir("sbom-")
        .map_err(|source| BuildError::Store {
            platform: image.platform.to_string(),
            source,
        })?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).map_err(|source| BuildError::Store {
        platform: image.platform.to_string(),
        source: StoreError::Io {
            action: "create directory",
            path: root.clone(),
            source,
        },
    })?;
    super::outputs::materialise_image(deps, image, &root)?;
    let mut packages: Vec<Package> = Vec::new();
    if let Some(t) = read_in_root(&root, "var/lib/dpkg/status") {
        packages.extend(sbom::parse_dpkg_status(&t));
    }
    if let Some(t) = read_in_root(&root, "lib/apk/db/installed") {
        packages.extend(sbom::parse_apk_installed(&t));
    }
    for lib in ["usr/lib", "usr/local/lib"] {
        packages.extend(python_packages(&root, lib));
    }
    let distro = read_in_root(&root, "etc/os-release")
        .or_else(|| read_in_root(&root, "usr/lib/os-release"))
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("ID=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    Ok(sbom::sbom(&SbomInput {
        subject: (image.manifest.digest.clone(), name.to_string()),
        packages,
        distro,
        created: created.to_string(),
        tool: format!("polyarch-{}", env!("CARGO_PKG_VERSION")),
    }))
}

/// The text of `rel` inside `root`, when every component is a real directory and the last a
/// regular file (no symlink followed anywhere).
fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    let mut at = root.to_path_buf();
    let parts: Vec<Component<'_>> = Path::new(rel).components().collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return None;
        };
        at.push(name);
        let md = std::fs::symlink_metadata(&at).ok()?;
        let last = i + 1 == parts.len();
        if (last && !md.is_file()) || (!last && !md.is_dir()) {
            return None;
        }
    }
    std::fs::read_to_string(&at).ok()
}

/// Names of the real directories (not symlinks) directly in `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Packages of `LIB/python3*/{site,dist}-packages/*.dist-info/METADATA`.
fn python_packages(root: &Path, lib: &str) -> Vec<Package> {
    let mut out = Vec::new();
    if read_in_root(root, lib).is_some() || !root.join(lib).is_dir() {
        return out;
    }
    for py in subdirs(&root.join(lib))
        .into_iter()
        .filter(|d| d.starts_with("python3"))
    {
        for kind in ["site-packages", "dist-packages"] {
            let rel = format!("{lib}/{py}/{kind}");
            for d in subdirs(&root.join(&rel))
                .into_iter()
                .filter(|d| d.ends_with(".dist-info"))
            {
                if let Some(t) = read_in_root(root, &format!("{rel}/{d}/METADATA")) {
                    out.extend(sbom::parse_python_metadata(&t));
                }
            }
        }
    }
    out
}
