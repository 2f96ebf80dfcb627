//! Extraction: a layer stream → decompress → hash → tar entries placed inside a root directory
//! that they cannot leave.
//!
//! Every name is resolved relative to the destination as if it were `/` of a chroot:
//! parent directories through `openat2(2)` with `RESOLVE_IN_ROOT` (so `..`, absolute names and
//! symlinks planted by earlier entries, absolute or relative, all stay inside) and
//! `RESOLVE_NO_MAGICLINKS`; the final component is created with `*at` calls relative to that
//! parent's descriptor, never through a symlink (`O_NOFOLLOW`, `O_EXCL`, `AT_SYMLINK_NOFOLLOW`).
//! The `tar` crate only parses the stream; its `unpack` (host-path canonicalisation) is not used.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::{
    LayerError, OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
};
use crate::oci::Digest;

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Maps a layer media type to its compression: OCI `application/vnd.oci.image.layer.v1.tar`
/// `[+gzip|+zstd]` (also the `nondistributable` variants, image-spec `layer.md`) and Docker
/// `application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip]`.
fn compression_of(media_type: &str) -> Result<Compression, LayerError> {
    let mt = media_type.split(';').next().unwrap_or("").trim();
    let known = mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.");
    let compression = if !known {
        None
    } else if mt.ends_with("tar+gzip") || mt.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if mt.ends_with("tar+zstd") || mt.ends_with(".tar.zstd") {
        Some(Compression::Zstd)
    } else if mt.ends_with(".tar") {
        Some(Compression::None)
    } else {
        None
    };
    compression.ok_or_else(|| LayerError::UnsupportedMediaType {
        media_type: media_type.to_string(),
    })
}

/// A `Read` adapter hashing (sha256) every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extracts the layer read from `reader` (compressed as `media_type` says: tar, tar+gzip,
/// tar+zstd, OCI or Docker spelling) into `dest`, an existing and normally empty directory, and
/// returns the layer's diff_id: the sha256 of the whole uncompressed stream, read to its end.
///
/// Placement is confined to `dest` whatever the entries say (see the module docs): `..` cannot
/// climb above it, absolute names are rooted at it, and symlinks made by earlier entries are
/// followed only within it. An existing entry is replaced by a new one of the same name, except
/// that a directory meeting a directory is kept and takes the new metadata. Mode (with
/// setuid/setgid/sticky), numeric uid/gid (`lchown`), mtime, xattrs (except `trusted.overlay.*`,
/// which a layer must not be able to set), device nodes and fifos are preserved. Missing parent
/// directories are created (mode 0755, owned by the caller).
///
/// OCI whiteouts become overlayfs form, so `dest` can be an overlay lowerdir as is
/// (image-spec `layer.md` "Whiteouts", kernel `overlayfs.rst`): `.wh.<name>` becomes a 0/0
/// character device `<name>` (skipped when `<name>` already came from this same layer, which a
/// whiteout never hides), `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory, and
/// other `.wh..wh.*` names (aufs bookkeeping) are ignored. Needs root (mknod, trusted xattrs,
/// chown).
///
/// Errors: [`LayerError::UnsupportedMediaType`], [`LayerError::Read`] for a corrupt or truncated
/// stream, [`LayerError::UnsafeEntry`] for an entry that cannot be placed inside `dest` (a name
/// that is only `..`, a missing hardlink target, a parent that is a file or a dangling symlink),
/// [`LayerError::UnsupportedEntry`] for tar types a layer cannot hold, and
/// [`LayerError::Destination`] / [`LayerError::Extract`] for host failures.
pub fn unpack_layer(
    reader: impl Read,
    media_type: &str,
    dest: &Path,
) -> Result<Digest, LayerError> {
    let compression = compression_of(media_type)?;
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Destination {
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        // Multi-member: a gzip stream may be several concatenated members (RFC 1952 2.2), as
        // parallel compressors write.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader).map_err(read_err)?),
    };
    let mut hashed = HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    };
    let mut extractor = Extractor {
        root,
        dest,
        dir_times: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashed);
        for entry in archive.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            extractor.entry(&mut entry)?;
        }
    }
    // The diff_id covers the whole uncompressed stream, including the end-of-archive blocks and
    // any padding after them, exactly as a registry client would hash it.
    io::copy(&mut hashed, &mut io::sink()).map_err(read_err)?;
    extractor.finish()?;
    Ok(Digest::from_hasher(hashed.hasher))
}

