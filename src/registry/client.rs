//! [`OciRegistry`]: the real [`Registry`], on oci-client 0.18 with our own retries, transport
//! choice, error mapping and digest checks.
//!
//! Traps of oci-client worked around here (see `shared/CRATES.md`): manifests go through
//! `pull_manifest_raw`/`push_manifest_raw` only (its typed `push_manifest` re-serialises), blobs
//! through its streaming calls with monolithic push switched on (one PUT whose body is the file
//! stream, so memory stays flat), and it gets no say over retries: every call is wrapped in
//! `backon` here.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::oci_errors::{map_error, stream_error};
use super::{
    check_manifest_push, manifest_media_type, BlobPush, RawManifest, Reference, Registry,
    RegistryError,
};
use crate::oci::{Descriptor, Digest, MANIFEST_ACCEPT};

/// The four manifest/index media types, as the list oci-client joins into the Accept header.
static ACCEPT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| MANIFEST_ACCEPT.split(',').map(str::trim).collect());

/// Bytes read from a blob file per piece handed to the HTTP body.
const UPLOAD_PIECE: usize = 1 << 20;

/// A user name and password (or token) for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How [`OciRegistry`] reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`, as in a [`Reference`]) spoken to over plain HTTP. Loopback
    /// registries (`localhost`, 127.0.0.0/8, `::1`) always are, as Docker does.
    pub insecure: Vec<String>,
    /// Retries of a transient failure after the first attempt (default 4).
    pub retries: u32,
    /// Credentials per registry (`host[:port]`; `docker.io` for Docker Hub). Registries not
    /// listed are used anonymously (with an anonymous bearer token where they ask for one).
    pub auth: BTreeMap<String, Credentials>,
    /// First delay between retries (default 500 ms); doubled each time, with jitter.
    pub min_backoff: Duration,
    /// Longest delay between retries (default 30 s).
    pub max_backoff: Duration,
    /// Timeout for establishing a connection (default 30 s).
    pub connect_timeout: Duration,
    /// Timeout for each read from a connection (default 120 s).
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            retries: 4,
            auth: BTreeMap::new(),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

