//! [`PushProblem`]: why a push target failed its pre-flight check (name resolution, connection,
//! TLS, credentials, push rights), each with the fix that matches it.
//!
//! Level 2 but pure: values and text only, no I/O. The client's `preflight` room finds the
//! problem; [`super::RegistryError::NotReady`] carries it to the user.

/// What stops a push to a registry before anything is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushProblem {
    /// The registry's host name does not resolve.
    #[error("its name {host} does not resolve ({detail})")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// Nothing accepts connections on the registry's port.
    #[error("the connection to {address} was refused")]
    Refused {
        /// `ip:port` tried.
        address: String,
    },
    /// The registry's address cannot be reached (timeout, no route).
    #[error("{address} cannot be reached: {detail}")]
    Unreachable {
        /// `ip:port` tried.
        address: String,
        /// What the connection attempt reported.
        detail: String,
    },
    /// Its TLS certificate does not verify.
    #[error(
        "its TLS certificate{} does not verify: {problem}",
        subject.as_ref().map(|s| format!(" (subject {s})")).unwrap_or_default()
    )]
    TlsUntrusted {
        /// What the TLS library reported.
        problem: String,
        /// The certificate's subject (`CN=..., O=...`), when it could be read.
        subject: Option<String>,
    },
    /// It speaks plain HTTP where HTTPS was expected.
    #[error("it speaks plain HTTP, not HTTPS")]
    PlainHttp,
    /// The credentials are missing or refused.
    #[error("the credentials are refused (scope {scope}): {detail}")]
    Unauthorized {
        /// The scope asked for.
        scope: String,
        /// The registry's or token service's explanation.
        detail: String,
    },
    /// The credentials work but may not push to the repository.
    #[error("the credentials may not push (scope {scope} asked): {detail}")]
    Denied {
        /// The scope asked for (`repository:<name>:pull,push`).
        scope: String,
        /// The registry's or token service's explanation.
        detail: String,
    },
}

impl PushProblem {
    /// The fix for this problem with `registry` (`host[:port]`) and `repository`.
    pub fn fix(&self, registry: &str, repository: &str) -> String {
        match self {
            PushProblem::Dns { host, .. } => format!(
                "check the registry name in the tag ({host}) and this machine's DNS or /etc/hosts"
            ),
            PushProblem::Refused { address } => format!(
                "nothing listens on {address}: start the registry, or fix the port in the tag"
            ),
            PushProblem::Unreachable { address, .. } => {
                format!("check the network path to {address} (firewall, proxy, VPN)")
            }
            PushProblem::TlsUntrusted { .. } => format!(
                "trust the registry's CA: --ca-cert FILE, or put it in certs.d/{registry}/ca.crt"
            ),
            PushProblem::PlainHttp => {
                format!("{registry} serves plain HTTP: mark it --insecure-registry {registry}")
            }
            PushProblem::Unauthorized { .. } => format!(
                "give credentials for {registry}: --creds USER:PASSWORD, --password-stdin, or \
                 docker/podman login"
            ),
            PushProblem::Denied { .. } => format!(
                "use an account with push rights on {repository}, or push to a repository you \
                 may write"
            ),
        }
    }
}
