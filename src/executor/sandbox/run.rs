//! The `RUN` step in the helper: the root filesystem's own mounts, the step's mounts and
//! hostname, then the forked PID 1 that execs the command; afterwards the scaffolding is removed
//! from the step's writes.
//!
//! Near the top of `sandbox/`: puts the layers below together in order for one `RUN` and does
//! nothing of its own beyond opening the root.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};
use rustix::fs::{Mode, OFlags};

use super::mounts::{self, TempMounts};
use super::scaffold::Scaffolding;
use super::{emulator, exec, namespaces, network, rootfs, HOST_RESOLV_CONF};
use crate::executor::error::{sys_rx, ExecError};
use crate::executor::spec::{NetworkMode, RunSpec, SandboxSpec};

/// The RUN path: scaffolding and mounts in the helper, then a child that becomes PID 1 of the new
/// PID namespace and execs the command; the helper waits, cleans up and returns the status.
///
/// `writes` is where the step's writes land (the overlay's upper directory, or the copied root):
/// mount points created there are removed again afterwards.
pub(super) fn run_step(
    spec: &SandboxSpec,
    run: &RunSpec,
    merged: &Path,
    writes: &Path,
    temps: &mut TempMounts,
) -> Result<i32, ExecError> {
    if run.argv.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    let resolv = resolv_conf(run, temps)?;
    let hosts = hosts_file(run, temps)?;
    let files = rootfs::StepFiles {
        resolv: &resolv,
        hosts: hosts.as_deref(),
        shm_size: run.settings.shm_size,
    };
    let root = rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open merged root", merged))?;
    let upper = rustix::fs::open(
        writes,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open upper directory", writes))?;
    let mut scaffold = Scaffolding::default();
    let result = (|| {
        let found = rootfs::prepare(root.as_fd(), upper.as_fd(), &mut scaffold, &files)?;
        // `--security=insecure` asks for the host's privileges, which a user namespace of the
        // step's own would take away: such a step gets its CPU model through `QEMU_CPU`.
        let emulator = match run
            .qemu_cpu
            .as_ref()
            .filter(|_| run.emulated && !run.insecure)
        {
            Some(cpu) => emulator::prepare(root.as_fd(), cpu)?,
            None => false,
        };
        mounts::apply(
            &run.mounts,
            root.as_fd(),
            upper.as_fd(),
            &mut scaffold,
            temps,
        )?;
        if !spec.hostname.is_empty() {
            namespaces::set_hostname(&spec.hostname)?;
        }
        namespaces::fork_and_wait(|| exec::pid1(run, merged, found, emulator))
    })();
    drop(root);
    // Detaching the overlay detaches everything mounted below it (umount(2), MNT_DETACH).
    let _ = umount2(merged, MntFlags::MNT_DETACH);
    scaffold.remove_from_upper(writes);
    result
}

/// The file bound onto the step's `/etc/resolv.conf`: the host's, or for the default network a
/// rewritten copy when the host's resolver is on its loopback (network.rs).
fn resolv_conf(run: &RunSpec, temps: &mut TempMounts) -> Result<PathBuf, ExecError> {
    let host = PathBuf::from(HOST_RESOLV_CONF);
    if run.network != NetworkMode::Private {
        return Ok(host);
    }
    let Some(text) = std::fs::read_to_string(&host)
        .ok()
        .and_then(|t| network::step_resolv_conf(&t))
    else {
        return Ok(host);
    };
    let path = temps.dir(".resolv-")?.join("resolv.conf");
    std::fs::write(&path, text).map_err(|e| ExecError::sys("write", &path, e))?;
    Ok(path)
}

/// The file bound onto the step's `/etc/hosts` when the build has `--add-host` entries:
/// `localhost` as BuildKit's hosts file has it, then one `ADDRESS\tNAME` line per entry.
/// `None` without entries (the image's own `/etc/hosts` stays).
fn hosts_file(run: &RunSpec, temps: &mut TempMounts) -> Result<Option<PathBuf>, ExecError> {
    if run.settings.extra_hosts.is_empty() {
        return Ok(None);
    }
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (name, address) in &run.settings.extra_hosts {
        text.push_str(&format!("{address}\t{name}\n"));
    }
    let path = temps.dir(".hosts-")?.join("hosts");
    std::fs::write(&path, text).map_err(|e| ExecError::sys("write", &path, e))?;
    Ok(Some(path))
}
