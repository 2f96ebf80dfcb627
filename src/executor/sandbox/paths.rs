//! Path helpers, the bottom of the sandbox: naming a file by its descriptor for mount(2), and
//! opening or resolving paths of the image *inside* its root, so that no symlink in the image
//! can lead a mount or a write onto the host.
//!
//! Lowest layer of `sandbox/`: uses nothing above it; opens and stats, never mounts or writes.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::executor::error::{sys_rx, ExecError};

/// Linux `MAXSYMLINKS`.
const MAX_HOPS: usize = 40;

/// `/proc/self/fd/N`: a path that names exactly the file behind `fd`, used as a mount target so
/// that no path walk through the image happens at mount time.
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens directory `name` of `dir` as an `O_PATH` descriptor, without following a symlink.
pub(super) fn open_path_dir(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `rel` (`""` for the root itself) with every component resolved inside `root`, as if
/// it were `/` (`openat2(RESOLVE_IN_ROOT)`; no magic links).
pub(super) fn in_root(
    root: BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Reads a file of the image (`etc/passwd`) with every path component resolved inside it.
pub(super) fn read_in_root(root: BorrowedFd<'_>, rel: &str) -> Option<String> {
    let fd = in_root(root, rel, OFlags::RDONLY).ok()?;
    std::io::read_to_string(std::fs::File::from(fd)).ok()
}

/// Resolves `rel` (a path relative to the image root) through the image's symlinks as a chroot
/// would: absolute link targets start at the root, `..` stops there. Components that do not
/// exist yet are kept as written. Returns the resolved relative path (`""` for the root).
pub(super) fn resolve_in_root(root: BorrowedFd<'_>, rel: &str) -> Result<String, ExecError> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: std::collections::VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    let mut missing = false;
    while let Some(c) = todo.pop_front() {
        if c == "." {
            continue;
        }
        if c == ".." {
            done.pop();
            continue;
        }
        if missing {
            done.push(c);
            continue;
        }
        let path = if done.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", done.join("/"))
        };
        match rustix::fs::statat(root, path.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(ExecError::MountTarget {
                        target: format!("/{rel}"),
                        reason: "too many levels of symbolic links".into(),
                    });
                }
                let target = rustix::fs::readlinkat(root, path.as_str(), Vec::new())
                    .map_err(sys_rx("read symlink", format!("/{path}")))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').filter(|c| !c.is_empty()).rev() {
                    todo.push_front(t.to_string());
                }
            }
            Ok(_) => done.push(c),
            Err(rustix::io::Errno::NOENT) => {
                missing = true;
                done.push(c);
            }
            Err(e) => return Err(sys_rx("stat", format!("/{path}"))(e)),
        }
    }
    Ok(done.join("/"))
}