impl RegistryOptions {
    /// Whether `registry` (`host[:port]`) is spoken to over plain HTTP: listed in `insecure`,
    /// or on loopback.
    pub fn plain_http(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry) || is_loopback(registry)
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

/// The real registry client. Cheap to share: clone it or put it behind an `Arc`.
#[derive(Clone)]
pub struct OciRegistry {
    /// For registries reached over HTTPS.
    https: Client,
    /// For loopback and insecure registries. oci-client fixes the scheme per client, and
    /// loopback addresses cannot be listed up front, so there are two.
    http: Client,
    options: RegistryOptions,
}

impl fmt::Debug for OciRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciRegistry")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OciRegistry {
    /// A client with `options`. Errors with [`RegistryError::Transport`] when the HTTP client
    /// cannot be set up (the TLS backend fails to initialise).
    pub fn new(options: RegistryOptions) -> Result<OciRegistry, RegistryError> {
        let client = |protocol| {
            Client::try_from(ClientConfig {
                protocol,
                // One PUT streaming the whole file instead of 4 MiB PATCHes: fewer round trips,
                // and still flat memory (distribution-spec "Pushing a blob monolithically").
                use_monolithic_push: true,
                connect_timeout: Some(options.connect_timeout),
                read_timeout: Some(options.read_timeout),
                user_agent: concat!("polyarch/", env!("CARGO_PKG_VERSION")),
                // Indexes are resolved by the caller (oci-client's resolvers ignore variants).
                platform_resolver: None,
                ..ClientConfig::default()
            })
            .map_err(|e| RegistryError::Transport {
                registry: "(setting up the HTTP client)".into(),
                source: Box::new(e),
            })
        };
        Ok(OciRegistry {
            https: client(ClientProtocol::Https)?,
            http: client(ClientProtocol::Http)?,
            options,
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The client for `registry` with the credentials for it stored (oci-client keeps one
    /// credential per registry and uses it for every later call).
    async fn session(&self, reference: &Reference, target: &str) -> Session<'_> {
        let client = if self.options.plain_http(&reference.registry) {
            &self.http
        } else {
            &self.https
        };
        let auth = match self.options.auth.get(&reference.registry) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let oref = to_oci(reference, target);
        client
            .store_auth_if_needed(oref.resolve_registry(), &auth)
            .await;
        Session {
            client,
            auth,
            oref,
            registry: reference.registry.clone(),
        }
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or `retries` retries
    /// have failed; exponential backoff with jitter in between.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.options.min_backoff)
            .with_max_delay(self.options.max_backoff)
            .with_max_times(self.options.retries as usize);
        op.retry(backoff)
            .when(RegistryError::is_transient)
            .notify(|err, delay| {
                tracing::warn!(%what, error = %err, ?delay, "registry request failed; retrying");
            })
            .await
    }

    async fn fetch_blob_once(
        &self,
        s: &Session<'_>,
        desc: &Descriptor,
        dest: &Path,
        what: &str,
    ) -> Result<(), RegistryError> {
        let digest = desc.digest.to_string();
        let mut sized = s
            .client
            .pull_blob_stream(&s.oref, digest.as_str())
            .await
            .map_err(|e| map_error(e, &s.registry, what))?;
        let size_mismatch = |found| RegistryError::SizeMismatch {
            what: what.to_string(),
            expected: desc.size,
            found,
        };
        if let Some(announced) = sized.content_length {
            if announced != desc.size {
                return Err(size_mismatch(announced));
            }
        }
        let io = |action| {
            move |source| RegistryError::Io {
                action,
                path: dest.to_path_buf(),
                source,
            }
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io("create"))?;
        let mut received = 0u64;
        // oci-client hashes the stream and, at its end, yields an error when the sha256 is not
        // the requested digest (or the Docker-Content-Digest header): no second hash here.
        while let Some(piece) = sized.stream.next().await {
            let piece = piece.map_err(|e| stream_error(e, &s.registry, what, &desc.digest))?;
            received += piece.len() as u64;
            // Stop early rather than fill the disk when the registry sends too much.
            if received > desc.size {
                return Err(size_mismatch(received));
            }
            file.write_all(&piece).await.map_err(io("write"))?;
        }
        if received != desc.size {
            return Err(size_mismatch(received));
        }
        file.flush().await.map_err(io("write"))?;
        Ok(())
    }
}

/// One registry's client, credentials and the oci-client form of the reference.
struct Session<'a> {
    client: &'a Client,
    auth: RegistryAuth,
    oref: oci_client::Reference,
    registry: String,
}

/// The oci-client reference for `reference`'s repository at `target` (a tag or digest string).
fn to_oci(reference: &Reference, target: &str) -> oci_client::Reference {
    let (registry, repository) = (reference.registry.clone(), reference.repository.clone());
    if target.starts_with("sha256:") {
        oci_client::Reference::with_digest(registry, repository, target.to_string())
    } else {
        oci_client::Reference::with_tag(registry, repository, target.to_string())
    }
}

/// `manifest registry/repo:tag` or `manifest registry/repo@sha256:…`.
fn manifest_what(repo: &Reference, target: &str) -> String {
    let sep = if target.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    format!("manifest {}{sep}{target}", repo.repo_string())
}

/// A file as a stream of pieces for an HTTP body (read as it is sent).
fn file_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = BytesMut::with_capacity(UPLOAD_PIECE);
        let n = file.read_buf(&mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), file)))
    })
}

