//! The `RUN` child's way from PID 1 of the new namespaces to `execve` of the command: a death
//! signal tied to the helper, default signal dispositions, the root (rootfs.rs), the working
//! directory, the capabilities, the user and groups, Docker's umask, `no_new_privs`, no
//! inherited descriptors, the seccomp filter, then the program looked up in the step's `PATH`
//! and executed with exactly the step's environment (under `PER_LINUX32` for 386 and arm; when
//! emulated as the child of PID 1, the step's init, and for a 32-bit ARM platform with the CPU
//! model in a binfmt_misc instance of its own, emulator.rs, or else `QEMU_CPU`).
//!
//! Top layer of containment in `sandbox/`: everything else is in place before [`pid1`] runs.
//! Here the root is entered (rootfs.rs), the capabilities limited (capabilities.rs) around the
//! user switch, `no_new_privs` set, every inherited descriptor above 2 closed, and the seccomp
//! filter (seccomp.rs) loaded last, right before `execve`.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use super::emulator::{self, Role};
use super::users::resolve_run_user;
use super::{capabilities, rootfs, seccomp};
use crate::executor::error::{sys, ExecError};
use crate::executor::protocol::{report_sandbox_error, SANDBOX_ERROR_STATUS};
use crate::executor::spec::RunSpec;

/// Docker's default `PATH` for Linux containers, used when the step's environment has none
/// (moby `oci/defaults.go` `DefaultPathEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Gives the command default signal dispositions and an empty signal mask, as runc does: an
/// ignored disposition survives execve(2) (signal(7)), and the Rust runtime ignores SIGPIPE, so
/// without this `yes | head -c 1` would spin on EPIPE forever instead of dying of SIGPIPE.
fn reset_signals() -> Result<(), ExecError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code.
        unsafe { sigaction(sig, &default) }.map_err(sys("sigaction", sig.as_str()))?;
    }
    // Real-time signals are outside `Signal`; the C library refuses its reserved ones (EINVAL),
    // which is fine: only ignored dispositions matter here.
    for signum in nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX() {
        // SAFETY: SIG_DFL runs no handler code; errors are deliberately ignored.
        unsafe { nix::libc::signal(signum, nix::libc::SIG_DFL) };
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("sigprocmask", "-"))?;
    Ok(())
}

/// Why the RUN child did not exec.
enum ChildError {
    /// The command cannot be executed: a step failure with a shell-like status (126, 127).
    Exec { status: i32, message: String },
    /// The sandbox could not be set up.
    Setup(ExecError),
}

impl From<ExecError> for ChildError {
    fn from(e: ExecError) -> Self {
        ChildError::Setup(e)
    }
}

/// In the child, PID 1 of the step's PID namespace: execs the command (and so never returns),
/// or returns the exit status for a failure: 126 or 127 when the command cannot be executed
/// (the message on stderr, as a shell prints it), [`SANDBOX_ERROR_STATUS`] with a report line
/// when the sandbox could not be set up. `emulator`: the step's emulator directory is there
/// (emulator.rs).
pub(super) fn pid1(run: &RunSpec, merged: &Path, found: rootfs::Prepared, emulator: bool) -> i32 {
    match child(run, merged, found, emulator) {
        Ok(never) => match never {},
        Err(ChildError::Exec { status, message }) => {
            eprintln!("{message}");
            status
        }
        Err(ChildError::Setup(e)) => {
            report_sandbox_error(&e);
            SANDBOX_ERROR_STATUS
        }
    }
}

