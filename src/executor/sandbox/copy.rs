//! The `COPY` step in the helper: creates each entry in the merged root, every path resolved
//! inside it (`openat2(RESOLVE_IN_ROOT)`) so nothing is written outside; for `COPY --from` the
//! sources are first resolved in a read-only view of the source stage's layers.
//!
//! Near the top of `sandbox/`: uses the path helpers, the user lookup and the layer views of
//! mounts.rs; runs nothing.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};

use super::copy_special::{self, Inexact, Spot};
use super::mounts::TempMounts;
use super::paths::{in_root, open_path_dir, read_in_root, resolve_in_root};
use super::users::resolve_chown;
use crate::context::{CopyEntry, EntryKind};
use crate::executor::error::{sys_rx, ExecError};
use crate::executor::spec::{CopySpec, LayerSource};

/// `mkdir -p` of `rel` inside the root: missing directories are created with `mode` (0755, or
/// an octal `--chmod`'s bits as BuildKit does: buildkit `testCopyChmod`), root:root. Symlinks
/// on the way are followed inside the root, and a dangling one gets its target created (as
/// Docker does for `COPY x /link/` when `/link` points nowhere yet). Returns an `O_PATH`
/// descriptor of the (resolved) directory.
fn mkdir_p(root: BorrowedFd<'_>, rel: &str, mode: u32) -> Result<OwnedFd, ExecError> {
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    match in_root(root, rel, dir_flags) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(sys_rx("open directory", format!("/{rel}"))(e)),
    }
    // Symlinks resolved (dangling ones to their targets), so every component created below is a
    // plain name in a real directory.
    let resolved = resolve_in_root(root, rel)?;
    let comps: Vec<&str> = resolved.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = in_root(root, ".", dir_flags).map_err(sys_rx("open root", "/"))?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match in_root(root, &prefix, dir_flags) {
            Ok(fd) => cur = fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, comps[i], Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(sys_rx("create directory", format!("/{prefix}"))(e)),
                }
                cur = in_root(root, &prefix, dir_flags)
                    .map_err(sys_rx("open directory", format!("/{prefix}")))?;
            }
            Err(e) => return Err(sys_rx("open directory", format!("/{prefix}"))(e)),
        }
    }
    Ok(cur)
}

/// The COPY path: creates each entry in the merged root.
pub(super) fn copy_step(
    copy: &CopySpec,
    merged: &Path,
    temps: &mut TempMounts,
) -> Result<(), ExecError> {
    let root = rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open merged root", merged))?;
    let chown = match &copy.chown {
        None => None,
        Some(c) => Some(chown_ids(
            c,
            copy.ids_from.as_deref(),
            &root,
            merged,
            temps,
        )?),
    };
    let mut entries: Vec<CopyEntry> = Vec::new();
    if let Some(src) = &copy.from_layers {
        entries = from_layers(src, temps)?;
    }
    entries.extend(copy.entries.iter().cloned());
    let mut created_dirs: Vec<(String, i64)> = Vec::new();
    let mut inexact = Inexact::default();
    for entry in &entries {
        if let Some(created) = copy_entry(root.as_fd(), copy, chown, entry, &mut inexact)? {
            created_dirs.push(created);
        }
    }
    inexact.report();
    // Directory mtimes last, deepest first: creating children changed them.
    for (rel, mtime) in created_dirs.iter().rev() {
        let fd = in_root(
            root.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )
        .map_err(sys_rx("open directory", format!("/{rel}")))?;
        rustix::fs::futimens(&fd, &times(*mtime))
            .map_err(sys_rx("set mtime", format!("/{rel}")))?;
    }
    Ok(())
}

/// `--chown` as numbers (uid, gid): names mean what the image's passwd and group say; `--link`
/// copies onto an empty tree, so they are read from the image's own layers (`ids_from`) then.
fn chown_ids(
    chown: &str,
    ids_from: Option<&[PathBuf]>,
    root: &OwnedFd,
    merged: &Path,
    temps: &mut TempMounts,
) -> Result<(u32, u32), ExecError> {
    let ids_root = match ids_from {
        Some(layers) => {
            let view = temps.layers(layers, false)?;
            rustix::fs::open(
                &view,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys_rx("open image layers", &view))?
        }
        None => root
            .try_clone()
            .map_err(|e| ExecError::sys("dup", merged, e))?,
    };
    resolve_chown(
        chown,
        read_in_root(ids_root.as_fd(), "etc/passwd").as_deref(),
        read_in_root(ids_root.as_fd(), "etc/group").as_deref(),
    )
}

