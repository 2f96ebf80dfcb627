//! Where registry credentials come from, in order (the first source that knows the registry
//! wins):
//!
//! 1. credentials given on the command line (`--creds`, `--password-stdin`), for one registry;
//! 2. Docker's `config.json` in `$DOCKER_CONFIG` or `~/.docker`: `credHelpers[host]`, then
//!    `credsStore`, then the static `auths[host]` (docker/cli `cli/config/configfile/file.go`
//!    `GetCredentialsStore`: a host's helper, else the store; the file's `auths` entry is the
//!    store only when no `credsStore` is set. Here `auths` is also asked when the store does
//!    not know the host);
//! 3. the containers auth file: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`,
//!    else `~/.config/containers/auth.json` (containers-auth.json(5)), same `auths`/`credHelpers`
//!    format.
//!
//! Credential helpers are run as `docker-credential-<name> get` with the server URL on stdin
//! and a JSON object `{"ServerURL","Username","Secret"}` on stdout (docker-credential-helpers
//! `client/client.go`). A `Username` of `<token>` means the secret is an identity token (an
//! OAuth2 refresh token).
//!
//! Secrets never appear in `Debug` output, errors or logs; helper output is never echoed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::exit::{Classify, ExitCode};

/// How long a credential helper may take before it is killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The server URL Docker uses for Docker Hub in `config.json` and with helpers.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// A user name and password (or identity token) for one registry. `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name; `<token>` when `password` is an identity token.
    pub username: String,
    /// The password, access token or identity token.
    pub password: String,
}

impl Credentials {
    /// Whether `password` is an identity (OAuth2 refresh) token rather than a password: Docker's
    /// convention of the user name `<token>`.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>"
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why credentials could not be looked up. Messages name the file or helper and the registry,
/// never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A `config.json` or `auth.json` that is not the expected JSON.
    #[error("cannot read credentials file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (the parse error's position, not the file's content).
        reason: String,
    },
    /// A credential helper named in a config file is not on `PATH`.
    #[error("credential helper docker-credential-{helper} (named in {config}) is not on PATH")]
    HelperMissing {
        /// The helper's suffix, e.g. `pass`, `ecr-login`.
        helper: String,
        /// The config file naming it.
        config: PathBuf,
    },
    /// A credential helper failed or answered something that is not its JSON.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    HelperFailed {
        /// The helper's suffix.
        helper: String,
        /// The registry asked about.
        registry: String,
        /// Exit status and the start of its stderr, or the parse problem.
        reason: String,
    },
}

impl Classify for AuthError {
    fn exit_code(&self) -> ExitCode {
        match self {
            AuthError::ConfigFile { .. } => ExitCode::BadInput,
            AuthError::HelperMissing { .. } | AuthError::HelperFailed { .. } => ExitCode::Registry,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            AuthError::ConfigFile { path, .. } => Some(format!(
                "fix or remove {}, or give credentials with --creds",
                path.display()
            )),
            AuthError::HelperMissing { helper, .. } => Some(format!(
                "install docker-credential-{helper}, or give credentials with --creds"
            )),
            AuthError::HelperFailed { .. } => {
                Some("log in again with the helper, or give credentials with --creds".into())
            }
        }
    }
}

/// The files credentials are read from. [`CredentialSources::none`] reads nothing (credentials
/// given explicitly only); [`CredentialSources::from_env`] is what the command line uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSources {
    /// Docker's `config.json`, when consulted.
    pub docker_config: Option<PathBuf>,
    /// containers auth files, in the order they are consulted.
    pub auth_files: Vec<PathBuf>,
}

/// One registry's entry in `auths`.
#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The parts of `config.json` / `auth.json` used here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

/// What a helper prints for `get`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// `host[:port]` of a config key: Docker's `ConvertToHostname` (scheme and path dropped).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The config keys that name `registry` (Docker Hub has several spellings).
fn aliases(registry: &str) -> Vec<&str> {
    if registry == "docker.io" {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![registry]
    }
}

/// The server URL handed to helpers for `registry` (Docker Hub's legacy URL, else the host).
fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_SERVER.to_string()
    } else {
        registry.to_string()
    }
}