/// The steps from PID 1 to the command, in order. An emulated step's PID 1 forks first: it
/// stays the step's init ([`reap`]), confined like the command, and the command gets its own
/// binfmt_misc instance when it has a CPU model (emulator.rs).
fn child(
    run: &RunSpec,
    merged: &Path,
    found: rootfs::Prepared,
    emulator: bool,
) -> Result<std::convert::Infallible, ChildError> {
    // If the helper is killed (a cancelled build), take the whole step down with it.
    nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL)).map_err(sys("prctl", "-"))?;
    reset_signals()?;
    rootfs::enter(merged, found, run.insecure)?;
    // Before the capabilities go and before a user namespace of the command's own: raising a
    // hard limit needs CAP_SYS_RESOURCE in the host's user namespace.
    set_ulimits(&run.settings.ulimits)?;
    let role = if run.emulated {
        emulator::fork_init(run.qemu_cpu.as_ref(), emulator)?
    } else {
        Role::Command { cpu_via_env: false }
    };
    enter_workdir(&run.cwd)?;
    // Capabilities before the user switch: a non-root user then loses the permitted and
    // effective ones as setuid(2) clears them; the bounding set stays restricted for all.
    capabilities::restrict(run.insecure)?;
    switch_user(run.user.as_deref())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    capabilities::no_new_privs(run.insecure)?;
    close_inherited_fds()?;
    set_personality(run.linux32)?;
    // Last: the filter blocks what the steps above needed (mount, unshare, ...).
    seccomp::load(run.insecure, run.seccomp.as_ref().map(|b| b.0.as_slice()))?;
    match role {
        Role::Init(command) => reap(command),
        Role::Command { cpu_via_env } => exec(run, cpu_via_env),
    }
}

/// `--ulimit`: setrlimit(2) for each limit (Docker's names, `RLIMIT_<NAME>`).
fn set_ulimits(limits: &[crate::executor::Ulimit]) -> Result<(), ExecError> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    for l in limits {
        let resource = match l.name.as_str() {
            "core" => Resource::Core,
            "cpu" => Resource::Cpu,
            "data" => Resource::Data,
            "fsize" => Resource::Fsize,
            "locks" => Resource::Locks,
            "memlock" => Resource::Memlock,
            "msgqueue" => Resource::Msgqueue,
            "nice" => Resource::Nice,
            "nofile" => Resource::Nofile,
            "nproc" => Resource::Nproc,
            "rss" => Resource::Rss,
            "rtprio" => Resource::Rtprio,
            "rttime" => Resource::Rttime,
            "sigpending" => Resource::Sigpending,
            "stack" => Resource::Stack,
            other => {
                return Err(ExecError::sys(
                    "setrlimit",
                    other,
                    io::Error::from(io::ErrorKind::InvalidInput),
                ))
            }
        };
        let limit = |v: u64| (v != u64::MAX).then_some(v);
        setrlimit(
            resource,
            Rlimit {
                current: limit(l.soft),
                maximum: limit(l.hard),
            },
        )
        .map_err(|e| ExecError::sys("setrlimit", &l.name, io::Error::from(e)))?;
    }
    Ok(())
}

