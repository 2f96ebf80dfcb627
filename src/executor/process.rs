//! [`SandboxExecutor`], the real [`Executor`]: starts `polyarch __sandbox` per step with tokio,
//! sends it the spec, and reads its stdout and stderr together line by line, taking the helper's
//! own report lines out of the step's output.
//!
//! Level 2, the coordinator side of the helper boundary: async, spawns a process; it never enters
//! a namespace or mounts anything itself (that is the helper's part, `sandbox/`).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Child;

use super::outcome::{OutputLine, StepOutcome, TAIL_LINES};
use super::protocol::{
    parse_exact, SandboxFailure, SANDBOX_ERROR_PREFIX, SANDBOX_ERROR_STATUS, SANDBOX_INFO_PREFIX,
    SANDBOX_SUBCOMMAND,
};
use super::snapshot::{self, Snapshotter};
use super::spec::{Action, Bpf, NetworkMode, SandboxSpec};
use super::{ExecError, Executor};
use crate::layer::ExactEntry;
use crate::progress::Stream;

/// Longest output line passed on in one piece, in bytes; longer lines are split.
pub(super) const MAX_LINE: usize = 64 * 1024;

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
    /// The default network its steps share (started with the first step that needs it).
    pub network: SharedNetwork,
}

/// The network namespace the `RUN` steps of one executor (one build) share on the default
/// network: held by a `polyarch __network` process with pasta attached, started on first use,
/// ended when the last clone of the executor is dropped (its stdin closes) or polyarch dies.
#[derive(Debug, Clone, Default)]
pub struct SharedNetwork(Arc<tokio::sync::Mutex<Option<NetworkHolder>>>);

/// A running holder: the process and the namespace path steps join.
#[derive(Debug)]
struct NetworkHolder {
    /// Killed when dropped.
    _child: Child,
    /// Its stdin, held open: the holder ends when it closes.
    _stdin: tokio::process::ChildStdin,
    /// `/proc/PID/ns/net` of the holder.
    netns: PathBuf,
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
            network: SharedNetwork::default(),
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

    /// The spec as the helper gets it: a spec that leaves the snapshotter at `auto` gets this
    /// executor's.
    pub(super) fn with_default_snapshotter<'a>(
        &self,
        spec: &'a SandboxSpec,
    ) -> Cow<'a, SandboxSpec> {
        if spec.snapshotter == Snapshotter::Auto && self.snapshotter != Snapshotter::Auto {
            Cow::Owned(SandboxSpec {
                snapshotter: self.snapshotter,
                ..spec.clone()
            })
        } else {
            Cow::Borrowed(spec)
        }
    }

    /// Starts `program __sandbox` with piped stdin, stdout and stderr, killed when dropped.
    fn spawn(&self) -> Result<Child, ExecError> {
        // The helper gets no environment at all: the step's environment travels in the spec, and
        // nothing of ours (registry credentials included) can leak into a RUN.
        tokio::process::Command::new(&self.program)
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
            })
    }
}

impl SandboxExecutor {
    /// The spec with what the executor prepares once for all steps: the compiled seccomp filter,
    /// and for a `RUN` on the default network the shared network namespace, its holder started
    /// first if this is the first such step.
    ///
    /// Errors: [`ExecError::NoPasta`] when pasta is not installed (never a silent fall-back to
    /// the host's network); the holder's own failure ([`ExecError::Sandbox`]).
    pub(super) async fn with_network<'a>(
        &self,
        spec: Cow<'a, SandboxSpec>,
    ) -> Result<Cow<'a, SandboxSpec>, ExecError> {
        let filter = matches!(&spec.action, Action::Run(r) if !r.insecure && r.seccomp.is_none());
        let spec = if filter {
            let bpf = super::sandbox::seccomp_program()?;
            let mut owned = spec.into_owned();
            if let Action::Run(r) = &mut owned.action {
                r.seccomp = Some(Bpf(bpf.to_vec()));
            }
            Cow::Owned(owned)
        } else {
            spec
        };
        let needs = matches!(&spec.action, Action::Run(r) if r.network == NetworkMode::Private && r.netns.is_none());
        if !needs {
            return Ok(spec);
        }
        let mut held = self.network.0.lock().await;
        if held.is_none() {
            *held = Some(self.start_network().await?);
        }
        let netns = held.as_ref().map(|h| h.netns.clone());
        let mut owned = spec.into_owned();
        if let Action::Run(r) = &mut owned.action {
            r.netns = netns;
        }
        Ok(Cow::Owned(owned))
    }

    /// Starts `program __network PASTA` and waits for its `ready` line.
    async fn start_network(&self) -> Result<NetworkHolder, ExecError> {
        let pasta = which::which("pasta").map_err(|_| ExecError::NoPasta)?;
        let mut child = tokio::process::Command::new(&self.program)
            .arg(super::NETWORK_SUBCOMMAND)
            .arg(&pasta)
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
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExecError::HelperIo {
                action: "taking the network holder's pipes",
                source: std::io::Error::other("pipe missing"),
            });
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .map_err(io_err("reading the network holder's output"))?;
        if line.trim() != "ready" {
            let mut output = HelperOutput::new();
            let mut lines = lines_of(stderr, Stream::Stderr).boxed();
            while let Some(Ok(l)) = lines.next().await {
                output.sort(l, Path::new("network"));
            }
            let status = child
                .wait()
                .await
                .map_err(io_err("waiting for the network holder"))?;
            output.outcome(status_code(status))?;
            return Err(ExecError::HelperIo {
                action: "starting the step network",
                source: std::io::Error::other("the network holder ended without a word"),
            });
        }
        let netns = match child.id() {
            Some(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            None => {
                return Err(ExecError::HelperIo {
                    action: "starting the step network",
                    source: std::io::Error::other("the network holder ended"),
                })
            }
        };
        // Its stderr is not read again: it writes nothing more unless it fails.
        drop(stderr);
        Ok(NetworkHolder {
            _child: child,
            _stdin: stdin,
            netns,
        })
    }
}

