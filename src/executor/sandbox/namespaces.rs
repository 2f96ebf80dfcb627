//! Namespaces: which ones a step gets, entering them (`unshare`), keeping its mounts from
//! propagating back to the host, its hostname, and the forked child that becomes PID 1 of the
//! new PID namespace, waited for by the helper.
//!
//! Layer of `sandbox/`, right above the path helpers: knows nothing of the image, its root
//! filesystem or the command; the network namespace is network.rs's choice.

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use crate::executor::error::{sys, ExecError};
use crate::executor::spec::Action;

/// The namespaces a step gets, apart from the network: a `RUN` its own mount, PID, UTS and IPC
/// namespaces; a `COPY` only a mount namespace (it runs nothing).
pub(super) fn of(action: &Action) -> CloneFlags {
    match action {
        Action::Run(_) => {
            CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
        }
        Action::Copy(_) => CloneFlags::CLONE_NEWNS,
    }
}

/// Moves the helper into new namespaces (unshare(2)). A new PID namespace is entered by the
/// helper's next child, not by the helper itself (pid_namespaces(7)).
pub(super) fn enter(flags: CloneFlags) -> Result<(), ExecError> {
    unshare(flags).map_err(sys("unshare", "-"))
}

/// Makes `/` recursively private in the new mount namespace.
pub(super) fn make_mounts_private() -> Result<(), ExecError> {
    // Nothing mounted below may propagate back to the host's mount namespace
    // (mount_namespaces(7), "MS_PRIVATE").
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make / rprivate", "/"))
}

/// Sets the hostname of the step's UTS namespace.
pub(super) fn set_hostname(hostname: &str) -> Result<(), ExecError> {
    nix::unistd::sethostname(hostname).map_err(sys("sethostname", "-"))
}

/// Forks the step's PID 1 (the helper's first child after `unshare(CLONE_NEWPID)`), which runs
/// `pid1` and exits with the status it returns, and waits for it. Returns its exit status, or
/// 128 + n when signal n killed it.
pub(super) fn fork_and_wait(pid1: impl FnOnce() -> i32) -> Result<i32, ExecError> {
    // SAFETY: the helper is single-threaded (sandbox_main runs before any runtime), so the
    // child may use any function, not only async-signal-safe ones.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork", "-"))? {
        ForkResult::Child => std::process::exit(pid1()),
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => break Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => break Ok(128 + sig as i32),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => break Err(sys("waitpid", "-")(e)),
            }
        },
    }
}
