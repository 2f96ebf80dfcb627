//! Placing tar entries: one function per entry type (directory, hardlink, symlink, device or
//! fifo, regular file), each creating its entry with `*at` calls in a parent resolved inside the
//! root and never through a symlink (`O_NOFOLLOW`, `O_EXCL`, `AT_SYMLINK_NOFOLLOW`); whiteouts
//! go to whiteout.rs; directory mtimes are set last.
//!
//! Top of `unpack/` below the stream (mod.rs): uses the root, the attributes and the whiteouts.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use super::attrs::{AtKind, Attrs, Shortfall, Target};
use super::root::{components, is_whiteout, join, os, read_err, Root};
use super::whiteout::whiteout;
use crate::layer::{ExactEntry, LayerError, SpecialNode, WHITEOUT_PREFIX};

/// Extracts the entries of one layer into its root.
pub(super) struct Extractor<'a> {
    root: Root<'a>,
    /// Directory mtimes, applied after all entries, since adding children changes them.
    /// Paths are relative to the root (empty for the root itself).
    dir_times: Vec<(Vec<u8>, Timespec)>,
    /// Entries the filesystem could not hold exactly, in stream order.
    pub(super) inexact: Vec<ExactEntry>,
    /// Directories (relative to the root, `""` for the root) holding a whiteout of this layer.
    pub(super) whiteout_dirs: BTreeSet<Vec<u8>>,
    /// Whether any `.wh.` entry (whiteout, opaque marker, aufs bookkeeping) was met.
    pub(super) has_whiteouts: bool,
}

/// Whether an entry of tar type `kind` is placed on disk: not the records the tar reader
/// consumes for the entry they describe; an error for types a layer cannot hold.
fn is_placed(kind: EntryType, name: &str) -> Result<bool, LayerError> {
    match kind {
        // Consumed by the tar reader for the entry they describe; a global PAX header
        // (comments, charsets) changes nothing on disk.
        EntryType::XGlobalHeader
        | EntryType::XHeader
        | EntryType::GNULongName
        | EntryType::GNULongLink => Ok(false),
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::GNUSparse
        | EntryType::Link
        | EntryType::Symlink
        | EntryType::Char
        | EntryType::Block
        | EntryType::Directory
        | EntryType::Fifo => Ok(true),
        other => Err(LayerError::UnsupportedEntry {
            entry: name.to_string(),
            kind: char::from(other.as_byte()),
        }),
    }
}

