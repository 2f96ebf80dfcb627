//! The step's root filesystem as its command sees it: the mount points every `RUN` gets (`/proc`
//! and `/sys`, a small `/dev` of its own, `/etc/resolv.conf` and `/etc/hosts` read-only), and entering it:
//! `pivot_root` in a mount namespace of the step's own, the old root detached.
//!
//! Layer of `sandbox/`: above namespaces (its mounts live in the helper's private mount
//! namespace), the scaffolding, `/dev` (devices.rs) and the kernel filesystems (kernelfs.rs);
//! below the step's own mounts and the exec. Never touches the host's tree outside the merged
//! root, except for reading the `resolv.conf` it binds.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};

use super::devices::setup_dev;
use super::kernelfs::{mount_kernel_filesystems, KernelFs};
use super::paths::fd_path;
use super::scaffold::{Scaffolding, Want};
use crate::executor::error::{sys, sys_rx, ExecError};

/// Files the helper made or chose for a step's root: bound read-only onto `/etc`.
pub(super) struct StepFiles<'a> {
    /// The file bound onto `/etc/resolv.conf` (when it exists).
    pub(super) resolv: &'a Path,
    /// The file bound onto `/etc/hosts` (`--add-host`); `None` leaves the image's.
    pub(super) hosts: Option<&'a Path>,
    /// The size of `/dev/shm` in bytes (`--shm-size`); `None` is Docker's 64 MiB.
    pub(super) shm_size: Option<u64>,
}

/// Prepares the merged root (`root`, whose writes land in `upper`) for a `RUN`: the `/proc` and
/// `/sys` mount points, `/dev` (devices.rs), `/etc/resolv.conf` and, when given, `/etc/hosts`.
/// Returns which of `/proc` and `/sys` can be mounted (the image may have something other than
/// a directory there; then the step runs without it).
pub(super) fn prepare(
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    scaffold: &mut Scaffolding,
    files: &StepFiles<'_>,
) -> Result<Prepared, ExecError> {
    let proc = scaffold.ensure(root, upper, "proc", Want::Dir)?.is_some();
    let sys = scaffold.ensure(root, upper, "sys", Want::Dir)?.is_some();
    if let Some(dev) = scaffold.ensure(root, upper, "dev", Want::Dir)? {
        setup_dev(root, dev, files.shm_size)?;
    }
    if files.resolv.exists() {
        bind_etc_file(root, upper, scaffold, files.resolv, "etc/resolv.conf")?;
    }
    if let Some(hosts) = files.hosts {
        bind_etc_file(root, upper, scaffold, hosts, "etc/hosts")?;
    }
    Ok(Prepared { proc, sys })
}

/// Binds `host_file` (the host's `/etc/resolv.conf`, or a file made for the step) read-only
/// onto `rel` in the root.
fn bind_etc_file(
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    scaffold: &mut Scaffolding,
    host_file: &Path,
    rel: &'static str,
) -> Result<(), ExecError> {
    if let Some(target) = scaffold.ensure(root, upper, rel, Want::File)? {
        bind(host_file, target.as_fd(), "bind-mount")?;
        drop(target);
        // A bind mount's read-only flag needs a remount (mount(2), "MS_REMOUNT"), on the
        // new mount: re-open the path (checked free of symlinks by `ensure`).
        let mounted = rustix::fs::openat(
            root,
            rel,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open", format!("/{rel}")))?;
        mount(
            None::<&str>,
            &fd_path(mounted.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys("remount read-only", format!("/{rel}")))?;
    }
    Ok(())
}

fn bind(source: &Path, target: BorrowedFd<'_>, what: &'static str) -> Result<(), ExecError> {
    mount(
        Some(source),
        &fd_path(target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(what, source))
}

/// What the root filesystem offers to mount on, as [`prepare`] found it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prepared {
    /// `/proc` is a directory.
    pub(super) proc: bool,
    /// `/sys` is a directory.
    pub(super) sys: bool,
}

/// Enters the root, in the `RUN` child (PID 1 of the step's PID namespace): a mount namespace
/// of its own (so that the helper's is left as it was), `proc` and `sysfs` with their masks
/// (kernelfs.rs), then `pivot_root` into `merged` and the old root detached, as runc's
/// `pivotRoot` does: afterwards no path leads to the host's tree.
///
/// Errors: a failed `unshare`, mount, `pivot_root` or detach ([`ExecError::Sys`]).
pub(super) fn enter(merged: &Path, found: Prepared, insecure: bool) -> Result<(), ExecError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(sys("unshare", "-"))?;
    mount_kernel_filesystems(
        merged,
        KernelFs {
            proc: found.proc,
            sys: found.sys,
            insecure,
        },
    )?;
    // pivot_root(2) "pivot_root(\".\", \".\")": the old root ends up stacked on the new one
    // and is detached from there; `old` keeps a way to it until then.
    let old = rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open", "/"))?;
    nix::unistd::chdir(merged).map_err(sys("chdir", merged))?;
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", merged))?;
    rustix::process::fchdir(&old).map_err(sys_rx("fchdir", "old root"))?;
    drop(old);
    // Nothing that happens under the old root may propagate anywhere before it goes.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("make old root rslave", "old root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach old root", "old root"))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    Ok(())
}
