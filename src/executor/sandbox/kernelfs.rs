//! The kernel's filesystems as a step sees them: a fresh `proc` for its PID namespace and a
//! read-only `sysfs`, with runc's masked paths (hidden behind `/dev/null` or an empty read-only
//! tmpfs) and read-only paths (bound onto themselves read-only), so that a step can neither read
//! kernel memory, keys and timers nor write host-wide kernel settings.
//!
//! Layer of `sandbox/`: runs in the `RUN` child (PID 1 of the step's PID namespace, so that its
//! `proc` shows that namespace), in the child's own mount namespace, before the root is entered.
//! The targets are under procfs and sysfs, which the image cannot fill with symlinks; the mount
//! points themselves were made sure of (directories, no symlinks) by the scaffolding.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::executor::error::{sys, ExecError};

/// Paths hidden from the step: files get `/dev/null` bound over them, directories an empty
/// read-only tmpfs (runc's default `maskedPaths`, as moby's `oci/defaults.go` lists them).
pub(super) const MASKED_PATHS: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths the step may read but not write (runc's default `readonlyPaths`).
pub(super) const READONLY_PATHS: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Which kernel filesystems to mount and how strictly.
#[derive(Debug, Clone, Copy)]
pub(super) struct KernelFs {
    /// The image has a directory at `/proc` to mount on.
    pub(super) proc: bool,
    /// The image has a directory at `/sys` to mount on.
    pub(super) sys: bool,
    /// `RUN --security=insecure`: no masks, `/sys` writable (as a privileged container).
    pub(super) insecure: bool,
}

const NO_EXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Mounts `proc` and `sysfs` under `root` (the merged root, not yet entered) and applies the
/// masks and read-only paths unless insecure.
///
/// Errors: a mount that fails ([`ExecError::Sys`] naming the path).
pub(super) fn mount_kernel_filesystems(root: &Path, want: KernelFs) -> Result<(), ExecError> {
    if want.proc {
        let target = root.join("proc");
        mount(Some("proc"), &target, Some("proc"), NO_EXEC, None::<&str>)
            .map_err(sys("mount proc", target))?;
    }
    if want.sys {
        let target = root.join("sys");
        let ro = if want.insecure {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
        mount(
            Some("sysfs"),
            &target,
            Some("sysfs"),
            NO_EXEC | ro,
            None::<&str>,
        )
        .map_err(sys("mount sysfs", target))?;
    }
    if want.insecure {
        return Ok(());
    }
    let mounted = |rel: &str| {
        (rel.starts_with("proc/") && want.proc) || (rel.starts_with("sys/") && want.sys)
    };
    for rel in MASKED_PATHS.iter().filter(|r| mounted(r)) {
        mask(&root.join(rel))?;
    }
    for rel in READONLY_PATHS.iter().filter(|r| mounted(r)) {
        readonly(&root.join(rel))?;
    }
    Ok(())
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory; nothing
/// when the kernel does not have it (runc `maskPath`).
fn mask(path: &Path) -> Result<(), ExecError> {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if md.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | NO_EXEC,
            Some("size=0"),
        )
        .map_err(sys("mask", path))
    } else {
        // The host's /dev/null: a character device that reads empty and ignores writes; the
        // step's own /dev is a tmpfs not yet reachable from here.
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("mask", path))
    }
}

/// Makes `path` read-only: a bind mount onto itself, then a read-only remount of that bind
/// (mount(2) "MS_REMOUNT" with MS_BIND changes only the per-mount flags); nothing when the
/// kernel does not have it (runc `readonlyPath`).
fn readonly(path: &Path) -> Result<(), ExecError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("bind read-only path", path))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NO_EXEC,
        None::<&str>,
    )
    .map_err(sys("remount read-only", path))
}
