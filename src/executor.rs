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
//!   `/proc`, a small `/dev` and the host's `/etc/resolv.conf`, `chroot`s, switches user and
//!   `execve`s the command with exactly the given environment; mount points it had to create are
//!   removed from the upper directory afterwards so they never reach a layer;
//! - mounts what the step asks for ([`Mount`]: cache directories, read-only or throw-away views of
//!   other stages, tmpfs, files such as secrets that never touch the upper directory) and, for
//!   `--network=none`, runs the step in a new network namespace with only loopback;
//! - for [`Action::Copy`], creates each [`CopyEntry`] inside the merged root, resolving paths with
//!   `openat2(RESOLVE_IN_ROOT)` so nothing is written outside it; for `COPY --from` it first
//!   mounts the source stage's layers read-only and resolves the sources inside them.
//!
//! The coordinator side is the small [`Executor`] trait: [`SandboxExecutor`] spawns the helper with
//! tokio and streams its output line by line; [`RecordingExecutor`] is the fake for tests.

mod sandbox;
mod sandbox_mounts;
mod snapshot;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

use crate::context::CopyEntry;
use crate::exit::{Classify, ExitCode};

/// The hidden subcommand that starts the helper (`polyarch __sandbox`).
pub const SANDBOX_SUBCOMMAND: &str = "__sandbox";

/// How many output lines [`StepOutcome::tail`] keeps.
pub const TAIL_LINES: usize = 30;

/// The helper's exit status when it failed before or instead of running the step (as `docker
/// run` uses 125 for its own errors); a stderr line starting with [`SANDBOX_ERROR_PREFIX`] says
/// why.
pub const SANDBOX_ERROR_STATUS: i32 = 125;

/// Prefix of the helper's own error line on stderr.
pub const SANDBOX_ERROR_PREFIX: &str = "polyarch-sandbox-error: ";

/// Prefix of the helper's report lines on stderr (`snapshotter=<name>`, `fallback=<reason>`),
/// taken out of the step's output by [`SandboxExecutor`].
pub const SANDBOX_INFO_PREFIX: &str = "polyarch-sandbox-info: ";

/// Longest output line passed on in one piece, in bytes; longer lines are split.
const MAX_LINE: usize = 64 * 1024;

/// Everything the helper needs for one step, sent as JSON on its stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Read-only layer directories, top-most first (overlayfs `lowerdir` order). Empty for a
    /// `FROM scratch` image.
    pub lowerdirs: Vec<PathBuf>,
    /// Where this step's changes land (overlayfs `upperdir`).
    pub upperdir: PathBuf,
    /// Overlayfs work directory: empty, on the same filesystem as `upperdir`.
    pub workdir: PathBuf,
    /// What to do in the merged root.
    pub action: Action,
    /// Hostname inside the step's UTS namespace.
    pub hostname: String,
    /// How the step's changes are captured; `auto` (also when absent from the JSON) lets
    /// [`SandboxExecutor::snapshotter`] decide, then the helper.
    #[serde(default)]
    pub snapshotter: Snapshotter,
}

/// The step itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Execute a command (a `RUN`).
    Run(RunSpec),
    /// Create files from the build context (a `COPY`).
    Copy(CopySpec),
}

/// Bytes that must never be printed (secret values): `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sensitive(pub Vec<u8>);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes, redacted>", self.0.len())
    }
}

