//! The two tree walks of the copy snapshotter: materialise the merged view of the lower layers
//! into a directory, and after the step compare that directory with the same view to write an
//! overlayfs-style upper directory.
//!
//! The merged view follows the kernel's overlayfs lookup (Documentation/filesystems/
//! overlayfs.rst, "Directories", "whiteouts and opaque directories"): for a name in a merged
//! directory the top-most layer having it decides; a whiteout (character device 0/0) there
//! means the name is absent; a non-directory hides everything below; a directory merges with
//! the same-named directories of lower layers down to the first opaque one
//! (`trusted.overlay.opaque=y`) or the first layer where the name is not a directory.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Statx, StatxFlags};

use super::super::ExecError;
use super::fsops::{self, sys, Copier};

/// One name of a merged lower directory.
#[derive(Debug)]
pub(super) enum ViewEntry {
    /// A directory: the layers (indices into the lower list, top-most first) whose directory of
    /// this name takes part, and the stat of the top-most one (whose metadata the merged
    /// directory shows).
    Dir { layers: Vec<usize>, top: Statx },
    /// Anything else, from one layer.
    Node { layer: usize, st: Statx },
}

/// The merged, read-only view of lower layer directories (top-most first, overlayfs
/// `lowerdir` order).
#[derive(Debug)]
pub(super) struct View<'a> {
    lowers: &'a [PathBuf],
}

impl<'a> View<'a> {
    pub(super) fn new(lowers: &'a [PathBuf]) -> Self {
        View { lowers }
    }