impl<'a> Extractor<'a> {
    /// An extractor into `root`.
    pub(super) fn new(root: Root<'a>) -> Extractor<'a> {
        Extractor {
            root,
            dir_times: Vec::new(),
            inexact: Vec::new(),
            whiteout_dirs: BTreeSet::new(),
            has_whiteouts: false,
        }
    }
}

impl Extractor<'_> {
    /// Extracts one entry.
    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), LayerError> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if !is_placed(kind, &name)? {
            return Ok(());
        }
        let attrs = Attrs::read(&self.root, &name, entry)?;
        let comps = components(&raw_name);
        let short = self.place(entry, &name, &comps, &attrs)?;
        let path = String::from_utf8_lossy(&join(&comps)).into_owned();
        // A later entry of the same name replaced an earlier one: only the last counts.
        self.inexact.retain(|e| e.path != path);
        if !short.is_empty() {
            self.inexact.push(ExactEntry {
                path,
                node: short.node,
                xattrs: short.xattrs,
                reason: short.reason,
            });
        }
        Ok(())
    }

    /// Places one entry named `comps` (`name` as stored); returns what the filesystem refused.
    fn place<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        comps: &[&[u8]],
        attrs: &Attrs,
    ) -> Result<Shortfall, LayerError> {
        let kind = entry.header().entry_type();
        let Some((&last, parents)) = comps.split_last() else {
            return self.root_entry(name, kind, attrs);
        };
        if last == b".." {
            return Err(self.root.unsafe_entry(name, "name ends in `..`"));
        }

        if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let short = whiteout(&self.root, name, parents, hidden, attrs)?;
            self.has_whiteouts = true;
            if !hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                self.whiteout_dirs.insert(join(parents));
            }
            return Ok(short);
        }

        let dir = self.root.parent(name, parents)?;
        let file_name = os(last);
        match kind {
            EntryType::Directory => self.directory(name, &dir, file_name, attrs, comps),
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| self.root.unsafe_entry(name, "hardlink without a target"))?;
                self.hardlink(name, &dir, file_name, &target)
                    .map(|()| Shortfall::default())
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| self.root.unsafe_entry(name, "symlink without a target"))?;
                self.symlink(name, &dir, file_name, &target, attrs)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.device(name, &dir, file_name, entry.header(), attrs)
            }
            // Regular, contiguous (a regular file to every reader) and GNU sparse (the reader
            // expands the holes).
            _ => self.regular(name, &dir, file_name, entry, attrs),
        }
    }

    /// `./` or `/`: the root itself. Its metadata matters (it becomes `/` of a lowest layer);
    /// anything but a directory cannot be placed there.
    fn root_entry(
        &mut self,
        name: &str,
        kind: EntryType,
        attrs: &Attrs,
    ) -> Result<Shortfall, LayerError> {
        if kind != EntryType::Directory {
            return Err(self.root.unsafe_entry(name, "names the extraction root"));
        }
        let short = attrs.apply(
            &self.root,
            name,
            Target::Fd {
                fd: &self.root.fd,
                is_dir: true,
            },
        )?;
        self.dir_times.push((Vec::new(), attrs.mtime));
        Ok(short)
    }

    /// A directory entry: an existing directory is kept and takes the new metadata; its mtime is
    /// set after all entries.
    fn directory(
        &mut self,
        name: &str,
        dir: &OwnedFd,
        file_name: &OsStr,
        attrs: &Attrs,
        comps: &[&[u8]],
    ) -> Result<Shortfall, LayerError> {
        // A directory where this layer put a whiteout (`.wh.<name>` came first) replaces the
        // lower entry and must hide a lower directory's contents: opaque (layer.md, a whiteout
        // applies to lower layers only).
        let over_whiteout = rustix::fs::statat(dir, file_name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| is_whiteout(&st));
        let kept = self
            .root
            .clear(dir, file_name, true)
            .map_err(|e| self.root.extract_err(name, e))?;
        if !kept {
            rustix::fs::mkdirat(dir, file_name, Mode::from_raw_mode(0o700))
                .map_err(|e| self.root.extract_err(name, e))?;
        }
        if over_whiteout {
            self.root
                .mark_opaque(dir, file_name)
                .map_err(|e| self.root.extract_err(name, e))?;
        }
        let short = attrs.apply(
            &self.root,
            name,
            Target::At {
                dir,
                name: file_name,
                kind: AtKind::Dir,
            },
        )?;
        self.dir_times.push((join(comps), attrs.mtime));
        Ok(short)
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
            return Err(self
                .root
                .unsafe_entry(entry, "hardlink target is the extraction root"));
        };
        if tlast == b".." {
            return Err(self
                .root
                .unsafe_entry(entry, "hardlink target ends in `..`"));
        }
        let missing = || {
            self.root.unsafe_entry(
                entry,
                format!(
                    "hardlink target {:?} does not exist in the layer",
                    String::from_utf8_lossy(target)
                ),
            )
        };
        let tdir = match self.root.resolve(tparents) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(self.root.resolve_err(entry, tparents, e)),
        };
        let tstat = match rustix::fs::statat(&tdir, os(tlast), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(self.root.extract_err(entry, e)),
        };
        if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
            return Err(self
                .root
                .unsafe_entry(entry, "hardlink target is a directory"));
        }
        if let Ok(existing) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            if existing.st_dev == tstat.st_dev && existing.st_ino == tstat.st_ino {
                return Ok(()); // already that inode (a link to itself, or a repeated entry)
            }
        }
        self.root
            .clear(dir, name, false)
            .map_err(|e| self.root.extract_err(entry, e))?;
        rustix::fs::linkat(&tdir, os(tlast), dir, name, AtFlags::empty())
            .map_err(|e| self.root.extract_err(entry, e))
    }

    /// A symlink entry, replacing whatever is there.
    fn symlink(
        &self,
        name: &str,
        dir: &OwnedFd,
        file_name: &OsStr,
        target: &[u8],
        attrs: &Attrs,
    ) -> Result<Shortfall, LayerError> {
        self.root
            .clear(dir, file_name, false)
            .map_err(|e| self.root.extract_err(name, e))?;
        // The target is stored as is: it is only ever followed through RESOLVE_IN_ROOT
        // here, and inside the container's own root later.
        rustix::fs::symlinkat(os(target), dir, file_name)
            .map_err(|e| self.root.extract_err(name, e))?;
        attrs.apply(
            &self.root,
            name,
            Target::At {
                dir,
                name: file_name,
                kind: AtKind::Symlink,
            },
        )
    }

    /// A character or block device or a fifo (as `header` describes it), replacing whatever is
    /// there. Where the filesystem refuses the node (`EPERM`, `EOPNOTSUPP`, `EINVAL`: no
    /// device support, no `CAP_MKNOD`), an empty regular file with the entry's owner, mode and
    /// mtime stands in for it and the node is reported in the [`Shortfall`].
    fn device(
        &self,
        name: &str,
        dir: &OwnedFd,
        file_name: &OsStr,
        header: &tar::Header,
        attrs: &Attrs,
    ) -> Result<Shortfall, LayerError> {
        let kind = header.entry_type();
        let (file_type, node) = match kind {
            EntryType::Fifo => (FileType::Fifo, SpecialNode::Fifo),
            _ => {
                let major = header.device_major().map_err(read_err)?.unwrap_or(0);
                let minor = header.device_minor().map_err(read_err)?.unwrap_or(0);
                if kind == EntryType::Char {
                    (
                        FileType::CharacterDevice,
                        SpecialNode::Char { major, minor },
                    )
                } else {
                    (FileType::BlockDevice, SpecialNode::Block { major, minor })
                }
            }
        };
        let dev = match node {
            SpecialNode::Char { major, minor } | SpecialNode::Block { major, minor } => {
                rustix::fs::makedev(major, minor)
            }
            SpecialNode::Fifo => 0,
        };
        self.root
            .clear(dir, file_name, false)
            .map_err(|e| self.root.extract_err(name, e))?;
        let refused = match rustix::fs::mknodat(dir, file_name, file_type, Mode::empty(), dev) {
            Ok(()) => None,
            Err(e @ (Errno::PERM | Errno::OPNOTSUPP | Errno::INVAL)) => {
                let placeholder = rustix::fs::openat(
                    dir,
                    file_name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.root.extract_err(name, e))?;
                drop(placeholder);
                Some(format!("mknod: {}", io::Error::from(e)))
            }
            Err(e) => return Err(self.root.extract_err(name, e)),
        };
        let mut short = attrs.apply(
            &self.root,
            name,
            Target::At {
                dir,
                name: file_name,
                kind: AtKind::Other,
            },
        )?;
        if let Some(reason) = refused {
            short.node = Some(node);
            short.reason = reason;
        }
        Ok(short)
    }

    /// A regular file, its data streamed from the entry, replacing whatever is there.
    fn regular<R: Read>(
        &self,
        name: &str,
        dir: &OwnedFd,
        file_name: &OsStr,
        entry: &mut tar::Entry<'_, R>,
        attrs: &Attrs,
    ) -> Result<Shortfall, LayerError> {
        self.root
            .clear(dir, file_name, false)
            .map_err(|e| self.root.extract_err(name, e))?;
        let fd = rustix::fs::openat(
            dir,
            file_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.root.extract_err(name, e))?;
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
                .map_err(|e| self.root.extract_err(name, e))?;
        }
        let fd = OwnedFd::from(file);
        attrs.apply(
            &self.root,
            name,
            Target::Fd {
                fd: &fd,
                is_dir: false,
            },
        )
    }

    /// Applies the deferred directory mtimes. A directory replaced by a later entry is skipped.
    pub(super) fn finish(&self) -> Result<(), LayerError> {
        for (path, mtime) in &self.dir_times {
            let comps = components(path);
            let fd = match self.root.resolve_with(&comps, OFlags::NOFOLLOW) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => {
                    return Err(self.root.extract_err(&String::from_utf8_lossy(path), e));
                }
            };
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rustix::fs::futimens(&fd, &times)
                .map_err(|e| self.root.extract_err(&String::from_utf8_lossy(path), e))?;
        }
        Ok(())
    }
}
