//! Registry credentials for `polyarch build`, from the Docker client configuration: the `auths`
//! entry of `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`) for the registry.
//!
//! A deliberately small seam: [`lookup`] is the one place the build asks for credentials, so a
//! fuller lookup (credential helpers, `auth.json`, `--creds`) replaces only this function. The
//! credentials go to the registry client and, for build nodes, into the worker protocol's
//! credentials frame; never into argv, an environment, a file or a log.

use std::path::PathBuf;

use base64::Engine;

use crate::registry::Credentials;

/// The Docker configuration file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// `https://host:port/v1/` and `host:port` name the same registry in `auths`; Docker Hub is
/// `https://index.docker.io/v1/` there and `docker.io` in references.
fn auths_key_matches(key: &str, registry: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    k == registry || (hub(k) && hub(registry))
}

/// Credentials for `registry` (`host[:port]`) from the `auths` section of the Docker config,
/// or `None` when there is no file, no entry, or the entry has no user name and password (a
/// malformed file is treated as absent: the registry then answers 401, which says what is wrong).
pub fn lookup(registry: &str) -> Option<Credentials> {
    let text = std::fs::read(config_path()?).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let (_, entry) = auths.iter().find(|(k, _)| auths_key_matches(k, registry))?;
    if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Credentials {
            username: user.to_string(),
            password: password.to_string(),
        });
    }
    let user = entry.get("username")?.as_str()?;
    let password = entry.get("password")?.as_str()?;
    Some(Credentials {
        username: user.to_string(),
        password: password.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_match_docker_config_keys() {
        assert!(auths_key_matches("127.0.0.1:5001", "127.0.0.1:5001"));
        assert!(auths_key_matches(
            "https://127.0.0.1:5001/v2/",
            "127.0.0.1:5001"
        ));
        assert!(auths_key_matches(
            "https://index.docker.io/v1/",
            "docker.io"
        ));
        assert!(!auths_key_matches("127.0.0.1:5001", "127.0.0.1:5000"));
    }
}
