//! overlayfs mounts: the step's merged root (image layers below, the step's upper directory on
//! top) and the read-only or throw-away views of other layers that mounts and `COPY --from` use.
//!
//! Layer of `sandbox/`: one mount(2) call with checked options; runs in the helper's private
//! mount namespace (namespaces.rs) and knows nothing of what is mounted or run on top.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::executor::error::{sys, ExecError};

/// Mounts overlayfs (read-write with an upper and work directory, else read-only). Options per
/// the kernel's Documentation/filesystems/overlayfs.rst:
/// `redirect_dir=off` and `metacopy=off` keep the upper directory a plain tree of changed files
/// (no redirect xattrs, no metadata-only copies) that a layer differ can read; `index=off` and
/// `xino=off` avoid state tied to this mount. A read-write overlay is `volatile` (Linux 5.10+;
/// retried without it where the kernel refuses it): a step's fsync(2) and sync(2) calls (dpkg
/// makes many) do not wait for the disk, nor does the unmount (which otherwise syncs the whole
/// upper filesystem, some 0.3 s for a step that wrote 1 GiB). A step is run again after a
/// crash anyway; the layer its upper directory becomes is synced by the caller before it is
/// recorded (`crate::coordinator`). The work directory, marked by `volatile`, is the step's
/// own and thrown away with it.
pub(super) fn mount_overlay(
    lowers: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    merged: &Path,
) -> Result<(), ExecError> {
    let mut paths: Vec<&Path> = lowers.to_vec();
    if let Some((upper, work)) = upper_work {
        paths.push(upper);
        paths.push(work);
    }
    for p in &paths {
        let s = p.as_os_str().to_string_lossy();
        if s.contains([',', ':', '\\']) {
            return Err(ExecError::BadOverlayPath {
                path: p.to_path_buf(),
            });
        }
    }
    // The same layer twice in one stack (two steps that made identical changes, e.g. the same
    // COPY repeated: buildkit `testCopyOverrideFiles`) makes overlayfs refuse the mount with
    // ELOOP. The lower copy changes nothing the upper one does not (same files, same
    // whiteouts, applied higher up), so only the top-most occurrence is kept.
    let mut seen = std::collections::HashSet::new();
    let lower = lowers
        .iter()
        .filter(|p| seen.insert(**p))
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    // Without an upper directory the overlay is read-only (overlayfs.rst "Multiple lower
    // layers").
    let options = match upper_work {
        Some((upper, work)) => format!(
            "lowerdir={lower},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,xino=off,volatile",
            upper.to_string_lossy(),
            work.to_string_lossy()
        ),
        None => format!("lowerdir={lower},redirect_dir=off,metacopy=off,xino=off"),
    };
    // mount(2) copies at most one page of option data.
    if options.len() >= 4096 {
        return Err(ExecError::TooManyLayers {
            layers: lowers.len(),
            len: options.len(),
        });
    }
    let mount_with = |options: &str| {
        mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options),
        )
    };
    match mount_with(&options) {
        // A kernel before 5.10 does not know `volatile`.
        Err(nix::Error::EINVAL) if options.ends_with(",volatile") => {
            mount_with(options.trim_end_matches(",volatile"))
        }
        other => other,
    }
    .map_err(sys("mount overlay", merged))
}
