//! An emulated step's CPU model kept out of its environment (issue 16): the step gets a
//! binfmt_misc instance of its own (Linux 6.7+ keeps one per user namespace and looks a program
//! up in the nearest one, Documentation/admin-guide/binfmt-misc.rst), holding one entry for its
//! architecture. The entry's interpreter is a one-line script named after the CPU model,
//! `#!/dev/.polyarch-emulator/qemu -cpu`, so that for every program the step executes the
//! kernel runs `qemu -cpu MODEL PROGRAM ARGV0 ARGS...` (binfmt_script passes the interpreter
//! name as registered, here the model, after the script's one argument). qemu reads the model
//! from its arguments: nothing in the step's environment, `/proc/self/environ` or image
//! config names it, and `env -i` children keep it.
//!
//! The step's command runs in a user namespace of its own (every id mapped to itself, by the
//! step's init, which stays in the host's), with a mount namespace it owns: its binfmt_misc
//! instance lives there, read-only. Inside that user namespace the capabilities of the host's
//! namespace are gone: `mknod` of a device and raw sockets of the build's network fail there,
//! as under Docker's `userns-remap` (the README's platform table). When the kernel refuses
//! the instance, the model goes to qemu as `QEMU_CPU` in the command's environment, as
//! before, with a note on the step's output.
//!
//! Layer of `sandbox/`: above the path helpers and devices.rs (it adds a directory to the
//! step's `/dev`); used by run.rs (the directory, before the root is entered) and exec.rs (the
//! fork of the step's init and the user namespace handshake).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::mount::{mount, MsFlags};
use nix::unistd::Pid;
use rustix::fs::{Mode, OFlags};

use super::paths::{fd_path, open_path_dir};
use crate::executor::error::{sys, sys_rx, ExecError};
use crate::executor::spec::{OwnHandler, QemuCpu};

/// The step's emulator directory: a small read-only tmpfs in its `/dev` (where BuildKit puts
/// its `/dev/.buildkit_qemu_emulator`), holding `qemu` (the host's static qemu-user, bound
/// read-only), the interpreter script named after the CPU model, and `binfmt_misc`, the mount
/// point of the step's own instance.
pub(super) const EMULATOR_DIR: &str = "/dev/.polyarch-emulator";

/// The directory's name inside `/dev`.
const DIR_NAME: &str = ".polyarch-emulator";

