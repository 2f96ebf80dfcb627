//! `--annotation`: where each one goes (the index, or the entries of all or one platform) and
//! its key and value, parsed from buildx's syntax.
//!
//! Level 3, but pure: no I/O. It must not place annotations on entries (`choose` does) nor
//! offer targets that would change the children's digests.

use super::error::MergeError;
use crate::platform::Platform;

/// Where an `--annotation` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationTarget {
    /// The index itself (`index:` or no prefix).
    Index,
    /// Entries of the index (`manifest-descriptor:`), all or those of one platform
    /// (`manifest-descriptor[linux/arm64]:`).
    Descriptor(Option<Platform>),
}

/// One `--annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Where it goes.
    pub target: AnnotationTarget,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Parses `--annotation`: `index:KEY=VALUE`, `manifest-descriptor:KEY=VALUE`,
/// `manifest-descriptor[PLATFORM]:KEY=VALUE`, or `KEY=VALUE` (the index). buildx's other
/// targets (`manifest:` and the like) would change the children's digests and are refused.
pub fn parse_annotation(spec: &str) -> Result<Annotation, MergeError> {
    let bad = |message: String| MergeError::Usage {
        flag: "--annotation".into(),
        message,
    };
    let (target, kv) = match spec.split_once('=') {
        Some((left, _)) if left.contains(':') => {
            let (prefix, kv) = spec.split_once(':').unwrap_or((spec, ""));
            let target = if prefix == "index" {
                AnnotationTarget::Index
            } else if prefix == "manifest-descriptor" {
                AnnotationTarget::Descriptor(None)
            } else if let Some(p) = prefix
                .strip_prefix("manifest-descriptor[")
                .and_then(|p| p.strip_suffix(']'))
            {
                let platform = Platform::parse(p).map_err(|e| bad(format!("{spec:?}: {e}")))?;
                AnnotationTarget::Descriptor(Some(platform))
            } else {
                return Err(bad(format!(
                    "{spec:?}: unknown target {prefix:?} (use index: or \
                     manifest-descriptor[PLATFORM]:; merge cannot change the manifests)"
                )));
            };
            (target, kv)
        }
        _ => (AnnotationTarget::Index, spec),
    };
    let (key, value) = kv
        .split_once('=')
        .ok_or_else(|| bad(format!("{spec:?}: expected KEY=VALUE")))?;
    if key.is_empty() {
        return Err(bad(format!("{spec:?}: empty key")));
    }
    Ok(Annotation {
        target,
        key: key.to_string(),
        value: value.to_string(),
    })
}
