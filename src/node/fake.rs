//! [`FakeTransport`]: an in-memory [`Transport`] for tests. Each node gets a scripted worker (an
//! async function over in-memory pipes) or a connection error; every start is recorded with its
//! command line. It reproduces on demand what real nodes do only by accident: a worker that
//! drops mid-build, speaks another protocol version, or prints junk.
//!
//! Level 2 (node port), for tests: no process, no network.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::DuplexStream;

use super::protocol::{self, FromWorker, ToWorker, MAGIC};
use super::{BoxFuture, NodeError, NodeSpec, Transport, WorkerProcess, WORKER_ARGS};
use crate::platform::Platform;

/// Pipe capacity of the in-memory streams.
const PIPE: usize = 1 << 16;

/// The worker's ends of its standard streams.
pub struct FakeWorkerIo {
    /// What the coordinator writes (the worker's stdin).
    pub stdin: DuplexStream,
    /// What the coordinator reads (the worker's stdout).
    pub stdout: DuplexStream,
    /// The worker's stderr.
    pub stderr: DuplexStream,
}

impl FakeWorkerIo {
    /// Sends a hello with `protocol`, then reads the coordinator's hello (`None` if it hung up).
    pub async fn handshake(&mut self, protocol: u32) -> Option<ToWorker> {
        let _ = protocol::send(
            &mut self.stdout,
            &FromWorker::Hello {
                magic: MAGIC.into(),
                protocol,
                version: "fake".into(),
                host: Platform::host(),
            },
        )
        .await;
        protocol::recv(&mut self.stdin).await.ok().flatten()
    }

    /// Reads the next message from the coordinator (`None` at the end or on an error).
    pub async fn recv(&mut self) -> Option<ToWorker> {
        protocol::recv(&mut self.stdin).await.ok().flatten()
    }

    /// Sends `msg` to the coordinator (errors ignored: the coordinator may have gone).
    pub async fn send(&mut self, msg: &FromWorker) {
        let _ = protocol::send(&mut self.stdout, msg).await;
    }
}

/// A scripted worker: gets the worker's pipes, returns its exit code.
pub type Behaviour = Arc<dyn Fn(FakeWorkerIo) -> BoxFuture<'static, i32> + Send + Sync>;

/// One recorded start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// The node.
    pub node: String,
    /// The command line it was started with.
    pub command: Vec<String>,
}

/// The in-memory transport.
#[derive(Default)]
pub struct FakeTransport {
    workers: Mutex<HashMap<String, Behaviour>>,
    failures: Mutex<HashMap<String, String>>,
    calls: Mutex<Vec<FakeCall>>,
}

impl FakeTransport {
    /// A transport with no nodes: starting a worker anywhere fails as unreachable.
    pub fn new() -> FakeTransport {
        FakeTransport::default()
    }

    /// Node `name` runs `behaviour` for every worker started on it.
    pub fn set_worker(&self, name: &str, behaviour: Behaviour) {
        self.failures.lock().unwrap().remove(name);
        self.workers
            .lock()
            .unwrap()
            .insert(name.to_string(), behaviour);
    }

    /// Starting a worker on `name` fails the way ssh fails with the message `ssh_says`.
    pub fn set_ssh_failure(&self, name: &str, ssh_says: &str) {
        self.workers.lock().unwrap().remove(name);
        self.failures
            .lock()
            .unwrap()
            .insert(name.to_string(), ssh_says.to_string());
    }

    /// Every start so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().unwrap().clone()
    }
}