/// Splits a pipe into lines (at most [`MAX_LINE`] bytes each) as a stream.
pub(super) fn lines_of<R: AsyncRead + Unpin + Send + 'static>(
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
pub(super) fn status_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(SANDBOX_ERROR_STATUS)
}

/// What the executor keeps of the helper's output while the step runs.
pub(super) struct HelperOutput {
    /// The last [`TAIL_LINES`] lines of the step's output.
    tail: VecDeque<String>,
    /// The helper's own error lines, in arrival order.
    failures: Vec<SandboxFailure>,
    /// The snapshotter the helper reported having used.
    used: Option<Snapshotter>,
    /// Entries the helper could not make exactly.
    exact: Vec<ExactEntry>,
}

impl HelperOutput {
    pub(super) fn new() -> HelperOutput {
        HelperOutput {
            tail: VecDeque::with_capacity(TAIL_LINES),
            failures: Vec::new(),
            used: None,
            exact: Vec::new(),
        }
    }

    /// Takes the helper's own lines ([`SANDBOX_ERROR_PREFIX`], [`SANDBOX_INFO_PREFIX`]) out of
    /// the output; a line of the step is kept in the tail and returned, to be passed on.
    /// `upperdir` names the step in the log when the helper falls back to copying.
    pub(super) fn sort(&mut self, line: OutputLine, upperdir: &Path) -> Option<OutputLine> {
        if line.stream == Stream::Stderr {
            if let Some(msg) = line.line.strip_prefix(SANDBOX_ERROR_PREFIX) {
                self.failures.push(SandboxFailure::parse(msg));
                return None;
            }
            if let Some(info) = line.line.strip_prefix(SANDBOX_INFO_PREFIX) {
                if let Some(e) = parse_exact(info) {
                    self.exact.push(e);
                    return None;
                }
                match snapshot::Report::parse(info) {
                    Some(snapshot::Report::Used(s)) => self.used = Some(s),
                    Some(snapshot::Report::Fallback(reason)) => tracing::info!(
                        upperdir = %upperdir.display(),
                        %reason,
                        "overlayfs cannot be mounted here; capturing the step by copy and compare"
                    ),
                    None => tracing::debug!(line = info, "unknown sandbox report"),
                }
                return None;
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.line.clone());
        Some(line)
    }

    /// How the step ended, given the helper's exit `status`: the helper's own failure when it
    /// exited with [`SANDBOX_ERROR_STATUS`] and said why, the step's status and tail otherwise.
    pub(super) fn outcome(self, status: i32) -> Result<StepOutcome, ExecError> {
        if status == SANDBOX_ERROR_STATUS && !self.failures.is_empty() {
            // The first failure is the cause; later ones (cleanup) only add to the message.
            let first = &self.failures[0];
            return Err(ExecError::Sandbox {
                message: self
                    .failures
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                exit: first.exit_code(),
                hint: self.failures.iter().find_map(|f| f.hint.clone()),
            });
        }
        Ok(StepOutcome {
            status,
            tail: self.tail.into_iter().collect(),
            snapshotter: self.used,
            exact: self.exact,
        })
    }
}

impl Executor for SandboxExecutor {
    async fn run<F>(&self, spec: &SandboxSpec, mut on_line: F) -> Result<StepOutcome, ExecError>
    where
        F: FnMut(OutputLine) + Send,
    {
        let spec = self.with_default_snapshotter(spec);
        let spec = self.with_network(spec).await?;
        let json =
            serde_json::to_vec(spec.as_ref()).map_err(|source| ExecError::BadSpec { source })?;
        let mut child = self.spawn()?;
        let io_err = |action| move |source| ExecError::HelperIo { action, source };
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExecError::HelperIo {
                action: "taking the helper's pipes",
                source: std::io::Error::other("pipe missing"),
            });
        };
        let mut output = HelperOutput::new();
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
                if let Some(line) = output.sort(line, &spec.upperdir) {
                    on_line(line);
                }
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
        output.outcome(status_code(status))
    }
}
