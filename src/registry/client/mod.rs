//! [`OciRegistry`]: the real [`Registry`], a small distribution-spec v1.1 client on `reqwest`
//! (rustls), with our own authentication, TLS roots, retries, bounded concurrency and digest
//! checks.
//!
//! Why not oci-client (see `shared/CRATES.md`): it hides response headers (no `Retry-After`,
//! no `OCI-Chunk-Min-Length`), keeps one credential per registry with no token refresh on 401,
//! scopes tokens to one repository (no cross-repository mount), and cannot take per-registry
//! CA roots. The API used here is a dozen endpoints (distribution-spec `spec.md`, "Endpoints"):
//!
//! | request | endpoint |
//! |---|---|
//! | probe | `GET /v2/` |
//! | manifest | `GET`/`HEAD`/`PUT /v2/<name>/manifests/<reference>` |
//! | blob | `GET`/`HEAD /v2/<name>/blobs/<digest>` |
//! | upload | `POST /v2/<name>/blobs/uploads/` (optionally `?mount=<digest>&from=<other>`), `PATCH <location>` per chunk, `PUT <location>?digest=<digest>`, `DELETE <location>` to abandon |
//!
//! Blob bodies stream from and to files (memory stays flat whatever the size); blobs larger
//! than [`RegistryOptions::chunk_size`] go up in chunks. Every operation is retried as a whole
//! on transient failures (connect errors, resets, timeouts, 408, 429, 5xx) with exponential
//! backoff and jitter, honouring `Retry-After`; a retried upload first asks whether the blob
//! already arrived.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::auth::{CredentialSources, Credentials};
use super::challenge::{self, Challenge};
use super::status::{self, from_answer, from_reqwest, parse_retry_after};
use super::{
    check_manifest_push, manifest_media_type, BlobPush, RawManifest, Reference, Registry,
    RegistryError,
};
use crate::oci::{Descriptor, Digest, MANIFEST_ACCEPT};

/// Bytes read from a blob file per piece handed to the HTTP body.
const UPLOAD_PIECE: usize = 1 << 20;
/// The largest manifest or index accepted (distribution-spec: registries SHOULD accept 4 MiB).
const MANIFEST_LIMIT: usize = 8 << 20;
/// The largest error body read for a message.
const ERROR_BODY_LIMIT: usize = 64 << 10;
/// Tokens are fetched again this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured; longer ones are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How [`OciRegistry`] reaches registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`, as in a [`Reference`]) that may be spoken to over plain HTTP
    /// or HTTPS with an unverified certificate. Loopback registries (`localhost`, 127.0.0.0/8,
    /// `::1`) may use plain HTTP too, but their certificates are verified when they speak TLS.
    pub insecure: Vec<String>,
    /// Retries of a transient failure after the first attempt (default 4).
    pub retries: u32,
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
    /// Blobs larger than this many bytes are uploaded in chunks of this size (default 64 MiB);
    /// smaller ones in one request.
    pub chunk_size: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            retries: 4,
            auth: BTreeMap::new(),
            credential_sources: CredentialSources::none(),
            ca_certs: Vec::new(),
            certs_dirs: vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ],
            jobs: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            chunk_size: 64 << 20,
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
    fn is_insecure(&self, registry: &str) -> bool {
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
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// How a registry wants to be authenticated, learned from its first `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthScheme {
    /// Not asked yet: requests go without `Authorization`.
    Unknown,
    /// HTTP Basic with the registry's credentials.
    Basic,
    /// Bearer tokens from `realm` for `service`.
    Bearer { realm: String, service: String },
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    refresh_at: Instant,
}

/// Everything kept per registry.
struct Host {
    /// `host[:port]` as in references.
    registry: String,
    /// The HTTP client, with this registry's TLS roots.
    client: reqwest::Client,
    /// `https://host` or `http://host`, decided once.
    base: OnceCell<String>,
    /// Credentials, looked up once.
    creds: OnceCell<Option<Credentials>>,
    scheme: Mutex<AuthScheme>,
    /// Tokens by the space-joined sorted scopes they were issued for.
    tokens: Mutex<HashMap<String, Token>>,
    /// Bounds the operations in flight to this registry.
    permits: Semaphore,
}

/// A request body that can be made again for a second attempt (except a one-shot stream).
enum Payload {
    Empty,
    Bytes(Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    Stream(Option<reqwest::Body>, u64),
}

impl Payload {
    fn replayable(&self) -> bool {
        !matches!(self, Payload::Stream(..))
    }

