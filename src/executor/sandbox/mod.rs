//! The helper side of the executor (`polyarch __sandbox`): reads the step's spec, contains it,
//! performs it, and reports how it went.
//!
//! Runs single-threaded, as root. Every path inside the image root is handled through directory
//! file descriptors so that symlinks in the image cannot redirect a mount or a write to the host.
//!
//! The files are the layers of containment, bottom up; each uses only files above it in this
//! list (and the executor's spec, errors, protocol and snapshotters):
//! - `paths.rs`: descriptors as mount targets, paths opened and resolved inside the image root;
//! - `users.rs`: `USER` and `--chown` resolved against the image's passwd and group text (pure);
//! - `namespaces.rs`: which namespaces a step gets, `unshare`, private mounts, the hostname, and
//!   forking the step's PID 1 and waiting for it;
//! - `overlay.rs`: overlayfs mounts (the merged root, views of other layers);
//! - `scaffold.rs`: mount points created in the image and removed from its upper directory after;
//! - `devices.rs`: the step's `/dev`, a tmpfs with only the default device nodes, devpts, shm;
//! - `kernelfs.rs`: `proc` and `sysfs` with runc's masked and read-only paths;
//! - `rootfs.rs`: the mount points of `/proc`, `/sys`, `/dev`, `resolv.conf`, and entering the
//!   root (`pivot_root` in the step's own mount namespace, the old root detached);
//! - `emulator.rs`: an emulated step's CPU model in a binfmt_misc instance of its own (its
//!   emulator directory in `/dev`, the user namespace handshake with the step's init);
//! - `mounts.rs`: the step's own mounts (`RUN --mount`) and the temporary layer views;
//! - `network.rs`: the network namespace a network mode asks for, loopback up in a new one,
//!   pasta for the default network and the `resolv.conf` that works through it;
//! - `netholder.rs`: the process (`polyarch __network`) that holds a build's default network
//!   namespace with pasta attached, joined by each step;
//! - `capabilities.rs`: Docker's default capability set and `no_new_privs` (used by exec.rs);
//! - `seccomp.rs`: Docker's default seccomp filter for the host architecture (used by exec.rs);
//! - `exec.rs`: the `RUN` child from PID 1 to `execve`: signals, root, working directory, user;
//! - `copy_special.rs`: `COPY` entries beyond files, directories and symlinks (device nodes,
//!   fifos, hard links) and every entry's xattrs, with what the filesystem refuses reported;
//! - `run.rs` and `copy.rs`: the `RUN` and `COPY` steps, putting the layers together;
//! - this file: the entry point [`sandbox_main`], entering the namespaces, the snapshot around
//!   the step, and dispatching to `run.rs` or `copy.rs`.

mod capabilities;
mod copy;
mod copy_special;
mod devices;
mod emulator;
mod exec;
mod kernelfs;
mod mounts;
mod namespaces;
mod netholder;
mod network;
mod overlay;
mod paths;
mod rootfs;
mod run;
mod scaffold;
mod seccomp;
mod users;

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

use crate::executor::error::ExecError;
use crate::executor::protocol::{
    report_sandbox_error, report_to, SANDBOX_ATTACH_FLAG, SANDBOX_ERROR_STATUS,
};
use crate::executor::snapshot::Snapshot;
use crate::executor::spec::{Action, NetworkMode, SandboxSpec};
use mounts::TempMounts;
pub use netholder::{network_main, NETWORK_SUBCOMMAND};
pub(super) use seccomp::compiled as seccomp_program;

#[cfg(test)]
pub(super) use capabilities::default_mask;
#[cfg(test)]
pub(super) use exec::find_program;
#[cfg(test)]
pub(super) use network::step_resolv_conf;
#[cfg(test)]
pub(super) use users::{resolve_chown, resolve_run_user};

