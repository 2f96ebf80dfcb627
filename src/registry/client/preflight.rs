//! The pre-flight check of a push target, before anything is built: the registry's name
//! resolves, its port accepts a connection, TLS verifies, `GET /v2/` answers (distribution-spec
//! v1.1 `spec.md`, "Determining support"), and the credentials may push to the repository,
//! proven by opening an upload session with the push scope and abandoning it (what
//! go-containerregistry's `remote.CheckPushPermission` does).
//!
//! Level 2, above the transport and `session`: each step names what failed
//! ([`PushProblem`]); it must not retry beyond what the transport does for each request.

use std::time::Duration;

use reqwest::Method;

use super::authorization::push;
use super::options::api_host;
use super::peer_cert;
use super::request::Req;
use super::session;
use super::transport::Transport;
use crate::registry::{PushProblem, Reference, RegistryError};

/// See [`crate::registry::Registry::check_push`].
pub(super) async fn check_push(t: &Transport, repo: &Reference) -> Result<(), RegistryError> {
    let not_ready = |problem| RegistryError::NotReady {
        registry: repo.registry.clone(),
        repository: repo.repo_string(),
        problem: Box::new(problem),
    };
    reach(t, &repo.registry).await.map_err(not_ready)?;
    let host = t.host(&repo.registry)?;
    let what = format!("registry API of {}", repo.registry);
    let v2 = async {
        let url = t.url(&host, "/v2/").await?;
        t.expect(&host, &[], &what, Req::new(Method::GET, url), &[200])
            .await
    };
    match v2.await {
        Ok(_) => {}
        Err(RegistryError::Tls { problem, .. }) => {
            let plain = speaks_plain_http(&repo.registry).await;
            return Err(not_ready(if plain {
                PushProblem::PlainHttp
            } else {
                let (name, port) = host_port(t, &repo.registry);
                PushProblem::TlsUntrusted {
                    problem,
                    subject: peer_cert::subject(name, port).await,
                }
            }));
        }
        Err(RegistryError::Unauthorized { detail, .. }) => {
            return Err(not_ready(PushProblem::Unauthorized {
                scope: "registry:catalog (the /v2/ endpoint)".into(),
                detail,
            }))
        }
        Err(e) => return Err(e),
    }
    // The push scope: open an upload session, then abandon it (best effort).
    let scope = push(repo);
    match session::start(
        t,
        &host,
        repo,
        &format!("a pre-flight upload to {}", repo.repo_string()),
    )
    .await
    {
        Ok((loc, _)) => {
            let abandoned = t
                .send(
                    &host,
                    &[scope],
                    &what,
                    &mut Req::new(Method::DELETE, loc.clone()),
                )
                .await;
            if abandoned.is_ok() {
                session::done(t, &loc);
            }
            Ok(())
        }
        Err(RegistryError::Unauthorized { detail, .. }) => {
            Err(not_ready(PushProblem::Denied { scope, detail }))
        }
        Err(e) => Err(e),
    }
}

/// The registry's host name and port (443, or 80 where plain HTTP is allowed, unless it names
/// one).
fn host_port<'r>(t: &Transport, registry: &'r str) -> (&'r str, u16) {
    let api = api_host(registry);
    let (name, port) = match api.strip_prefix('[') {
        Some(rest) => {
            let (h, p) = rest.split_once(']').unwrap_or((rest, ""));
            (h, p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()))
        }
        None => match api.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (api, None),
        },
    };
    let port = port.unwrap_or(if t.options.plain_http(registry) {
        80
    } else {
        443
    });
    (name, port)
}

/// Resolves the registry's name and connects to its port.
async fn reach(t: &Transport, registry: &str) -> Result<(), PushProblem> {
    let (name, port) = host_port(t, registry);
    let addrs: Vec<_> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| PushProblem::Dns {
            host: name.to_string(),
            detail: e.to_string(),
        })?
        .collect();
    let timeout = t.options.connect_timeout.min(Duration::from_secs(10));
    let mut last = None;
    for addr in &addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(PushProblem::Refused {
                    address: addr.to_string(),
                })
            }
            Ok(Err(e)) => {
                last = Some(PushProblem::Unreachable {
                    address: addr.to_string(),
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                last = Some(PushProblem::Unreachable {
                    address: addr.to_string(),
                    detail: format!("no connection within {} s", timeout.as_secs()),
                })
            }
        }
    }
    Err(last.unwrap_or(PushProblem::Dns {
        host: name.to_string(),
        detail: "no address".into(),
    }))
}

/// Whether `registry` answers plain HTTP on its port (a TLS failure then means it does not
/// speak TLS at all).
async fn speaks_plain_http(registry: &str) -> bool {
    let url = format!("http://{}/v2/", api_host(registry));
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return false;
    };
    // Go's and nginx's TLS ports answer plain HTTP with 400: that is not plain HTTP.
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() != 400)
}