/// `COPY --from`: the entries of `src.sources`, resolved inside the source stage as it would see
/// them (its layers mounted read-only), with its owners kept (BuildKit copies from a stage
/// without resetting them; a copied directory's own destination excepted) and mtimes clamped
/// to `src.max_mtime`.
fn from_layers(src: &LayerSource, temps: &mut TempMounts) -> Result<Vec<CopyEntry>, ExecError> {
    let view = temps.layers(&src.lowerdirs, false)?;
    let tree =
        crate::context::BuildContext::rootfs(&view).map_err(|source| ExecError::CopySource {
            source: Box::new(source),
        })?;
    let excludes = crate::context::Ignore::from_patterns(&src.excludes, Path::new("--exclude"))
        .map_err(|source| ExecError::CopySource {
            source: Box::new(source),
        })?;
    let mut found = tree
        .resolve_copy_with(&src.sources, &src.dest, &excludes)
        .map_err(|source| ExecError::CopySource {
            source: Box::new(source),
        })?;
    let dest = crate::context::clean_path(&format!("/{}", src.dest));
    for e in &mut found {
        // A source directory's contents go into the destination, which BuildKit creates as
        // root (or the --chown user) when it is missing: only what is inside keeps its owner
        // (buildkit dockerfile_copy_test.go `testCopyChownExistingDir`).
        let dest_itself = e.kind == crate::context::EntryKind::Dir && e.dest == dest;
        if let Some(md) = std::fs::symlink_metadata(&e.src)
            .ok()
            .filter(|_| !dest_itself)
        {
            use std::os::unix::fs::MetadataExt;
            e.owner = Some((md.uid(), md.gid()));
        }
        if let Some(max) = src.max_mtime {
            e.mtime = e.mtime.min(max);
        }
    }
    Ok(found)
}

/// Where and how one entry is placed: its parent directory (created as needed) and its path as
/// written, its name there, what the root already has under that name, and the owner and
/// permission bits it gets.
struct Placement<'a> {
    parent: OwnedFd,
    parent_rel: &'a str,
    name: &'a str,
    existing: Option<rustix::fs::Stat>,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Placement<'_> {
    fn existing_type(&self) -> Option<FileType> {
        self.existing
            .as_ref()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }
}

/// Creates one entry in the root. Returns the directory it created, with the mtime to set once
/// its children are in place, if it created one.
fn copy_entry(
    root: BorrowedFd<'_>,
    copy: &CopySpec,
    chown: Option<(u32, u32)>,
    entry: &CopyEntry,
    inexact: &mut Inexact,
) -> Result<Option<(String, i64)>, ExecError> {
    let (uid, gid) = chown.or(entry.owner).unwrap_or((0, 0));
    let rel = entry.dest.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(None);
    }
    let (parent_rel, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rel),
    };
    let parent = mkdir_p(root, parent_rel, copy.chmod.unwrap_or(0o755))?;
    let mode = match (&copy.chmod, &copy.chmod_symbolic) {
        (Some(bits), _) => *bits,
        (None, Some(sym)) => sym.apply(entry.mode, entry.kind == EntryKind::Dir),
        (None, None) => entry.mode,
    };
    let existing = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let place = Placement {
        parent,
        parent_rel,
        name,
        existing,
        uid,
        gid,
        mode,
    };
    match &entry.kind {
        EntryKind::File => copy_file(root, entry, place, inexact).map(|()| None),
        EntryKind::Dir => copy_dir(root, rel, entry, place, inexact),
        EntryKind::Symlink(target) => {
            copy_symlink(entry, target, &place)?;
            let spot = (root, place.parent.as_fd(), parent_rel, name);
            copy_special::set_symlink_xattrs(entry, spot, inexact).map(|()| None)
        }
        EntryKind::Device { .. } | EntryKind::Fifo => {
            copy_special::copy_node(entry, &spot(root, &place), inexact).map(|()| None)
        }
        EntryKind::Hardlink(first) => {
            if !copy_special::copy_hardlink(entry, first, &spot(root, &place))? {
                // The first name no longer holds the file: this name gets a copy of its own.
                copy_file(root, entry, place, inexact)?;
            }
            Ok(None)
        }
    }
}

/// The [`Spot`] of a placement, for the special entries.
fn spot<'a>(root: BorrowedFd<'a>, place: &'a Placement<'_>) -> Spot<'a> {
    Spot {
        root,
        parent: place.parent.as_fd(),
        parent_rel: place.parent_rel,
        name: place.name,
        uid: place.uid,
        gid: place.gid,
        mode: place.mode,
    }
}

/// A file entry. An existing directory at a file destination receives the file under its own
/// name (BuildKit copy semantics).
fn copy_file(
    root: BorrowedFd<'_>,
    entry: &CopyEntry,
    place: Placement<'_>,
    inexact: &mut Inexact,
) -> Result<(), ExecError> {
    let (dir, dir_rel, name) = if place.existing_type() == Some(FileType::Directory) {
        let dir = open_path_dir(place.parent.as_fd(), place.name)
            .map_err(sys_rx("open directory", entry.dest.clone()))?;
        let base = entry
            .src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir_rel = entry.dest.trim_start_matches('/').to_string();
        (dir, dir_rel, base)
    } else {
        (
            place.parent,
            place.parent_rel.to_string(),
            place.name.to_string(),
        )
    };
    let out = write_file(entry, dir.as_fd(), &name, place.mode, place.uid, place.gid)?;
    let spot = (root, dir_rel.as_str(), name.as_str());
    copy_special::set_xattrs_fd(entry, out.as_fd(), spot, inexact)?;
    // Setting xattrs changes no mtime; the file's is already the entry's.
    Ok(())
}

