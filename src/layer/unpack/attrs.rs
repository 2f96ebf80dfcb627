//! Entry attributes: ownership, mode, mtime and xattrs as a tar entry stores them (header and PAX
//! records), and applying them to what was created, in the order the kernel needs.
//!
//! Level of `unpack/`: above the extraction root (it reports errors through it); knows nothing
//! of entry types beyond "directory, symlink or other".

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::root::{os, read_err, Root};
use crate::layer::{LayerError, SpecialNode, TRUSTED_XATTR_PREFIX};

/// Ownership, permissions, time and xattrs of one entry, as stored in the tar.
pub(super) struct Attrs {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) mtime: Timespec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where to apply [`Attrs`]: an open descriptor (a regular file just written, or the root), or
/// a name in a directory (everything else).
pub(super) enum Target<'a> {
    /// An open descriptor.
    Fd {
        /// The descriptor.
        fd: &'a OwnedFd,
        /// A directory (its mtime is set later).
        is_dir: bool,
    },
    /// A name in a directory.
    At {
        /// The directory.
        dir: &'a OwnedFd,
        /// The name in it.
        name: &'a OsStr,
        /// What the name is.
        kind: AtKind,
    },
}

/// What an [`Target::At`] name is: symlinks get no chmod, directories get their mtime later.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AtKind {
    /// A directory.
    Dir,
    /// A symlink.
    Symlink,
    /// Anything else.
    Other,
}

impl Attrs {
    /// Reads the entry's ownership, mode, mtime and xattrs from its header and PAX records.
    pub(super) fn read<R: Read>(
        root: &Root<'_>,
        name: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Attrs, LayerError> {
        let mut xattrs = Vec::new();
        let mut pax_mtime = None;
        if let Some(extensions) = entry.pax_extensions().map_err(read_err)? {
            for ext in extensions {
                let ext = ext.map_err(read_err)?;
                let key = ext.key_bytes();
                if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                    // A layer must not drive overlayfs (redirects, metacopy, opaque) or any
                    // other host bookkeeping through `trusted.*` xattrs: only whiteout entries
                    // may, through whiteout.rs.
                    if !xattr.starts_with(TRUSTED_XATTR_PREFIX.as_bytes()) {
                        xattrs.push((xattr.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if key == b"mtime" {
                    pax_mtime = parse_pax_time(ext.value_bytes());
                }
            }
        }
        let header = entry.header();
        let id = |v: io::Result<u64>, what: &str| -> Result<u32, LayerError> {
            let v = v.map_err(read_err)?;
            u32::try_from(v)
                .map_err(|_| root.unsafe_entry(name, format!("{what} {v} out of range")))
        };
        let uid = id(header.uid(), "uid")?;
        let gid = id(header.gid(), "gid")?;
        let mode = header.mode().map_err(read_err)? & 0o7777;
        let mtime = match pax_mtime {
            Some(t) => t,
            None => Timespec {
                tv_sec: i64::try_from(header.mtime().map_err(read_err)?).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
        };
        Ok(Attrs {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
        })
    }

    /// Applies ownership, then mode (chown clears setuid/setgid), then xattrs (chown also clears
    /// `security.capability`), then the mtime (except for directories, whose mtimes the
    /// extractor sets after all entries).
    ///
    /// Returns the xattrs the filesystem refused (not supported there, or `user.*` on a
    /// symlink, which Linux forbids), with why: the entry is kept without them, and the caller
    /// reports them.
    pub(super) fn apply(
        &self,
        root: &Root<'_>,
        entry: &str,
        target: Target<'_>,
    ) -> Result<Shortfall, LayerError> {
        let attrs = self;
        let err = |e: Errno| root.extract_err(entry, e);
        let uid = Some(Uid::from_raw(attrs.uid));
        let gid = Some(Gid::from_raw(attrs.gid));
        let mode = Mode::from_raw_mode(attrs.mode);
        let times = Timestamps {
            last_access: attrs.mtime,
            last_modification: attrs.mtime,
        };
        let mut short = Shortfall::default();
        match target {
            Target::Fd { fd, is_dir } => {
                rustix::fs::fchown(fd, uid, gid).map_err(err)?;
                rustix::fs::fchmod(fd, mode).map_err(err)?;
                for (key, value) in &attrs.xattrs {
                    let r = rustix::fs::fsetxattr(fd, os(key), value, XattrFlags::empty());
                    xattr_result(root, entry, (key, value), r, false, &mut short)?;
                }
                if !is_dir {
                    rustix::fs::futimens(fd, &times).map_err(err)?;
                }
            }
            Target::At { dir, name, kind } => {
                let symlink = kind == AtKind::Symlink;
                rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
                if !symlink {
                    // fchmodat follows symlinks, but `name` was just created here as a
                    // non-symlink by this process, under a parent only this process writes.
                    rustix::fs::chmodat(dir, name, mode, AtFlags::empty()).map_err(err)?;
                }
                if !attrs.xattrs.is_empty() {
                    // No *xattrat syscall before Linux 6.13: go through the parent's descriptor
                    // in procfs, with the l* call so a final symlink is not followed.
                    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                    path.push(name);
                    for (key, value) in &attrs.xattrs {
                        let r = rustix::fs::lsetxattr(&path, os(key), value, XattrFlags::empty());
                        xattr_result(root, entry, (key, value), r, symlink, &mut short)?;
                    }
                }
                if kind != AtKind::Dir {
                    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(err)?;
                }
            }
        }
        Ok(short)
    }
}

/// What placing one entry could not do on this filesystem: the device node or fifo it could
/// not create (a placeholder stands in for it), the xattrs (name, value) it refused, and the
/// first error.
#[derive(Debug, Default)]
pub(super) struct Shortfall {
    pub(super) node: Option<SpecialNode>,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) reason: String,
}

impl Shortfall {
    /// Nothing was refused.
    pub(super) fn is_empty(&self) -> bool {
        self.node.is_none() && self.xattrs.is_empty()
    }
}

/// Xattrs a filesystem cannot hold (no support, or `user.*` on a symlink, xattr(7)) are kept
/// out of the tree and recorded in `short` (containerd skips them with a warning; the layer
/// blob itself keeps them); anything else is an error.
fn xattr_result(
    root: &Root<'_>,
    entry: &str,
    (key, value): (&[u8], &[u8]),
    r: rustix::io::Result<()>,
    symlink: bool,
    short: &mut Shortfall,
) -> Result<(), LayerError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::OPNOTSUPP || (e == Errno::PERM && symlink) => {
            if short.reason.is_empty() {
                short.reason = format!("setxattr: {}", std::io::Error::from(e));
            }
            short.xattrs.push((key.to_vec(), value.to_vec()));
            Ok(())
        }
        Err(e) => Err(root.extract_err(entry, e)),
    }
}

/// Parses a PAX time, `seconds[.fraction]` with an optional sign (POSIX pax "mtime").
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if secs.starts_with('-') && tv_nsec > 0 {
        // "-1.5" is 1.5 s before the epoch: -2 s + 0.5 s.
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    if tv_nsec >= 1_000_000_000 {
        tv_nsec = 0;
    }
    Some(Timespec { tv_sec, tv_nsec })
}
