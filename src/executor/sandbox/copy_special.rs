//! The `COPY` entries beyond files, directories and symlinks: device nodes and fifos, hard
//! links to an entry of the same copy, whiteouts an ADD archive carried, and every entry's
//! xattrs. What the filesystem refuses (a device node, an xattr) is not dropped: a placeholder
//! stands in for the node, and the entry is reported as an [`ExactEntry`] line so the layer
//! writer keeps it exactly (issue 18).
//!
//! Near the top of `sandbox/`, beside `copy.rs` (which calls it): uses the path helpers only;
//! runs nothing, mounts nothing.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::paths::{in_root, resolve_in_root};
use crate::context::{CopyEntry, EntryKind};
use crate::executor::error::{sys_rx, ExecError};
use crate::executor::protocol::exact_line;
use crate::layer::{ExactEntry, SpecialNode};

/// Entries of one `COPY` the filesystem could not hold exactly, reported when the copy is done.
#[derive(Debug, Default)]
pub(super) struct Inexact {
    entries: Vec<ExactEntry>,
}

impl Inexact {
    /// Records that entry `name` in the directory `parent` lacks `node` and/or `xattrs`.
    fn record(
        &mut self,
        root: BorrowedFd<'_>,
        parent_rel: &str,
        name: &str,
        short: Shortfall,
    ) -> Result<(), ExecError> {
        // The path where the entry really is (the parent's symlinks resolved inside the root),
        // which is where it is in the upper directory too.
        let parent = resolve_in_root(root, parent_rel)?;
        let path = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}/{name}")
        };
        self.entries.retain(|e| e.path != path);
        self.entries.push(ExactEntry {
            path,
            node: short.node,
            xattrs: short.xattrs,
            reason: short.reason,
        });
        Ok(())
    }

    /// Prints one report line per entry on stderr, for the executor.
    pub(super) fn report(&self) {
        for e in &self.entries {
            eprintln!("{}", exact_line(e));
        }
    }
}

/// What the filesystem refused for one entry.
#[derive(Debug, Default)]
struct Shortfall {
    node: Option<SpecialNode>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    reason: String,
}

/// Where a special entry goes: its parent (resolved inside the root), its name there, its
/// parent's path as written, and the owner and permission bits it gets.
pub(super) struct Spot<'a> {
    pub(super) root: BorrowedFd<'a>,
    pub(super) parent: BorrowedFd<'a>,
    pub(super) parent_rel: &'a str,
    pub(super) name: &'a str,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
}

/// The node an entry kind describes, `None` for other kinds.
fn node_of(kind: &EntryKind) -> Option<SpecialNode> {
    match kind {
        EntryKind::Device {
            block: false,
            major,
            minor,
        } => Some(SpecialNode::Char {
            major: *major,
            minor: *minor,
        }),
        EntryKind::Device {
            block: true,
            major,
            minor,
        } => Some(SpecialNode::Block {
            major: *major,
            minor: *minor,
        }),
        EntryKind::Fifo => Some(SpecialNode::Fifo),
        _ => None,
    }
}

