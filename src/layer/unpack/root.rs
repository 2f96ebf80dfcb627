//! The extraction root: the destination directory every entry name is resolved in as if it were
//! `/` of a chroot (`openat2` with `RESOLVE_IN_ROOT`, no magic links, no mount crossing), the
//! parents created inside it (over this layer's own whiteouts, as opaque directories), names
//! cleared for a new entry, and the errors that name an entry.
//!
//! Lowest level of `unpack/`: knows nothing of tar entry types or attributes; of overlayfs only
//! the lower-directory form the root is in (0/0 whiteouts, the opaque xattr).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, XattrFlags};
use rustix::io::Errno;

use crate::layer::{LayerError, OVERLAY_OPAQUE_XATTR};

/// A failure of the layer stream itself: a corrupt or truncated stream, or not a tar.
pub(super) fn read_err(source: io::Error) -> LayerError {
    LayerError::Read { source }
}

/// Splits a tar name into the components that matter: empty and `.` components dropped, `..`
/// kept (openat2 resolves it, clamped at the root).
pub(super) fn components(name: &[u8]) -> Vec<&[u8]> {
    name.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Components joined with `/` again.
pub(super) fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

/// True for an overlayfs whiteout: a character device 0/0 (kernel overlayfs.rst "whiteouts and
/// opaque directories").
pub(super) fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// A name's bytes as an `OsStr`.
pub(super) fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// The destination directory, open, with the path it was opened at (for error messages).
pub(super) struct Root<'a> {
    /// `dest` opened `O_RDONLY | O_DIRECTORY`: the root every name is resolved in.
    pub(super) fd: OwnedFd,
    dest: &'a Path,
}

impl<'a> Root<'a> {
    /// Opens `dest`, an existing directory.
    ///
    /// Errors: [`LayerError::Destination`].
    pub(super) fn open(dest: &'a Path) -> Result<Root<'a>, LayerError> {
        let fd = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LayerError::Destination {
            path: dest.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Root { fd, dest })
    }
}

impl Root<'_> {
    /// [`LayerError::UnsafeEntry`]: entry `entry` cannot be placed inside the root.
    pub(super) fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> LayerError {
        LayerError::UnsafeEntry {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    /// [`LayerError::Extract`]: the host failed to place entry `entry`.
    pub(super) fn extract_err(&self, entry: &str, source: impl Into<io::Error>) -> LayerError {
        LayerError::Extract {
            entry: entry.to_string(),
            dest: self.dest.to_path_buf(),
            source: source.into(),
        }
    }

    /// Maps a failure to resolve a parent path: the entry's own fault (bad input) where the
    /// errno says so, a host failure otherwise.
    pub(super) fn resolve_err(&self, entry: &str, prefix: &[&[u8]], e: Errno) -> LayerError {
        let at = String::from_utf8_lossy(&join(prefix)).into_owned();
        let reason = match e {
            Errno::NOTDIR => format!("parent {at:?} is not a directory"),
            Errno::LOOP => format!("parent {at:?} has too many levels of symbolic links"),
            Errno::XDEV => format!("parent {at:?} crosses a mount point"),
            Errno::NAMETOOLONG => format!("parent {at:?} is too long"),
            _ => return self.extract_err(entry, e),
        };
        self.unsafe_entry(entry, reason)
    }

    /// Opens the directory `components` names, resolved inside the root.
    pub(super) fn resolve(&self, components: &[&[u8]]) -> Result<OwnedFd, Errno> {
        self.resolve_with(components, OFlags::empty())
    }

    pub(super) fn resolve_with(
        &self,
        components: &[&[u8]],
        extra: OFlags,
    ) -> Result<OwnedFd, Errno> {
        if components.is_empty() {
            return self
                .fd
                .try_clone()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO));
        }
        let path = join(components);
        let mut tries = 0;
        loop {
            let r = rustix::fs::openat2(
                &self.fd,
                os(&path),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | extra,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
            );
            match r {
                // openat2(2): EAGAIN when a concurrent rename may have raced a `..` lookup.
                Err(Errno::AGAIN) if tries < 64 => tries += 1,
                r => return r,
            }
        }
    }