/// Something mounted into a RUN step's root filesystem. Mounts never reach the step's layer:
/// only the mount points the helper had to create are left in the upper directory, and those are
/// removed afterwards when still empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A host directory, bind-mounted (cache mounts).
    Bind {
        /// The host directory.
        source: PathBuf,
        /// Absolute path in the root filesystem.
        target: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// An overlay of host directories (a stage's or image's layers, the build context), of which
    /// `subpath` is mounted. Read-write views get a throw-away upper directory.
    Layers {
        /// The directories, top-most first.
        lowerdirs: Vec<PathBuf>,
        /// The path inside the view to mount (`/` for all of it).
        subpath: String,
        /// Absolute path in the root filesystem.
        target: String,
        /// Mounted read-only; otherwise writes are discarded after the step.
        readonly: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Absolute path in the root filesystem.
        target: String,
        /// Size limit in bytes; `None` is the kernel default.
        size: Option<u64>,
    },
    /// A read-only file held in memory (a secret, a heredoc script), placed on a private tmpfs.
    File {
        /// Absolute path in the root filesystem.
        target: String,
        /// The contents.
        content: Sensitive,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// The network a RUN step sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// The host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only the loopback interface (up).
    None,
}

/// A command to execute inside the root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Program and arguments. A program without `/` is looked up in `PATH` from `env` (or
    /// Docker's default `PATH` when `env` has none), inside the root filesystem.
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs: exactly this environment, nothing inherited.
    pub env: Vec<String>,
    /// Absolute working directory in the root filesystem; created (mode 0755) if missing.
    pub cwd: String,
    /// `name|uid[:group|gid]`, resolved in the root filesystem's `/etc/passwd` and `/etc/group`;
    /// `None` is root.
    pub user: Option<String>,
    /// Mounts, applied in order of their target's depth (parents first).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The network namespace.
    #[serde(default)]
    pub network: NetworkMode,
}

/// Files to create inside the root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySpec {
    /// Entries, parents before children (as [`crate::context::BuildContext::resolve_copy`]
    /// returns them).
    pub entries: Vec<CopyEntry>,
    /// `--chown`: `name|uid[:group|gid]` resolved in the root filesystem; a missing group means
    /// the same number as the user (Dockerfile reference, COPY --chown). `None` is `0:0`.
    #[serde(default)]
    pub chown: Option<String>,
    /// `--chmod`: permission bits for every copied file and directory, overriding the source's.
    #[serde(default)]
    pub chmod: Option<u32>,
    /// `--chmod` in symbolic form, applied to each entry's own mode.
    #[serde(default)]
    pub chmod_symbolic: Option<crate::plan::SymbolicMode>,
    /// `COPY --from`: sources resolved inside the root filesystem made of these layers (mounted
    /// read-only by the helper), copied before `entries`.
    #[serde(default)]
    pub from_layers: Option<LayerSource>,
    /// Layers to look `--chown` names up in instead of the destination root (`COPY --link`
    /// copies onto an empty tree, but names still mean what the image's passwd says).
    #[serde(default)]
    pub ids_from: Option<Vec<PathBuf>>,
}

/// Files of another stage or image to copy: what [`crate::context::BuildContext::rootfs`]
/// resolves inside the mounted layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSource {
    /// The source root filesystem's layers, top-most first (empty for `scratch`).
    pub lowerdirs: Vec<PathBuf>,
    /// Source paths (wildcards allowed), relative to that root.
    pub sources: Vec<String>,
    /// Absolute destination; a trailing `/` means "into this directory".
    pub dest: String,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// Clamp copied mtimes to this (`SOURCE_DATE_EPOCH`).
    pub max_mtime: Option<i64>,
}

pub use crate::progress::Stream;
pub use snapshot::Snapshotter;

/// One line of a step's output, without its line terminator (invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    /// Where it came from.
    pub stream: Stream,
    /// The text.
    pub line: String,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Exit status: the command's exit code, or 128 + signal number when it was killed.
    pub status: i32,
    /// The last [`TAIL_LINES`] lines of output (both streams, in arrival order).
    pub tail: Vec<String>,
    /// The snapshotter the helper reports having used (`overlay` or `copy`); `None` when it
    /// reported none (a fake executor, or a failure before the root filesystem was set up).
    pub snapshotter: Option<Snapshotter>,
}

impl StepOutcome {
    /// True for status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// `Ok(self)` for status 0, otherwise [`ExecError::StepFailed`] carrying status and tail.
    pub fn into_result(self) -> Result<StepOutcome, ExecError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ExecError::StepFailed {
                status: self.status,
                tail: self.tail,
            })
        }
    }
}

