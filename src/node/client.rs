//! The coordinator's side of the worker protocol, over any [`Transport`]: start the worker,
//! check the handshake, then probe the node or run one platform's build on it.
//!
//! Failures are told apart here, because what to do differs: before the handshake they say what
//! to fix on the node (missing binary, old version, a chatty shell start-up file, ssh trouble);
//! during a build a vanished channel is [`NodeError::Lost`] (the platform moves to the next
//! candidate), while a build that ran and failed is [`NodeError::RemoteFailed`] (it would fail
//! anywhere).
//!
//! Level 2 (node port). Speaks the protocol only: must not decide where a platform runs or
//! retry elsewhere (the coordinator does).

use std::collections::VecDeque;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};

use super::protocol::{
    self, BuildJob, Frame, FrameError, FromWorker, ProbeReport, RemoteImage, ToWorker,
    WireCredentials, CHUNK, MAGIC, PROTOCOL_VERSION,
};
use super::{classify_ssh_failure, BoxFuture, NodeError, NodeSpec, Transport};
use crate::platform::Platform;
use crate::progress::Sink;

/// How long a started worker may take to say hello (ssh is connected already by then).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for a worker's exit status after its channel closed.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Lines of the worker's stderr kept for error messages.
const STDERR_TAIL: usize = 20;

/// This polyarch's version, sent and compared in the handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A started worker that passed the handshake.
pub struct Connection {
    node: NodeSpec,
    stdin: Pin<Box<dyn AsyncWrite + Send>>,
    stdout: BufReader<Pin<Box<dyn AsyncRead + Send>>>,
    exit: Option<BoxFuture<'static, Option<i32>>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_done: Option<tokio::task::JoinHandle<()>>,
    /// The node's polyarch version.
    pub version: String,
    /// The node's host platform.
    pub host: Platform,
    /// The remote command line that was run.
    pub command: Vec<String>,
}

/// Starts the worker on `node` and checks the handshake. Errors say what to fix, naming the node:
/// [`NodeError::MissingBinary`], [`NodeError::Incompatible`], [`NodeError::Garbage`], the ssh
/// errors of [`classify_ssh_failure`], or [`NodeError::Protocol`].
pub async fn connect(transport: &dyn Transport, node: &NodeSpec) -> Result<Connection, NodeError> {
    let proc = transport.spawn_worker(node).await?;
    tracing::debug!(node = %node.name, command = ?proc.command, "started the worker");
    let (stderr, stderr_done) = keep_stderr_tail(&node.name, proc.stderr);
    let mut conn = Connection {
        node: node.clone(),
        stdin: proc.stdin,
        stdout: BufReader::new(proc.stdout),
        exit: Some(proc.exit),
        stderr,
        stderr_done: Some(stderr_done),
        version: String::new(),
        host: Platform::host(),
        command: proc.command,
    };
    let hello = conn.read_hello().await?;
    match hello {
        Some(FromWorker::Hello {
            magic,
            protocol,
            version,
            host,
        }) if magic == MAGIC => {
            if protocol != PROTOCOL_VERSION {
                return Err(NodeError::Incompatible {
                    node: node.name.clone(),
                    local_version: VERSION.into(),
                    local_protocol: PROTOCOL_VERSION,
                    remote_version: Some(version),
                    remote_protocol: Some(protocol),
                });
            }
            conn.version = version;
            conn.host = host;
        }
        _ => {
            return Err(NodeError::Protocol {
                node: node.name.clone(),
                detail: "the worker's first message is not a polyarch hello".into(),
            })
        }
    }
    conn.send(&ToWorker::Hello {
        protocol: PROTOCOL_VERSION,
        version: VERSION.into(),
    })
    .await
    .map_err(|e| NodeError::Protocol {
        node: node.name.clone(),
        detail: format!("sending the handshake: {e}"),
    })?;
    Ok(conn)
}

/// Logs the worker's stderr (debug) and keeps its last [`STDERR_TAIL`] lines for error
/// messages; the task ends with the stream.
fn keep_stderr_tail(
    node: &str,
    stderr: Pin<Box<dyn AsyncRead + Send>>,
) -> (Arc<Mutex<VecDeque<String>>>, tokio::task::JoinHandle<()>) {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let tail = kept.clone();
    let name = node.to_string();
    let mut lines = BufReader::new(stderr).lines();
    let done = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(node = %name, "stderr: {line}");
            if let Ok(mut t) = tail.lock() {
                if t.len() == STDERR_TAIL {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    });
    (kept, done)
}

