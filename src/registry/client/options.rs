//! [`RegistryOptions`]: how the registry client reaches registries (plain HTTP or TLS, roots,
//! credentials, retries, timeouts, concurrency, chunk size), and the two facts about a
//! registry's name that decide its address: loopback or not, and the API host.
//!
//! Level 2, but pure: no I/O, no network. It must not make clients or send requests; the
//! transport reads these values.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::registry::auth::{CredentialSources, Credentials};

/// How [`super::OciRegistry`] reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`, as in a [`crate::registry::Reference`]) that may be spoken
    /// to over plain HTTP or HTTPS with an unverified certificate. Loopback registries
    /// (`localhost`, 127.0.0.0/8, `::1`) may use plain HTTP too, but their certificates are
    /// verified when they speak TLS.
    pub insecure: Vec<String>,
    /// Retries of each request after a retryable failure (connect error, reset, timeout,
    /// 408, 429, 5xx), after the first attempt (default 8). A chunked upload that stalls
    /// resumes from the registry's offset, which counts as a retry of that chunk.
    pub retries: u32,
    /// No request is retried past this moment (the command's registry deadline); `None`: no
    /// deadline.
    pub deadline: Option<Instant>,
    /// The longest one request may take until its answer's headers arrive, its body sent
    /// included (default 300 s); then it counts as a timeout (retryable).
    pub request_timeout: Duration,
    /// Credentials given explicitly per registry (`host[:port]`; `docker.io` for Docker Hub).
    /// They win over [`RegistryOptions::credential_sources`].
    pub auth: BTreeMap<String, Credentials>,
    /// Files and helpers consulted for registries not in `auth` (default: none).
    pub credential_sources: CredentialSources,
    /// PEM files of extra CA certificates trusted for every registry, besides the system's.
    pub ca_certs: Vec<PathBuf>,
    /// Docker-style `certs.d` directories: `DIR/<host[:port]>/*.crt` are CA certificates for
    /// that registry and `*.cert` with a matching `*.key` a client certificate (default
    /// `/etc/docker/certs.d` and `/etc/containers/certs.d`).
    pub certs_dirs: Vec<PathBuf>,
    /// Serve a manifest fetched by tag from memory for the rest of the client's life, so that a
    /// build reads each base index once, not once per platform; pushing to a tag forgets it
    /// (default false: every read asks the registry).
    pub remember_tags: bool,
    /// Operations in flight at once per registry (default 4).
    pub jobs: usize,
    /// First delay between retries (default 500 ms); doubled each time, with jitter.
    pub min_backoff: Duration,
    /// Longest delay between retries (default 30 s).
    pub max_backoff: Duration,
    /// Timeout for establishing a connection (default 30 s).
    pub connect_timeout: Duration,
    /// Timeout for each read from a connection (default 120 s).
    pub read_timeout: Duration,
    /// Blobs larger than this many bytes are uploaded in chunks of this size (default 32 MiB);
    /// smaller ones in one request. A layer uploaded while it is compressed goes up in chunks
    /// of this size as they are written.
    pub chunk_size: u64,
    /// Where the upload sessions this client opens are recorded, and closed when committed, so
    /// that a killed process's open sessions can be abandoned by the next one (the store's
    /// upload journal; default: none).
    pub upload_journal: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            retries: 8,
            deadline: None,
            request_timeout: Duration::from_secs(300),
            auth: BTreeMap::new(),
            credential_sources: CredentialSources::none(),
            ca_certs: Vec::new(),
            certs_dirs: vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ],
            remember_tags: false,
            jobs: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            chunk_size: 32 << 20,
            upload_journal: None,
        }
    }
}

impl RegistryOptions {
    /// Whether `registry` (`host[:port]`) may be spoken to over plain HTTP: listed in
    /// `insecure`, or on loopback.
    pub fn plain_http(&self, registry: &str) -> bool {
        self.is_insecure(registry) || is_loopback(registry)
    }

    /// Whether `registry` was listed with `--insecure-registry`.
    pub(super) fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry)
    }
}

/// `localhost`, 127.0.0.0/8 or `::1`, with or without a port.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host the API of `registry` is served from (Docker Hub's differs from its name).
pub(super) fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_registries_may_use_plain_http() {
        let options = RegistryOptions {
            insecure: vec!["registry.lan:5000".into()],
            ..RegistryOptions::default()
        };
        for plain in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]:5000",
            "registry.lan:5000",
        ] {
            assert!(options.plain_http(plain), "{plain}");
        }
        for tls in [
            "docker.io",
            "ghcr.io",
            "registry.lan",
            "registry.lan:5001",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!options.plain_http(tls), "{tls}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }
}