/// Errors from running a step, on either side of the helper boundary.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The sandbox helper's parent (the polyarch that started it) is gone: nothing is run.
    #[error("the polyarch process that started this sandbox helper is gone; nothing was run")]
    Orphaned,
    /// Not running as root.
    #[error("RUN steps need root here (running as uid {uid}): namespaces, overlayfs and chroot are privileged")]
    NotRoot {
        /// The effective uid.
        uid: u32,
    },
    /// The helper process could not be started.
    #[error("cannot start the sandbox helper {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Talking to the helper failed (writing its spec, reading its output, waiting for it).
    #[error("sandbox helper i/o failed while {action}")]
    HelperIo {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The helper reported its own failure (namespaces, mounts, user lookup, copying), with the
    /// class it gave it: bad input (2) for what the Dockerfile names, host (4) otherwise.
    #[error("{}{message}", if *.exit == ExitCode::Host { "sandbox: " } else { "" })]
    Sandbox {
        /// The helper's message (error and causes joined by `: `).
        message: String,
        /// The exit code class the helper gave the error.
        exit: ExitCode,
        /// Advice the helper gave, if any.
        hint: Option<String>,
    },
    /// The step ran longer than allowed and was killed.
    #[error("step timed out after {after:?} and was killed")]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The step exited non-zero.
    #[error("step failed with exit status {status}")]
    StepFailed {
        /// The exit status (128 + n for signal n).
        status: i32,
        /// Last lines of output.
        tail: Vec<String>,
    },
    /// Helper side: the spec on stdin is not valid JSON for [`SandboxSpec`].
    #[error("invalid sandbox spec on stdin")]
    BadSpec {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Helper side: a system call failed.
    #[error("{action} failed for {path}")]
    Sys {
        /// What was being done (`mount overlay`, `unshare`, `chroot`, ...).
        action: &'static str,
        /// The path involved (or `-`).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Helper side: a path cannot be given to overlayfs (contains `,`, `:` or `\`).
    #[error("path {path} cannot be used as an overlayfs directory (contains `,`, `:` or `\\`)")]
    BadOverlayPath {
        /// The path.
        path: PathBuf,
    },
    /// Helper side: the overlayfs options exceed the kernel's one-page limit.
    #[error(
        "overlayfs options for {layers} layers are {len} bytes, over the kernel's 4096-byte limit"
    )]
    TooManyLayers {
        /// Number of lower directories.
        layers: usize,
        /// Length of the option string.
        len: usize,
    },
    /// Helper side: a user or group name is not in the root filesystem's passwd/group files.
    #[error("unknown {what} {name:?} in the image's /etc/{file}")]
    UnknownUser {
        /// `user` or `group`.
        what: &'static str,
        /// The name.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
    /// Helper side: a copy destination conflicts with what is in the root filesystem.
    #[error("cannot copy to {dest}: {reason}")]
    CopyConflict {
        /// The destination path in the root filesystem.
        dest: String,
        /// What is in the way.
        reason: String,
    },
    /// Helper side: the step has nothing to run.
    #[error("RUN has an empty command")]
    EmptyCommand,
    /// Helper side: a mount target cannot be made (something of another kind is in the way).
    #[error("cannot mount at {target}: {reason}")]
    MountTarget {
        /// The target path in the root filesystem.
        target: String,
        /// What is in the way.
        reason: String,
    },
    /// Helper side: a `COPY --from` source could not be resolved in the source stage.
    #[error("COPY --from: {source}")]
    CopySource {
        /// The cause.
        #[source]
        source: Box<crate::context::ContextError>,
    },
}

/// Helper-side actions on paths that the Dockerfile names inside the image (`WORKDIR`, `COPY`
/// destinations, mount targets): when one of them fails because of what the image has there,
/// the input is at fault, not the host.
const IMAGE_PATH_ACTIONS: &[&str] = &[
    "create working directory",
    "chdir",
    "open directory",
    "create directory",
    "create file",
    "create symlink",
    "replace",
    "create mount point",
    "stat mount point",
    "open mount point",
    "open mount",
    "stat",
    "read symlink",
];

/// Errors that say "the image has something else at this path" (open(2), mkdir(2)): a file where
/// a directory is needed or the reverse, a symlink loop, a name too long.
fn is_path_conflict(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        [
            Errno::LOOP,
            Errno::NOTDIR,
            Errno::EXIST,
            Errno::ISDIR,
            Errno::NAMETOOLONG,
        ]
        .iter()
        .any(|x| x.raw_os_error() == n)
    })
}

