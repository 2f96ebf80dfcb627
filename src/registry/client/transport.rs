//! [`Transport`]: the one place where the registry client sends HTTP requests. It keeps a
//! [`Host`] per registry (its HTTP client, plain HTTP or HTTPS, credentials, what the registry
//! taught about authentication, the slots that bound operations in flight), answers `401`
//! challenges (Basic, or a bearer token fetched from the realm), checks statuses, and sends
//! each request again on retryable failures ([`Transport::expect`]): every request on its own
//! (the `/v2/` probe, token fetches, HEAD/GET, each upload request), never a whole operation,
//! so that one failed `PATCH` does not start an upload over. Only a body that cannot be sent
//! twice (a stream from another registry) leaves the retry to the operation
//! ([`Transport::retry_operation`]).
//!
//! Level 2. Blobs, manifests and uploads sit above it and describe requests ([`Req`]); they
//! never send one themselves. It must not know what a request means (no digests, no upload
//! sessions): only how to get it answered.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use reqwest::{Response, StatusCode, Url};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use super::answer::{read_limited, retry_after, ERROR_BODY_LIMIT};
use super::authorization::{self, AuthScheme, AuthState};
use super::options::{api_host, RegistryOptions};
use super::request::Req;
use super::retry::{Attempts, Counters};
use super::tls::{http_client, read_certs};
use crate::registry::auth::Credentials;
use crate::registry::challenge::Challenge;
use crate::registry::status::{self, from_answer, from_reqwest};
use crate::registry::RegistryError;

/// Everything kept per registry.
pub(super) struct Host {
    /// `host[:port]` as in references.
    pub(super) registry: String,
    /// The HTTP client, with this registry's TLS roots.
    client: reqwest::Client,
    /// `https://host` or `http://host`, decided once.
    base: OnceCell<String>,
    /// Credentials, looked up once.
    creds: OnceCell<Option<Credentials>>,
    /// The scheme and tokens this registry asked for.
    auth: AuthState,
    /// Bounds the operations in flight to this registry.
    permits: Semaphore,
}

/// Sends requests to registries: one [`Host`] each, made on first use.
pub(super) struct Transport {
    /// The options the client was made with.
    pub(super) options: RegistryOptions,
    /// Extra roots for every registry, read once.
    ca_certs: Vec<reqwest::Certificate>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// Requests and retries sent, and where retry events go.
    pub(super) counters: Counters,
}

