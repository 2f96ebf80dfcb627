//! File primitives of the copy snapshotter: stat, xattrs, and copying one entry with its
//! metadata (owner, mode, xattrs, times, device numbers, hardlinks).
//!
//! Paths here are built from names the caller got from `readdir` and checked with `lstat`
//! (`SYMLINK_NOFOLLOW`) to be directories, and nothing else writes to these trees while they are
//! walked (the step's processes are gone: its PID namespace died with its PID 1), so a path
//! never leads through a symlink. Final components are never followed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Statx, StatxFlags, Timespec, Timestamps, CWD};

use super::super::ExecError;
use crate::layer::{OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX};

/// Xattr (name, value) pairs, sorted by name.
pub(super) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// `(dev major, dev minor, inode)`: identifies a file for hardlink detection.
pub(super) type InodeKey = (u32, u32, u64);

pub(super) fn sys<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ExecError + 'a {
    move |e| ExecError::sys(action, path, e)
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// `statx` of `path` without following a final symlink: basic stats plus the birth time where
/// the filesystem records one (`stx_mask` says).
pub(super) fn lstat(path: &Path) -> io::Result<Statx> {
    rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .map_err(errno)
}

/// The file type of a stat result.
pub(super) fn file_type(st: &Statx) -> FileType {
    FileType::from_raw_mode(rustix::fs::RawMode::from(st.stx_mode))
}

/// Permission bits including setuid/setgid/sticky.
pub(super) fn perm(st: &Statx) -> u32 {
    u32::from(st.stx_mode) & 0o7777
}

/// An overlayfs whiteout: a character device 0/0 (kernel overlayfs.rst "whiteouts and opaque
/// directories").
pub(super) fn is_whiteout(st: &Statx) -> bool {
    file_type(st) == FileType::CharacterDevice && st.stx_rdev_major == 0 && st.stx_rdev_minor == 0
}

/// A timestamp as `(seconds, nanoseconds)`, ordered.
pub(super) fn ts(t: &rustix::fs::StatxTimestamp) -> (i64, u32) {
    (t.tv_sec, t.tv_nsec)
}

fn timespec(t: &rustix::fs::StatxTimestamp) -> Timespec {
    Timespec {
        tv_sec: t.tv_sec,
        tv_nsec: t.tv_nsec.into(),
    }
}

/// The names in directory `dir`, in byte order.
pub(super) fn read_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, ExecError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(sys("read directory", dir))? {
        names.push(e.map_err(sys("read directory", dir))?.file_name());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// `llistxattr` + `lgetxattr`: the xattrs of `path` (not following a final symlink), sorted,
/// without overlayfs' own (`trusted.overlay.*`, which describe a layer, not the file). A
/// filesystem without xattr support has none.
pub(super) fn xattrs(path: &Path) -> io::Result<Xattrs> {
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(n) => n,
            Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(errno(e)),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // The list grew between the two calls: ask again.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(errno(e)),
        }
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if name.starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) {
            continue;
        }
        match get_xattr(path, name)? {
            Some(value) => out.push((name.to_vec(), value)),
            // Removed between the list and the read.
            None => continue,
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr's value, `None` when it is absent.
fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(n) => n,
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(errno(e)),
        }
    }
}

/// True when the directory `path` is an opaque overlay directory (`trusted.overlay.opaque=y`);
/// the value `x` (kernel 6.7+) only flags xattr whiteouts inside and hides nothing.
pub(super) fn is_opaque(path: &Path) -> io::Result<bool> {
    Ok(get_xattr(path, OVERLAY_OPAQUE_XATTR.as_bytes())?.as_deref() == Some(b"y"))
}

/// Marks the directory `path` opaque, as overlayfs does for a directory created where a lower
/// entry was deleted.
pub(super) fn set_opaque(path: &Path) -> Result<(), ExecError> {
    rustix::fs::lsetxattr(
        path,
        OVERLAY_OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| ExecError::sys("mark directory opaque", path, errno(e)))
}

/// Creates an overlayfs whiteout (character device 0/0, mode 0) at `path`.
pub(super) fn make_whiteout(path: &Path) -> Result<(), ExecError> {
    rustix::fs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .map_err(|e| ExecError::sys("create whiteout", path, errno(e)))
}

/// Compares two regular files' contents, streaming (two fixed buffers).
pub(super) fn same_content(a: &Path, b: &Path) -> Result<bool, ExecError> {
    use std::io::Read;
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| ExecError::sys("open for comparison", p, errno(e)))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(sys("read for comparison", a))?;
        let m = read_full(&mut fb, &mut bb).map_err(sys("read for comparison", b))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }

    fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// The target of the symlink `path`.
pub(super) fn link_target(path: &Path) -> Result<Vec<u8>, ExecError> {
    rustix::fs::readlinkat(CWD, path, Vec::new())
        .map(|t| t.into_bytes())
        .map_err(|e| ExecError::sys("read symlink", path, errno(e)))
}