/// `PER_LINUX32` for a 32-bit platform's step (linux/386, linux/arm/*): the kernel then reports
/// the 32-bit machine in uname(2) (`i686` on x86_64, `armv7l`/`armv8l` on arm64), natively and
/// for qemu, and the personality survives every execve(2) of the step (personality(2)). Docker's
/// seccomp profile allows this value too, so a step may set it itself.
fn set_personality(linux32: bool) -> Result<(), ExecError> {
    if linux32 {
        const PER_LINUX32: nix::libc::c_ulong = 0x0008;
        // SAFETY: a plain system call with a constant argument.
        if unsafe { nix::libc::personality(PER_LINUX32) } == -1 {
            return Err(ExecError::sys(
                "personality",
                "PER_LINUX32",
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// PID 1 of an emulated step, once the command is forked off ([`emulator::fork_init`]): stays
/// the step's init, reaping orphans until the command ends, then exits with its status (128 +
/// n for signal n, as the helper reports PID 1's). qemu-user ends a guest killed by a signal by
/// raising that signal on itself; PID 1 of a PID namespace ignores it (pid_namespaces(7): only
/// signals it has a handler for reach it), so qemu as PID 1 would wait forever instead of dying.
fn reap(command: nix::unistd::Pid) -> Result<std::convert::Infallible, ChildError> {
    use nix::sys::wait::{waitpid, WaitStatus};
    // The init is polyarch's helper: not dumpable (set after the user switch, which resets
    // it), so that the step (without CAP_SYS_PTRACE) can neither read /proc/1/exe, the host's
    // binary, nor trace it (ptrace(2), "Ptrace access mode checking").
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl", "PR_SET_DUMPABLE"))?;
    loop {
        let code = match waitpid(None::<nix::unistd::Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => SANDBOX_ERROR_STATUS,
        };
        // SAFETY: ends this process without running the parent's exit handlers.
        unsafe { nix::libc::_exit(code) }
    }
}

/// Changes to the step's working directory (`/` when empty), creating it (mode 0755) if missing.
fn enter_workdir(cwd: &str) -> Result<(), ExecError> {
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(|e| ExecError::sys("create working directory", cwd, e))?;
    nix::unistd::chdir(cwd).map_err(sys("chdir", cwd))?;
    Ok(())
}

/// Becomes the step's user (root when `None`) with its groups, looked up in the (already
/// entered) root's `/etc/passwd` and `/etc/group`.
fn switch_user(user: Option<&str>) -> Result<(), ExecError> {
    let (uid, gid, groups) = match user {
        None => (0, 0, vec![0]),
        Some(u) => {
            let passwd = std::fs::read_to_string("/etc/passwd").ok();
            let group = std::fs::read_to_string("/etc/group").ok();
            resolve_run_user(u, passwd.as_deref(), group.as_deref())?
        }
    };
    let groups: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).map_err(sys("setgroups", "-"))?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(sys("setgid", "-"))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(sys("setuid", "-"))?;
    Ok(())
}

/// Closes every descriptor above stderr (close_range(2)), so that nothing the polyarch process
/// or its caller left open without `O_CLOEXEC` reaches the step.
fn close_inherited_fds() -> Result<(), ExecError> {
    // SAFETY: a plain system call; no descriptor above 2 is used by this process afterwards
    // (the ones it holds are close-on-exec anyway).
    let r = unsafe { nix::libc::close_range(3, u32::MAX, 0) };
    if r != 0 {
        return Err(ExecError::sys(
            "close inherited descriptors",
            "-",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Looks the program up in the step's `PATH` and executes it with exactly the step's
/// environment (plus `QEMU_CPU` when `cpu_via_env`); returns only on failure.
fn exec(run: &RunSpec, cpu_via_env: bool) -> Result<std::convert::Infallible, ChildError> {
    let path_env = run
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let argv0 = &run.argv[0];
    let program = find_program(argv0, path_env).ok_or_else(|| ChildError::Exec {
        status: 127,
        message: format!("exec: {argv0:?}: executable file not found in $PATH"),
    })?;
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| ChildError::Exec {
            status: 127,
            message: format!("exec: argument {s:?} contains a NUL byte"),
        })
    };
    let prog =
        CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| ChildError::Exec {
            status: 127,
            message: format!("exec: {argv0:?}: NUL in path"),
        })?;
    let args = run
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    // Variables may hold secrets (`--mount=type=secret,env=`): an error names only the key.
    // Without an own binfmt_misc instance (emulator.rs), the platform's CPU model goes to the
    // interpreter as qemu-user reads it from the environment; a QEMU_CPU the step's own
    // environment sets wins.
    let cpu_env = run
        .qemu_cpu
        .as_ref()
        .filter(|_| cpu_via_env && !run.env.iter().any(|kv| kv.starts_with("QEMU_CPU=")))
        .map(|cpu| format!("QEMU_CPU={}", cpu.model));
    let env = run
        .env
        .iter()
        .chain(cpu_env.iter())
        .map(|kv| {
            CString::new(kv.as_str()).map_err(|_| ChildError::Exec {
                status: 127,
                message: format!(
                    "exec: environment variable {:?} contains a NUL byte",
                    kv.split('=').next().unwrap_or("")
                ),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let err = match nix::unistd::execve(&prog, &args, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let status = if err == nix::Error::ENOENT { 127 } else { 126 };
    Err(ChildError::Exec {
        status,
        message: format!("exec {}: {}", program.display(), io::Error::from(err)),
    })
}

/// `execvp`-style lookup: a name with `/` is used as is; otherwise the first executable regular
/// file among the `PATH` entries (an empty entry is the working directory).
pub(in crate::executor) fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        let md = std::fs::metadata(&candidate).ok()?;
        let executable =
            md.is_file() && rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok();
        executable.then_some(candidate)
    })
}