/// A CPU model's name is used as a file name: qemu's model names only.
fn valid_model(model: &str) -> bool {
    !model.is_empty()
        && !model.starts_with('.')
        && model.len() <= 64
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Makes the emulator directory in the step's `/dev` (under `root`, mounted by devices.rs), in
/// the helper's mount namespace before the root is entered. Returns false, changing nothing,
/// when there is nothing to make: no own handler (`QEMU_CPU` then), a model name that is not
/// one, or an image whose `/dev` is not a directory.
///
/// Errors: a mount, file creation or bind of the qemu binary that fails.
pub(super) fn prepare(root: BorrowedFd<'_>, cpu: &QemuCpu) -> Result<bool, ExecError> {
    let Some(handler) = cpu.handler.as_ref() else {
        return Ok(false);
    };
    if !valid_model(&cpu.model) {
        return Ok(false);
    }
    let Ok(dev) = open_path_dir(root, "dev") else {
        return Ok(false);
    };
    rustix::fs::mkdirat(&dev, DIR_NAME, Mode::from_raw_mode(0o755))
        .map_err(sys_rx("create", EMULATOR_DIR))?;
    let target = open_path_dir(dev.as_fd(), DIR_NAME).map_err(sys_rx("open", EMULATOR_DIR))?;
    // Executable (the script and qemu run from here), unlike the rest of `/dev`.
    mount(
        Some("tmpfs"),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=64k"),
    )
    .map_err(sys("mount tmpfs", EMULATOR_DIR))?;
    drop(target);
    // Re-open: the new tmpfs, empty, so no name in it is the image's.
    let dir = rustix::fs::openat(
        &dev,
        DIR_NAME,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open", EMULATOR_DIR))?;
    let script = format!("#!{EMULATOR_DIR}/qemu -cpu\n");
    write_new(dir.as_fd(), &cpu.model, script.as_bytes(), 0o555)?;
    write_new(dir.as_fd(), "qemu", b"", 0o555)?;
    rustix::fs::mkdirat(&dir, "binfmt_misc", Mode::from_raw_mode(0o755))
        .map_err(sys_rx("create", format!("{EMULATOR_DIR}/binfmt_misc")))?;
    mount(
        None::<&str>,
        &fd_path(dir.as_fd()),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(sys("remount read-only", EMULATOR_DIR))?;
    bind_qemu(dir.as_fd(), handler)?;
    Ok(true)
}

/// Creates `name` in `dir` with `bytes` and `mode` (exclusive: the directory is new).
fn write_new(dir: BorrowedFd<'_>, name: &str, bytes: &[u8], mode: u32) -> Result<(), ExecError> {
    let path = format!("{EMULATOR_DIR}/{name}");
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(sys_rx("create", path.clone()))?;
    std::fs::File::from(fd)
        .write_all(bytes)
        .map_err(|e| ExecError::sys("write", path.clone(), e))?;
    // The helper's umask is 0, but say the mode plainly.
    rustix::fs::chmodat(
        dir,
        name,
        Mode::from_raw_mode(mode),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(sys_rx("chmod", path))
}

/// Binds the host's qemu-user binary onto `qemu` in the emulator directory, read-only.
fn bind_qemu(dir: BorrowedFd<'_>, handler: &OwnHandler) -> Result<(), ExecError> {
    let path = format!("{EMULATOR_DIR}/qemu");
    let open_target = || {
        rustix::fs::openat(
            dir,
            "qemu",
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open", path.clone()))
    };
    let target = open_target()?;
    mount(
        Some(&handler.qemu),
        &fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind-mount", &handler.qemu))?;
    drop(target);
    // A bind mount's flags need a remount, on the new mount (mount(2), "MS_REMOUNT").
    let bound = open_target()?;
    mount(
        None::<&str>,
        &fd_path(bound.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(sys("remount read-only", path))
}

/// Which side of the fork of an emulated step's PID 1 this process is.
pub(super) enum Role {
    /// PID 1, the step's init (exec.rs `reap`): it stays in the host's user namespace.
    Init(Pid),
    /// The process that executes the command; `cpu_via_env`: its CPU model (if any) must go
    /// to qemu as `QEMU_CPU` in the command's environment (no own instance).
    Command { cpu_via_env: bool },
}

/// The messages of the handshake, one byte each.
const UNSHARED: u8 = b'U';
const NO_USERNS: u8 = b'N';
const MAPPED: u8 = b'M';
const NOT_MAPPED: u8 = b'E';

/// Forks an emulated step's PID 1 into the init and the command (exec.rs). With `ready` (the
/// emulator directory is there, [`prepare`]) and a handler in `cpu`, the command enters a user
/// and mount namespace of its own, the init maps every id of it to itself, and the command
/// mounts and fills its binfmt_misc instance. Returns which side this is.
///
/// Errors: the fork, the pipes, or a handshake or mapping that fails half-way.
pub(super) fn fork_init(cpu: Option<&QemuCpu>, ready: bool) -> Result<Role, ExecError> {
    let own = cpu.filter(|c| ready && c.handler.is_some());
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe", "-"));
    let pipes = match own {
        Some(_) => Some((pipe()?, pipe()?)),
        None => None,
    };
    // SAFETY: PID 1 of the step is single-threaded (forked from the single-threaded helper).
    match unsafe { nix::unistd::fork() }.map_err(sys("fork", "-"))? {
        nix::unistd::ForkResult::Child => {
            let cpu_via_env = match (own, pipes) {
                (Some(cpu), Some(((up_read, up_write), (down_read, down_write)))) => {
                    drop((up_read, down_write));
                    !own_instance(cpu, up_write, down_read)?
                }
                _ => cpu.is_some(),
            };
            Ok(Role::Command { cpu_via_env })
        }
        nix::unistd::ForkResult::Parent { child } => {
            if let Some(((up_read, up_write), (down_read, down_write))) = pipes {
                drop((up_write, down_read));
                map_ids(child, up_read, down_write)?;
            }
            Ok(Role::Init(child))
        }
    }
}

/// The command's side: a user and mount namespace of its own, the init's mapping awaited, its
/// binfmt_misc instance mounted with the one entry and made read-only. Returns false when the
/// kernel refuses the user namespace or the instance (a note on stderr says why).
fn own_instance(cpu: &QemuCpu, tell: OwnedFd, hear: OwnedFd) -> Result<bool, ExecError> {
    let Some(handler) = cpu.handler.as_ref() else {
        return Ok(false);
    };
    let mut tell = std::fs::File::from(tell);
    let flags = nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS;
    if let Err(e) = nix::sched::unshare(flags) {
        let _ = tell.write_all(&[NO_USERNS]);
        fallback_note(&cpu.model, &format!("no user namespace: {}", e.desc()));
        return Ok(false);
    }
    tell.write_all(&[UNSHARED])
        .map_err(|e| ExecError::sys("handshake", "-", e))?;
    let mut answer = [0u8; 1];
    let heard = std::fs::File::from(hear).read(&mut answer);
    if !matches!(heard, Ok(1) if answer[0] == MAPPED) {
        return Err(ExecError::sys(
            "map user namespace",
            "-",
            std::io::Error::other("the step's init did not map it"),
        ));
    }
    let mount_point = format!("{EMULATOR_DIR}/binfmt_misc");
    let noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(e) = mount(
        Some("binfmt_misc"),
        mount_point.as_str(),
        Some("binfmt_misc"),
        noexec,
        None::<&str>,
    ) {
        fallback_note(
            &cpu.model,
            &format!(
                "no binfmt_misc instance of its own (Linux 6.7 or newer): {}",
                e.desc()
            ),
        );
        return Ok(false);
    }
    // The interpreter is registered by the relative name `MODEL`: binfmt_script passes that
    // name to qemu after `-cpu`. `F` opens it now, from this directory; `P` keeps `argv[0]`.
    nix::unistd::chdir(EMULATOR_DIR).map_err(sys("chdir", EMULATOR_DIR))?;
    let line = format!(
        ":polyarch-{}:M::{}:{}:{}:PF",
        handler.name, handler.magic, handler.mask, cpu.model
    );
    let register = format!("{mount_point}/register");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&register)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| ExecError::sys("register binfmt_misc handler", register, e))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    mount(
        None::<&str>,
        mount_point.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | noexec,
        None::<&str>,
    )
    .map_err(sys("remount read-only", mount_point))?;
    Ok(true)
}

/// Says on the step's output that its CPU model reaches qemu through its environment.
fn fallback_note(model: &str, why: &str) {
    eprintln!(
        "polyarch: note: {why}; qemu's CPU model {model} is given as QEMU_CPU in the step's \
         environment"
    );
}

/// The init's side: once the command has its user namespace, maps every user and group id in
/// it to itself (`/proc/PID/uid_map`, `gid_map`: user_namespaces(7); only a process with
/// `CAP_SETUID` in the parent namespace may map more than its own id).
fn map_ids(child: Pid, hear: OwnedFd, tell: OwnedFd) -> Result<(), ExecError> {
    let mut first = [0u8; 1];
    let heard = std::fs::File::from(hear).read(&mut first);
    let mut tell = std::fs::File::from(tell);
    match heard {
        Ok(1) if first[0] == NO_USERNS => return Ok(()),
        Ok(1) if first[0] == UNSHARED => {}
        _ => {
            return Err(ExecError::sys(
                "map user namespace",
                "-",
                std::io::Error::other("the step's command ended before its user namespace"),
            ))
        }
    }
    let map = |file: &str| {
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, "0 0 4294967295\n").map_err(|e| ExecError::sys("write", path, e))
    };
    let mapped = map("uid_map").and_then(|()| map("gid_map"));
    let answer = if mapped.is_ok() { MAPPED } else { NOT_MAPPED };
    tell.write_all(&[answer])
        .map_err(|e| ExecError::sys("handshake", "-", e))?;
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_qemu_model_names_become_file_names() {
        for ok in ["arm926", "arm1176", "cortex-a8", "max", "Power9_v2.0"] {
            assert!(valid_model(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(!valid_model(bad), "{bad:?}");
        }
    }
}