impl Transport {
    /// A transport with `options`. Errors with [`RegistryError::CaCert`] when a `ca_certs`
    /// file cannot be read or holds no certificate.
    pub(super) fn new(options: RegistryOptions) -> Result<Transport, RegistryError> {
        let mut ca_certs = Vec::new();
        for path in &options.ca_certs {
            ca_certs.extend(read_certs(path)?);
        }
        Ok(Transport {
            options,
            ca_certs,
            hosts: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    /// The state kept for `registry`, made on first use (its HTTP client with the registry's
    /// TLS roots from `certs.d`).
    pub(super) fn host(&self, registry: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let client = http_client(registry, &self.options, &self.ca_certs)?;
        let host = Arc::new(Host {
            registry: registry.to_string(),
            client,
            base: OnceCell::new(),
            creds: OnceCell::new(),
            auth: AuthState::new(),
            permits: Semaphore::new(self.options.jobs.max(1)),
        });
        hosts.insert(registry.to_string(), host.clone());
        Ok(host)
    }

    /// One of the `jobs` slots of `host`.
    pub(super) async fn permit<'h>(&self, host: &'h Host) -> SemaphorePermit<'h> {
        host.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// A fresh retry budget for one request.
    pub(super) fn attempts(&self) -> Attempts {
        Attempts::new(&self.options)
    }

    /// Runs `op` until it succeeds, fails in a way that is final, or its retries are used up
    /// (see [`Attempts`]), waiting in between. For requests sent outside [`Transport::expect`]
    /// (the probe, token fetches) and for whole operations whose body cannot be sent twice.
    pub(super) async fn retry_operation<T, F, Fut>(
        &self,
        registry: &str,
        what: &str,
        mut op: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut attempts = self.attempts();
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(delay) = attempts.next_delay(&err) else {
                return Err(err);
            };
            self.counters
                .retrying(registry, what, attempts.granted, &err, delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends a prepared request with the per-request timeout, counting it.
    async fn send_timed(
        &self,
        host: &Host,
        what: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        self.counters.sent();
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, builder.send()).await {
            Ok(sent) => sent.map_err(|e| from_reqwest(e, &host.registry, what)),
            Err(_) => Err(RegistryError::Transport {
                registry: host.registry.clone(),
                what: what.to_string(),
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", timeout.as_secs_f64()),
                )),
            }),
        }
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
        if !self.options.plain_http(&host.registry) {
            return Ok(format!("https://{api}"));
        }
        let url = format!("http://{api}/v2/");
        let what = format!("probe {url}");
        host.base
            .get_or_try_init(|| {
                self.retry_operation(&host.registry, &what, || self.probe_once(host, &url, &what))
            })
            .await
            .cloned()
    }

    /// One plain-HTTP `GET /v2/` of [`Transport::base`]'s probe.
    async fn probe_once(
        &self,
        host: &Host,
        url: &str,
        what: &str,
    ) -> Result<String, RegistryError> {
        let api = api_host(&host.registry);
        let resp = self.send_timed(host, what, host.client.get(url)).await?;
        let status = resp.status().as_u16();
        if status == 400 {
            return Ok(format!("https://{api}"));
        }
        if status == 408 || status == 429 || status >= 500 {
            let after = retry_after(resp.headers());
            let body = read_limited(resp, ERROR_BODY_LIMIT).await;
            return Err(from_answer(status, &body, after, &host.registry, what));
        }
        if status == 401 {
            host.auth.learn(resp.headers());
        }
        Ok(format!("http://{api}"))
    }

    /// The URL of `path` (starting `/v2/`) on `host`.
    pub(super) async fn url(&self, host: &Host, path: &str) -> Result<Url, RegistryError> {
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
                if let Some(c) = self.options.auth.get(&host.registry) {
                    return Ok(Some(c.clone()));
                }
                self.options
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

    /// The `Authorization` value for a request needing `scopes`, from what is known so far.
    async fn authorization(
        &self,
        host: &Host,
        scopes: &[String],
    ) -> Result<Option<String>, RegistryError> {
        match host.auth.scheme() {
            AuthScheme::Unknown => Ok(None),
            AuthScheme::Basic => Ok(self.creds(host).await?.as_ref().map(authorization::basic)),
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
        if let Some(value) = host.auth.cached_token(&key) {
            return Ok(value);
        }
        let what = format!("token for {} from {realm}", host.registry);
        let creds = self.creds(host).await?;
        let realm = Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: host.registry.clone(),
            what: what.clone(),
            message: format!("bad realm: {e}"),
        })?;
        let (value, lifetime) = self
            .retry_operation(&host.registry, &what, || {
                let request = authorization::token_request(
                    &host.client,
                    realm.clone(),
                    service,
                    scopes,
                    creds.as_ref(),
                );
                self.token_once(host, request, &what)
            })
            .await?;
        host.auth.store_token(key, value.clone(), lifetime);
        Ok(value)
    }

    /// One token request and its answer: the token and its lifetime.
    async fn token_once(
        &self,
        host: &Host,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(String, std::time::Duration), RegistryError> {
        let resp = self.send_timed(host, what, request).await?;
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
                _ => from_answer(status, &body, retry_after, &host.registry, what),
            });
        }
        let body = read_limited(resp, 1 << 20).await;
        authorization::parse_token_answer(&body, &host.registry, what)
    }

    /// Sends `req` to `host` once (no retry) with the authentication it needs for `scopes`.
    ///
    /// A `401` teaches the scheme (or says the cached token expired: it is dropped) and the
    /// request is sent once more with fresh authentication; a `401` after that is final. A
    /// streamed body cannot be sent twice: then [`RegistryError::AuthExpired`] (transient)
    /// makes the caller start over. Any other status is returned for the caller to check.
    pub(super) async fn send(
        &self,
        host: &Host,
        scopes: &[String],
        what: &str,
        req: &mut Req,
    ) -> Result<Response, RegistryError> {
        let mut scopes: Vec<String> = scopes.to_vec();
        // At most two sends: the second with what the first one's 401 taught.
        let mut first = true;
        loop {
            let auth = self.authorization(host, &scopes).await?;
            let builder = req.prepare(&host.client, auth.as_deref()).await?;
            let resp = self.send_timed(host, what, builder).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = host.auth.learn(resp.headers());
            if let Some(Challenge::Bearer { scopes: asked, .. }) = &challenge {
                for s in asked {
                    if !scopes.contains(s) {
                        scopes.push(s.clone());
                    }
                }
                scopes.sort();
                // The token used (if any) is no good any more.
                host.auth.forget_tokens();
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

    /// Sends `req` until its status is one of `ok`: a retryable failure (connect error, reset,
    /// timeout, 408, 429, 5xx) sends it again after a backoff, within the request's budget
    /// ([`Attempts`]); other statuses become errors at once. A body that cannot be sent
    /// twice is sent once.
    pub(super) async fn expect(
        &self,
        host: &Host,
        scopes: &[String],
        what: &str,
        mut req: Req,
        ok: &[u16],
    ) -> Result<Response, RegistryError> {
        let mut attempts = self.attempts();
        loop {
            let err = match self.expect_once(host, scopes, what, &mut req, ok).await {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            if !req.body.replayable() {
                return Err(err);
            }
            let Some(delay) = attempts.next_delay(&err) else {
                return Err(err);
            };
            let request = format!("{} {what}", req.method);
            self.counters
                .retrying(&host.registry, &request, attempts.granted, &err, delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends `req` once and checks that the status is one of `ok`; other statuses become
    /// errors.
    pub(super) async fn expect_once(
        &self,
        host: &Host,
        scopes: &[String],
        what: &str,
        req: &mut Req,
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
}