impl Registry for OciRegistry {
    async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        let what = reference.to_string();
        let target = reference.manifest_reference();
        let s = self.session(reference, &target).await;
        // oci-client checks the body against the digest in the reference and against the
        // Docker-Content-Digest header; the check below keeps that guarantee ours.
        let (bytes, _) = self
            .retry(&what, || async {
                s.client
                    .pull_manifest_raw(&s.oref, &s.auth, &ACCEPT)
                    .await
                    .map_err(|e| map_error(e, &s.registry, &what))
            })
            .await?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = &reference.digest {
            if *expected != digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: expected.clone(),
                    found: digest.to_string(),
                });
            }
        }
        let media_type = manifest_media_type(&bytes, &what)?;
        Ok(RawManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let what = format!("blob {} in {}", desc.digest, repo.repo_string());
        let s = self.session(repo, "latest").await;
        // Each attempt starts over, truncating `dest`.
        let result = self
            .retry(&what, || self.fetch_blob_once(&s, desc, dest, &what))
            .await;
        if result.is_err() {
            // Best effort: a partial or unverified file must not be mistaken for the blob.
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("blob {digest} in {}", repo.repo_string());
        let s = self.session(repo, "latest").await;
        let digest = digest.to_string();
        self.retry(&what, || async {
            s.client
                .blob_exists(&s.oref, &digest)
                .await
                .map_err(|e| map_error(e, &s.registry, &what))
        })
        .await
    }

    async fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<BlobPush, RegistryError> {
        let what = format!("blob {} to {}", desc.digest, repo.repo_string());
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|source| RegistryError::Io {
                action: "stat",
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if len != desc.size {
            return Err(RegistryError::BlobFileSize {
                path: path.to_path_buf(),
                expected: desc.size,
                found: len,
            });
        }
        if self.blob_exists(repo, &desc.digest).await? {
            return Ok(BlobPush::AlreadyPresent);
        }
        let s = self.session(repo, "latest").await;
        let digest = desc.digest.to_string();
        self.retry(&what, || async {
            // Reopened per attempt: a stream cannot be replayed.
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|source| RegistryError::Io {
                    action: "open",
                    path: path.to_path_buf(),
                    source,
                })?;
            s.client
                .push_blob_stream(&s.oref, file_stream(file), &digest, Some(desc.size))
                .await
                .map_err(|e| map_error(e, &s.registry, &what))
        })
        .await?;
        Ok(BlobPush::Uploaded)
    }

    async fn push_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let digest = check_manifest_push(repo, reference, bytes)?;
        let what = manifest_what(repo, reference);
        let content_type = http::HeaderValue::from_str(media_type).map_err(|_| {
            RegistryError::UnsupportedManifest {
                reference: what.clone(),
                media_type: media_type.to_string(),
            }
        })?;
        let s = self.session(repo, reference).await;
        let body = Bytes::copy_from_slice(bytes);
        self.retry(&what, || async {
            s.client
                .push_manifest_raw(&s.oref, body.clone(), content_type.clone())
                .await
                .map_err(|e| map_error(e, &s.registry, &what))
        })
        .await?;
        // What the registry now serves under `reference` (its Docker-Content-Digest, from a
        // HEAD) must be what we sent: a registry that rewrote the document, or a tag moved by
        // someone else in between, would otherwise go unnoticed.
        let served = self
            .retry(&what, || async {
                s.client
                    .fetch_manifest_digest(&s.oref, &s.auth)
                    .await
                    .map_err(|e| map_error(e, &s.registry, &what))
            })
            .await?;
        if served != digest.to_string() {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest,
                found: served,
            });
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_registries_use_plain_http() {
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
    }

    #[test]
    fn credentials_are_never_printed() {
        let mut options = RegistryOptions::default();
        options.auth.insert(
            "ghcr.io".into(),
            Credentials {
                username: "me".into(),
                password: "hunter2".into(),
            },
        );
        let shown = format!("{options:?}");
        assert!(
            shown.contains("me") && !shown.contains("hunter2"),
            "{shown}"
        );
        let registry = OciRegistry::new(options).unwrap();
        assert!(!format!("{registry:?}").contains("hunter2"));
    }
}
