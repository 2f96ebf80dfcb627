//! [`SshTransport`]: the real [`Transport`], the system `ssh` through the `openssh` crate.
//!
//! One multiplexed master connection per node (`ssh -M`, `ControlPersist` bounded), opened on
//! first use with the user's own ssh configuration: `~/.ssh/config` (or `--ssh-config FILE`),
//! keys, agent and known_hosts. Host keys are checked strictly (`StrictHostKeyChecking=yes`): an
//! unknown or changed key fails, naming the node and the fix; polyarch never adds keys itself.
//! Each worker is one `ssh -S master` process running `PROGRAM worker --stdio` on the node;
//! nothing else goes on the remote command line.
//!
//! Level 2 (node port). Starts workers only: must not speak the protocol (that is
//! [`super::client`]'s).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::sync::OnceCell;

use super::{
    classify_ssh_failure, BoxFuture, NodeError, NodeSpec, Transport, WorkerProcess, WORKER_ARGS,
};

/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Keep-alive probes: a node that stops answering is noticed within three of these.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// How long an idle master connection outlives polyarch, should polyarch die without closing it.
const PERSIST_IDLE_SECS: usize = 120;

/// The real transport. Cheap to share behind an `Arc`; connections close when it is dropped.
pub struct SshTransport {
    // Dropped first: each session's drop asks its master to exit through the control socket,
    // which must still exist then (fields drop in declaration order).
    sessions: Mutex<HashMap<String, Arc<OnceCell<Arc<Session>>>>>,
    ssh_config: Option<PathBuf>,
    control_dir: tempfile::TempDir,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("ssh_config", &self.ssh_config)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// A transport using `ssh -F ssh_config` when given, else ssh's defaults. The control
    /// sockets live in a private temporary directory. Errors with [`NodeError::NoSshClient`]
    /// when `ssh` is not installed.
    pub fn new(ssh_config: Option<PathBuf>) -> Result<SshTransport, NodeError> {
        which::which("ssh").map_err(|e| NodeError::NoSshClient {
            source: std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
        })?;
        // Unix socket paths are short (108 bytes): keep the directory near the root of /tmp.
        let control_dir = tempfile::Builder::new()
            .prefix("polyarch-ssh-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|source| NodeError::ControlDir {
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(SshTransport {
            ssh_config,
            control_dir,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The master connection to `node`, opened on first use (once, even when asked
    /// concurrently; a failed attempt is retried by the next caller).
    async fn session(&self, node: &NodeSpec) -> Result<Arc<Session>, NodeError> {
        let cell = {
            let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(node.name.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let mut b = SessionBuilder::default();
            b.known_hosts_check(KnownHosts::Strict)
                .connect_timeout(CONNECT_TIMEOUT)
                .server_alive_interval(KEEPALIVE)
                .control_directory(self.control_dir.path())
                .control_persist(ControlPersist::IdleFor(
                    NonZeroUsize::new(PERSIST_IDLE_SECS).unwrap_or(NonZeroUsize::MIN),
                ));
            if let Some(u) = &node.user {
                b.user(u.clone());
            }
            if let Some(p) = node.port {
                b.port(p);
            }
            if let Some(c) = &self.ssh_config {
                b.config_file(c);
            }
            tracing::debug!(node = %node.name, address = %node.address(), "connecting");
            match b.connect(&node.host).await {
                Ok(s) => Ok(Arc::new(s)),
                Err(openssh::Error::Connect(e)) => Err(classify_ssh_failure(node, &e.to_string())),
                Err(e) => Err(NodeError::Ssh {
                    node: node.name.clone(),
                    address: node.address(),
                    detail: error_chain(&e),
                }),
            }
        })
        .await
        .cloned()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl Transport for SshTransport {
    fn spawn_worker<'a>(
        &'a self,
        node: &'a NodeSpec,
    ) -> BoxFuture<'a, Result<WorkerProcess, NodeError>> {
        Box::pin(async move {
            let session = self.session(node).await?;
            let program = node.program().to_string();
            let mut child = session
                .arc_command(program.clone())
                .args(WORKER_ARGS)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await
                .map_err(|e| match e {
                    openssh::Error::Ssh(source) => NodeError::NoSshClient { source },
                    other => NodeError::Ssh {
                        node: node.name.clone(),
                        address: node.address(),
                        detail: error_chain(&other),
                    },
                })?;
            let missing = |what: &str| NodeError::Ssh {
                node: node.name.clone(),
                address: node.address(),
                detail: format!("no {what} pipe to the remote command"),
            };
            let stdin = child.stdin().take().ok_or_else(|| missing("stdin"))?;
            let stdout = child.stdout().take().ok_or_else(|| missing("stdout"))?;
            let stderr = child.stderr().take().ok_or_else(|| missing("stderr"))?;
            let exit: BoxFuture<'static, Option<i32>> = Box::pin(async move {
                match child.wait().await {
                    Ok(status) => status.code(),
                    // openssh turns 255 (ssh's own failure, or a lost connection) and 127 (not
                    // found) into errors; give the codes back.
                    Err(openssh::Error::RemoteProcessTerminated) => Some(255),
                    Err(openssh::Error::Disconnected) => Some(255),
                    Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        Some(127)
                    }
                    Err(_) => None,
                }
            });
            let mut command = vec![program];
            command.extend(WORKER_ARGS.iter().map(|s| s.to_string()));
            Ok(WorkerProcess {
                stdin: Box::pin(stdin),
                stdout: Box::pin(stdout),
                stderr: Box::pin(stderr),
                exit,
                command,
            })
        })
    }
}