impl Classify for ExecError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ExecError::StepFailed { .. } | ExecError::Timeout { .. } => ExitCode::StepFailed,
            ExecError::Sandbox { exit, .. } => *exit,
            ExecError::UnknownUser { .. }
            | ExecError::EmptyCommand
            | ExecError::MountTarget { .. }
            | ExecError::CopyConflict { .. }
            | ExecError::CopySource { .. } => ExitCode::BadInput,
            ExecError::Sys { action, source, .. }
                if IMAGE_PATH_ACTIONS.contains(action) && is_path_conflict(source) =>
            {
                ExitCode::BadInput
            }
            _ => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ExecError::NotRoot { .. } => Some(
                "run polyarch as root (e.g. with sudo); rootless RUN steps are not supported yet"
                    .into(),
            ),
            ExecError::TooManyLayers { .. } => {
                Some("store layers under a shorter path, or squash the base image".into())
            }
            ExecError::Sandbox { hint, .. } => hint.clone(),
            ExecError::UnknownUser { what: "user", .. } => Some(
                "add the user to the image's /etc/passwd first (e.g. RUN useradd NAME), or use a \
                 numeric uid"
                    .into(),
            ),
            ExecError::UnknownUser { .. } => Some(
                "add the group to the image's /etc/group first (e.g. RUN groupadd NAME), or use a \
                 numeric gid"
                    .into(),
            ),
            ExecError::Sys {
                action: "create working directory" | "chdir",
                path,
                ..
            } if self.exit_code() == ExitCode::BadInput => Some(format!(
                "WORKDIR {} is (or is under) something that is not a directory in the image: \
                 choose another working directory",
                path.display()
            )),
            ExecError::Sys { path, .. } if self.exit_code() == ExitCode::BadInput => Some(format!(
                "{} (or a directory above it) is not what the step needs in the image (a file \
                 where a directory is needed, or the reverse): choose another path",
                path.display()
            )),
            ExecError::CopyConflict { .. } => {
                Some("remove what is in the way first (RUN rm ...), or copy to another path".into())
            }
            _ => None,
        }
    }
}

/// The helper's error line after [`SANDBOX_ERROR_PREFIX`]: JSON, so that the class and hint
/// travel with the message whatever characters it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SandboxFailure {
    /// The exit code class ([`ExitCode::code`]).
    exit: i32,
    /// Error and causes joined by `: `.
    message: String,
    /// Advice, if any.
    #[serde(default)]
    hint: Option<String>,
}

impl SandboxFailure {
    /// Builds the line's content from a helper-side error.
    fn of(e: &ExecError) -> SandboxFailure {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        SandboxFailure {
            exit: e.exit_code().code(),
            message,
            hint: e.hint(),
        }
    }

    /// Reads a line's content; anything that is not such JSON is a host failure with the text as
    /// its message.
    fn parse(line: &str) -> SandboxFailure {
        serde_json::from_str(line).unwrap_or_else(|_| SandboxFailure {
            exit: ExitCode::Host.code(),
            message: line.to_string(),
            hint: None,
        })
    }

    /// The class as an [`ExitCode`]; unknown numbers are host failures.
    fn exit_code(&self) -> ExitCode {
        [ExitCode::StepFailed, ExitCode::BadInput, ExitCode::Registry]
            .into_iter()
            .find(|c| c.code() == self.exit)
            .unwrap_or(ExitCode::Host)
    }
}

impl ExecError {
    fn sys(action: &'static str, path: impl Into<PathBuf>, e: impl Into<std::io::Error>) -> Self {
        ExecError::Sys {
            action,
            path: path.into(),
            source: e.into(),
        }
    }
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

/// Entry point of `polyarch __sandbox`: reads a [`SandboxSpec`] as JSON from stdin, performs it
/// and returns the process exit status (the command's status, 128 + n for a signal, or
/// [`SANDBOX_ERROR_STATUS`] after printing a [`SANDBOX_ERROR_PREFIX`] line on stderr).
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
    let mut input = Vec::new();
    let result = std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| ExecError::sys("read spec from stdin", "-", e))
        .and_then(|_| {
            serde_json::from_slice::<SandboxSpec>(&input)
                .map_err(|source| ExecError::BadSpec { source })
        })
        .and_then(|spec| sandbox::run(&spec));
    match result {
        Ok(status) => status,
        Err(e) => {
            report_sandbox_error(&e);
            SANDBOX_ERROR_STATUS
        }
    }
}