impl Connection {
    /// Reads the worker's first frame (bounded by [`HANDSHAKE_TIMEOUT`]): its message when it
    /// is JSON, `None` for another frame. A worker that ended, printed something else first or
    /// broke the framing is explained as an error naming the node.
    async fn read_hello(&mut self) -> Result<Option<FromWorker>, NodeError> {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, protocol::read_frame(&mut self.stdout))
            .await
            .map_err(|_| NodeError::Protocol {
                node: self.node.name.clone(),
                detail: format!(
                    "`{}` said nothing for {} s after it was started",
                    self.command.join(" "),
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            })?;
        match first {
            Ok(Some(Frame::Json(bytes))) => Ok(serde_json::from_slice::<FromWorker>(&bytes).ok()),
            Ok(Some(_)) => Ok(None),
            Ok(None) | Err(FrameError::Io(_)) => {
                let (code, tail) = self.finish().await;
                Err(self.before_handshake(code, &tail))
            }
            Err(FrameError::BadHeader { header }) => {
                let mut text = header.to_vec();
                let mut more = vec![0u8; 160];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(500), self.stdout.read(&mut more))
                        .await
                {
                    text.extend_from_slice(&more[..n]);
                }
                let excerpt = String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                Err(NodeError::Garbage {
                    node: self.node.name.clone(),
                    excerpt,
                })
            }
            Err(e) => Err(NodeError::Protocol {
                node: self.node.name.clone(),
                detail: format!("bad handshake: {e}"),
            }),
        }
    }

    async fn send(&mut self, msg: &ToWorker) -> Result<(), FrameError> {
        protocol::send(&mut self.stdin, msg).await
    }

    /// Waits (bounded) for the worker's exit and the end of its stderr; returns the exit code
    /// and the last stderr lines.
    async fn finish(&mut self) -> (Option<i32>, Vec<String>) {
        let code = match self.exit.take() {
            Some(exit) => tokio::time::timeout(EXIT_WAIT, exit).await.ok().flatten(),
            None => None,
        };
        if let Some(h) = self.stderr_done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
        let tail = self
            .stderr
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        (code, tail)
    }

    /// Explains a worker that ended before saying hello.
    fn before_handshake(&self, code: Option<i32>, tail: &[String]) -> NodeError {
        let text = tail.join("\n");
        let last = tail.last().cloned().unwrap_or_default();
        let node = self.node.name.clone();
        let lower = text.to_ascii_lowercase();
        if code == Some(127)
            || lower.contains("command not found")
            || (lower.contains("no such file or directory") && code != Some(255))
        {
            return NodeError::MissingBinary {
                node,
                program: self.node.program().to_string(),
                detail: if last.is_empty() {
                    "exit status 127".into()
                } else {
                    last
                },
            };
        }
        if code == Some(2)
            && (lower.contains("unrecognized subcommand") || lower.contains("unexpected argument"))
        {
            return NodeError::Incompatible {
                node,
                local_version: VERSION.into(),
                local_protocol: PROTOCOL_VERSION,
                remote_version: None,
                remote_protocol: None,
            };
        }
        if code == Some(255) {
            return classify_ssh_failure(&self.node, &text);
        }
        NodeError::Protocol {
            node,
            detail: format!(
                "`{}` exited ({}) before the handshake{}",
                self.command.join(" "),
                code.map(|c| format!("status {c}"))
                    .unwrap_or_else(|| "killed".into()),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            ),
        }
    }

    fn lost_detail(code: Option<i32>, tail: &[String], what: &str) -> String {
        let mut s = what.to_string();
        match code {
            Some(255) => s.push_str(" (ssh lost the connection: exit status 255)"),
            Some(c) => s.push_str(&format!(" (the worker exited with status {c})")),
            None => s.push_str(" (the worker was killed)"),
        }
        if let Some(l) = tail.iter().rev().find(|l| !l.trim().is_empty()) {
            s.push_str(&format!("; last output: {l}"));
        }
        s
    }

    /// Asks the node what it runs (its `polyarch qemu status --json` report) and how busy it is.
    pub async fn probe(mut self) -> Result<ProbeReport, NodeError> {
        let name = self.node.name.clone();
        let sent = self.send(&ToWorker::Probe).await;
        let answer = match sent {
            Ok(()) => protocol::recv::<_, FromWorker>(&mut self.stdout).await,
            Err(e) => Err(e),
        };
        let out = match answer {
            Ok(Some(FromWorker::Probe(report))) => Ok(*report),
            Ok(Some(FromWorker::Failed(f))) => Err(NodeError::RemoteFailed {
                node: name.clone(),
                platform: "probe".into(),
                message: f.message,
                causes: f.causes,
                hint: f.hint,
                code: f.exit_code,
            }),
            Ok(Some(other)) => Err(NodeError::Protocol {
                node: name.clone(),
                detail: format!("unexpected answer to a probe: {other:?}"),
            }),
            Ok(None) | Err(_) => {
                let (code, tail) = self.finish().await;
                return Err(NodeError::Protocol {
                    node: name,
                    detail: Self::lost_detail(code, &tail, "the channel closed during the probe"),
                });
            }
        };
        drop(self.stdin);
        out
    }

    /// Builds `job` on the node: sends the job and `credentials` (in their own frame), the
    /// context bundle at `bundle` unless the node has it already, forwards every progress event
    /// to `sink`, and returns the manifest the node pushed.
    ///
    /// A channel that ends before the result is [`NodeError::Lost`]; a build that failed there
    /// is [`NodeError::RemoteFailed`] with the node's message, causes, hint and exit code.
    pub async fn build(
        mut self,
        job: &BuildJob,
        credentials: Option<&WireCredentials>,
        bundle: &Path,
        sink: &dyn Sink,
    ) -> Result<RemoteImage, NodeError> {
        let platform = job.platform.to_string();
        let result = self.exchange(job, credentials, bundle, sink).await;
        match result {
            Ok(Ok(image)) => {
                drop(self.stdin);
                let _ = self.exit.take();
                Ok(image)
            }
            Ok(Err(failure)) => Err(failure),
            Err(what) => {
                let (code, tail) = self.finish().await;
                Err(NodeError::Lost {
                    node: self.node.name.clone(),
                    platform,
                    detail: Self::lost_detail(code, &tail, &what),
                })
            }
        }
    }

    /// The build exchange. `Err(text)` when the channel broke (the caller adds the exit status),
    /// `Ok(Err(_))` when the node answered with a failure or broke the protocol.
    async fn exchange(
        &mut self,
        job: &BuildJob,
        credentials: Option<&WireCredentials>,
        bundle: &Path,
        sink: &dyn Sink,
    ) -> Result<Result<RemoteImage, NodeError>, String> {
        let name = self.node.name.clone();
        let platform = job.platform.to_string();
        let broke = |e: FrameError| format!("the channel broke: {e}");
        self.send(&ToWorker::Build(Box::new(job.clone())))
            .await
            .map_err(broke)?;
        self.send(&ToWorker::Credentials {
            credentials: credentials.cloned(),
        })
        .await
        .map_err(broke)?;
        loop {
            let msg = match protocol::recv::<_, FromWorker>(&mut self.stdout).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err("the connection closed".into()),
                Err(FrameError::Io(e)) => return Err(format!("the connection failed: {e}")),
                Err(e) => {
                    return Ok(Err(NodeError::Protocol {
                        node: name,
                        detail: e.to_string(),
                    }))
                }
            };
            match msg {
                FromWorker::HaveContext => {
                    tracing::info!(node = %name, digest = %job.context.digest, "the node has the build context already");
                }
                FromWorker::NeedContext => {
                    tracing::info!(node = %name, digest = %job.context.digest, size = job.context.size, "sending the build context");
                    self.send_bundle(bundle).await?;
                }
                FromWorker::Event(e) => sink.emit(e),
                FromWorker::Done(image) => return Ok(Ok(image)),
                FromWorker::Failed(f) => {
                    return Ok(Err(NodeError::RemoteFailed {
                        node: name,
                        platform,
                        message: f.message,
                        causes: f.causes,
                        hint: f.hint,
                        code: f.exit_code,
                    }))
                }
                other => {
                    return Ok(Err(NodeError::Protocol {
                        node: name,
                        detail: format!("unexpected message during a build: {other:?}"),
                    }))
                }
            }
        }
    }

    async fn send_bundle(&mut self, bundle: &Path) -> Result<(), String> {
        let mut f = tokio::fs::File::open(bundle)
            .await
            .map_err(|e| format!("cannot open the bundle {}: {e}", bundle.display()))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read the bundle {}: {e}", bundle.display()))?;
            if n == 0 {
                break;
            }
            protocol::write_frame(&mut self.stdin, &Frame::Chunk(buf[..n].to_vec()))
                .await
                .map_err(|e| format!("the channel broke while sending the context: {e}"))?;
        }
        protocol::write_frame(&mut self.stdin, &Frame::End)
            .await
            .map_err(|e| format!("the channel broke while sending the context: {e}"))
    }
}