impl CredentialSources {
    /// No files: only credentials given explicitly are used.
    pub fn none() -> CredentialSources {
        CredentialSources::default()
    }

    /// The standard places, from the environment: `$DOCKER_CONFIG/config.json` or
    /// `$HOME/.docker/config.json`; `$REGISTRY_AUTH_FILE`, else
    /// `$XDG_RUNTIME_DIR/containers/auth.json` and `$HOME/.config/containers/auth.json`.
    pub fn from_env() -> CredentialSources {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let docker_config = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
            _ => home.as_ref().map(|h| h.join(".docker/config.json")),
        };
        let mut auth_files = Vec::new();
        match std::env::var_os("REGISTRY_AUTH_FILE") {
            Some(f) if !f.is_empty() => auth_files.push(PathBuf::from(f)),
            _ => {
                if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
                    auth_files.push(PathBuf::from(run).join("containers/auth.json"));
                }
                if let Some(h) = &home {
                    auth_files.push(h.join(".config/containers/auth.json"));
                }
            }
        }
        CredentialSources {
            docker_config,
            auth_files,
        }
    }

    /// The credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub), or `None`
    /// to go anonymous. Missing files are skipped; a malformed one is an error, as is a helper
    /// that is named but missing or failing.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        if let Some(path) = &self.docker_config {
            if let Some(found) = lookup_in(path, registry, true).await? {
                return Ok(Some(found));
            }
        }
        for path in &self.auth_files {
            if let Some(found) = lookup_in(path, registry, false).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Reads one config file; `Ok(None)` when it is missing or does not know the registry.
fn read_config(path: &Path) -> Result<Option<ConfigFile>, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AuthError::ConfigFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AuthError::ConfigFile {
            path: path.to_path_buf(),
            // Line and column only: serde's message could quote part of a secret.
            reason: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        })
}

/// credHelpers[host] → credsStore (only in Docker's config) → auths[host], as the docker CLI
/// orders them (`GetCredentialsStore`).
async fn lookup_in(
    path: &Path,
    registry: &str,
    use_store: bool,
) -> Result<Option<Credentials>, AuthError> {
    let Some(config) = read_config(path)? else {
        return Ok(None);
    };
    let names = aliases(registry);
    if let Some(helper) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| names.contains(&key_host(k)))
        .map(|(_, v)| v)
    {
        return run_helper(helper, registry, path).await;
    }
    if let (Some(store), true) = (&config.creds_store, use_store) {
        if !store.is_empty() {
            if let Some(c) = run_helper(store, registry, path).await? {
                return Ok(Some(c));
            }
        }
    }
    match config
        .auths
        .iter()
        .find(|(k, _)| names.contains(&key_host(k)))
        .map(|(_, v)| v)
    {
        Some(entry) => decode_entry(entry, path),
        None => Ok(None),
    }
}