    /// `layer`'s copy of the relative path `rel`.
    pub(super) fn path(&self, layer: usize, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.lowers[layer].clone()
        } else {
            self.lowers[layer].join(rel)
        }
    }

    /// The root directory: every layer down to the first whose root is opaque.
    pub(super) fn root(&self) -> Result<(Vec<usize>, Statx), ExecError> {
        let mut layers = Vec::new();
        let mut top = None;
        for (i, dir) in self.lowers.iter().enumerate() {
            let st = fsops::lstat(dir).map_err(sys("stat lower layer", dir))?;
            if fsops::file_type(&st) != FileType::Directory {
                return Err(ExecError::sys(
                    "use lower layer",
                    dir,
                    std::io::Error::other("not a directory"),
                ));
            }
            top.get_or_insert(st);
            layers.push(i);
            if fsops::is_opaque(dir).map_err(sys("read xattrs", dir))? {
                break;
            }
        }
        match top {
            Some(top) => Ok((layers, top)),
            None => Err(ExecError::sys(
                "merge lower layers",
                "-",
                std::io::Error::other("no lower layer"),
            )),
        }
    }

    /// The names of the merged directory `rel`, made of `layers`, with what each is; whited-out
    /// names are left out. Sorted by name bytes.
    pub(super) fn children(
        &self,
        rel: &Path,
        layers: &[usize],
    ) -> Result<BTreeMap<OsString, ViewEntry>, ExecError> {
        // name → (entry, or None when whited out; sealed: no lower layer can add to it)
        let mut seen: BTreeMap<OsString, (Option<ViewEntry>, bool)> = BTreeMap::new();
        for &layer in layers {
            let dir = self.path(layer, rel);
            for name in fsops::read_names(&dir)? {
                let path = dir.join(&name);
                match seen.get_mut(&name) {
                    None => {
                        let st = fsops::lstat(&path).map_err(sys("stat lower entry", &path))?;
                        let value = if fsops::is_whiteout(&st) {
                            (None, true)
                        } else if fsops::file_type(&st) == FileType::Directory {
                            let opaque =
                                fsops::is_opaque(&path).map_err(sys("read xattrs", &path))?;
                            (
                                Some(ViewEntry::Dir {
                                    layers: vec![layer],
                                    top: st,
                                }),
                                opaque,
                            )
                        } else {
                            (Some(ViewEntry::Node { layer, st }), true)
                        };
                        seen.insert(name, value);
                    }
                    Some((Some(ViewEntry::Dir { layers, .. }), sealed)) if !*sealed => {
                        let st = fsops::lstat(&path).map_err(sys("stat lower entry", &path))?;
                        if fsops::file_type(&st) == FileType::Directory {
                            layers.push(layer);
                            *sealed = fsops::is_opaque(&path).map_err(sys("read xattrs", &path))?;
                        } else {
                            // A non-directory or a whiteout in a lower layer ends the merge.
                            *sealed = true;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(name, (entry, _))| entry.map(|e| (name, e)))
            .collect())
    }
}

/// A 64-bit digest of a relative path, to tie a copied directory's inode to where it was made.
fn path_key(rel: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rel.as_os_str().as_bytes().hash(&mut h);
    h.finish()
}

/// What the copy made, needed again to compare: which directory inode was created for which
/// path.
#[derive(Debug, Default)]
pub(super) struct CopyRecord {
    /// Inode of each directory the copy created → [`path_key`] of its path.
    dirs: HashMap<u64, u64>,
    /// Inode of each multiply-linked file the copy created → its link count after the copy.
    links: HashMap<u64, u32>,
}

/// Materialises the merged view of `lowers` into the existing empty directory `root`: every
/// visible entry once (hidden and whited-out ones are never copied), hardlinks within a layer
/// kept, the root directory taking the top-most layer's owner, mode, xattrs and times.
pub(super) fn copy_lowers(lowers: &[PathBuf], root: &Path) -> Result<CopyRecord, ExecError> {
    let view = View::new(lowers);
    let (layers, top) = view.root()?;
    fsops::set_attrs(&view.path(layers[0], Path::new("")), &top, root)?;
    let mut copy = LowerCopy {
        view,
        root,
        copier: Copier::default(),
        record: CopyRecord::default(),
    };
    copy.dir(Path::new(""), &layers)?;
    fsops::set_times(&top, root)?;
    for first in copy.copier.copies() {
        let st = fsops::lstat(first).map_err(sys("stat copy", first))?;
        copy.record.links.insert(st.stx_ino, st.stx_nlink);
    }
    Ok(copy.record)
}

struct LowerCopy<'a> {
    view: View<'a>,
    root: &'a Path,
    copier: Copier,
    record: CopyRecord,
}

impl LowerCopy<'_> {
    fn dir(&mut self, rel: &Path, layers: &[usize]) -> Result<(), ExecError> {
        for (name, entry) in self.view.children(rel, layers)? {
            let crel = rel.join(&name);
            let dst = self.root.join(&crel);
            match entry {
                ViewEntry::Dir { layers, top } => {
                    fsops::make_dir(&self.view.path(layers[0], &crel), &top, &dst)?;
                    let st = fsops::lstat(&dst).map_err(sys("stat copy", &dst))?;
                    self.record.dirs.insert(st.stx_ino, path_key(&crel));
                    self.dir(&crel, &layers)?;
                    fsops::set_times(&top, &dst)?;
                }
                ViewEntry::Node { layer, st } => {
                    self.copier
                        .copy_node(&self.view.path(layer, &crel), &st, &dst)?;
                }
            }
        }
        Ok(())
    }
}

/// How to tell what the step changed in the copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChangeClock {
    /// Every inode the copy wrote has a ctime at or before this; anything the step touched
    /// (content, owner, mode, xattrs, links, renames) has a later one. ctime cannot be set from
    /// user space (inode(7), "Last status change timestamp").
    pub(super) watermark: (i64, u32),
    /// False when the clock was seen going backwards (or not advancing): then ctime proves
    /// nothing and regular files of equal size and mtime are compared byte for byte.
    pub(super) reliable: bool,
}

/// Compares the tree `root` (the copy after the step) with the merged view of `lowers` and
/// writes the differences into the empty directory `upper` in overlayfs upper form:
/// - a name the step added or changed is copied (a directory with everything in it);
/// - a name the step removed becomes a whiteout;
/// - a directory that replaced a lower entry of the same name (a non-directory, or a directory
///   the step deleted and made again) is copied whole and marked opaque, as overlayfs marks a
///   directory created over a whiteout;
/// - every directory on the way to a change is created with its metadata from `root`, as
///   overlayfs' copy-up makes it.
///
/// A non-directory counts as changed when its type, mode, owner, size, mtime or device number
/// differ, or its ctime is past the copy's watermark (which catches a rewrite keeping size and
/// mtime). Two cases compare symlink target, xattrs and content instead of trusting ctime: an
/// unreliable clock, and a file that had several names in the copy and gained none, whose ctime
/// also moves when another of its names is removed or renamed (overlayfs leaves the remaining
/// names alone then).
/// A directory present on both sides is kept when its mode, owner, mtime or xattrs differ.
pub(super) fn diff(
    lowers: &[PathBuf],
    root: &Path,
    upper: &Path,
    record: &CopyRecord,
    clock: ChangeClock,
) -> Result<(), ExecError> {
    let view = View::new(lowers);
    let (layers, _) = view.root()?;
    let root_st = fsops::lstat(root).map_err(sys("stat copy", root))?;
    let mut d = Differ {
        view,
        root,
        upper,
        record,
        clock,
        copier: Copier::default(),
        frames: vec![Frame {
            rel: PathBuf::new(),
            st: root_st,
            created: true,
        }],
    };
    d.dir(Path::new(""), &layers)
}