    /// Opens the parent directory `parents` of an entry, creating missing directories (layers
    /// may leave out directory entries) one component at a time, each with `mkdirat` inside an
    /// already resolved directory. A parent that is a whiteout of this layer becomes an opaque
    /// directory (see [`Root::replace_whiteout`]).
    pub(super) fn parent(&self, entry: &str, parents: &[&[u8]]) -> Result<OwnedFd, LayerError> {
        match self.resolve(parents) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(self.resolve_err(entry, parents, e)),
        }
        let mut dir = self.resolve(&[]).map_err(|e| self.extract_err(entry, e))?;
        for i in 0..parents.len() {
            let prefix = &parents[..=i];
            match self.resolve(prefix) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR) => {
                    dir = self.replace_whiteout(entry, &dir, parents[i], prefix)?;
                    continue;
                }
                Err(e) => return Err(self.resolve_err(entry, prefix, e)),
            }
            // `parents[i]` is missing in `dir` (`.` is filtered out and `..` always resolves).
            // mkdirat does not follow a symlink in its last component: a dangling symlink makes
            // it fail with EEXIST, and the lookup below then refuses the entry.
            match rustix::fs::mkdirat(&dir, os(parents[i]), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(self.extract_err(entry, e)),
            }
            dir = match self.resolve(prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    return Err(self.unsafe_entry(
                        entry,
                        format!(
                            "parent {:?} is a symlink to a missing directory",
                            String::from_utf8_lossy(&join(prefix))
                        ),
                    ))
                }
                Err(e) => return Err(self.resolve_err(entry, prefix, e)),
            };
        }
        Ok(dir)
    }

    /// A parent `prefix` (last component `name` in `dir`) that is not a directory: when it is
    /// a whiteout this layer made (`.wh.<name>` came first, then `<name>/...`), the layer
    /// deletes the lower entry and makes a new directory there, which hides the lower one's
    /// contents: an opaque directory (image-spec layer.md: the whiteout applies to lower layers
    /// only). Anything else is refused as not a directory.
    fn replace_whiteout(
        &self,
        entry: &str,
        dir: &OwnedFd,
        name: &[u8],
        prefix: &[&[u8]],
    ) -> Result<OwnedFd, LayerError> {
        let st = rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.extract_err(entry, e))?;
        if !is_whiteout(&st) {
            return Err(self.resolve_err(entry, prefix, Errno::NOTDIR));
        }
        rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
            .and_then(|()| rustix::fs::mkdirat(dir, os(name), Mode::from_raw_mode(0o755)))
            .map_err(|e| self.extract_err(entry, e))?;
        self.mark_opaque(dir, os(name))
            .map_err(|e| self.extract_err(entry, e))?;
        self.resolve(prefix)
            .map_err(|e| self.resolve_err(entry, prefix, e))
    }

    /// Marks directory `name` of `dir` opaque (`trusted.overlay.opaque=y`, kernel overlayfs.rst
    /// "whiteouts and opaque directories"): it hides the same directory of lower layers.
    pub(super) fn mark_opaque(&self, dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<()> {
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
    }

    /// Makes room for a new entry `name` in `dir`: removes whatever is there, except that an
    /// existing directory is kept when `keep_dir` (a directory entry meeting a directory).
    /// Returns whether a directory was kept.
    pub(super) fn clear(&self, dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                if keep_dir {
                    Ok(true)
                } else {
                    remove_tree(dir, name)?;
                    Ok(false)
                }
            }
            Ok(_) => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
                Ok(false)
            }
        }
    }
}

/// Removes the directory `name` in `dir` and everything below it, without following symlinks:
/// each level is opened `O_NOFOLLOW` and emptied through its own descriptor.
fn remove_tree(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(child.to_vec());
        }
    }
    for child in children {
        match rustix::fs::unlinkat(&fd, os(&child), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::ISDIR) => remove_tree(&fd, os(&child))?,
            Err(e) => return Err(e.into()),
        }
    }
    rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}