/// Copies entries from one tree to another, keeping hard links: the first copy of a
/// multiply-linked inode is remembered, later names of it become links to that copy.
#[derive(Debug, Default)]
pub(super) struct Copier {
    links: HashMap<InodeKey, PathBuf>,
}

impl Copier {
    /// The first copy of every multiply-linked inode copied so far.
    pub(super) fn copies(&self) -> impl Iterator<Item = &Path> {
        self.links.values().map(PathBuf::as_path)
    }

    /// Creates at `dst` a copy of the non-directory `src` whose stat is `st`: regular files are
    /// streamed (`copy_file_range` where the kernel can), symlinks, devices, fifos and sockets
    /// recreated; then owner, mode, xattrs and times are set. A name of an inode already
    /// copied becomes a hard link to that copy.
    pub(super) fn copy_node(
        &mut self,
        src: &Path,
        st: &Statx,
        dst: &Path,
    ) -> Result<(), ExecError> {
        let key = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
        if st.stx_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                return rustix::fs::linkat(CWD, first.as_path(), CWD, dst, AtFlags::empty())
                    .map_err(|e| ExecError::sys("create hard link", dst, errno(e)));
            }
        }
        let ft = file_type(st);
        match ft {
            FileType::RegularFile => {
                let mut from = rustix::fs::open(
                    src,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map(File::from)
                .map_err(|e| ExecError::sys("open for copying", src, errno(e)))?;
                let mut to = rustix::fs::open(
                    dst,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map(File::from)
                .map_err(|e| ExecError::sys("create file", dst, errno(e)))?;
                // std's io::copy between two files uses copy_file_range(2): no user-space buffer.
                let n = io::copy(&mut from, &mut to).map_err(sys("copy file", src))?;
                if n != st.stx_size {
                    return Err(ExecError::sys(
                        "copy file",
                        src,
                        io::Error::other(format!(
                            "copied {n} bytes, but the file had {} when listed",
                            st.stx_size
                        )),
                    ));
                }
            }
            FileType::Symlink => {
                let target = link_target(src)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), CWD, dst)
                    .map_err(|e| ExecError::sys("create symlink", dst, errno(e)))?;
            }
            FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket => {
                rustix::fs::mknodat(
                    CWD,
                    dst,
                    ft,
                    Mode::empty(),
                    rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
                )
                .map_err(|e| ExecError::sys("create special file", dst, errno(e)))?;
            }
            FileType::Directory | FileType::Unknown => {
                return Err(ExecError::sys(
                    "copy",
                    src,
                    io::Error::other(format!("not a copyable file type ({ft:?})")),
                ))
            }
        }
        set_attrs(src, st, dst)?;
        set_times(st, dst)?;
        if st.stx_nlink > 1 {
            self.links.insert(key, dst.to_path_buf());
        }
        Ok(())
    }
}

/// Creates the directory `dst` with the owner, mode and xattrs of `src` (stat `st`). Its times
/// are set by [`set_times`] once its contents are in place.
pub(super) fn make_dir(src: &Path, st: &Statx, dst: &Path) -> Result<(), ExecError> {
    rustix::fs::mkdir(dst, Mode::from_raw_mode(0o700))
        .map_err(|e| ExecError::sys("create directory", dst, errno(e)))?;
    set_attrs(src, st, dst)
}

/// Owner, then mode (chown clears setuid/setgid, chown(2)), then xattrs (chown also clears
/// `security.capability`), copied from `src` to the entry `dst` we just created.
pub(super) fn set_attrs(src: &Path, st: &Statx, dst: &Path) -> Result<(), ExecError> {
    rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(st.stx_uid)),
        Some(rustix::fs::Gid::from_raw(st.stx_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ExecError::sys("chown", dst, errno(e)))?;
    let symlink = file_type(st) == FileType::Symlink;
    if !symlink {
        // A symlink has no mode of its own; anything else here was created by us, so following
        // is not a concern.
        rustix::fs::chmodat(CWD, dst, Mode::from_raw_mode(perm(st)), AtFlags::empty())
            .map_err(|e| ExecError::sys("chmod", dst, errno(e)))?;
    }
    for (name, value) in xattrs(src).map_err(sys("read xattrs", src))? {
        match rustix::fs::lsetxattr(
            dst,
            OsStr::from_bytes(&name),
            &value,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            // `user.*` xattrs are not allowed on symlinks (xattr(7)); the source can only have
            // them if it is on another filesystem, and then the layer writer never sees them
            // either.
            Err(rustix::io::Errno::PERM) if symlink => {}
            Err(e) => {
                return Err(ExecError::sys(
                    "set xattr",
                    dst,
                    io::Error::new(
                        errno(e).kind(),
                        format!("{}: {}", String::from_utf8_lossy(&name), errno(e)),
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Sets the access and modification times of `dst` (not following a symlink) to those in `st`.
pub(super) fn set_times(st: &Statx, dst: &Path) -> Result<(), ExecError> {
    let times = Timestamps {
        last_access: timespec(&st.stx_atime),
        last_modification: timespec(&st.stx_mtime),
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| ExecError::sys("set times", dst, errno(e)))
}
