//! Image references, `[registry[:port]/]repo/path[:tag][@sha256:<hex>]`, parsed and normalised
//! the way Docker does (docker/distribution `reference` package: `regexp.go` for the grammar,
//! `normalize.go` `ParseNormalizedNamed`/`splitDockerDomain` for the defaults).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use super::RegistryError;
use crate::oci::Digest;

/// The registry used when a reference names none (`normalize.go` `defaultDomain`).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The legacy spelling of [`DEFAULT_REGISTRY`], rewritten to it on parse (`legacyDefaultDomain`).
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Prefix for single-component names on the default registry (`officialRepoPrefix`).
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Longest accepted `registry/repository` (`reference.go` `NameTotalLengthMax`).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// `domainAndPort`: DNS-like host names, or a bracketed IPv6 address, with an optional port.
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$",
    )
    .expect("static regex")
});

/// `pathComponent`: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
static PATH_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex"));

/// `tag`: a word character, then up to 127 word characters, dots or dashes.
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\w][\w.-]{0,127}$").expect("static regex"));

/// A parsed, normalised image reference.
///
/// `registry` is always set (`docker.io` by default) and `repository` is the full path inside it
/// (`library/busybox` for `busybox`). When both a tag and a digest are given, the digest is what
/// is fetched and the tag is informative only, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/busybox`, `team/app`.
    pub repository: String,
    /// Tag, e.g. `1.36`; `None` when absent (fetching then uses `latest`).
    pub tag: Option<String>,
    /// Content digest the reference is pinned to.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `input`.
    ///
    /// Errors with [`RegistryError::InvalidReference`] naming the input and what is wrong: an
    /// empty string, an upper-case repository, a bad path component, registry, tag or digest,
    /// a name longer than 255 characters, or a bare 64-hex-digit identifier.
    pub fn parse(input: &str) -> Result<Reference, RegistryError> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        // A bare image id is not a name (`normalize.go` rejects 64-hex remote names).
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "a 64-digit hexadecimal string is an image id, not a name",
            ));
        }

        let (name_tag, digest) = match input.split_once('@') {
            Some((name_tag, digest)) => {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|_| bad("the digest must be `sha256:` and 64 lowercase hex digits"))?;
                (name_tag, Some(digest))
            }
            None => (input, None),
        };

        // `splitDockerDomain`: the first component is a registry only if it looks like a host:
        // it holds a `.` or a `:`, is `localhost`, or has upper-case letters (which a repository
        // cannot have).
        let (registry, rest) = match name_tag.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => (DEFAULT_REGISTRY, name_tag),
        };
        if !DOMAIN.is_match(registry) {
            return Err(bad("the registry is not a valid host[:port]"));
        }
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };

        // With the registry split off, a `:` can only introduce the tag.
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repository, tag)) => {
                check_tag(tag).map_err(bad)?;
                (repository, Some(tag.to_string()))
            }
            None => (rest, None),
        };
        check_repository(repository).map_err(bad)?;

        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{repository}")
        } else {
            repository.to_string()
        };
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(bad("the name is longer than 255 characters"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The same repository and tag, pinned to `digest` (Docker `reference.WithDigest`).
    pub fn with_digest(&self, digest: &Digest) -> Reference {
        Reference {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same repository under `tag`, with no digest: the form a tag is pushed to.
    ///
    /// Errors with [`RegistryError::InvalidReference`] when `tag` breaks the tag grammar.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, RegistryError> {
        check_tag(tag).map_err(|reason| RegistryError::InvalidReference {
            input: format!("{}:{tag}", self.repo_string()),
            reason: reason.to_string(),
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn repo_string(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a manifest request names: the digest if pinned, else the tag, else `latest`
    /// (distribution-spec "Pulling manifests": `<reference>` is a tag or a digest).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

/// Checks a tag against the grammar `[\w][\w.-]{0,127}`; the error is the reason.
pub(crate) fn check_tag(tag: &str) -> Result<(), &'static str> {
    if TAG.is_match(tag) {
        Ok(())
    } else {
        Err("the tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
    }
}

fn check_repository(repository: &str) -> Result<(), &'static str> {
    if repository.is_empty() {
        return Err("the repository name is empty");
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("the repository name must be lowercase");
    }
    if !repository.split('/').all(|c| PATH_COMPONENT.is_match(c)) {
        return Err("each path component must be lowercase letters and digits, \
             joined by `.`, `_`, `__` or dashes");
    }
    Ok(())
}

impl fmt::Display for Reference {
    /// The canonical form: `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn valid_references_normalise() {
        let d = format!("sha256:{HEX}");
        // input, registry, repository, tag, canonical
        let cases: &[(&str, &str, &str, Option<&str>, String)] = &[
            (
                "busybox",
                "docker.io",
                "library/busybox",
                None,
                "docker.io/library/busybox".into(),
            ),
            (
                "busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
                "docker.io/library/busybox:1.36".into(),
            ),
            (
                "library/busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "team/app",
                "docker.io",
                "team/app",
                None,
                "docker.io/team/app".into(),
            ),
            (
                "docker.io/busybox",
                "docker.io",
                "library/busybox",
                None,
                "docker.io/library/busybox".into(),
            ),
            (
                "index.docker.io/team/app:v1",
                "docker.io",
                "team/app",
                Some("v1"),
                "docker.io/team/app:v1".into(),
            ),
            (
                "localhost/app",
                "localhost",
                "app",
                None,
                "localhost/app".into(),
            ),
            (
                "localhost:5000/a/b/c:t",
                "localhost:5000",
                "a/b/c",
                Some("t"),
                "localhost:5000/a/b/c:t".into(),
            ),
            (
                "127.0.0.1:5000/x:y",
                "127.0.0.1:5000",
                "x",
                Some("y"),
                "127.0.0.1:5000/x:y".into(),
            ),
            (
                "[::1]:5000/x",
                "[::1]:5000",
                "x",
                None,
                "[::1]:5000/x".into(),
            ),
            ("ghcr.io/o/r", "ghcr.io", "o/r", None, "ghcr.io/o/r".into()),
            (
                "Registry/app",
                "Registry",
                "app",
                None,
                "Registry/app".into(),
            ),
            (
                "quay.io/a_b/c__d/e-f/g--h/i.j",
                "quay.io",
                "a_b/c__d/e-f/g--h/i.j",
                None,
                "quay.io/a_b/c__d/e-f/g--h/i.j".into(),
            ),
            (
                "busybox:Tag_1.2-3",
                "docker.io",
                "library/busybox",
                Some("Tag_1.2-3"),
                "docker.io/library/busybox:Tag_1.2-3".into(),
            ),
        ];
        for (input, registry, repository, tag, canonical) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry, *registry, "{input}");
            assert_eq!(r.repository, *repository, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest, None, "{input}");
            assert_eq!(&r.to_string(), canonical, "{input}");
            // The canonical form parses back to the same value.
            assert_eq!(Reference::parse(canonical).unwrap(), r, "{input}");
        }

        let pinned = Reference::parse(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(pinned.tag.as_deref(), Some("1.36"));
        assert_eq!(pinned.digest.as_ref().map(|d| d.hex()), Some(HEX));
        assert_eq!(pinned.manifest_reference(), d);
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/busybox:1.36@{d}")
        );

        let by_digest = Reference::parse(&format!("127.0.0.1:5000/x@{d}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.to_string(), format!("127.0.0.1:5000/x@{d}"));
    }

    #[test]
    fn invalid_references_name_the_input() {
        let long = format!("a/{}", "b".repeat(260));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("docker.io/Team/app", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox:a b", "tag"),
            ("busybox:a/b", "registry"),
            ("busybox@sha256:abc", "digest"),
            ("busybox@sha512:abc", "digest"),
            ("a//b", "path component"),
            ("a/b_", "path component"),
            ("a/.b", "path component"),
            ("-host.io/x", "registry"),
            ("host.io:port/x", "registry"),
            ("localhost:5000/", "empty"),
            (long.as_str(), "255"),
            (HEX, "image id"),
        ];
        let too_long_tag = format!("busybox:{}", "t".repeat(129));
        for (input, needle) in cases
            .iter()
            .copied()
            .chain([(too_long_tag.as_str(), "tag")])
        {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(&format!("{input:?}")), "{err}");
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn helpers() {
        let d = Digest::of(b"x");
        let r = Reference::parse("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.repo_string(), "127.0.0.1:5000/team/app");
        assert_eq!(r.manifest_reference(), "v1");
        let pinned = r.with_digest(&d);
        assert_eq!(
            pinned.to_string(),
            format!("127.0.0.1:5000/team/app:v1@{d}")
        );
        assert_eq!(pinned.manifest_reference(), d.to_string());
        let retagged = pinned.with_tag("v2").unwrap();
        assert_eq!(retagged.to_string(), "127.0.0.1:5000/team/app:v2");
        assert!(r.with_tag("bad tag").is_err());
        assert_eq!(
            Reference::parse("busybox").unwrap().manifest_reference(),
            "latest"
        );
    }
}