/// A directory entry at `rel`: an existing directory keeps its metadata (e.g. COPY into
/// /usr/bin); otherwise it is created. Returns it with its mtime when created.
fn copy_dir(
    root: BorrowedFd<'_>,
    rel: &str,
    entry: &CopyEntry,
    place: Placement<'_>,
    inexact: &mut Inexact,
) -> Result<Option<(String, i64)>, ExecError> {
    let is_dir_in_root =
        place.existing.is_some() && in_root(root, rel, OFlags::PATH | OFlags::DIRECTORY).is_ok();
    if is_dir_in_root {
        // Existing directories keep their metadata (e.g. COPY into /usr/bin).
        return Ok(None);
    }
    if place.existing.is_some() {
        // A file (or a link not leading to a directory) is never replaced by a
        // directory: BuildKit's copy fails "cannot copy to non-directory", and
        // WORKDIR's `mkdir -p` fails with ENOTDIR/EEXIST.
        return Err(ExecError::CopyConflict {
            dest: entry.dest.clone(),
            reason: "it is a file in the image, not a directory".into(),
        });
    }
    rustix::fs::mkdirat(&place.parent, place.name, Mode::from_raw_mode(0o700))
        .map_err(sys_rx("create directory", entry.dest.clone()))?;
    let fd = rustix::fs::openat(
        &place.parent,
        place.name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open directory", entry.dest.clone()))?;
    set_owner_mode(fd.as_fd(), place.uid, place.gid, place.mode, &entry.dest)?;
    let spot = (root, place.parent_rel, place.name);
    copy_special::set_xattrs_fd(entry, fd.as_fd(), spot, inexact)?;
    Ok(Some((rel.to_string(), entry.mtime)))
}

/// A symlink entry: replaces anything but a directory.
fn copy_symlink(entry: &CopyEntry, target: &str, place: &Placement<'_>) -> Result<(), ExecError> {
    let Placement {
        parent,
        name,
        uid,
        gid,
        ..
    } = place;
    match place.existing_type() {
        Some(FileType::Directory) => {
            return Err(ExecError::CopyConflict {
                dest: entry.dest.clone(),
                reason: "a directory is in the way of a symlink".into(),
            })
        }
        Some(_) => rustix::fs::unlinkat(parent, *name, AtFlags::empty())
            .map_err(sys_rx("replace", entry.dest.clone()))?,
        None => {}
    }
    rustix::fs::symlinkat(target, parent, *name)
        .map_err(sys_rx("create symlink", entry.dest.clone()))?;
    rustix::fs::chownat(
        parent,
        *name,
        Some(rustix::fs::Uid::from_raw(*uid)),
        Some(rustix::fs::Gid::from_raw(*gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys_rx("chown", entry.dest.clone()))?;
    rustix::fs::utimensat(
        parent,
        *name,
        &times(entry.mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys_rx("set mtime", entry.dest.clone()))
}

fn times(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// chown before chmod: chown clears setuid/setgid bits (chown(2)).
fn set_owner_mode(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mode: u32,
    dest: &str,
) -> Result<(), ExecError> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(sys_rx("chown", dest))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777)).map_err(sys_rx("chmod", dest))
}

/// Streams one file into `dir/name`, replacing whatever non-directory is there (a symlink there
/// is replaced, never followed).
fn write_file(
    entry: &CopyEntry,
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<std::fs::File, ExecError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            return Err(ExecError::CopyConflict {
                dest: entry.dest.clone(),
                reason: "a directory is in the way of a file".into(),
            })
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(sys_rx("replace", entry.dest.clone()))?,
        Err(_) => {}
    }
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(&entry.src)
        .map_err(|e| ExecError::sys("open source", &entry.src, e))?;
    let out = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(sys_rx("create file", entry.dest.clone()))?;
    let mut out = std::fs::File::from(out);
    io::copy(&mut src, &mut out).map_err(|e| ExecError::sys("copy", &entry.src, e))?;
    set_owner_mode(out.as_fd(), uid, gid, mode, &entry.dest)?;
    rustix::fs::futimens(&out, &times(entry.mtime))
        .map_err(sys_rx("set mtime", entry.dest.clone()))?;
    Ok(out)
}

/// `O_NOFOLLOW` as the raw flag `OpenOptionsExt::custom_flags` takes.
fn libc_o_nofollow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}
