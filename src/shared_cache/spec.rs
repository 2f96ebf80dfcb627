//! `--cache-from` and `--cache-to` values in buildx's spelling: `type=registry,ref=REPO:TAG`
//! (`mode=min|max`, `ignore-error=true` for `--cache-to`), `type=local,src=DIR` /
//! `type=local,dest=DIR`, and a bare `REPO:TAG` meaning `type=registry,ref=REPO:TAG`.
//!
//! Level 3 (shared_cache), pure: parsing only, no I/O.

use std::path::PathBuf;

use crate::registry::Reference;

/// Which steps `--cache-to` exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportMode {
    /// The steps of the final (target) stage of each platform: `mode=min`, the default.
    #[default]
    Min,
    /// The steps of every stage built: `mode=max`.
    Max,
}

/// Where a shared cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// An OCI artifact in a registry, under a tag (`type=registry,ref=REPO:TAG`).
    Registry(Reference),
    /// An OCI image layout directory (`type=local`).
    Local(PathBuf),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSource {
    /// Where to read.
    pub location: CacheLocation,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTarget {
    /// Where to write.
    pub location: CacheLocation,
    /// Which steps.
    pub mode: ExportMode,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

/// Why a cache spec is refused (a usage error, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{spec:?}: {reason}")]
pub struct SpecError {
    /// The value as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The `key=value` fields of a spec, or a bare reference.
fn fields(spec: &str) -> Result<Vec<(String, String)>, SpecError> {
    if !spec.contains('=') {
        return Ok(vec![
            ("type".into(), "registry".into()),
            ("ref".into(), spec.into()),
        ]);
    }
    spec.split(',')
        .map(|part| {
            part.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .ok_or_else(|| SpecError {
                    spec: spec.into(),
                    reason: format!("{part:?} is not key=value"),
                })
        })
        .collect()
}

/// The fields of a spec checked against `known` keys, by name.
struct Fields {
    spec: String,
    values: Vec<(String, String)>,
}

impl Fields {
    fn parse(spec: &str, known: &[&str]) -> Result<Fields, SpecError> {
        let values = fields(spec)?;
        if let Some((k, _)) = values.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(SpecError {
                spec: spec.into(),
                reason: format!("unknown key {k:?} (known: {})", known.join(", ")),
            });
        }
        Ok(Fields {
            spec: spec.into(),
            values,
        })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self, reason: impl Into<String>) -> SpecError {
        SpecError {
            spec: self.spec.clone(),
            reason: reason.into(),
        }
    }

    /// The location: a registry `ref` (a tag, not a digest) or a local directory under
    /// `dir_key` (`src` or `dest`).
    fn location(&self, dir_key: &str) -> Result<CacheLocation, SpecError> {
        match self.get("type").unwrap_or("registry") {
            "registry" => {
                let r = self
                    .get("ref")
                    .ok_or_else(|| self.error("type=registry needs ref=REPO:TAG"))?;
                let reference: Reference = r.parse().map_err(|e| self.error(format!("{e}")))?;
                if reference.digest.is_some() {
                    return Err(self.error("ref= must be a tag (the cache is written there)"));
                }
                Ok(CacheLocation::Registry(reference))
            }
            "local" => {
                let dir = self
                    .get(dir_key)
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| self.error(format!("type=local needs {dir_key}=DIR")))?;
                Ok(CacheLocation::Local(PathBuf::from(dir)))
            }
            other => Err(self.error(format!(
                "type={other} is not supported (supported: registry, local)"
            ))),
        }
    }
}

/// Parses a `--cache-from` value.
///
/// Errors: [`SpecError`] naming the value and what is wrong.
pub fn parse_source(spec: &str) -> Result<CacheSource, SpecError> {
    let f = Fields::parse(spec, &["type", "ref", "src"])?;
    Ok(CacheSource {
        location: f.location("src")?,
    })
}

/// Parses a `--cache-to` value.
///
/// Errors: [`SpecError`] naming the value and what is wrong.
pub fn parse_target(spec: &str) -> Result<CacheTarget, SpecError> {
    let f = Fields::parse(spec, &["type", "ref", "dest", "mode", "ignore-error"])?;
    let mode = match f.get("mode").unwrap_or("min") {
        "min" => ExportMode::Min,
        "max" => ExportMode::Max,
        other => return Err(f.error(format!("mode={other}: use min or max"))),
    };
    let ignore_error = match f.get("ignore-error").unwrap_or("false") {
        "true" => true,
        "false" => false,
        other => return Err(f.error(format!("ignore-error={other}: use true or false"))),
    };
    Ok(CacheTarget {
        location: f.location("dest")?,
        mode,
        ignore_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_spellings() {
        let t = parse_target("type=registry,ref=127.0.0.1:5000/app:cache,mode=max").unwrap();
        assert_eq!(t.mode, ExportMode::Max);
        assert!(
            matches!(&t.location, CacheLocation::Registry(r) if r.tag.as_deref() == Some("cache"))
        );
        let t = parse_target("type=local,dest=/tmp/c").unwrap();
        assert_eq!(t.location, CacheLocation::Local("/tmp/c".into()));
        assert_eq!(t.mode, ExportMode::Min);
        let s = parse_source("type=local,src=/tmp/c").unwrap();
        assert_eq!(s.location, CacheLocation::Local("/tmp/c".into()));
        let s = parse_source("127.0.0.1:5000/app:cache").unwrap();
        assert!(matches!(s.location, CacheLocation::Registry(_)));
        assert!(
            parse_target("type=registry,ref=r/x:y,ignore-error=true")
                .unwrap()
                .ignore_error
        );
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for (spec, needle) in [
            ("type=gha", "not supported"),
            ("type=registry", "needs ref="),
            ("type=local", "needs dest="),
            ("type=registry,ref=r/x:y,mode=all", "mode=all"),
            ("type=registry,ref=r/x:y,colour=red", "unknown key"),
            ("type=registry,ref=r/x@sha256:0000000000000000000000000000000000000000000000000000000000000000", "tag"),
            ("type=registry,,ref=x", "not key=value"),
        ] {
            let e = parse_target(spec).unwrap_err();
            assert!(e.to_string().contains(needle), "{spec}: {e}");
        }
        assert!(
            parse_source("type=local,dest=/x").is_err(),
            "--cache-from reads src="
        );
    }
}
