//! A `RUN` step's own mounts (`RUN --mount`: cache and bind directories, views of other stages'
//! layers, tmpfs, in-memory files such as secrets, an SSH agent's socket), bound onto targets inside the image root
//! through descriptors after resolving the target's symlinks inside the image; and
//! [`TempMounts`], the private temporary directories with layer views or a tmpfs mounted on them
//! that those mounts and `COPY --from` read.
//!
//! Layer of `sandbox/`: above the root filesystem's own mounts (rootfs.rs) and the scaffolding.
//! Everything here runs in the helper's own mount namespace, so none of these mounts is visible
//! on the host, and all of them go away with the helper.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::overlay::mount_overlay;
use super::paths::{fd_path, resolve_in_root};
use super::scaffold::{Scaffolding, Want};
use crate::executor::error::{sys, sys_rx, ExecError};
use crate::executor::spec::{Mount, Sensitive};

/// Temporary directories with something mounted on them; unmounted (detached) before the
/// directories are removed.
pub(super) struct TempMounts {
    base: PathBuf,
    dirs: Vec<tempfile::TempDir>,
    mounted: Vec<PathBuf>,
}

impl TempMounts {
    /// Temporary directories go under `base` (the step's scratch directory).
    pub(super) fn new(base: &Path) -> TempMounts {
        TempMounts {
            base: base.to_path_buf(),
            dirs: Vec::new(),
            mounted: Vec::new(),
        }
    }

    /// A new empty directory that lives as long as `self`.
    pub(super) fn dir(&mut self, prefix: &str) -> Result<PathBuf, ExecError> {
        let d = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.base)
            .map_err(|e| ExecError::sys("create temporary directory", &self.base, e))?;
        let p = d.path().to_path_buf();
        self.dirs.push(d);
        Ok(p)
    }

    /// Mounts the layers `lowerdirs` (top-most first) as one tree and returns where. Read-only
    /// unless `writable`, in which case writes land in a throw-away upper directory.
    pub(super) fn layers(
        &mut self,
        lowerdirs: &[PathBuf],
        writable: bool,
    ) -> Result<PathBuf, ExecError> {
        let at = self.dir(".view-")?;
        // An empty bottom layer: overlayfs needs two lower layers when it has no upper one, and
        // a stage made of no layers (scratch) is then just empty.
        let empty = self.dir(".empty-")?;
        let mut lowers: Vec<&Path> = lowerdirs.iter().map(PathBuf::as_path).collect();
        lowers.push(&empty);
        let rw = if writable {
            let upper = self.dir(".upper-")?;
            let work = self.dir(".work-")?;
            Some((upper, work))
        } else {
            None
        };
        mount_overlay(
            &lowers,
            rw.as_ref().map(|(u, w)| (u.as_path(), w.as_path())),
            &at,
        )?;
        self.mounted.push(at.clone());
        Ok(at)
    }

    /// A private tmpfs for in-memory files.
    pub(super) fn tmpfs(&mut self) -> Result<PathBuf, ExecError> {
        let at = self.dir(".files-")?;
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .map_err(sys("mount tmpfs", &at))?;
        self.mounted.push(at.clone());
        Ok(at)
    }
}