/// Entry point of `polyarch __sandbox`: reads a [`SandboxSpec`] as JSON from stdin, performs it
/// and returns the process exit status (the command's status, 128 + n for a signal, or
/// [`SANDBOX_ERROR_STATUS`] after printing a [`crate::executor::SANDBOX_ERROR_PREFIX`] line on
/// stderr).
///
/// Must be called before any other thread exists: `unshare(CLONE_NEWNS)` fails in a
/// multi-threaded process (unshare(2), EINVAL) and `fork` copies only the calling thread.
pub fn sandbox_main() -> i32 {
    use std::io::Read;
    // When polyarch dies (killed, or interrupted before it could clean up), the helper goes too,
    // and with it the step's PID namespace (its PID 1 has the helper as death signal parent).
    if nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL)).is_err()
        || nix::unistd::getppid() == nix::unistd::Pid::from_raw(1)
    {
        report_sandbox_error(&ExecError::Orphaned);
        return SANDBOX_ERROR_STATUS;
    }
    let attached = attached_files();
    let mut input = Vec::new();
    let read = match &attached {
        // `polyarch run`: the spec from a file, stdin left to the command.
        Some((spec, report)) => {
            if let Ok(f) = std::fs::OpenOptions::new().append(true).open(report) {
                report_to(f);
            }
            std::fs::File::open(spec).and_then(|mut f| f.read_to_end(&mut input))
        }
        None => std::io::stdin().read_to_end(&mut input),
    };
    let result = read
        .map_err(|e| ExecError::sys("read spec", "-", e))
        .and_then(|_| {
            serde_json::from_slice::<SandboxSpec>(&input)
                .map_err(|source| ExecError::BadSpec { source })
        })
        .and_then(|spec| perform(&spec, attached.is_some()));
    match result {
        Ok(status) => status,
        Err(e) => {
            report_sandbox_error(&e);
            SANDBOX_ERROR_STATUS
        }
    }
}

/// `--attach SPEC_FILE REPORT_FILE` after the subcommand ([`SANDBOX_ATTACH_FLAG`]).
fn attached_files() -> Option<(PathBuf, PathBuf)> {
    let mut args = std::env::args_os().skip(2);
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(spec), Some(report)) if flag == SANDBOX_ATTACH_FLAG => {
            Some((spec.into(), report.into()))
        }
        _ => None,
    }
}

/// Performs the spec; returns the exit status for the helper process. `attached`: the
/// command gets the helper's stdin (`polyarch run`), else `/dev/null`.
fn perform(spec: &SandboxSpec, attached: bool) -> Result<i32, ExecError> {
    // Modes below are exact; the RUN child restores Docker's 022 before exec.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // The spec pipe is at EOF; the command reads /dev/null like a detached container.
    if !attached {
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = nix::unistd::dup2_stdin(&null);
        }
    }
    isolate(&spec.action)?;

    let base = spec
        .workdir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&base)
            .map_err(|e| ExecError::sys("create temporary directory", &base, e))
    };
    let merged = tmp(".merged-")?;
    let empty = if spec.lowerdirs.is_empty() {
        Some(tmp(".empty-")?)
    } else {
        None
    };
    let lowers: Vec<&Path> = match &empty {
        Some(e) => vec![e.path()],
        None => spec.lowerdirs.iter().map(PathBuf::as_path).collect(),
    };
    // overlayfs, or the copy snapshotter where overlayfs cannot be mounted (snapshot.rs).
    let snapshot = Snapshot::start(spec, &lowers, merged.path(), || {
        overlay::mount_overlay(
            &lowers,
            Some((&spec.upperdir, &spec.workdir)),
            merged.path(),
        )
    })?;

    let mut temps = TempMounts::new(&base);
    let result = match &spec.action {
        Action::Run(run) => {
            run::run_step(spec, run, merged.path(), snapshot.writes(spec), &mut temps)
        }
        Action::Copy(copy) => copy::copy_step(copy, merged.path(), &mut temps).map(|()| 0),
    };
    // Best effort: a failed unmount leaves an empty directory the caller owns anyway.
    let _ = umount2(merged.path(), MntFlags::MNT_DETACH);
    drop(temps);
    snapshot.finish(spec, result)
}

/// The host's resolver configuration, read before the helper leaves the host's mount namespace
/// view.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Enters the step's namespaces: for a `RUN`, first the network namespace its network mode asks
/// for (a new one with loopback up for `--network=none`, the build's shared one with pasta,
/// held by netholder.rs, for the default network), then those of its kind of step; then makes
/// every mount private to them.
fn isolate(action: &Action) -> Result<(), ExecError> {
    if let Action::Run(run) = action {
        match run.network {
            NetworkMode::Host => {}
            NetworkMode::None => {
                network::enter(NetworkMode::None, None, false)?;
            }
            NetworkMode::Private => network::join(run.netns.as_deref())?,
        }
    }
    namespaces::enter(namespaces::of(action))?;
    namespaces::make_mounts_private()
}
