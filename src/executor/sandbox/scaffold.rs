//! Scaffolding: mount points (`/proc`, `/dev`, `/etc/resolv.conf`, `RUN --mount` targets)
//! created in the merged root only to hang mounts on, and removed from the upper directory after
//! the step when still empty, so that they never reach a layer.
//!
//! Layer of `sandbox/`: creates entries through descriptors inside the image root, never through
//! a path the image controls; mounts nothing itself.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::paths::open_path_dir;
use crate::executor::error::{sys_rx, ExecError};
use crate::executor::snapshot::ParentTimes;

/// What a mount point needed inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

/// Paths created in (or copied up into) the upper directory only to hang mounts on; removed again
/// after the step.
#[derive(Debug, Default)]
pub(super) struct Scaffolding {
    /// Created by us, in creation order: (relative path, kind).
    created: Vec<(String, Want)>,
    /// Directories that existed only in a lower layer and were copied up because we created
    /// something inside them: (relative path, mode, uid, gid) as they were.
    copied_up: Vec<(String, u32, u32, u32)>,
    /// Times of the directories we created something in, to put back.
    parent_times: ParentTimes,
}

impl Scaffolding {
    /// Makes sure `rel` exists in the merged root as `want`, creating missing components.
    /// Returns an `O_PATH` descriptor for it, or `None` when the image has something else there
    /// (a symlink or another file type): then that mount is skipped rather than following an
    /// image symlink onto the host.
    pub(super) fn ensure(
        &mut self,
        root: BorrowedFd<'_>,
        upper: BorrowedFd<'_>,
        rel: &str,
        want: Want,
    ) -> Result<Option<OwnedFd>, ExecError> {
        let comps: Vec<&str> = rel.split('/').collect();
        let mut cur = open_path_dir(root, ".").map_err(sys_rx("open merged root", "/"))?;
        let mut pending_copy_up: Vec<(String, u32, u32, u32)> = Vec::new();
        for (i, comp) in comps.iter().enumerate() {
            let prefix = comps[..=i].join("/");
            let last = i + 1 == comps.len();
            let kind = if last { want } else { Want::Dir };
            match rustix::fs::statat(&cur, *comp, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    let ft = FileType::from_raw_mode(st.st_mode);
                    let ok = match kind {
                        Want::Dir => ft == FileType::Directory,
                        Want::File => ft == FileType::RegularFile,
                    };
                    if !ok {
                        return Ok(None);
                    }
                    if kind == Want::Dir
                        && rustix::fs::statat(upper, prefix.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .is_err()
                    {
                        pending_copy_up.push((
                            prefix.clone(),
                            st.st_mode & 0o7777,
                            st.st_uid,
                            st.st_gid,
                        ));
                    }
                }
                Err(rustix::io::Errno::NOENT) => {
                    // Creating here copies every lower-only ancestor up into the upper directory.
                    for c in pending_copy_up.drain(..) {
                        if !self.copied_up.iter().any(|x| x.0 == c.0) {
                            self.copied_up.push(c);
                        }
                    }
                    let before = ParentTimes::before(cur.as_fd());
                    match kind {
                        Want::Dir => rustix::fs::mkdirat(&cur, *comp, Mode::from_raw_mode(0o755))
                            .map_err(sys_rx("create mount point", prefix.clone()))?,
                        Want::File => {
                            rustix::fs::openat(
                                &cur,
                                *comp,
                                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                                Mode::from_raw_mode(0o644),
                            )
                            .map_err(sys_rx("create mount point", prefix.clone()))?;
                        }
                    }
                    self.parent_times
                        .record(&comps[..i].join("/"), before, cur.as_fd());
                    self.created.push((prefix.clone(), kind));
                }
                Err(e) => return Err(sys_rx("stat mount point", prefix)(e)),
            }
            let next = if last && want == Want::File {
                rustix::fs::openat(
                    &cur,
                    *comp,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            } else {
                open_path_dir(cur.as_fd(), comp)
            };
            cur = next.map_err(sys_rx("open mount point", prefix))?;
        }
        Ok(Some(cur))
    }

    /// Removes what [`Scaffolding::ensure`] left in the upper directory, newest first: files we
    /// created if still empty, directories if empty, copied-up directories if empty, unchanged
    /// in mode and owner and not opaque. Runs after the overlay is unmounted.
    pub(super) fn remove_from_upper(&self, upper: &Path) {
        let Ok(upper_fd) = rustix::fs::open(
            upper,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let untouched = self.parent_times.untouched(upper_fd.as_fd());
        for (rel, kind) in self.created.iter().rev() {
            let Ok(st) = rustix::fs::statat(&upper_fd, rel.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            match kind {
                Want::File if ft == FileType::RegularFile && st.st_size == 0 => {
                    let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::empty());
                }
                Want::Dir if ft == FileType::Directory => {
                    // Fails with ENOTEMPTY when the step put something there: then it stays.
                    let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::REMOVEDIR);
                }
                _ => {}
            }
        }
        ParentTimes::restore(&untouched, upper_fd.as_fd());
        for (rel, mode, uid, gid) in self.copied_up.iter().rev() {
            let Ok(st) = rustix::fs::statat(&upper_fd, rel.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let same = FileType::from_raw_mode(st.st_mode) == FileType::Directory
                && st.st_mode & 0o7777 == *mode
                && st.st_uid == *uid
                && st.st_gid == *gid;
            if !same || is_opaque(upper_fd.as_fd(), rel) {
                continue;
            }
            let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::REMOVEDIR);
        }
    }
}

/// True when an upper directory is marked opaque (overlayfs.rst "whiteouts and opaque
/// directories"): removing it would make the lower contents reappear.
fn is_opaque(upper: BorrowedFd<'_>, rel: &str) -> bool {
    let Ok(fd) = rustix::fs::openat(
        upper,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return true;
    };
    let mut buf = [0u8; 8];
    rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut buf[..]).is_ok()
}
