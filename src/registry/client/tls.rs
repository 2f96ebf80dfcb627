//! The HTTP client made for one registry: its timeouts, the CA roots it trusts (the system's,
//! `--ca-cert` files, and the registry's own `certs.d/<host[:port]>/*.crt`), a client
//! certificate (`*.cert` + `*.key`), and whether certificates are checked at all
//! (`--insecure-registry`).
//!
//! Level 2, sync file reads only (certificate files, once per registry). It must not send
//! requests: the transport does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::RegistryOptions;
use crate::registry::RegistryError;

/// Reads a PEM file of one or more CA certificates.
///
/// Errors: [`RegistryError::CaCert`] naming `path` when it cannot be read, does not parse, or
/// holds no certificate.
pub(super) fn read_certs(path: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let pem = std::fs::read(path).map_err(|e| RegistryError::CaCert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::CaCert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(RegistryError::CaCert {
            path: path.to_path_buf(),
            reason: "no PEM certificate in it".into(),
        });
    }
    Ok(certs)
}

/// The HTTP client for `registry` (`host[:port]`): `options`' timeouts, `extra_roots` (the
/// `--ca-cert` certificates) plus the registry's `certs.d` roots and client certificate, and
/// no certificate checks when the registry is listed as insecure.
///
/// Errors: [`RegistryError::CaCert`] for a `certs.d` file that cannot be used,
/// [`RegistryError::Transport`] when the client cannot be built.
pub(super) fn http_client(
    registry: &str,
    options: &RegistryOptions,
    extra_roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, RegistryError> {
    let o = options;
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("polyarch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(o.connect_timeout)
        .read_timeout(o.read_timeout)
        .pool_idle_timeout(Duration::from_secs(30));
    let mut extra = extra_roots.to_vec();
    for dir in &o.certs_dirs {
        let host_dir = dir.join(registry);
        let Ok(entries) = std::fs::read_dir(&host_dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in &names {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => extra.extend(read_certs(p)?),
                Some("cert") => builder = builder.identity(client_identity(p)?),
                _ => {}
            }
        }
    }
    if !extra.is_empty() {
        builder = builder.tls_certs_merge(extra);
    }
    if o.is_insecure(registry) {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| RegistryError::Transport {
        registry: registry.to_string(),
        what: "setting up the HTTP client".into(),
        source: Box::new(e),
    })
}

/// Docker's client certificate: `cert` (`client.cert`) with the key beside it (`client.key`).
fn client_identity(cert: &Path) -> Result<reqwest::Identity, RegistryError> {
    let key = cert.with_extension("key");
    let mut pem = std::fs::read(cert).map_err(|e| RegistryError::CaCert {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    pem.extend(std::fs::read(&key).map_err(|e| RegistryError::CaCert {
        path: key.clone(),
        reason: e.to_string(),
    })?);
    reqwest::Identity::from_pem(&pem).map_err(|e| RegistryError::CaCert {
        path: cert.to_path_buf(),
        reason: e.to_string(),
    })
}