/// An `auths` entry: `identitytoken`, else `auth` (base64 of `user:password`), else
/// `username`/`password`. `None` when it holds nothing usable (Docker writes `{}` entries when a
/// store keeps the secret).
fn decode_entry(entry: &AuthEntry, path: &Path) -> Result<Option<Credentials>, AuthError> {
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: "<token>".into(),
            password: token.clone(),
        }));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = |reason: &str| AuthError::ConfigFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("an `auth` value is not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("an `auth` value is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("an `auth` value is not base64 of user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-<helper> get` for `registry`.
async fn run_helper(
    helper: &str,
    registry: &str,
    config: &Path,
) -> Result<Option<Credentials>, AuthError> {
    let program = which::which(format!("docker-credential-{helper}")).map_err(|_| {
        AuthError::HelperMissing {
            helper: helper.to_string(),
            config: config.to_path_buf(),
        }
    })?;
    let failed = |reason: String| AuthError::HelperFailed {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // The protocol: the server URL, alone, on stdin.
        stdin
            .write_all(server_url(registry).as_bytes())
            .await
            .map_err(|e| failed(format!("cannot write to it: {e}")))?;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("no answer within {} s", HELPER_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        // docker-credential-helpers `credentials.ErrCredentialsNotFound`.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail = super::status::excerpt(&stderr);
        return Err(failed(format!("exited with {}: {tail}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| failed("its answer is not the JSON object of the helper protocol".into()))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[tokio::test]
    async fn auths_entries_by_host_and_docker_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("me:pa:ss");
        let config = write(
            dir.path(),
            "config.json",
            &format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{b64}"}},
                   "http://reg.lan:5000/v2/":{{"username":"u","password":"p"}},
                   "tok.io":{{"identitytoken":"refresh"}},"empty.io":{{}}}}}}"#
            ),
        );
        let sources = CredentialSources {
            docker_config: Some(config),
            auth_files: vec![],
        };
        let hub = sources.lookup("docker.io").await.unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("me", "pa:ss")
        );
        let lan = sources.lookup("reg.lan:5000").await.unwrap().unwrap();
        assert_eq!(lan.username, "u");
        let tok = sources.lookup("tok.io").await.unwrap().unwrap();
        assert!(tok.is_identity_token());
        assert_eq!(sources.lookup("empty.io").await.unwrap(), None);
        assert_eq!(sources.lookup("reg.lan").await.unwrap(), None);
        assert!(!format!("{hub:?}").contains("pa:ss"));
    }

    #[tokio::test]
    async fn helper_then_store_then_auths() {
        let dir = tempfile::tempdir().unwrap();
        // A helper that answers for one server URL and says "not found" for others.
        let helper = write(
            dir.path(),
            "docker-credential-polyarchtest",
            "#!/bin/sh\nread -r url\nif [ \"$1\" = get ] && [ \"$url\" = helped.io ]; then\n\
             printf '{\"ServerURL\":\"%s\",\"Username\":\"h\",\"Secret\":\"from-helper\"}' \"$url\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
        );
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // SAFETY of the test: PATH is only read by `which` in this module's helper lookups.
        std::env::set_var("PATH", path);
        let b64 = base64::engine::general_purpose::STANDARD.encode("a:from-auths");
        let config = write(
            dir.path(),
            "config.json",
            &format!(
                r#"{{"credHelpers":{{"helped.io":"polyarchtest"}},
                   "auths":{{"helped.io":{{"auth":"{b64}"}},"plain.io":{{"auth":"{b64}"}}}},
                   "credsStore":"polyarchtest"}}"#
            ),
        );
        let sources = CredentialSources {
            docker_config: Some(config),
            auth_files: vec![],
        };
        let helped = sources.lookup("helped.io").await.unwrap().unwrap();
        assert_eq!(helped.password, "from-helper");
        // The store (the same fake) does not know plain.io: the static auths entry answers.
        let plain = sources.lookup("plain.io").await.unwrap().unwrap();
        assert_eq!(plain.password, "from-auths");
        // Unknown everywhere: the store is asked and says "not found", auths has nothing.
        assert_eq!(sources.lookup("other.io").await.unwrap(), None);

        let missing = write(
            dir.path(),
            "missing.json",
            r#"{"credHelpers":{"x.io":"does-not-exist-anywhere"}}"#,
        );
        let err = CredentialSources {
            docker_config: Some(missing),
            auth_files: vec![],
        }
        .lookup("x.io")
        .await
        .unwrap_err();
        assert!(matches!(err, AuthError::HelperMissing { .. }), "{err:?}");
        assert_eq!(err.exit_code(), ExitCode::Registry);
    }

    #[tokio::test]
    async fn auth_files_after_docker_config_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("c:from-containers");
        let auth = write(
            dir.path(),
            "auth.json",
            &format!(r#"{{"auths":{{"quay.io":{{"auth":"{b64}"}}}}}}"#),
        );
        let sources = CredentialSources {
            docker_config: Some(dir.path().join("absent.json")),
            auth_files: vec![auth],
        };
        let c = sources.lookup("quay.io").await.unwrap().unwrap();
        assert_eq!(c.password, "from-containers");

        let bad = write(dir.path(), "bad.json", r#"{"auths":{"q.io":{"auth":"s3cr"#);
        let err = CredentialSources {
            docker_config: Some(bad),
            auth_files: vec![],
        }
        .lookup("q.io")
        .await
        .unwrap_err();
        assert!(!err.to_string().contains("s3cr"), "{err}");
        assert_eq!(err.exit_code(), ExitCode::BadInput);
    }
}