/// A device node or fifo entry, replacing any non-directory there. A character device 0/0 is an
/// overlay whiteout an ADD archive carried (`.wh.<name>`): the name is removed instead, as
/// applying that archive as a layer would. Where `mknod` is refused, an empty regular file
/// with the entry's owner, mode and mtime stands in for the node and it is recorded.
pub(super) fn copy_node(
    entry: &CopyEntry,
    spot: &Spot<'_>,
    inexact: &mut Inexact,
) -> Result<(), ExecError> {
    let Some(node) = node_of(&entry.kind) else {
        return Ok(());
    };
    let dest = entry.dest.clone();
    if node == (SpecialNode::Char { major: 0, minor: 0 }) {
        return remove_entry(spot.parent, OsStr::new(spot.name)).map_err(sys_rx("remove", dest));
    }
    match rustix::fs::statat(spot.parent, spot.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            return Err(ExecError::CopyConflict {
                dest,
                reason: format!("a directory is in the way of a {node}"),
            })
        }
        Ok(_) => rustix::fs::unlinkat(spot.parent, spot.name, AtFlags::empty())
            .map_err(sys_rx("replace", dest.clone()))?,
        Err(_) => {}
    }
    let (ft, dev) = match node {
        SpecialNode::Char { major, minor } => {
            (FileType::CharacterDevice, rustix::fs::makedev(major, minor))
        }
        SpecialNode::Block { major, minor } => {
            (FileType::BlockDevice, rustix::fs::makedev(major, minor))
        }
        SpecialNode::Fifo => (FileType::Fifo, 0),
    };
    let mut short = Shortfall::default();
    match rustix::fs::mknodat(spot.parent, spot.name, ft, Mode::empty(), dev) {
        Ok(()) => {}
        Err(e @ (Errno::PERM | Errno::OPNOTSUPP | Errno::INVAL)) => {
            let fd = rustix::fs::openat(
                spot.parent,
                spot.name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(sys_rx("create placeholder", dest.clone()))?;
            drop(fd);
            short.node = Some(node);
            short.reason = format!("mknod: {}", std::io::Error::from(e));
        }
        Err(e) => return Err(sys_rx("create special file", dest)(e)),
    }
    // Through the name in the parent, which this process just created as a non-symlink (a
    // device cannot be opened just to change its metadata).
    rustix::fs::chownat(
        spot.parent,
        spot.name,
        Some(rustix::fs::Uid::from_raw(spot.uid)),
        Some(rustix::fs::Gid::from_raw(spot.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys_rx("chown", dest.clone()))?;
    rustix::fs::chmodat(
        spot.parent,
        spot.name,
        Mode::from_raw_mode(spot.mode & 0o7777),
        AtFlags::empty(),
    )
    .map_err(sys_rx("chmod", dest.clone()))?;
    set_xattrs_at(entry, spot.parent, spot.name, false, &mut short)?;
    set_mtime_at(spot.parent, spot.name, entry.mtime).map_err(sys_rx("set mtime", dest))?;
    if short.node.is_some() || !short.xattrs.is_empty() {
        inexact.record(spot.root, spot.parent_rel, spot.name, short)?;
    }
    Ok(())
}

/// A hard link entry: another name of `first`, the destination of an earlier entry of this
/// copy. Returns false, having created nothing, when that name does not hold a regular file any
/// more (a later source replaced it) or the filesystem cannot link it: the caller copies the
/// file instead.
pub(super) fn copy_hardlink(
    entry: &CopyEntry,
    first: &str,
    spot: &Spot<'_>,
) -> Result<bool, ExecError> {
    let rel = first.trim_start_matches('/');
    let (first_parent, first_name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let Ok(target_dir) = in_root(spot.root, first_parent, OFlags::PATH | OFlags::DIRECTORY) else {
        return Ok(false);
    };
    let linkable = rustix::fs::statat(&target_dir, first_name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
    if !linkable {
        return Ok(false);
    }
    match rustix::fs::statat(spot.parent, spot.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            return Err(ExecError::CopyConflict {
                dest: entry.dest.clone(),
                reason: "a directory is in the way of a file".into(),
            })
        }
        Ok(_) => rustix::fs::unlinkat(spot.parent, spot.name, AtFlags::empty())
            .map_err(sys_rx("replace", entry.dest.clone()))?,
        Err(_) => {}
    }
    match rustix::fs::linkat(
        &target_dir,
        first_name,
        spot.parent,
        spot.name,
        AtFlags::empty(),
    ) {
        Ok(()) => Ok(true),
        // Too many links, or a filesystem without hard links: the content still arrives.
        Err(Errno::MLINK | Errno::PERM | Errno::XDEV) => Ok(false),
        Err(e) => Err(sys_rx("create hard link", entry.dest.clone())(e)),
    }
}

/// Sets `entry.xattrs` on the open file or directory `fd` (after its owner and mode: chown
/// clears `security.capability`), recording those the filesystem refuses.
pub(super) fn set_xattrs_fd(
    entry: &CopyEntry,
    fd: BorrowedFd<'_>,
    spot: (BorrowedFd<'_>, &str, &str),
    inexact: &mut Inexact,
) -> Result<(), ExecError> {
    let mut short = Shortfall::default();
    for (k, v) in &entry.xattrs {
        let r = rustix::fs::fsetxattr(fd, OsStr::from_bytes(k), v, XattrFlags::empty());
        refused(r, (k, v), false, &mut short).map_err(sys_rx("set xattr", entry.dest.clone()))?;
    }
    if !short.xattrs.is_empty() {
        let (root, parent_rel, name) = spot;
        inexact.record(root, parent_rel, name, short)?;
    }
    Ok(())
}

/// Sets `entry.xattrs` on the symlink `name` of `parent`, recording those refused (Linux
/// forbids `user.*` on symlinks, xattr(7)).
pub(super) fn set_symlink_xattrs(
    entry: &CopyEntry,
    spot: (BorrowedFd<'_>, BorrowedFd<'_>, &str, &str),
    inexact: &mut Inexact,
) -> Result<(), ExecError> {
    let (root, parent, parent_rel, name) = spot;
    let mut short = Shortfall::default();
    set_xattrs_at(entry, parent, name, true, &mut short)?;
    if !short.xattrs.is_empty() {
        inexact.record(root, parent_rel, name, short)?;
    }
    Ok(())
}

/// Sets `entry.xattrs` on `name` in `parent` without following it (no `*xattrat` call before
/// Linux 6.13: through the parent's descriptor in procfs, with the `l*` call).
fn set_xattrs_at(
    entry: &CopyEntry,
    parent: BorrowedFd<'_>,
    name: &str,
    symlink: bool,
    short: &mut Shortfall,
) -> Result<(), ExecError> {
    if entry.xattrs.is_empty() {
        return Ok(());
    }
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_fd().as_raw_fd()));
    path.push(name);
    for (k, v) in &entry.xattrs {
        let r = rustix::fs::lsetxattr(&path, OsStr::from_bytes(k), v, XattrFlags::empty());
        refused(r, (k, v), symlink, short).map_err(sys_rx("set xattr", entry.dest.clone()))?;
    }
    Ok(())
}

/// Sorts out an xattr write: refusals a filesystem is entitled to (no support; `EPERM` on a
/// symlink) go into `short`, other errors are returned.
fn refused(
    r: rustix::io::Result<()>,
    (k, v): (&[u8], &[u8]),
    symlink: bool,
    short: &mut Shortfall,
) -> rustix::io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::OPNOTSUPP || (e == Errno::PERM && symlink) => {
            if short.reason.is_empty() {
                short.reason = format!("setxattr: {}", std::io::Error::from(e));
            }
            short.xattrs.push((k.to_vec(), v.to_vec()));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn set_mtime_at(parent: BorrowedFd<'_>, name: &str, mtime: i64) -> rustix::io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        parent,
        name,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Removes `name` of `dir` and, for a directory, everything below it, never following a
/// symlink (each level is opened `O_NOFOLLOW` and emptied through its own descriptor). A
/// missing name is fine.
fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e),
    }
    let fd: OwnedFd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let child = e.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(child.to_vec());
        }
    }
    for child in children {
        remove_entry(fd.as_fd(), OsStr::from_bytes(&child))?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}
