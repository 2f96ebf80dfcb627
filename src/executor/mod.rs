//! Executor: runs one build step (a `RUN` command or a `COPY`) inside an image root filesystem.
//!
//! Level 2 (a port to the OS). A step runs in a re-executed helper: our own binary started as
//! `polyarch __sandbox`, which reads a JSON [`SandboxSpec`] from stdin and calls
//! [`sandbox_main`] before any async runtime exists (namespaces and `fork` need a
//! single-threaded process). The helper:
//! - unshares mount, PID, UTS and IPC namespaces, makes `/` recursively private and mounts an
//!   overlayfs (`lowerdir` = the image layers, `upperdir` = where this step's changes land), or
//!   where overlayfs cannot be mounted, copies the layers and compares afterwards to write the
//!   same upper directory (see [`Snapshotter`]);
//! - for [`Action::Run`], forks a child that becomes PID 1 of the new PID namespace, mounts
//!   `/proc` and `/sys` with runc's masks, a small `/dev` and `/etc/resolv.conf`, `pivot_root`s
//!   in a mount namespace of its own, keeps Docker's default capabilities, switches user, sets
//!   `no_new_privs`, closes inherited descriptors, loads Docker's default seccomp filter and
//!   `execve`s the command with exactly the given environment; mount points it had to create
//!   are removed from the upper directory afterwards so they never reach a layer;
//! - mounts what the step asks for ([`Mount`]: cache directories, read-only or throw-away views of
//!   other stages, tmpfs, files such as secrets that never touch the upper directory) and runs
//!   the step in a network namespace of its own: only loopback for `--network=none`, outbound
//!   access through pasta for the default network (the host's only for `--network=host`);
//! - for [`Action::Copy`], creates each [`crate::context::CopyEntry`] inside the merged root,
//!   resolving paths with `openat2(RESOLVE_IN_ROOT)` so nothing is written outside it; for
//!   `COPY --from` it first mounts the source stage's layers read-only and resolves the sources
//!   inside them.
//!
//! The coordinator side is the small [`Executor`] trait: [`SandboxExecutor`] spawns the helper with
//! tokio and streams its output line by line; [`RecordingExecutor`] is the fake for tests.
//!
//! Files, from plain data up to processes:
//! - `spec.rs`: what a step is ([`SandboxSpec`] and its parts), plain serde data; the
//!   [`Snapshotter`] it names is a plain value in `snapshot/snapshotter.rs`;
//! - `error.rs`: [`ExecError`] and the exit code class of each failure;
//! - `outcome.rs`: what a step gives back ([`OutputLine`], [`StepOutcome`]);
//! - `protocol.rs`: the helper's subcommand, exit status and stderr report lines;
//! - `snapshot/`: how the helper captures a step's changes (overlayfs, or copy and compare);
//! - `sandbox/`: the helper side, one file per layer of containment;
//! - `process.rs`: [`SandboxExecutor`], the coordinator side;
//! - `attach.rs`: [`SandboxExecutor::run_attached`], a command with this process's stdio
//!   (`polyarch run`): the helper reads its spec from a file and reports to another;
//! - `recording.rs`: [`RecordingExecutor`], the fake.
//!
//! This file holds the [`Executor`] trait, [`require_root`] and the re-exports (the helper's
//! entry point [`sandbox_main`] lives in `sandbox/mod.rs`); it runs nothing itself.

mod attach;
mod error;
mod outcome;
mod process;
mod protocol;
mod recording;
mod sandbox;
mod snapshot;
mod spec;

use std::future::Future;

pub use crate::progress::Stream;
pub use error::ExecError;
pub use outcome::{OutputLine, StepOutcome, TAIL_LINES};
pub use process::SandboxExecutor;
pub use protocol::{
    SANDBOX_ATTACH_FLAG, SANDBOX_ERROR_PREFIX, SANDBOX_ERROR_STATUS, SANDBOX_INFO_PREFIX,
    SANDBOX_SUBCOMMAND,
};
pub use recording::{RecordingExecutor, Scripted};
pub use sandbox::{network_main, sandbox_main, NETWORK_SUBCOMMAND};
pub use snapshot::{materialise_rootfs, Snapshotter};
pub use spec::{
    Action, Bpf, CopySpec, LayerSource, Mount, NetworkMode, OwnHandler, QemuCpu, RunSettings,
    RunSpec, SandboxSpec, Sensitive, Ulimit,
};

/// Runs build steps. Small on purpose: a real implementation and a recording fake.
pub trait Executor: Send + Sync {
    /// Runs one step; every output line goes to `on_line` as it arrives. A non-zero exit is an
    /// `Ok` outcome (see [`StepOutcome::into_result`]); `Err` means the step could not be run.
    fn run<F>(
        &self,
        spec: &SandboxSpec,
        on_line: F,
    ) -> impl Future<Output = Result<StepOutcome, ExecError>> + Send
    where
        F: FnMut(OutputLine) + Send;
}

/// Checks that this process can run steps (effective uid 0).
pub fn require_root() -> Result<(), ExecError> {
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        Ok(())
    } else {
        Err(ExecError::NotRoot { uid: uid.as_raw() })
    }
}

#[cfg(test)]
mod tests;
