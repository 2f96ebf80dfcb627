//! Build nodes: other machines that build some platforms of a build, reached over SSH.
//!
//! Level 2 (a port). A node is declared with `--node NAME=ssh://[USER@]HOST[:PORT][?...]` or in a
//! nodes file ([`NodeSpec`], [`spec`]). The [`Transport`] trait is the small edge to the other
//! machine: it starts `polyarch worker --stdio` there and hands back its standard streams.
//! [`ssh::SshTransport`] is the real one (the system `ssh` through the `openssh` crate, so the
//! user's ssh config, keys and known_hosts apply); [`fake::FakeTransport`] runs scripted workers
//! in memory and records what was started. [`client`] speaks the [`protocol`] over either:
//! handshake, probe, build. [`bundle`] packs the build context for the trip.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::exit::{Classify, ExitCode};
use crate::platform::Platform;

pub mod bundle;
pub mod client;
pub mod fake;
pub mod protocol;
pub mod spec;
pub mod ssh;

pub use spec::{NodeSet, NodeSpec};

/// A boxed future, for the object-safe [`Transport`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The arguments a node's polyarch is started with; nothing else ever goes on the remote command
/// line (credentials travel in a protocol frame).
pub const WORKER_ARGS: [&str; 2] = ["worker", "--stdio"];

/// A worker process started on a node: its standard streams and its exit.
pub struct WorkerProcess {
    /// Its standard input (protocol frames to the worker).
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    /// Its standard output (protocol frames from the worker).
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Its standard error (diagnostics, kept for error messages).
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves when it exits: its exit code (`255`: ssh lost the connection or failed, `127`:
    /// the program was not found), `None` when unknown (killed by a signal).
    pub exit: BoxFuture<'static, Option<i32>>,
    /// The remote command line, as run (for logs and tests).
    pub command: Vec<String>,
}

/// The edge to other machines: starts the worker on a node.
pub trait Transport: Send + Sync {
    /// Starts `PROGRAM worker --stdio` on `node` (connecting first if needed). Errors name the
    /// node: [`NodeError::Unreachable`], [`NodeError::HostKey`], [`NodeError::AuthFailed`],
    /// [`NodeError::Ssh`].
    fn spawn_worker<'a>(
        &'a self,
        node: &'a NodeSpec,
    ) -> BoxFuture<'a, Result<WorkerProcess, NodeError>>;
}

/// Errors about nodes. Every variant names the node (and its address where there is one) and
/// never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A `--node` value or nodes-file entry that does not parse.
    #[error("node {input:?}: {reason}")]
    InvalidSpec {
        /// The value as given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// The nodes file cannot be read.
    #[error("cannot read nodes file {path}: {source}")]
    ReadNodesFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The nodes file is not valid.
    #[error("nodes file {path}: {message}")]
    NodesFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (TOML error with line and column, or a bad entry).
        message: String,
    },
    /// Two nodes with one name.
    #[error("two nodes are named {name:?}")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// `polyarch node check NAME` for a name no declaration has.
    #[error("no node named {name:?} is declared (declared: {known})")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// The node cannot be reached over the network (refused, timed out, unknown host).
    #[error("node {node} ({address}) is unreachable: {detail}")]
    Unreachable {
        /// The node.
        node: String,
        /// Its address.
        address: String,
        /// ssh's explanation.
        detail: String,
    },
    /// The node's host key is not the one known_hosts has, or known_hosts has none.
    #[error("node {node} ({address}): host key verification failed: {detail}")]
    HostKey {
        /// The node.
        node: String,
        /// Its address.
        address: String,
        /// ssh's explanation.
        detail: String,
        /// The host as known_hosts names it (`[host]:port` for a port other than 22).
        known_hosts_name: String,
        /// True when known_hosts has another key for it; false when it has none.
        changed: bool,
    },
    /// The node refused our keys.
    #[error("node {node} ({address}): authentication failed: {detail}")]
    AuthFailed {
        /// The node.
        node: String,
        /// Its address.
        address: String,
        /// ssh's explanation.
        detail: String,
    },
    /// ssh failed some other way.
    #[error("node {node} ({address}): ssh failed: {detail}")]
    Ssh {
        /// The node.
        node: String,
        /// Its address.
        address: String,
        /// ssh's explanation.
        detail: String,
    },
    /// The private directory for ssh's control sockets cannot be made.
    #[error("cannot create a directory for ssh control sockets in {path}: {source}")]
    ControlDir {
        /// Where it was to be made.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The local `ssh` program cannot be run.
    #[error("cannot run the local ssh client: {source}")]
    NoSshClient {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// polyarch is not installed on the node (or not on the PATH of a non-interactive ssh
    /// session there).
    #[error("node {node}: `{program}` was not found there ({detail})")]
    MissingBinary {
        /// The node.
        node: String,
        /// The program that was run.
        program: String,
        /// The shell's message.
        detail: String,
    },
    /// The node's polyarch speaks another protocol version.
    #[error(
        "node {node}: its polyarch {} is incompatible with this one ({local_version}, protocol {local_protocol})",
        remote_version.as_deref().map(|v| format!("{v} (protocol {})", remote_protocol.map(|p| p.to_string()).unwrap_or_else(|| "?".into()))).unwrap_or_else(|| "(too old to have `polyarch worker`)".into())
    )]
    Incompatible {
        /// The node.
        node: String,
        /// This polyarch's version.
        local_version: String,
        /// This polyarch's protocol version.
        local_protocol: u32,
        /// The node's version, when it said.
        remote_version: Option<String>,
        /// The node's protocol version, when it said.
        remote_protocol: Option<u32>,
    },
    /// Something on the node printed text where the worker's first frame should be.
    #[error("node {node}: something printed text before polyarch's handshake: {excerpt:?}")]
    Garbage {
        /// The node.
        node: String,
        /// The start of what was printed.
        excerpt: String,
    },
    /// The worker broke the protocol, or exited before answering.
    #[error("node {node}: {detail}")]
    Protocol {
        /// The node.
        node: String,
        /// What happened (with the end of the worker's stderr when there is one).
        detail: String,
    },
    /// The node dropped during a build: connection lost or the worker died. The platform is
    /// retried on the next candidate.
    #[error("node {node} dropped while building {platform}: {detail}")]
    Lost {
        /// The node.
        node: String,
        /// The platform it was building.
        platform: String,
        /// What was seen (exit status, the end of its stderr).
        detail: String,
    },
    /// The build ran on the node and failed there (a step failed, the registry refused, ...).
    #[error("node {node}: {message}{}", causes.iter().map(|c| format!("\n  caused by (on {node}): {c}")).collect::<String>())]
    RemoteFailed {
        /// The node.
        node: String,
        /// The platform.
        platform: String,
        /// The node's error message.
        message: String,
        /// Its causes.
        causes: Vec<String>,
        /// Its hint.
        hint: Option<String>,
        /// The exit code the node's error maps to.
        code: i32,
    },
    /// The build context cannot be walked (unreadable, non-UTF-8 names, ...).
    #[error(transparent)]
    Context(Box<crate::context::ContextError>),
    /// The build context could not be packed or unpacked.
    #[error("build context bundle: {what} {path}: {source}")]
    Bundle {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bundle that is not what its digest or format says.
    #[error("build context bundle {digest}: {reason}")]
    BadBundle {
        /// Its announced digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
}

impl NodeError {
    /// True when the node dropped mid-build and the platform may go to the next candidate.
    pub fn is_lost(&self) -> bool {
        matches!(self, NodeError::Lost { .. })
    }

    /// True when the node simply cannot be reached now (a build then goes on without it).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, NodeError::Unreachable { .. })
    }
}