/// Prints the helper's error line: [`SANDBOX_ERROR_PREFIX`] then a JSON object with the exit
/// code class (`exit`), the message (error and causes joined by `: `) and an optional `hint`.
fn report_sandbox_error(e: &ExecError) {
    let failure = SandboxFailure::of(e);
    let line = serde_json::to_string(&failure).unwrap_or_else(|_| failure.message.clone());
    eprintln!("{SANDBOX_ERROR_PREFIX}{line}");
}

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

/// The real executor: spawns `program __sandbox` per step.
#[derive(Debug, Clone)]
pub struct SandboxExecutor {
    /// Path of the polyarch binary (normally [`std::env::current_exe`]).
    pub program: PathBuf,
    /// Kill the step after this long; `None` waits forever.
    pub timeout: Option<Duration>,
    /// The snapshotter for specs that leave it at `auto` (`--snapshotter`,
    /// `POLYARCH_SNAPSHOTTER`).
    pub snapshotter: Snapshotter,
}

impl SandboxExecutor {
    /// An executor re-executing the current binary, without a timeout.
    pub fn current_exe() -> Result<SandboxExecutor, ExecError> {
        let program = std::env::current_exe().map_err(|source| ExecError::Spawn {
            program: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        Ok(SandboxExecutor {
            program,
            timeout: None,
            snapshotter: Snapshotter::Auto,
        })
    }

    /// The same executor with a step timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> SandboxExecutor {
        self.timeout = Some(timeout);
        self
    }

    /// The same executor, capturing steps with `snapshotter` unless a spec names one itself.
    pub fn with_snapshotter(mut self, snapshotter: Snapshotter) -> SandboxExecutor {
        self.snapshotter = snapshotter;
        self
    }
}

/// Splits a pipe into lines (at most [`MAX_LINE`] bytes each) as a stream.
fn lines_of<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    stream: Stream,
) -> impl futures::Stream<Item = Result<OutputLine, std::io::Error>> + Send {
    futures::stream::unfold(Some(BufReader::new(reader)), move |state| async move {
        let mut reader = state?;
        let mut buf = Vec::new();
        loop {
            let chunk = match reader.fill_buf().await {
                Ok(c) => c,
                Err(e) => return Some((Err(e), None)),
            };
            if chunk.is_empty() {
                if buf.is_empty() {
                    return None;
                }
                break;
            }
            let room = MAX_LINE - buf.len();
            let window = &chunk[..chunk.len().min(room)];
            if let Some(nl) = window.iter().position(|b| *b == b'\n') {
                buf.extend_from_slice(&window[..nl]);
                reader.consume(nl + 1);
                break;
            }
            let n = window.len();
            buf.extend_from_slice(window);
            reader.consume(n);
            if buf.len() >= MAX_LINE {
                break;
            }
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let line = OutputLine {
            stream,
            line: String::from_utf8_lossy(&buf).into_owned(),
        };
        Some((Ok(line), Some(reader)))
    })
}

/// Exit status of a finished process: its code, or 128 + signal.
fn status_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(SANDBOX_ERROR_STATUS)
}

