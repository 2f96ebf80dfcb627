//! The step's root filesystem as its command sees it: the mounts every `RUN` gets (a fresh
//! `/proc` for its PID namespace, a small `/dev` of its own, the host's `/etc/resolv.conf`
//! read-only), and entering it (today `chroot`; issue 12 replaces it with `pivot_root`).
//!
//! Layer of `sandbox/`: above namespaces (its mounts live in the helper's private mount
//! namespace) and the scaffolding; below the step's own mounts and the exec. Never touches the
//! host's tree outside the merged root, except for reading the device nodes and `resolv.conf` it
//! binds.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use rustix::fs::{Mode, OFlags};

use super::paths::{fd_path, open_path_dir};
use super::scaffold::{Scaffolding, Want};
use crate::executor::error::{sys, sys_rx, ExecError};

/// Device nodes bind-mounted from the host (OCI runtime-spec config-linux.md "Default Devices").
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks every container gets in `/dev` (OCI runtime-spec runtime-linux.md "Dev symbolic
/// links").
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Prepares the merged root (`root`, whose writes land in `upper`) for a `RUN`: the `/proc` mount
/// point, `/dev`, and `/etc/resolv.conf`. Returns whether `/proc` can be mounted (the image may
/// have something other than a directory there; then the step runs without it).
pub(super) fn prepare(
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    scaffold: &mut Scaffolding,
) -> Result<bool, ExecError> {
    let proc_fd = scaffold.ensure(root, upper, "proc", Want::Dir)?;
    if let Some(dev) = scaffold.ensure(root, upper, "dev", Want::Dir)? {
        setup_dev(root, dev)?;
    }
    bind_resolv_conf(root, upper, scaffold)?;
    Ok(proc_fd.is_some())
}

/// Binds the host's `/etc/resolv.conf` read-only onto the image's, when the host has one.
fn bind_resolv_conf(
    root: BorrowedFd<'_>,
    upper: BorrowedFd<'_>,
    scaffold: &mut Scaffolding,
) -> Result<(), ExecError> {
    let host_resolv = Path::new("/etc/resolv.conf");
    if host_resolv.exists() {
        if let Some(target) = scaffold.ensure(root, upper, "etc/resolv.conf", Want::File)? {
            bind(host_resolv, target.as_fd(), "bind-mount resolv.conf")?;
            drop(target);
            // A bind mount's read-only flag needs a remount (mount(2), "MS_REMOUNT"), on the
            // new mount: re-open the path (checked free of symlinks by `ensure`).
            let mounted = rustix::fs::openat(
                root,
                "etc/resolv.conf",
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys_rx("open", "/etc/resolv.conf"))?;
            mount(
                None::<&str>,
                &fd_path(mounted.as_fd()),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(sys("remount read-only", "/etc/resolv.conf"))?;
        }
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

/// Mounts a tmpfs `/dev` with the default devices, `/dev/pts`, `/dev/shm` and the usual links.
fn setup_dev(root: BorrowedFd<'_>, dev: OwnedFd) -> Result<(), ExecError> {
    mount(
        Some("tmpfs"),
        &fd_path(dev.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev"))?;
    drop(dev);
    // Re-open: the old descriptor names the directory under the new tmpfs.
    let dev = open_path_dir(root, "dev").map_err(sys_rx("open", "/dev"))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let fd = rustix::fs::openat(
            &dev,
            *name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(sys_rx("create device mount point", host.clone()))?;
        drop(fd);
        let target = rustix::fs::openat(
            &dev,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open device mount point", host.clone()))?;
        bind(&host, target.as_fd(), "bind-mount device")?;
    }
    for (dir, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(mode))
            .map_err(sys_rx("create", format!("/dev/{dir}")))?;
    }
    let pts = open_path_dir(dev.as_fd(), "pts").map_err(sys_rx("open", "/dev/pts"))?;
    // A private devpts instance (Documentation/filesystems/devpts.rst, "newinstance").
    mount(
        Some("devpts"),
        &fd_path(pts.as_fd()),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(sys("mount devpts", "/dev/pts"))?;
    let shm = open_path_dir(dev.as_fd(), "shm").map_err(sys_rx("open", "/dev/shm"))?;
    mount(
        Some("shm"),
        &fd_path(shm.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev/shm"))?;
    for (name, target) in DEV_LINKS {
        rustix::fs::symlinkat(*target, &dev, *name)
            .map_err(sys_rx("create symlink", format!("/dev/{name}")))?;
    }
    Ok(())
}

/// Enters the root, in the `RUN` child (PID 1 of the step's PID namespace): mounts `/proc` when
/// `mount_proc`, then `chroot`s into `merged` and changes to its `/`.
pub(super) fn enter(merged: &Path, mount_proc: bool) -> Result<(), ExecError> {
    if mount_proc {
        // proc shows the mounting process's PID namespace, so the child mounts it.
        let target = merged.join("proc");
        mount(
            Some("proc"),
            &target,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(sys("mount proc", target))?;
    }
    nix::unistd::chroot(merged).map_err(sys("chroot", merged))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    Ok(())
}
