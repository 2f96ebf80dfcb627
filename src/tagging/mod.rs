//! Release tags from a semantic version (`--tag-semver`), as the Docker guide's tagging section
//! and `docker/metadata-action` (`type=semver` with `{{version}}`, `{{major}}.{{minor}}`,
//! `{{major}}`, and `latest=auto`) make them: `1.2.3` gives `1.2.3`, `1.2`, `1` and `latest`;
//! a pre-release (`1.2.3-rc.1`) gives only itself, since it must not move the tags people
//! follow. A leading `v` is accepted and dropped (Semantic Versioning 2.0.0 FAQ).
//!
//! Level 0: pure, no I/O.

use crate::exit::{Classify, ExitCode};

/// Why a version gives no tags.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// Not a semantic version.
    #[error("{version:?} is not a semantic version MAJOR.MINOR.PATCH[-PRERELEASE] ({reason})")]
    NotSemver {
        /// As given.
        version: String,
        /// The parser's reason.
        reason: String,
    },
    /// Build metadata (`+...`) has no place in a tag (`+` is not allowed there).
    #[error("{version:?}: build metadata (+{metadata}) cannot be part of a tag")]
    BuildMetadata {
        /// As given.
        version: String,
        /// The metadata.
        metadata: String,
    },
}

impl Classify for TagError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

/// The tags `version` gives, most specific first.
///
/// Errors: [`TagError::NotSemver`], [`TagError::BuildMetadata`].
pub fn semver_tags(version: &str) -> Result<Vec<String>, TagError> {
    let bare = version.strip_prefix('v').unwrap_or(version);
    let v = semver::Version::parse(bare).map_err(|e| TagError::NotSemver {
        version: version.to_string(),
        reason: e.to_string(),
    })?;
    if !v.build.is_empty() {
        return Err(TagError::BuildMetadata {
            version: version.to_string(),
            metadata: v.build.to_string(),
        });
    }
    if !v.pre.is_empty() {
        return Ok(vec![v.to_string()]);
    }
    Ok(vec![
        v.to_string(),
        format!("{}.{}", v.major, v.minor),
        v.major.to_string(),
        "latest".into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_prereleases_and_the_v_prefix() {
        assert_eq!(
            semver_tags("1.2.3").unwrap(),
            ["1.2.3", "1.2", "1", "latest"]
        );
        assert_eq!(
            semver_tags("v1.2.3").unwrap(),
            ["1.2.3", "1.2", "1", "latest"]
        );
        assert_eq!(
            semver_tags("0.4.0").unwrap(),
            ["0.4.0", "0.4", "0", "latest"]
        );
        assert_eq!(semver_tags("2.0.0-rc.1").unwrap(), ["2.0.0-rc.1"]);
        assert_eq!(semver_tags("v2.0.0-beta").unwrap(), ["2.0.0-beta"]);
        assert!(matches!(
            semver_tags("1.2"),
            Err(TagError::NotSemver { .. })
        ));
        assert!(matches!(
            semver_tags("latest"),
            Err(TagError::NotSemver { .. })
        ));
        assert!(matches!(
            semver_tags("1.2.3+build.5"),
            Err(TagError::BuildMetadata { .. })
        ));
    }
}