    /// The body and its length, made anew (a stream only once).
    async fn make(&mut self) -> Result<(reqwest::Body, u64), RegistryError> {
        Ok(match self {
            Payload::Empty => (reqwest::Body::from(Bytes::new()), 0),
            Payload::Bytes(b) => (reqwest::Body::from(b.clone()), b.len() as u64),
            Payload::File { path, offset, len } => (file_body(path, *offset, *len).await?, *len),
            Payload::Stream(body, len) => (
                body.take().ok_or_else(|| RegistryError::Protocol {
                    registry: String::new(),
                    what: "a streamed upload".into(),
                    message: "the body was already sent".into(),
                })?,
                *len,
            ),
        })
    }
}

/// One request, before authentication.
struct Req {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Payload,
}

impl Req {
    fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: Payload::Empty,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: Payload) -> Req {
        self.body = body;
        self
    }
}

/// The real registry client. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct OciRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    options: RegistryOptions,
    /// Extra roots for every registry, read once.
    ca_certs: Vec<reqwest::Certificate>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl fmt::Debug for OciRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciRegistry")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM file of one or more CA certificates.
fn read_certs(path: &Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
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

impl OciRegistry {
    /// A client with `options`. Errors with [`RegistryError::CaCert`] when a `ca_certs` file
    /// cannot be read or holds no certificate.
    pub fn new(options: RegistryOptions) -> Result<OciRegistry, RegistryError> {
        let mut ca_certs = Vec::new();
        for path in &options.ca_certs {
            ca_certs.extend(read_certs(path)?);
        }
        Ok(OciRegistry {
            inner: Arc::new(Inner {
                options,
                ca_certs,
                hosts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// The state kept for `registry`, made on first use (its HTTP client with the registry's
    /// TLS roots from `certs.d`).
    fn host(&self, registry: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let o = &self.inner.options;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("polyarch/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(o.connect_timeout)
            .read_timeout(o.read_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        let mut extra = self.inner.ca_certs.clone();
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
                    Some("cert") => {
                        // Docker: `client.cert` with `client.key` is a client certificate.
                        let key = p.with_extension("key");
                        let mut pem = std::fs::read(p).map_err(|e| RegistryError::CaCert {
                            path: p.clone(),
                            reason: e.to_string(),
                        })?;
                        pem.extend(std::fs::read(&key).map_err(|e| RegistryError::CaCert {
                            path: key.clone(),
                            reason: e.to_string(),
                        })?);
                        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                            RegistryError::CaCert {
                                path: p.clone(),
                                reason: e.to_string(),
                            }
                        })?;
                        builder = builder.identity(id);
                    }
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
        let client = builder.build().map_err(|e| RegistryError::Transport {
            registry: registry.to_string(),
            what: "setting up the HTTP client".into(),
            source: Box::new(e),
        })?;
        let host = Arc::new(Host {
            registry: registry.to_string(),
            client,
            base: OnceCell::new(),
            creds: OnceCell::new(),
            scheme: Mutex::new(AuthScheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
            permits: Semaphore::new(o.jobs.max(1)),
        });
        hosts.insert(registry.to_string(), host.clone());
        Ok(host)
    }

    /// One of the `jobs` slots of `host`.
    async fn permit<'h>(&self, host: &'h Host) -> SemaphorePermit<'h> {
        host.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `op` until it succeeds, fails with a non-transient error, or `retries` retries
    /// have failed; exponential backoff with jitter in between, at least `Retry-After`.
    /// `op` gets the attempt number (0 first).
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let o = &self.inner.options;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(o.min_backoff)
            .with_max_delay(o.max_backoff)
            .with_max_times(o.retries as usize);
        let attempt = AtomicU32::new(0);
        (|| op(attempt.fetch_add(1, Ordering::SeqCst)))
            .retry(backoff)
            .when(RegistryError::is_transient)
            .adjust(|err, delay| {
                let wait = match err {
                    RegistryError::Status {
                        retry_after_secs: Some(after),
                        ..
                    } => Duration::from_secs(u64::from(*after)).min(MAX_RETRY_AFTER),
                    _ => Duration::ZERO,
                };
                delay.map(|d| d.max(wait))
            })
            .notify(|err, delay| {
                tracing::warn!(%what, error = %err, ?delay, "registry request failed; retrying");
            })
            .await
    }

    /// `https://host` or `http://host` for `host`, decided once.
    ///
    /// Registries that are neither loopback nor insecure are HTTPS. The others are probed with
    /// a plain-HTTP `GET /v2/`: a `400` means the port speaks TLS (Go's and nginx's answer to
    /// plain HTTP on a TLS port), so HTTPS is used; any other answer means plain HTTP. A `401`
    /// here also tells how to authenticate. Network errors are returned (transient) and the
    /// probe runs again on the next attempt.
    async fn base(&self, host: &Host) -> Result<String, RegistryError> {
        let api = api_host(&host.registry);
        if !self.inner.options.plain_http(&host.registry) {
            return Ok(format!("https://{api}"));
        }
        host.base
            .get_or_try_init(|| async {
                let url = format!("http://{api}/v2/");
                let what = format!("probe {url}");
                let resp = host
                    .client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| from_reqwest(e, &host.registry, &what))?;
                let status = resp.status().as_u16();
                if status == 400 {
                    return Ok(format!("https://{api}"));
                }
                if status == 408 || status == 429 || status >= 500 {
                    let body = read_limited(resp, ERROR_BODY_LIMIT).await;
                    return Err(from_answer(status, &body, None, &host.registry, &what));
                }
                if status == 401 {
                    self.learn(host, resp.headers());
                }
                Ok(format!("http://{api}"))
            })
            .await
            .cloned()
    }

    /// The URL of `path` (starting `/v2/`) on `host`.
    async fn url(&self, host: &Host, path: &str) -> Result<Url, RegistryError> {
        let base = self.base(host).await?;
        Url::parse(&format!("{base}{path}")).map_err(|e| RegistryError::Protocol {
            registry: host.registry.clone(),
            what: path.to_string(),
            message: e.to_string(),
        })
    }

    /// The credentials for `host`, looked up once.
    async fn creds(&self, host: &Host) -> Result<Option<Credentials>, RegistryError> {
        host.creds
            .get_or_try_init(|| async {
                if let Some(c) = self.inner.options.auth.get(&host.registry) {
                    return Ok(Some(c.clone()));
                }
                self.inner
                    .options
                    .credential_sources
                    .lookup(&host.registry)
                    .await
                    .map_err(|source| RegistryError::Credentials {
                        registry: host.registry.clone(),
                        source: Box::new(source),
                    })
            })
            .await
            .cloned()
    }

    /// Records the scheme a `401`'s `WWW-Authenticate` asks for; returns the challenge.
    fn learn(&self, host: &Host, headers: &HeaderMap) -> Option<Challenge> {
        let challenge = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(challenge::parse)?;
        let scheme = match &challenge {
            Challenge::Basic { .. } => AuthScheme::Basic,
            Challenge::Bearer { realm, service, .. } => AuthScheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            },
        };
        *host.scheme.lock().unwrap_or_else(|p| p.into_inner()) = scheme;
        Some(challenge)
    }

    /// The `Authorization` value for a request needing `scopes`, from what is known so far.
    async fn authorization(
        &self,
        host: &Host,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        let scheme = host
            .scheme
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match scheme {
            AuthScheme::Unknown => Ok(None),
            AuthScheme::Basic => Ok(self.creds(host).await?.map(|c| {
                let raw = format!("{}:{}", c.username, c.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            })),
            AuthScheme::Bearer { realm, service } => {
                let token = self.token(host, &realm, &service, scopes).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// A bearer token for `scopes`: cached until shortly before it expires, else fetched from
    /// `realm` (distribution `docs/spec/auth/token.md`; with an identity token, the OAuth2
    /// refresh-token grant of `docs/spec/auth/oauth.md`).
    async fn token(
        &self,
        host: &Host,
        realm: &str,
        service: &str,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let key = scopes.join(" ");
        if let Some(t) = host
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if Instant::now() < t.refresh_at {
                return Ok(t.value.clone());
            }
        }
        let what = format!("token for {} from {realm}", host.registry);
        let creds = self.creds(host).await?;
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: host.registry.clone(),
            what: what.clone(),
            message: format!("bad realm: {e}"),
        })?;
        let request = match &creds {
            Some(c) if c.is_identity_token() => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                // The OAuth2 refresh-token grant (RFC 6749 section 6).
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", &c.password)
                    .append_pair("service", service)
                    .append_pair("client_id", "polyarch")
                    .append_pair("access_type", "offline");
                if !scopes.is_empty() {
                    form.append_pair("scope", &scopes.join(" "));
                }
                host.client
                    .post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.finish())
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if !service.is_empty() {
                        q.append_pair("service", service);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let r = host.client.get(url);
                match &creds {
                    Some(c) => r.basic_auth(&c.username, Some(&c.password)),
                    None => r,
                }
            }
        };
        let resp = request
            .send()
            .await
            .map_err(|e| from_reqwest(e, &host.registry, &what))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let retry_after = retry_after(resp.headers());
            let body = read_limited(resp, ERROR_BODY_LIMIT).await;
            return Err(match status {
                401 | 403 => RegistryError::Unauthorized {
                    registry: host.registry.clone(),
                    detail: format!(
                        "the token service refused the credentials (HTTP {status}): {}",
                        status::excerpt(&body)
                    ),
                },
                _ => from_answer(status, &body, retry_after, &host.registry, &what),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = read_limited(resp, 1 << 20).await;
        let answer: TokenAnswer =
            serde_json::from_str(&body).map_err(|_| RegistryError::Protocol {
                registry: host.registry.clone(),
                what: what.clone(),
                message: "the token answer is not the expected JSON".into(),
            })?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: host.registry.clone(),
                what: what.clone(),
                message: "the token answer holds no token".into(),
            })?;
        // token.md: "expires_in ... defaults to 60 seconds".
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(1));
        let refresh_at = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        host.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                Token {
                    value: value.clone(),
                    refresh_at,
                },
            );
        Ok(value)
    }

    /// Sends `req` to `host` with the authentication it needs for `scopes`.
    ///
    /// A `401` teaches the scheme (or says the cached token expired: it is dropped) and the
    /// request is sent once more with fresh authentication. A streamed body cannot be sent
    /// twice: then [`RegistryError::AuthExpired`] (transient) makes the caller start over.
    /// Any other status is returned for the caller to check.
    async fn send(
        &self,
        host: &Host,
        scopes: &[String],
        what: &str,
        mut req: Req,
    ) -> Result<Response, RegistryError> {
        let mut scopes: Vec<String> = scopes.to_vec();
        // At most two sends: the second with what the first one's 401 taught.
        let mut first = true;
        loop {
            let auth = self.authorization(host, &scopes).await?;
            let (body, len) = req.body.make().await?;
            let mut builder = host
                .client
                .request(req.method.clone(), req.url.clone())
                .body(body);
            if req.method == Method::PUT
                || req.method == Method::PATCH
                || req.method == Method::POST
            {
                builder = builder.header("Content-Length", len.to_string());
            }
            for (k, v) in &req.headers {
                builder = builder.header(*k, v.as_str());
            }
            if let Some(a) = &auth {
                builder = builder.header("Authorization", a.as_str());
            }
            let resp = builder
                .send()
                .await
                .map_err(|e| from_reqwest(e, &host.registry, what))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = self.learn(host, resp.headers());
            if let Some(Challenge::Bearer { scopes: asked, .. }) = &challenge {
                for s in asked {
                    if !scopes.contains(s) {
                        scopes.push(s.clone());
                    }
                }
                scopes.sort();
                // The token used (if any) is no good any more.
                host.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|_, _| false);
            }
            let body = read_limited(resp, ERROR_BODY_LIMIT).await;
            let refused = |detail: String| RegistryError::Unauthorized {
                registry: host.registry.clone(),
                detail,
            };
            if challenge.is_none() {
                return Err(refused(format!(
                    "HTTP 401 for {what} without a challenge polyarch can answer: {}",
                    status::excerpt(&body)
                )));
            }
            let have_creds = self.creds(host).await?.is_some();
            let is_basic = matches!(challenge, Some(Challenge::Basic { .. }));
            // Basic credentials that were sent and refused will be refused again.
            if !first || (is_basic && (auth.is_some() || !have_creds)) {
                return Err(refused(match (have_creds, body.trim().is_empty()) {
                    (false, _) => format!(
                        "{what} needs credentials and none are configured for {}",
                        host.registry
                    ),
                    (true, true) => format!("the credentials were refused for {what}"),
                    (true, false) => format!("{what}: {}", status::excerpt(&body)),
                }));
            }
            if !req.body.replayable() {
                return Err(RegistryError::AuthExpired {
                    registry: host.registry.clone(),
                });
            }
            first = false;
        }
    }

    /// Sends and checks that the status is one of `ok`; other statuses become errors.
    async fn expect(
        &self,
        host: &Host,
        scopes: &[String],
        what: &str,
        req: Req,
        ok: &[u16],
    ) -> Result<Response, RegistryError> {
        let resp = self.send(host, scopes, what, req).await?;
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let retry_after = retry_after(resp.headers());
        let body = read_limited(resp, ERROR_BODY_LIMIT).await;
        Err(from_answer(
            status,
            &body,
            retry_after,
            &host.registry,
            what,
        ))
    }

    async fn get_manifest_once(
        &self,
        host: &Host,
        reference: &Reference,
        what: &str,
    ) -> Result<RawManifest, RegistryError> {
        let scopes = [pull(reference)];
        let url = self
            .url(
                host,
                &format!(
                    "/v2/{}/manifests/{}",
                    reference.repository,
                    reference.manifest_reference()
                ),
            )
            .await?;
        let resp = self
            .expect(
                host,
                &scopes,
                what,
                Req::new(Method::GET, url).header("Accept", MANIFEST_ACCEPT),
                &[200],
            )
            .await?;
        let header_digest = header_str(resp.headers(), "Docker-Content-Digest");
        let content_type = header_str(resp.headers(), "Content-Type");
        let bytes = read_body(resp, MANIFEST_LIMIT, &host.registry, what).await?;
        let digest = Digest::of(&bytes);
        let expected = match &reference.digest {
            Some(d) => Some(d.to_string()),
            None => header_digest.filter(|d| d.starts_with("sha256:")),
        };
        if let Some(expected) = expected {
            if expected != digest.to_string() {
                let expected = expected.parse().map_err(|_| RegistryError::Protocol {
                    registry: host.registry.clone(),
                    what: what.to_string(),
                    message: format!("bad Docker-Content-Digest {expected:?}"),
                })?;
                return Err(RegistryError::DigestMismatch {
                    what: what.to_string(),
                    expected,
                    found: digest.to_string(),
                });
            }
        }
        let media_type = manifest_media_type(&bytes, content_type.as_deref(), what)?;
        Ok(RawManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    async fn fetch_blob_once(
        &self,
        host: &Host,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
        what: &str,
    ) -> Result<(), RegistryError> {
        let url = self
            .url(
                host,
                &format!("/v2/{}/blobs/{}", repo.repository, desc.digest),
            )
            .await?;
        let resp = self
            .expect(
                host,
                &[pull(repo)],
                what,
                Req::new(Method::GET, url),
                &[200],
            )
            .await?;
        let size_mismatch = |found| RegistryError::SizeMismatch {
            what: what.to_string(),
            expected: desc.size,
            found,
        };
        if let Some(announced) = resp.content_length() {
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
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| from_reqwest(e, &host.registry, what))?;
            received += piece.len() as u64;
            // Stop early rather than fill the disk when the registry sends too much.
            if received > desc.size {
                return Err(size_mismatch(received));
            }
            hasher.update(&piece);
            file.write_all(&piece).await.map_err(io("write"))?;
        }
        if received != desc.size {
            return Err(size_mismatch(received));
        }
        let found = Digest::from_hasher(hasher);
        if found != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_string(),
                expected: desc.digest.clone(),
                found: found.to_string(),
            });
        }
        file.flush().await.map_err(io("write"))?;
        Ok(())
    }

    async fn blob_exists_once(
        &self,
        host: &Host,
        repo: &Reference,
        digest: &Digest,
        what: &str,
    ) -> Result<bool, RegistryError> {
        let url = self
            .url(host, &format!("/v2/{}/blobs/{digest}", repo.repository))
            .await?;
        let resp = self
            .expect(
                host,
                &[pull(repo)],
                what,
                Req::new(Method::HEAD, url),
                &[200, 404],
            )
            .await?;
        Ok(resp.status() == StatusCode::OK)
    }

    /// Opens an upload session (`POST .../blobs/uploads/`); returns its location and the
    /// registry's minimum chunk size (`OCI-Chunk-Min-Length`), if any.
    async fn start_upload(
        &self,
        host: &Host,
        repo: &Reference,
        what: &str,
    ) -> Result<(Url, u64), RegistryError> {
        let url = self
            .url(host, &format!("/v2/{}/blobs/uploads/", repo.repository))
            .await?;
        let resp = self
            .expect(
                host,
                &[push(repo)],
                what,
                Req::new(Method::POST, url.clone()),
                &[202],
            )
            .await?;
        let min_chunk = header_str(resp.headers(), "OCI-Chunk-Min-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((
            location(&url, resp.headers(), &host.registry, what)?,
            min_chunk,
        ))
    }

    /// One upload attempt of the file at `path` as `desc`: one PUT, or PATCHes of `chunk_size`
    /// then a closing PUT (distribution-spec "Pushing a blob in chunks").
    async fn upload_once(
        &self,
        host: &Host,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
        what: &str,
    ) -> Result<(), RegistryError> {
        let scopes = [push(repo)];
        let (mut loc, min_chunk) = self.start_upload(host, repo, what).await?;
        let chunk = self.inner.options.chunk_size.max(min_chunk).max(1);
        let mut offset = 0u64;
        if desc.size > chunk {
            while offset < desc.size {
                let len = chunk.min(desc.size - offset);
                let req = Req::new(Method::PATCH, loc.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                    .body(Payload::File {
                        path: path.to_path_buf(),
                        offset,
                        len,
                    });
                let resp = self.expect(host, &scopes, what, req, &[202, 204]).await?;
                loc = location(&loc, resp.headers(), &host.registry, what)?;
                offset += len;
            }
        }
        let mut put = loc.clone();
        put.query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let body = if offset < desc.size {
            Payload::File {
                path: path.to_path_buf(),
                offset,
                len: desc.size - offset,
            }
        } else {
            Payload::Empty
        };
        let req = Req::new(Method::PUT, put)
            .header("Content-Type", "application/octet-stream")
            .body(body);
        self.expect(host, &scopes, what, req, &[201]).await?;
        Ok(())
    }

    /// Tries a cross-repository mount (distribution-spec "Mounting a blob from another
    /// repository"): `true` when the registry answered 201. A 202 means it opened an upload
    /// instead; that session is abandoned (DELETE, best effort) and `false` returned.
    async fn mount_once(
        &self,
        host: &Host,
        to: &Reference,
        from: &Reference,
        digest: &Digest,
        what: &str,
    ) -> Result<bool, RegistryError> {
        let mut url = self
            .url(host, &format!("/v2/{}/blobs/uploads/", to.repository))
            .await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", &from.repository);
        let mut scopes = vec![push(to), pull(from)];
        scopes.sort();
        let resp = self
            .expect(
                host,
                &scopes,
                what,
                Req::new(Method::POST, url.clone()),
                &[201, 202],
            )
            .await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        if let Ok(loc) = location(&url, resp.headers(), &host.registry, what) {
            let _ = self
                .send(host, &scopes, what, Req::new(Method::DELETE, loc))
                .await;
        }
        Ok(false)
    }

    /// One streamed copy of `desc` from `from` (on `src`) to `to` (on `dst`): the GET body
    /// is the PUT body; the target registry checks the digest on commit.
    async fn copy_once(
        &self,
        src: &Host,
        dst: &Host,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
        what: &str,
    ) -> Result<(), RegistryError> {
        // The session first, so that authentication with the target is settled before a
        // body that cannot be replayed is sent.
        let (loc, _) = self.start_upload(dst, to, what).await?;
        let url = self
            .url(
                src,
                &format!("/v2/{}/blobs/{}", from.repository, desc.digest),
            )
            .await?;
        let resp = self
            .expect(src, &[pull(from)], what, Req::new(Method::GET, url), &[200])
            .await?;
        if let Some(announced) = resp.content_length() {
            if announced != desc.size {
                return Err(RegistryError::SizeMismatch {
                    what: what.to_string(),
                    expected: desc.size,
                    found: announced,
                });
            }
        }
        let body = reqwest::Body::wrap_stream(resp.bytes_stream());
        let mut put = loc;
        put.query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let req = Req::new(Method::PUT, put)
            .header("Content-Type", "application/octet-stream")
            .body(Payload::Stream(Some(body), desc.size));
        self.expect(dst, &[push(to)], what, req, &[201]).await?;
        Ok(())
    }
}