impl Transport for FakeTransport {
    fn spawn_worker<'a>(
        &'a self,
        node: &'a NodeSpec,
    ) -> BoxFuture<'a, Result<WorkerProcess, NodeError>> {
        Box::pin(async move {
            let mut command = vec![node.program().to_string()];
            command.extend(WORKER_ARGS.iter().map(|s| s.to_string()));
            self.calls.lock().unwrap().push(FakeCall {
                node: node.name.clone(),
                command: command.clone(),
            });
            if let Some(text) = self.failures.lock().unwrap().get(&node.name) {
                return Err(super::classify_ssh_failure(node, text));
            }
            let behaviour = self
                .workers
                .lock()
                .unwrap()
                .get(&node.name)
                .cloned()
                .ok_or_else(|| NodeError::Unreachable {
                    node: node.name.clone(),
                    address: node.address(),
                    detail: "no such fake node".into(),
                })?;
            let (coord_in, worker_in) = tokio::io::duplex(PIPE);
            let (worker_out, coord_out) = tokio::io::duplex(PIPE);
            let (worker_err, coord_err) = tokio::io::duplex(PIPE);
            let task = tokio::spawn(behaviour(FakeWorkerIo {
                stdin: worker_in,
                stdout: worker_out,
                stderr: worker_err,
            }));
            Ok(WorkerProcess {
                stdin: Box::pin(coord_in),
                stdout: Box::pin(coord_out),
                stderr: Box::pin(coord_err),
                exit: Box::pin(async move { task.await.ok() }),
                command,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::client;
    use crate::node::protocol::{ProbeReport, PROTOCOL_VERSION};
    use tokio::io::AsyncWriteExt;

    fn spec(name: &str) -> NodeSpec {
        crate::node::spec::parse_node_arg(&format!("{name}=ssh://root@127.0.0.1:2222")).unwrap()
    }

    fn behaviour<F, Fut>(f: F) -> Behaviour
    where
        F: Fn(FakeWorkerIo) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = i32> + Send + 'static,
    {
        Arc::new(move |io| Box::pin(f(io)))
    }

    #[tokio::test]
    async fn handshake_then_probe() {
        let t = FakeTransport::new();
        t.set_worker(
            "a",
            behaviour(|mut io| async move {
                let hello = io.handshake(PROTOCOL_VERSION).await;
                assert!(matches!(hello, Some(ToWorker::Hello { .. })));
                assert_eq!(io.recv().await, Some(ToWorker::Probe));
                io.send(&FromWorker::Probe(Box::new(ProbeReport {
                    version: "fake".into(),
                    host: Platform::host(),
                    qemu: serde_json::json!({"platforms": []}),
                    running_builds: 2,
                })))
                .await;
                0
            }),
        );
        let conn = client::connect(&t, &spec("a")).await.unwrap();
        assert_eq!(conn.version, "fake");
        let report = conn.probe().await.unwrap();
        assert_eq!(report.running_builds, 2);
        assert_eq!(
            t.calls(),
            [FakeCall {
                node: "a".into(),
                command: vec!["polyarch".into(), "worker".into(), "--stdio".into()]
            }]
        );
    }

    #[tokio::test]
    async fn another_protocol_version_is_incompatible_and_names_the_node() {
        let t = FakeTransport::new();
        t.set_worker(
            "old",
            behaviour(|mut io| async move {
                io.handshake(PROTOCOL_VERSION + 7).await;
                0
            }),
        );
        let e = client::connect(&t, &spec("old")).await.err().unwrap();
        assert!(
            matches!(&e, NodeError::Incompatible { remote_protocol: Some(p), .. } if *p == PROTOCOL_VERSION + 7),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("node old: "), "{e}");
    }

    #[tokio::test]
    async fn missing_program_junk_and_old_binaries_are_told_apart() {
        let t = FakeTransport::new();
        t.set_worker(
            "missing",
            behaviour(|mut io| async move {
                let _ = io
                    .stderr
                    .write_all(b"bash: line 1: polyarch: command not found\n")
                    .await;
                127
            }),
        );
        t.set_worker(
            "chatty",
            behaviour(|mut io| async move {
                let _ = io.stdout.write_all(b"Welcome to the build farm!\n").await;
                0
            }),
        );
        t.set_worker(
            "ancient",
            behaviour(|mut io| async move {
                let _ = io
                    .stderr
                    .write_all(b"error: unrecognized subcommand 'worker'\n")
                    .await;
                2
            }),
        );
        t.set_ssh_failure("keyed", "Host key verification failed.\n");
        let e = client::connect(&t, &spec("missing")).await.err().unwrap();
        assert!(matches!(e, NodeError::MissingBinary { .. }), "{e:?}");
        assert!(e.to_string().contains("command not found"), "{e}");
        let e = client::connect(&t, &spec("chatty")).await.err().unwrap();
        assert!(
            matches!(&e, NodeError::Garbage { excerpt, .. } if excerpt == "Welcome to the build farm!"),
            "{e:?}"
        );
        let e = client::connect(&t, &spec("ancient")).await.err().unwrap();
        assert!(
            matches!(
                e,
                NodeError::Incompatible {
                    remote_version: None,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = client::connect(&t, &spec("keyed")).await.err().unwrap();
        assert!(matches!(e, NodeError::HostKey { .. }), "{e:?}");
    }
}