/// A directory on the current walk path and whether it exists in the upper directory yet.
struct Frame {
    rel: PathBuf,
    st: Statx,
    created: bool,
}

struct Differ<'a> {
    view: View<'a>,
    root: &'a Path,
    upper: &'a Path,
    record: &'a CopyRecord,
    clock: ChangeClock,
    copier: Copier,
    frames: Vec<Frame>,
}

fn join(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

impl Differ<'_> {
    fn dir(&mut self, rel: &Path, layers: &[usize]) -> Result<(), ExecError> {
        let names = fsops::read_names(&join(self.root, rel))?;
        let mut lower = self.view.children(rel, layers)?.into_iter().peekable();
        let mut mine = names.into_iter().peekable();
        loop {
            let order = match (mine.peek(), lower.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(a), Some((b, _))) => a.as_bytes().cmp(b.as_bytes()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let Some(name) = mine.next() else { break };
                    let crel = rel.join(&name);
                    self.copy_out(&crel, false)?;
                }
                std::cmp::Ordering::Greater => {
                    let Some((name, _)) = lower.next() else { break };
                    self.whiteout(&rel.join(&name))?;
                }
                std::cmp::Ordering::Equal => {
                    let (Some(name), Some((_, entry))) = (mine.next(), lower.next()) else {
                        break;
                    };
                    self.both(&rel.join(&name), entry)?;
                }
            }
        }
        Ok(())
    }

    /// A name present in the copy and in the lower view.
    fn both(&mut self, crel: &Path, entry: ViewEntry) -> Result<(), ExecError> {
        let path = self.root.join(crel);
        let st = fsops::lstat(&path).map_err(sys("stat copy", &path))?;
        let is_dir = fsops::file_type(&st) == FileType::Directory;
        match entry {
            ViewEntry::Dir { layers, top } if is_dir && self.same_dir(crel, &st) => {
                let lower_path = self.view.path(layers[0], crel);
                let changed = self.dir_meta_differs(&path, &st, &lower_path, &top)?;
                self.frames.push(Frame {
                    rel: crel.to_path_buf(),
                    st,
                    created: false,
                });
                if changed {
                    self.ensure_frames()?;
                }
                self.dir(crel, &layers)?;
                let frame = self.frames.pop();
                if let Some(Frame {
                    created: true,
                    st,
                    rel,
                }) = frame
                {
                    // Creating its children changed its mtime: put the copy's back.
                    fsops::set_times(&st, &self.upper.join(rel))?;
                }
                Ok(())
            }
            // A directory where the lower view had something else, or a directory the step made
            // anew: overlayfs creates it over a whiteout and marks it opaque.
            _ if is_dir => self.copy_out(crel, true),
            ViewEntry::Dir { .. } => self.copy_out(crel, false),
            ViewEntry::Node { layer, st: lst } => {
                let lower_path = self.view.path(layer, crel);
                if self.node_changed(&path, &st, &lower_path, &lst)? {
                    self.copy_out(crel, false)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// True when the directory at `crel` in the copy is the one the copy made for that path:
    /// same inode as recorded for this path, and (where the filesystem records birth times)
    /// born before the watermark, so a directory deleted and made again is not taken for it
    /// even when it got the same inode number.
    fn same_dir(&self, crel: &Path, st: &Statx) -> bool {
        if self.record.dirs.get(&st.stx_ino) != Some(&path_key(crel)) {
            return false;
        }
        let has_btime = st.stx_mask & StatxFlags::BTIME.bits() != 0;
        !has_btime || fsops::ts(&st.stx_btime) <= self.clock.watermark
    }

    fn dir_meta_differs(
        &self,
        path: &Path,
        st: &Statx,
        lower_path: &Path,
        lst: &Statx,
    ) -> Result<bool, ExecError> {
        if fsops::perm(st) != fsops::perm(lst)
            || st.stx_uid != lst.stx_uid
            || st.stx_gid != lst.stx_gid
            || fsops::ts(&st.stx_mtime) != fsops::ts(&lst.stx_mtime)
        {
            return Ok(true);
        }
        let mine = fsops::xattrs(path).map_err(sys("read xattrs", path))?;
        let theirs = fsops::xattrs(lower_path).map_err(sys("read xattrs", lower_path))?;
        Ok(mine != theirs)
    }

    fn node_changed(
        &self,
        path: &Path,
        st: &Statx,
        lower_path: &Path,
        lst: &Statx,
    ) -> Result<bool, ExecError> {
        let ft = fsops::file_type(st);
        if ft != fsops::file_type(lst)
            || fsops::perm(st) != fsops::perm(lst)
            || st.stx_uid != lst.stx_uid
            || st.stx_gid != lst.stx_gid
            || st.stx_size != lst.stx_size
            || fsops::ts(&st.stx_mtime) != fsops::ts(&lst.stx_mtime)
            || (st.stx_rdev_major, st.stx_rdev_minor) != (lst.stx_rdev_major, lst.stx_rdev_minor)
        {
            return Ok(true);
        }
        let ctime_moved = fsops::ts(&st.stx_ctime) > self.clock.watermark;
        let lost_names_only = self
            .record
            .links
            .get(&st.stx_ino)
            .is_some_and(|&n| st.stx_nlink <= n);
        if ctime_moved && !lost_names_only {
            return Ok(true);
        }
        if !ctime_moved && self.clock.reliable {
            return Ok(false);
        }
        let mine = fsops::xattrs(path).map_err(sys("read xattrs", path))?;
        let theirs = fsops::xattrs(lower_path).map_err(sys("read xattrs", lower_path))?;
        if mine != theirs {
            return Ok(true);
        }
        match ft {
            FileType::Symlink => Ok(fsops::link_target(path)? != fsops::link_target(lower_path)?),
            FileType::RegularFile => Ok(!fsops::same_content(path, lower_path)?),
            _ => Ok(false),
        }
    }

    /// Creates, top-down, every directory of the walk path not yet in the upper directory.
    fn ensure_frames(&mut self) -> Result<(), ExecError> {
        for frame in self.frames.iter_mut().filter(|f| !f.created) {
            fsops::make_dir(
                &self.root.join(&frame.rel),
                &frame.st,
                &self.upper.join(&frame.rel),
            )?;
            frame.created = true;
        }
        Ok(())
    }

    fn whiteout(&mut self, crel: &Path) -> Result<(), ExecError> {
        self.ensure_frames()?;
        fsops::make_whiteout(&self.upper.join(crel))
    }

    /// Copies the copy's entry `crel` (a directory with all its contents) to the upper
    /// directory; `opaque` marks a directory as hiding the lower one.
    fn copy_out(&mut self, crel: &Path, opaque: bool) -> Result<(), ExecError> {
        self.ensure_frames()?;
        let src = self.root.join(crel);
        let dst = self.upper.join(crel);
        let st = fsops::lstat(&src).map_err(sys("stat copy", &src))?;
        if fsops::file_type(&st) == FileType::Directory {
            self.copy_tree(&src, &st, &dst)?;
            if opaque {
                fsops::set_opaque(&dst)?;
            }
            Ok(())
        } else {
            self.copier.copy_node(&src, &st, &dst)
        }
    }

    fn copy_tree(&mut self, src: &Path, st: &Statx, dst: &Path) -> Result<(), ExecError> {
        fsops::make_dir(src, st, dst)?;
        for name in fsops::read_names(src)? {
            let s = src.join(&name);
            let d = dst.join(&name);
            let cst = fsops::lstat(&s).map_err(sys("stat copy", &s))?;
            if fsops::file_type(&cst) == FileType::Directory {
                self.copy_tree(&s, &cst, &d)?;
            } else {
                self.copier.copy_node(&s, &cst, &d)?;
            }
        }
        fsops::set_times(st, dst)
    }
}