fn read_err(source: io::Error) -> LayerError {
    LayerError::Read { source }
}

/// Splits a tar name into the components that matter: empty and `.` components dropped, `..`
/// kept (openat2 resolves it, clamped at the root).
fn components(name: &[u8]) -> Vec<&[u8]> {
    name.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Ownership, permissions, time and xattrs of one entry, as stored in the tar.
struct Attrs {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where to apply [`Attrs`]: an open descriptor (a regular file just written, or the root), or
/// a name in a directory (everything else).
enum Target<'a> {
    Fd {
        fd: &'a OwnedFd,
        is_dir: bool,
    },
    At {
        dir: &'a OwnedFd,
        name: &'a OsStr,
        kind: AtKind,
    },
}

/// What an [`Target::At`] name is: symlinks get no chmod, directories get their mtime later.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AtKind {
    Dir,
    Symlink,
    Other,
}

struct Extractor<'a> {
    /// `dest` opened `O_RDONLY | O_DIRECTORY`: the root every name is resolved in.
    root: OwnedFd,
    dest: &'a Path,
    /// Directory mtimes, applied after all entries, since adding children changes them.
    /// Paths are relative to the root (empty for the root itself).
    dir_times: Vec<(Vec<u8>, Timespec)>,
}

impl Extractor<'_> {
    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> LayerError {
        LayerError::UnsafeEntry {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn extract_err(&self, entry: &str, source: impl Into<io::Error>) -> LayerError {
        LayerError::Extract {
            entry: entry.to_string(),
            dest: self.dest.to_path_buf(),
            source: source.into(),
        }
    }

    /// Maps a failure to resolve a parent path: the entry's own fault (bad input) where the
    /// errno says so, a host failure otherwise.
    fn resolve_err(&self, entry: &str, prefix: &[&[u8]], e: Errno) -> LayerError {
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
    fn resolve(&self, components: &[&[u8]]) -> Result<OwnedFd, Errno> {
        self.resolve_with(components, OFlags::empty())
    }

    fn resolve_with(&self, components: &[&[u8]], extra: OFlags) -> Result<OwnedFd, Errno> {
        if components.is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO));
        }
        let path = join(components);
        let mut tries = 0;
        loop {
            let r = rustix::fs::openat2(
                &self.root,
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
    /// already resolved directory.
    fn parent(&self, entry: &str, parents: &[&[u8]]) -> Result<OwnedFd, LayerError> {
        match self.resolve(parents) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
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

    /// Extracts one entry.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        match kind {
            // Consumed by the tar reader for the entry they describe; a global PAX header
            // (comments, charsets) changes nothing on disk.
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => return Ok(()),
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Link
            | EntryType::Symlink
            | EntryType::Char
            | EntryType::Block
            | EntryType::Directory
            | EntryType::Fifo => {}
            other => {
                return Err(LayerError::UnsupportedEntry {
                    entry: name,
                    kind: char::from(other.as_byte()),
                })
            }
        }
        let attrs = self.attrs(&name, entry)?;
        let comps = components(&raw_name);

        let Some((&last, parents)) = comps.split_last() else {
            // `./` or `/`: the root itself. Its metadata matters (it becomes `/` of a lowest
            // layer); anything but a directory cannot be placed there.
            if kind != EntryType::Directory {
                return Err(self.unsafe_entry(&name, "names the extraction root"));
            }
            self.apply(
                &name,
                Target::Fd {
                    fd: &self.root,
                    is_dir: true,
                },
                &attrs,
            )?;
            self.dir_times.push((Vec::new(), attrs.mtime));
            return Ok(());
        };
        if last == b".." {
            return Err(self.unsafe_entry(&name, "name ends in `..`"));
        }

        if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&name, parents, hidden, &attrs);
        }

        let dir = self.parent(&name, parents)?;
        let file_name = os(last);
        match kind {
            EntryType::Directory => {
                let kept = self
                    .clear(&dir, file_name, true)
                    .map_err(|e| self.extract_err(&name, e))?;
                if !kept {
                    rustix::fs::mkdirat(&dir, file_name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.extract_err(&name, e))?;
                }
                self.apply(
                    &name,
                    Target::At {
                        dir: &dir,
                        name: file_name,
                        kind: AtKind::Dir,
                    },
                    &attrs,
                )?;
                self.dir_times.push((join(&comps), attrs.mtime));
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| self.unsafe_entry(&name, "hardlink without a target"))?;
                self.hardlink(&name, &dir, file_name, &target)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| self.unsafe_entry(&name, "symlink without a target"))?;
                self.clear(&dir, file_name, false)
                    .map_err(|e| self.extract_err(&name, e))?;
                // The target is stored as is: it is only ever followed through RESOLVE_IN_ROOT
                // here, and inside the container's own root later.
                rustix::fs::symlinkat(os(&target), &dir, file_name)
                    .map_err(|e| self.extract_err(&name, e))?;
                self.apply(
                    &name,
                    Target::At {
                        dir: &dir,
                        name: file_name,
                        kind: AtKind::Symlink,
                    },
                    &attrs,
                )?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let header = entry.header();
                        let major = header.device_major().map_err(read_err)?.unwrap_or(0);
                        let minor = header.device_minor().map_err(read_err)?.unwrap_or(0);
                        let ft = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                self.clear(&dir, file_name, false)
                    .map_err(|e| self.extract_err(&name, e))?;
                rustix::fs::mknodat(&dir, file_name, file_type, Mode::empty(), dev)
                    .map_err(|e| self.extract_err(&name, e))?;
                self.apply(
                    &name,
                    Target::At {
                        dir: &dir,
                        name: file_name,
                        kind: AtKind::Other,
                    },
                    &attrs,
                )?;
            }
            _ => {
                // Regular, contiguous (a regular file to every reader) and GNU sparse (the
                // reader expands the holes).
                self.clear(&dir, file_name, false)
                    .map_err(|e| self.extract_err(&name, e))?;
                let fd = rustix::fs::openat(
                    &dir,
                    file_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.extract_err(&name, e))?;
                let mut file = File::from(fd);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_err(e)),
                    };
                    file.write_all(&buf[..n])
                        .map_err(|e| self.extract_err(&name, e))?;
                }
                let fd = OwnedFd::from(file);
                self.apply(
                    &name,
                    Target::Fd {
                        fd: &fd,
                        is_dir: false,
                    },
                    &attrs,
                )?;
            }
        }
        Ok(())
    }

    /// Reads the entry's ownership, mode, mtime and xattrs from its header and PAX records.
    fn attrs<R: Read>(
        &self,
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
                    // A layer must not drive overlayfs (redirects, metacopy, opaque) through
                    // its own xattrs: only whiteout entries may, below.
                    if !xattr.starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) {
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
                .map_err(|_| self.unsafe_entry(name, format!("{what} {v} out of range")))
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
    /// `security.capability`), then the mtime (except for directories, done in
    /// [`Extractor::finish`]).
    fn apply(&self, entry: &str, target: Target<'_>, attrs: &Attrs) -> Result<(), LayerError> {
        let err = |e: Errno| self.extract_err(entry, e);
        let uid = Some(Uid::from_raw(attrs.uid));
        let gid = Some(Gid::from_raw(attrs.gid));
        let mode = Mode::from_raw_mode(attrs.mode);
        let times = Timestamps {
            last_access: attrs.mtime,
            last_modification: attrs.mtime,
        };
        match target {
            Target::Fd { fd, is_dir } => {
                rustix::fs::fchown(fd, uid, gid).map_err(err)?;
                rustix::fs::fchmod(fd, mode).map_err(err)?;
                for (key, value) in &attrs.xattrs {
                    let r = rustix::fs::fsetxattr(fd, os(key), value, XattrFlags::empty());
                    self.xattr_result(entry, key, r, false)?;
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
                        self.xattr_result(entry, key, r, symlink)?;
                    }
                }
                if kind != AtKind::Dir {
                    rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Xattrs a filesystem cannot hold (no support, or `user.*` on a symlink) are skipped with a
    /// warning, as containerd does; anything else is an error.
    fn xattr_result(
        &self,
        entry: &str,
        key: &[u8],
        r: rustix::io::Result<()>,
        symlink: bool,
    ) -> Result<(), LayerError> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP) => {
                tracing::warn!(entry, xattr = %String::from_utf8_lossy(key), "xattr not supported here, skipped");
                Ok(())
            }
            Err(Errno::PERM) if symlink => {
                tracing::warn!(entry, xattr = %String::from_utf8_lossy(key), "xattr not allowed on a symlink, skipped");
                Ok(())
            }
            Err(e) => Err(self.extract_err(entry, e)),
        }
    }

    /// Makes room for a new entry `name` in `dir`: removes whatever is there, except that an
    /// existing directory is kept when `keep_dir` (a directory entry meeting a directory).
    /// Returns whether a directory was kept.
    fn clear(&self, dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
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

    /// A hardlink entry: `target` is resolved inside the root like any name; its last component
    /// is not followed (linkat without `AT_SYMLINK_FOLLOW` links a symlink itself).
    fn hardlink(
        &self,
        entry: &str,
        dir: &OwnedFd,
        name: &OsStr,
        target: &[u8],
    ) -> Result<(), LayerError> {
        let tcomps = components(target);
        let Some((&tlast, tparents)) = tcomps.split_last() else {
            return Err(self.unsafe_entry(entry, "hardlink target is the extraction root"));
        };
        if tlast == b".." {
            return Err(self.unsafe_entry(entry, "hardlink target ends in `..`"));
        }
        let missing = || {
            self.unsafe_entry(
                entry,
                format!(
                    "hardlink target {:?} does not exist in the layer",
                    String::from_utf8_lossy(target)
                ),
            )
        };
        let tdir = match self.resolve(tparents) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(self.resolve_err(entry, tparents, e)),
        };
        let tstat = match rustix::fs::statat(&tdir, os(tlast), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(self.extract_err(entry, e)),
        };
        if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
            return Err(self.unsafe_entry(entry, "hardlink target is a directory"));
        }
        if let Ok(existing) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if existing.st_dev == tstat.st_dev && existing.st_ino == tstat.st_ino {
                return Ok(()); // already that inode (a link to itself, or a repeated entry)
            }
        }
        self.clear(dir, name, false)
            .map_err(|e| self.extract_err(entry, e))?;
        rustix::fs::linkat(&tdir, os(tlast), dir, name, AtFlags::empty())
            .map_err(|e| self.extract_err(entry, e))
    }

    /// An OCI whiteout entry `<parents>/.wh.<hidden>`, turned into overlayfs form.
    fn whiteout(
        &self,
        entry: &str,
        parents: &[&[u8]],
        hidden: &[u8],
        attrs: &Attrs,
    ) -> Result<(), LayerError> {
        let dir = self.parent(entry, parents)?;
        if hidden == &WHITEOUT_OPAQUE.as_bytes()[WHITEOUT_PREFIX.len()..] {
            // overlayfs.rst: "A directory is made opaque by setting the xattr
            // trusted.overlay.opaque to y".
            return rustix::fs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| self.extract_err(entry, e));
        }
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // `.wh..wh.*` other than the opaque marker is aufs metadata (layer.md reserves the
            // prefix); it means nothing to overlayfs.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.unsafe_entry(entry, "whiteout of an invalid name"));
        }
        let name = os(hidden);
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            // layer.md: a whiteout only applies to lower layers; an entry of this same layer
            // stays.
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.extract_err(entry, e)),
        }
        // overlayfs.rst: "A whiteout is created as a character device with 0/0 device number".
        rustix::fs::mknodat(
            &dir,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| self.extract_err(entry, e))?;
        let attrs = Attrs {
            xattrs: Vec::new(),
            ..*attrs
        };
        self.apply(
            entry,
            Target::At {
                dir: &dir,
                name,
                kind: AtKind::Other,
            },
            &attrs,
        )
    }

    /// Applies the deferred directory mtimes. A directory replaced by a later entry is skipped.
    fn finish(&self) -> Result<(), LayerError> {
        for (path, mtime) in &self.dir_times {
            let comps = components(path);
            let fd = match self.resolve_with(&comps, OFlags::NOFOLLOW) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => {
                    return Err(self.extract_err(&String::from_utf8_lossy(path), e));
                }
            };
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rustix::fs::futimens(&fd, &times)
                .map_err(|e| self.extract_err(&String::from_utf8_lossy(path), e))?;
        }
        Ok(())
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
