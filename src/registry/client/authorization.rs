//! What goes in a request's `Authorization` header, per registry: the scheme learned from the
//! registry's first `401` challenge, HTTP Basic, and bearer tokens (the token request, the
//! answer, and the cache of tokens by scope), with the scope strings asked for.
//!
//! Sources: distribution `docs/spec/auth/token.md` (token requests and answers, `expires_in`),
//! `docs/spec/auth/oauth.md` (the refresh-token grant for identity tokens) and
//! `docs/spec/auth/scope.md` (scopes).
//!
//! Level 2. It builds the token request and reads its answer but must not send anything: the
//! transport sends the token request like every other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::Url;

use crate::registry::auth::Credentials;
use crate::registry::challenge::{self, Challenge};
use crate::registry::{Reference, RegistryError};

/// Tokens are fetched again this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// `repository:<name>:pull` (distribution `docs/spec/auth/scope.md`).
pub(super) fn pull(repo: &Reference) -> String {
    format!("repository:{}:pull", repo.repository)
}

/// `repository:<name>:pull,push`.
pub(super) fn push(repo: &Reference) -> String {
    format!("repository:{}:pull,push", repo.repository)
}

/// How a registry wants to be authenticated, learned from its first `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AuthScheme {
    /// Not asked yet: requests go without `Authorization`.
    Unknown,
    /// HTTP Basic with the registry's credentials.
    Basic,
    /// Bearer tokens from `realm` for `service`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to send (may be empty).
        service: String,
    },
}

/// A bearer token and when to stop using it.
struct Token {
    value: String,
    refresh_at: Instant,
}

/// What one registry has taught about authentication: its scheme and the tokens it issued.
pub(super) struct AuthState {
    scheme: Mutex<AuthScheme>,
    /// Tokens by the space-joined sorted scopes they were issued for.
    tokens: Mutex<HashMap<String, Token>>,
}

impl AuthState {
    /// Nothing learned yet: no scheme, no token.
    pub(super) fn new() -> AuthState {
        AuthState {
            scheme: Mutex::new(AuthScheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The scheme learned so far.
    pub(super) fn scheme(&self) -> AuthScheme {
        self.scheme
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the scheme a `401`'s `WWW-Authenticate` asks for; returns the challenge.
    pub(super) fn learn(&self, headers: &HeaderMap) -> Option<Challenge> {
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
        *self.scheme.lock().unwrap_or_else(|p| p.into_inner()) = scheme;
        Some(challenge)
    }

    /// The cached token for `key` (the space-joined scopes) while it is fresh.
    pub(super) fn cached_token(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let t = tokens.get(key)?;
        (Instant::now() < t.refresh_at).then(|| t.value.clone())
    }

    /// Keeps `value` for `key` until shortly before `lifetime` runs out.
    pub(super) fn store_token(&self, key: String, value: String, lifetime: Duration) {
        let refresh_at = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Token { value, refresh_at });
    }

    /// Drops every token (one was refused: the registry asks anew).
    pub(super) fn forget_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, _| false);
    }
}

/// `Basic base64(user:password)` for `creds`.
pub(super) fn basic(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The token request to `realm` for `service` and `scopes` on `client`: with an identity
/// token, a POST of the OAuth2 refresh-token grant (RFC 6749 section 6); else a GET with
/// `service` and `scope` parameters, with the credentials as Basic when there are any.
pub(super) fn token_request(
    client: &reqwest::Client,
    mut realm: Url,
    service: &str,
    scopes: &[String],
    creds: Option<&Credentials>,
) -> reqwest::RequestBuilder {
    match creds {
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
            client
                .post(realm)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.finish())
        }
        _ => {
            {
                let mut q = realm.query_pairs_mut();
                if !service.is_empty() {
                    q.append_pair("service", service);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let r = client.get(realm);
            match creds {
                Some(c) => r.basic_auth(&c.username, Some(&c.password)),
                None => r,
            }
        }
    }
}

/// The token in a token service's `200` answer `body`, and how long it lives
/// (`expires_in`, which token.md says "defaults to 60 seconds"; at least 1 s).
///
/// Errors: [`RegistryError::Protocol`] for an answer that is not the JSON token.md describes
/// or holds no token.
pub(super) fn parse_token_answer(
    body: &str,
    registry: &str,
    what: &str,
) -> Result<(String, Duration), RegistryError> {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let answer: TokenAnswer = serde_json::from_str(body).map_err(|_| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        message: "the token answer is not the expected JSON".into(),
    })?;
    let value = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Protocol {
            registry: registry.to_string(),
            what: what.to_string(),
            message: "the token answer holds no token".into(),
        })?;
    // token.md: "expires_in ... defaults to 60 seconds".
    let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(1));
    Ok((value, lifetime))
}