impl Classify for NodeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            NodeError::InvalidSpec { .. }
            | NodeError::ReadNodesFile { .. }
            | NodeError::NodesFile { .. }
            | NodeError::DuplicateName { .. }
            | NodeError::UnknownNode { .. } => ExitCode::BadInput,
            NodeError::Unreachable { .. } | NodeError::Lost { .. } => ExitCode::Registry,
            NodeError::Context(e) => e.exit_code(),
            NodeError::RemoteFailed { code, .. } => match code {
                1 => ExitCode::StepFailed,
                2 => ExitCode::BadInput,
                3 => ExitCode::Registry,
                _ => ExitCode::Host,
            },
            _ => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            NodeError::HostKey {
                known_hosts_name,
                changed: true,
                ..
            } => Some(format!(
                "if the node was reinstalled, remove its old key with `ssh-keygen -R \
                 '{known_hosts_name}'` and accept the new one after checking its fingerprint \
                 (connect once with ssh); polyarch never accepts host keys itself"
            )),
            NodeError::HostKey {
                known_hosts_name,
                changed: false,
                ..
            } => Some(format!(
                "add the key of {known_hosts_name} to known_hosts after checking its \
                 fingerprint (connect once with ssh and answer yes); polyarch never accepts host \
                 keys itself"
            )),
            NodeError::AuthFailed { node, .. } => Some(format!(
                "make `ssh` log in to node {node} without a password (ssh-copy-id, an \
                 IdentityFile in ~/.ssh/config or --ssh-config, or ssh-agent)"
            )),
            NodeError::Unreachable { node, .. } => Some(format!(
                "check that node {node} is up and its sshd listens there; `polyarch node check \
                 {node}` retries"
            )),
            NodeError::MissingBinary { node, .. } => Some(format!(
                "install polyarch on node {node} (the same version as here, {}), or give its \
                 path: --node {node}=ssh://HOST?polyarch=/path/to/polyarch, or `polyarch = \
                 \"/path/to/polyarch\"` in the nodes file (a non-interactive ssh session has a \
                 short PATH)",
                env!("CARGO_PKG_VERSION")
            )),
            NodeError::Incompatible {
                node,
                local_version,
                ..
            } => Some(format!(
                "install polyarch {local_version} on node {node} (both ends must speak protocol \
                 {})",
                protocol::PROTOCOL_VERSION
            )),
            NodeError::Garbage { node, .. } => Some(format!(
                "a shell start-up file on node {node} (~/.bashrc, ~/.profile) prints text for \
                 non-interactive sessions: make it print nothing unless interactive"
            )),
            NodeError::NoSshClient { .. } => {
                Some("install the OpenSSH client (Debian: openssh-client)".into())
            }
            NodeError::RemoteFailed { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

/// Turns ssh's own message (the text it prints when it fails) into the error that says what to
/// do: host key, authentication, unreachable, or other.
pub fn classify_ssh_failure(node: &NodeSpec, text: &str) -> NodeError {
    let detail = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .filter(|l| !l.starts_with('@') && !l.starts_with("IT IS POSSIBLE"))
        .take(4)
        .collect::<Vec<_>>()
        .join("; ");
    let detail = if detail.is_empty() {
        "ssh exited with status 255 and said nothing".to_string()
    } else {
        detail
    };
    let (node_name, address) = (node.name.clone(), node.address());
    let lower = text.to_ascii_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
        || lower.contains("host key for")
        || lower.contains("host key is known for")
    {
        // ssh names the host as known_hosts does (after resolving a config alias):
        // "Host key for [127.0.0.1]:2201 has changed ..." or "No ED25519 host key is known for
        // [127.0.0.1]:2201 and you have requested strict checking."
        let named = regex::Regex::new(
            r"(?:Host key for|host key is known for) (\S+) (?:has changed|and you)",
        )
        .ok()
        .and_then(|re| re.captures(text).map(|c| c[1].to_string()));
        let key_lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("host key")
                    || l.starts_with("offending")
                    || l.contains("host key is known for")
            })
            .collect();
        NodeError::HostKey {
            node: node_name,
            address,
            detail: if key_lines.is_empty() {
                detail
            } else {
                key_lines.join("; ")
            },
            known_hosts_name: named.unwrap_or_else(|| node.known_hosts_name()),
            changed: lower.contains("has changed") || lower.contains("offending"),
        }
    } else if lower.contains("permission denied") || lower.contains("too many authentication") {
        NodeError::AuthFailed {
            node: node_name,
            address,
            detail,
        }
    } else if [
        "connection refused",
        "timed out",
        "no route to host",
        "could not resolve",
        "network is unreachable",
        "name or service not known",
        "connection closed by",
        "connection reset",
    ]
    .iter()
    .any(|s| lower.contains(s))
    {
        NodeError::Unreachable {
            node: node_name,
            address,
            detail,
        }
    } else {
        NodeError::Ssh {
            node: node_name,
            address,
            detail,
        }
    }
}

