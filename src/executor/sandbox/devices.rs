//! The step's `/dev`: a fresh tmpfs holding only the OCI default devices, created with `mknod`
//! (nothing of the host's `/dev` is bound in), a private devpts instance for `/dev/pts` and
//! `/dev/ptmx`, a `/dev/shm` tmpfs, and the usual `/dev` symlinks.
//!
//! Layer of `sandbox/`: above the path helpers; mounts through descriptors inside the image root
//! (the `/dev` directory the scaffolding made sure of) and never through a path the image
//! controls. Runs in the helper's private mount namespace.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::mount::{mount, MsFlags};
use rustix::fs::{FileType, Mode};

use super::paths::{fd_path, open_path_dir};
use crate::executor::error::{sys, sys_rx, ExecError};

/// The device nodes every step gets: (name, major, minor), all character devices with mode
/// 0666 (OCI runtime-spec config-linux.md "Default Devices"; numbers from the kernel's
/// Documentation/admin-guide/devices.txt).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Symlinks every container gets in `/dev` (OCI runtime-spec runtime-linux.md "Dev symbolic
/// links").
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Mounts a tmpfs on `dev` (the image's `/dev`, under `root`) and fills it: the default
/// devices, `/dev/pts` (a new devpts instance), `/dev/shm` and the links.
///
/// Errors: a mount, `mknod` or `symlink` that fails ([`ExecError::Sys`] naming the path).
pub(super) fn setup_dev(
    root: BorrowedFd<'_>,
    dev: OwnedFd,
    shm_size: Option<u64>,
) -> Result<(), ExecError> {
    // Not `nodev`: the nodes below must work. `noexec` and `nosuid` as runc mounts it.
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
    // The tmpfs is new and empty: nothing of the image is in it to redirect a name.
    let dev = rustix::fs::openat(
        &dev,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open", "/dev"))?;
    for (name, major, minor) in DEVICES {
        rustix::fs::mknodat(
            &dev,
            *name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(*major, *minor),
        )
        .map_err(sys_rx("create device", format!("/dev/{name}")))?;
        // mknod(2) applies the umask; the helper's is 0, but say the mode plainly.
        rustix::fs::chmodat(
            &dev,
            *name,
            Mode::from_raw_mode(0o666),
            rustix::fs::AtFlags::empty(),
        )
        .map_err(sys_rx("chmod", format!("/dev/{name}")))?;
    }
    for (dir, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(mode))
            .map_err(sys_rx("create", format!("/dev/{dir}")))?;
    }
    let pts = open_path_dir(dev.as_fd(), "pts").map_err(sys_rx("open", "/dev/pts"))?;
    // A private devpts instance (Documentation/filesystems/devpts.rst, "newinstance"): the
    // step sees none of the host's terminals.
    mount(
        Some("devpts"),
        &fd_path(pts.as_fd()),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(sys("mount devpts", "/dev/pts"))?;
    let shm = open_path_dir(dev.as_fd(), "shm").map_err(sys_rx("open", "/dev/shm"))?;
    // Docker's default /dev/shm is 64 MiB; `--shm-size` sets it (tmpfs(5) `size=` in bytes).
    let shm_options = format!("mode=1777,size={}", shm_size.unwrap_or(64 << 20));
    mount(
        Some("shm"),
        &fd_path(shm.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(shm_options.as_str()),
    )
    .map_err(sys("mount tmpfs", "/dev/shm"))?;
    for (name, target) in DEV_LINKS {
        rustix::fs::symlinkat(*target, &dev, *name)
            .map_err(sys_rx("create symlink", format!("/dev/{name}")))?;
    }
    Ok(())
}