impl Executor for SandboxExecutor {
    async fn run<F>(&self, spec: &SandboxSpec, mut on_line: F) -> Result<StepOutcome, ExecError>
    where
        F: FnMut(OutputLine) + Send,
    {
        let spec = if spec.snapshotter == Snapshotter::Auto && self.snapshotter != Snapshotter::Auto
        {
            std::borrow::Cow::Owned(SandboxSpec {
                snapshotter: self.snapshotter,
                ..spec.clone()
            })
        } else {
            std::borrow::Cow::Borrowed(spec)
        };
        let json =
            serde_json::to_vec(spec.as_ref()).map_err(|source| ExecError::BadSpec { source })?;
        // The helper gets no environment at all: the step's environment travels in the spec, and
        // nothing of ours (registry credentials included) can leak into a RUN.
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SANDBOX_SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let io_err = |action| move |source| ExecError::HelperIo { action, source };
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExecError::HelperIo {
                action: "taking the helper's pipes",
                source: std::io::Error::other("pipe missing"),
            });
        };
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        let mut sandbox_failures: Vec<SandboxFailure> = Vec::new();
        let mut used: Option<Snapshotter> = None;
        let body = async {
            stdin
                .write_all(&json)
                .await
                .map_err(io_err("writing the step spec"))?;
            drop(stdin);
            let mut lines = futures::stream::select(
                lines_of(stdout, Stream::Stdout).boxed(),
                lines_of(stderr, Stream::Stderr).boxed(),
            );
            while let Some(line) = lines.next().await {
                let line = line.map_err(io_err("reading step output"))?;
                if line.stream == Stream::Stderr {
                    if let Some(msg) = line.line.strip_prefix(SANDBOX_ERROR_PREFIX) {
                        sandbox_failures.push(SandboxFailure::parse(msg));
                        continue;
                    }
                    if let Some(info) = line.line.strip_prefix(SANDBOX_INFO_PREFIX) {
                        match snapshot::Report::parse(info) {
                            Some(snapshot::Report::Used(s)) => used = Some(s),
                            Some(snapshot::Report::Fallback(reason)) => tracing::info!(
                                upperdir = %spec.upperdir.display(),
                                %reason,
                                "overlayfs cannot be mounted here; capturing the step by copy and compare"
                            ),
                            None => tracing::debug!(line = info, "unknown sandbox report"),
                        }
                        continue;
                    }
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.line.clone());
                on_line(line);
            }
            child.wait().await.map_err(io_err("waiting for the helper"))
        };
        let status = match self.timeout {
            None => body.await?,
            Some(after) => match tokio::time::timeout(after, body).await {
                Ok(r) => r?,
                Err(_) => {
                    // SIGKILL to the helper; its child (PID 1 of the step's PID namespace) has
                    // PR_SET_PDEATHSIG = SIGKILL, and with PID 1 gone the kernel kills the rest.
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(ExecError::Timeout { after });
                }
            },
        };
        let status = status_code(status);
        if status == SANDBOX_ERROR_STATUS && !sandbox_failures.is_empty() {
            // The first failure is the cause; later ones (cleanup) only add to the message.
            let first = &sandbox_failures[0];
            return Err(ExecError::Sandbox {
                message: sandbox_failures
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                exit: first.exit_code(),
                hint: sandbox_failures.iter().find_map(|f| f.hint.clone()),
            });
        }
        Ok(StepOutcome {
            status,
            tail: tail.into_iter().collect(),
            snapshotter: used,
        })
    }
}

/// A scripted result for [`RecordingExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// Lines fed to the callback, in order.
    pub lines: Vec<OutputLine>,
    /// The exit status to report.
    pub status: i32,
}

/// A fake [`Executor`] that records every spec and plays back scripted outcomes in order
/// (status 0 and no output once the script is exhausted).
#[derive(Debug, Default)]
pub struct RecordingExecutor {
    calls: Mutex<Vec<SandboxSpec>>,
    script: Mutex<VecDeque<Scripted>>,
}

impl RecordingExecutor {
    /// An executor whose every step succeeds silently.
    pub fn new() -> RecordingExecutor {
        RecordingExecutor::default()
    }

    /// Appends a scripted outcome for the next unscripted call.
    pub fn push(&self, status: i32, lines: Vec<OutputLine>) {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Scripted { lines, status });
    }

    /// The specs run so far, in call order.
    pub fn calls(&self) -> Vec<SandboxSpec> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Executor for RecordingExecutor {
    async fn run<F>(&self, spec: &SandboxSpec, mut on_line: F) -> Result<StepOutcome, ExecError>
    where
        F: FnMut(OutputLine) + Send,
    {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(spec.clone());
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(Scripted {
                lines: Vec::new(),
                status: 0,
            });
        let skip = scripted.lines.len().saturating_sub(TAIL_LINES);
        let tail = scripted.lines[skip..]
            .iter()
            .map(|l| l.line.clone())
            .collect();
        for line in scripted.lines {
            on_line(line);
        }
        Ok(StepOutcome {
            status: scripted.status,
            tail,
            snapshotter: None,
        })
    }
}

#[cfg(test)]
mod tests;