/// The platforms a node is declared for, for messages (`what it runs natively` without a
/// declaration).
pub fn declared_text(platforms: Option<&[Platform]>) -> String {
    match platforms {
        None => "its native platforms".into(),
        Some(list) => list
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failures_are_told_apart_and_name_the_node_and_the_fix() {
        let n: NodeSpec = spec::parse_node_arg("arm=ssh://root@127.0.0.1:2201").unwrap();
        let changed = "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
                       @@@@@@@@@@@\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
                       Host key for [127.0.0.1]:2201 has changed and you have requested strict checking.\n\
                       Host key verification failed.\n";
        let e = classify_ssh_failure(&n, changed);
        assert!(matches!(e, NodeError::HostKey { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("node arm (ssh://root@127.0.0.1:2201): host key verification failed"),
            "{msg}"
        );
        assert!(e
            .hint()
            .unwrap()
            .contains("ssh-keygen -R '[127.0.0.1]:2201'"));
        assert_eq!(e.exit_code(), ExitCode::Host);

        let e = classify_ssh_failure(&n, "root@127.0.0.1: Permission denied (publickey).\n");
        assert!(matches!(e, NodeError::AuthFailed { .. }), "{e:?}");
        let e = classify_ssh_failure(
            &n,
            "ssh: connect to host 127.0.0.1 port 2201: Connection refused\n",
        );
        assert!(e.is_unreachable(), "{e:?}");
        assert_eq!(e.exit_code(), ExitCode::Registry);
        let e = classify_ssh_failure(&n, "kex_exchange_identification: something odd\n");
        assert!(matches!(e, NodeError::Ssh { .. }), "{e:?}");
    }

    #[test]
    fn missing_binary_and_incompatible_messages_say_what_to_install() {
        let e = NodeError::MissingBinary {
            node: "arm".into(),
            program: "polyarch".into(),
            detail: "bash: line 1: polyarch: command not found".into(),
        };
        assert!(e
            .to_string()
            .starts_with("node arm: `polyarch` was not found there"));
        let h = e.hint().unwrap();
        assert!(
            h.contains("install polyarch on node arm") && h.contains("?polyarch="),
            "{h}"
        );
        let e = NodeError::Incompatible {
            node: "arm".into(),
            local_version: "0.2.0".into(),
            local_protocol: 2,
            remote_version: Some("0.1.0".into()),
            remote_protocol: Some(1),
        };
        assert_eq!(
            e.to_string(),
            "node arm: its polyarch 0.1.0 (protocol 1) is incompatible with this one (0.2.0, protocol 2)"
        );
        assert!(e
            .hint()
            .unwrap()
            .contains("install polyarch 0.2.0 on node arm"));
    }
}