impl Drop for TempMounts {
    fn drop(&mut self) {
        for m in self.mounted.iter().rev() {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        self.mounted.clear();
    }
}

/// Makes `target` (absolute in the image) exist as `want`; returns a descriptor for it and its
/// resolved path relative to the root.
fn target_fd(
    scaffold: &mut Scaffolding,
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    target: &str,
    want: Want,
) -> Result<(OwnedFd, String), ExecError> {
    let rel = resolve_in_root(root, target.trim_start_matches('/'))?;
    if rel.is_empty() {
        return Err(ExecError::MountTarget {
            target: target.to_string(),
            reason: "the root itself cannot be a mount target".into(),
        });
    }
    let fd = scaffold
        .ensure(root, upper, &rel, want)?
        .ok_or_else(|| ExecError::MountTarget {
            target: target.to_string(),
            reason: format!(
                "the image has something other than a {} there",
                if want == Want::Dir {
                    "directory"
                } else {
                    "file"
                }
            ),
        })?;
    Ok((fd, rel))
}

/// Bind-mounts `source` onto `target` (its descriptor and its resolved path `rel` under
/// `root`), then makes the new mount read-only if asked. A bind mount's flags need a remount
/// (mount(2) "MS_REMOUNT") of the new mount: the old descriptor names the directory under it,
/// so the path is opened again (it was checked free of symlinks by `ensure`).
fn bind_onto(
    source: &Path,
    root: BorrowedFd<'_>,
    target: (OwnedFd, String),
    readonly: bool,
    what: &str,
) -> Result<(), ExecError> {
    let (fd, rel) = target;
    mount(
        Some(source),
        &fd_path(fd.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ExecError::sys("bind mount", PathBuf::from(what), std::io::Error::from(e)))?;
    drop(fd);
    if readonly {
        let mounted = rustix::fs::openat(
            root,
            rel.as_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open mount", what.to_string()))?;
        mount(
            None::<&str>,
            &fd_path(mounted.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| {
            ExecError::sys(
                "remount read-only",
                PathBuf::from(what),
                std::io::Error::from(e),
            )
        })?;
    }
    Ok(())
}

/// Applies a RUN step's mounts to the merged root, parents before children.
pub(super) fn apply(
    mounts: &[Mount],
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    scaffold: &mut Scaffolding,
    temps: &mut TempMounts,
) -> Result<(), ExecError> {
    let mut order: Vec<&Mount> = mounts.iter().collect();
    order.sort_by_key(|m| target_depth(m));
    let mut mounter = Mounter {
        root,
        upper,
        scaffold,
        temps,
        files_dir: None,
    };
    for (i, m) in order.into_iter().enumerate() {
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let t = mounter.target(target, Want::Dir)?;
                bind_onto(source, root, t, *readonly, target)?;
            }
            Mount::Layers {
                lowerdirs,
                subpath,
                target,
                readonly,
            } => mounter.layers(lowerdirs, subpath, target, *readonly)?,
            Mount::Tmpfs { target, size } => mounter.tmpfs(target, *size)?,
            Mount::Socket { source, target } => {
                let t = mounter.target(target, Want::File)?;
                bind_onto(source, root, t, false, target)?;
            }
            Mount::File {
                target,
                content,
                mode,
                uid,
                gid,
            } => {
                let path = mounter.memory_file(&format!("f{i}"), content, *mode, *uid, *gid)?;
                let t = mounter.target(target, Want::File)?;
                bind_onto(&path, root, t, true, target)?;
            }
        }
    }
    Ok(())
}

/// How many components a mount's target has (`/a/b` has 2): parents are mounted first.
fn target_depth(m: &Mount) -> usize {
    let t = match m {
        Mount::Bind { target, .. }
        | Mount::Layers { target, .. }
        | Mount::Tmpfs { target, .. }
        | Mount::Socket { target, .. }
        | Mount::File { target, .. } => target,
    };
    t.split('/').filter(|c| !c.is_empty()).count()
}

/// What applying a step's mounts works with: the merged root, where the step's writes land,
/// the scaffolding that records the mount points made, the temporary mounts, and the private
/// tmpfs for in-memory files once one is needed.
struct Mounter<'a> {
    root: BorrowedFd<'a>,
    upper: BorrowedFd<'a>,
    scaffold: &'a mut Scaffolding,
    temps: &'a mut TempMounts,
    files_dir: Option<PathBuf>,
}

impl Mounter<'_> {
    /// See [`target_fd`].
    fn target(&mut self, target: &str, want: Want) -> Result<(OwnedFd, String), ExecError> {
        target_fd(self.scaffold, self.root, self.upper, target, want)
    }

    /// `subpath` of a view of the layers `lowerdirs` (read-only, or with throw-away writes),
    /// bound onto `target`.
    fn layers(
        &mut self,
        lowerdirs: &[PathBuf],
        subpath: &str,
        target: &str,
        readonly: bool,
    ) -> Result<(), ExecError> {
        let view = self.temps.layers(lowerdirs, !readonly)?;
        let view_fd = rustix::fs::open(
            &view,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open mounted layers", &view))?;
        let sub = subpath.trim_start_matches('/');
        let src = rustix::fs::openat2(
            &view_fd,
            if sub.is_empty() { "." } else { sub },
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| ExecError::MountTarget {
            target: target.to_string(),
            reason: format!("source path {subpath}: {}", std::io::Error::from(e)),
        })?;
        let st = rustix::fs::fstat(&src).map_err(sys_rx("stat", subpath.to_string()))?;
        let want = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            Want::Dir
        } else {
            Want::File
        };
        let t = self.target(target, want)?;
        bind_onto(&fd_path(src.as_fd()), self.root, t, readonly, target)
    }

    /// An empty tmpfs on `target`, of at most `size` bytes.
    fn tmpfs(&mut self, target: &str, size: Option<u64>) -> Result<(), ExecError> {
        let (fd, _) = self.target(target, Want::Dir)?;
        let opts = match size {
            Some(s) => format!("mode=1777,size={s}"),
            None => "mode=1777".to_string(),
        };
        mount(
            Some("tmpfs"),
            &fd_path(fd.as_fd()),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .map_err(sys("mount tmpfs", target))
    }

    /// Writes `content` as file `name` of the private tmpfs (mounted on first use), owned by
    /// `uid`:`gid` with permission bits `mode`; returns its path, to be bound onto the target.
    fn memory_file(
        &mut self,
        name: &str,
        content: &Sensitive,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<PathBuf, ExecError> {
        let dir = match &self.files_dir {
            Some(d) => d.clone(),
            None => {
                let d = self.temps.tmpfs()?;
                self.files_dir = Some(d.clone());
                d
            }
        };
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ExecError::sys("create file", &path, e))?;
        f.write_all(&content.0)
            .map_err(|e| ExecError::sys("write file", &path, e))?;
        rustix::fs::fchown(
            &f,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(sys_rx("chown", &path))?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode & 0o7777))
            .map_err(sys_rx("chmod", &path))?;
        Ok(path)
    }
}