/// `repository:<name>:pull` (distribution `docs/spec/auth/scope.md`).
fn pull(repo: &Reference) -> String {
    format!("repository:{}:pull", repo.repository)
}

/// `repository:<name>:pull,push`.
fn push(repo: &Reference) -> String {
    format!("repository:{}:pull,push", repo.repository)
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, "Retry-After").and_then(|v| parse_retry_after(&v, SystemTime::now()))
}

/// The `Location` of an upload answer, resolved against the request URL (it may be relative).
fn location(
    base: &Url,
    headers: &HeaderMap,
    registry: &str,
    what: &str,
) -> Result<Url, RegistryError> {
    let raw = header_str(headers, "Location").ok_or_else(|| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        message: "an upload answer without Location".into(),
    })?;
    base.join(&raw).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        message: format!("bad Location {raw:?}: {e}"),
    })
}

/// The start of a body as text (for error messages); errors give what was read.
async fn read_limited(resp: Response, limit: usize) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(piece)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&piece[..piece.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole body of at most `limit` bytes.
async fn read_body(
    resp: Response,
    limit: usize,
    registry: &str,
    what: &str,
) -> Result<Bytes, RegistryError> {
    let mut out = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| from_reqwest(e, registry, what))?;
        if out.len() + piece.len() > limit {
            return Err(RegistryError::Protocol {
                registry: registry.to_string(),
                what: what.to_string(),
                message: format!("the answer is larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

/// `len` bytes of the file at `path` from `offset`, as a body read while it is sent.
async fn file_body(path: &Path, offset: u64, len: u64) -> Result<reqwest::Body, RegistryError> {
    Ok(reqwest::Body::wrap_stream(
        file_stream(path, offset, len).await?,
    ))
}

/// `len` bytes of the file at `path` from `offset`, as a stream of pieces of at most
/// [`UPLOAD_PIECE`] bytes; an error when the file ends early.
async fn file_stream(
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static, RegistryError> {
    let io = |action| {
        let path = path.to_path_buf();
        move |source| RegistryError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io("open"))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io("seek in"))?;
    let stream = futures::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = (left as usize).min(UPLOAD_PIECE);
        let mut buf = BytesMut::with_capacity(want);
        while buf.len() < want {
            let n = (&mut file)
                .take((want - buf.len()) as u64)
                .read_buf(&mut buf)
                .await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the blob file is shorter than its descriptor says",
                ));
            }
        }
        let n = buf.len() as u64;
        Ok::<_, std::io::Error>(Some((buf.freeze(), (file, left - n))))
    });
    Ok(stream)
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

impl Registry for OciRegistry {
    async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        let what = reference.to_string();
        let host = self.host(&reference.registry)?;
        let _slot = self.permit(&host).await;
        self.retry(&what, |_| self.get_manifest_once(&host, reference, &what))
            .await
    }

    async fn head_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let what = format!("manifest {reference}");
        let host = self.host(&reference.registry)?;
        let _slot = self.permit(&host).await;
        self.retry(&what, |_| async {
            let url = self
                .url(
                    &host,
                    &format!(
                        "/v2/{}/manifests/{}",
                        reference.repository,
                        reference.manifest_reference()
                    ),
                )
                .await?;
            let resp = self
                .expect(
                    &host,
                    &[pull(reference)],
                    &what,
                    Req::new(Method::HEAD, url).header("Accept", MANIFEST_ACCEPT),
                    &[200, 404],
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let digest = match (
                &reference.digest,
                header_str(resp.headers(), "Docker-Content-Digest"),
            ) {
                (Some(d), Some(h)) if h != d.to_string() => {
                    return Err(RegistryError::DigestMismatch {
                        what: what.clone(),
                        expected: d.clone(),
                        found: h,
                    })
                }
                (Some(d), _) => d.clone(),
                (None, Some(h)) => h.parse().map_err(|_| RegistryError::Protocol {
                    registry: host.registry.clone(),
                    what: what.clone(),
                    message: format!("bad Docker-Content-Digest {h:?}"),
                })?,
                (None, None) => {
                    // No digest header: fetch the document and hash it ourselves.
                    let m = self.get_manifest_once(&host, reference, &what).await?;
                    return Ok(Some(m.descriptor()));
                }
            };
            let media_type = header_str(resp.headers(), "Content-Type").unwrap_or_default();
            let size = resp.content_length().unwrap_or(0);
            Ok(Some(Descriptor::new(media_type, digest, size)))
        })
        .await
    }

    async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let what = format!("blob {} in {}", desc.digest, repo.repo_string());
        let host = self.host(&repo.registry)?;
        let _slot = self.permit(&host).await;
        // Each attempt starts over, truncating `dest`.
        let result = self
            .retry(&what, |_| {
                self.fetch_blob_once(&host, repo, desc, dest, &what)
            })
            .await;
        if result.is_err() {
            // Best effort: a partial or unverified file must not be mistaken for the blob.
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("blob {digest} in {}", repo.repo_string());
        let host = self.host(&repo.registry)?;
        let _slot = self.permit(&host).await;
        self.retry(&what, |_| self.blob_exists_once(&host, repo, digest, &what))
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
        let host = self.host(&repo.registry)?;
        let _slot = self.permit(&host).await;
        self.retry(&what, |_| async {
            // Also on every retry: an upload whose answer was lost may have arrived.
            if self
                .blob_exists_once(&host, repo, &desc.digest, &what)
                .await?
            {
                return Ok(BlobPush::AlreadyPresent);
            }
            self.upload_once(&host, repo, desc, path, &what).await?;
            Ok(BlobPush::Uploaded)
        })
        .await
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
    ) -> Result<BlobPush, RegistryError> {
        let what = format!(
            "blob {} from {} to {}",
            desc.digest,
            from.repo_string(),
            to.repo_string()
        );
        let dst = self.host(&to.registry)?;
        let src = self.host(&from.registry)?;
        let same = Arc::ptr_eq(&src, &dst);
        // Slots are taken in registry-name order so that two copies in opposite directions
        // cannot each hold one and wait for the other.
        let (_a, _b) = if same {
            (self.permit(&dst).await, None)
        } else if src.registry < dst.registry {
            let a = self.permit(&src).await;
            (a, Some(self.permit(&dst).await))
        } else {
            let a = self.permit(&dst).await;
            (a, Some(self.permit(&src).await))
        };
        self.retry(&what, |_| async {
            if self.blob_exists_once(&dst, to, &desc.digest, &what).await? {
                return Ok(BlobPush::AlreadyPresent);
            }
            if same
                && from.repository != to.repository
                && self.mount_once(&dst, to, from, &desc.digest, &what).await?
            {
                return Ok(BlobPush::Mounted);
            }
            self.copy_once(&src, &dst, from, to, desc, &what).await?;
            Ok(BlobPush::Uploaded)
        })
        .await
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
        if HeaderValue::from_str(media_type).is_err() {
            return Err(RegistryError::UnsupportedManifest {
                reference: what,
                media_type: media_type.to_string(),
            });
        }
        let host = self.host(&repo.registry)?;
        let _slot = self.permit(&host).await;
        let body = Bytes::copy_from_slice(bytes);
        let served = self
            .retry(&what, |_| async {
                let url = self
                    .url(
                        &host,
                        &format!("/v2/{}/manifests/{reference}", repo.repository),
                    )
                    .await?;
                let req = Req::new(Method::PUT, url)
                    .header("Content-Type", media_type)
                    .body(Payload::Bytes(body.clone()));
                let resp = self
                    .expect(&host, &[push(repo)], &what, req, &[201])
                    .await?;
                Ok(header_str(resp.headers(), "Docker-Content-Digest"))
            })
            .await?;
        // The digest the registry computed must be that of the bytes sent: a registry that
        // rewrote the document would otherwise go unnoticed.
        if let Some(served) = served {
            if served != digest.to_string() {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: digest,
                    found: served,
                });
            }
        }
        Ok(digest)
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

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = OciRegistry::new(RegistryOptions {
            ca_certs: vec![PathBuf::from("/nonexistent/ca.pem")],
            ..RegistryOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(
            crate::exit::Classify::exit_code(&err),
            crate::exit::ExitCode::BadInput
        );
    }

    #[tokio::test]
    async fn file_bodies_are_the_requested_slice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * UPLOAD_PIECE + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let offset = UPLOAD_PIECE as u64 + 3;
        let len = 2 * UPLOAD_PIECE as u64;
        let mut got = Vec::new();
        let mut stream = Box::pin(file_stream(&path, offset, len).await.unwrap());
        while let Some(piece) = stream.next().await {
            got.extend_from_slice(&piece.unwrap());
        }
        assert!(got == data[offset as usize..(offset + len) as usize]);
        // A file shorter than asked for is an error, not a short body.
        let mut stream = Box::pin(file_stream(&path, data.len() as u64 - 2, 10).await.unwrap());
        let mut failed = false;
        while let Some(piece) = stream.next().await {
            failed |= piece.is_err();
        }
        assert!(failed);
    }
}
