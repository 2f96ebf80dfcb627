//! `build --annotation` values as buildx spells them: `[LEVEL[,LEVEL...]][\[PLATFORM,...\]]:KEY=VALUE`
//! or `KEY=VALUE` (the image manifests), and which annotations land on which document.
//!
//! Level 0: pure values. The levels are buildx's (docs "Annotations", `--annotation`):
//! `manifest` (each image manifest; the default), `index` (the image index),
//! `manifest-descriptor` (an image's entry in the index), `index-descriptor` (the index's entry
//! in an OCI layout's `index.json`); a `[PLATFORM]` filter limits `manifest` and
//! `manifest-descriptor` to those platforms.

use std::collections::BTreeMap;

use crate::platform::Platform;

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationLevel {
    /// Each image manifest (`manifest:`, the default).
    Manifest,
    /// The image index (`index:`).
    Index,
    /// Each image's descriptor in the index (`manifest-descriptor:`).
    ManifestDescriptor,
    /// The index's descriptor in an OCI layout's `index.json` (`index-descriptor:`).
    IndexDescriptor,
}

impl AnnotationLevel {
    const ALL: [(&'static str, AnnotationLevel); 4] = [
        ("manifest", AnnotationLevel::Manifest),
        ("index", AnnotationLevel::Index),
        ("manifest-descriptor", AnnotationLevel::ManifestDescriptor),
        ("index-descriptor", AnnotationLevel::IndexDescriptor),
    ];
}

/// One `--annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// The documents it goes on.
    pub levels: Vec<AnnotationLevel>,
    /// The platforms it is limited to (empty: all).
    pub platforms: Vec<Platform>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Annotation {
    /// Parses one `--annotation` value. Errors (a message naming the value): an unknown
    /// level (the valid ones listed), a bad platform, no `=`, an empty key, a platform filter
    /// on `index` or `index-descriptor` (one document for all platforms).
    pub fn parse(spec: &str) -> Result<Annotation, String> {
        let (left, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected [LEVEL[PLATFORM]:]KEY=VALUE"))?;
        let (levels, platforms, key) = match left.split_once(':') {
            Some((prefix, key)) => {
                let (names, platforms) = match prefix.split_once('[') {
                    Some((names, rest)) => {
                        let list = rest
                            .strip_suffix(']')
                            .ok_or_else(|| format!("{spec:?}: unclosed [PLATFORM]"))?;
                        let mut ps = Vec::new();
                        for p in list.split(',') {
                            ps.push(
                                Platform::parse(p.trim()).map_err(|e| format!("{spec:?}: {e}"))?,
                            );
                        }
                        (names, ps)
                    }
                    None => (prefix, Vec::new()),
                };
                let mut levels = Vec::new();
                for name in names.split(',') {
                    let level = AnnotationLevel::ALL
                        .iter()
                        .find(|(n, _)| *n == name.trim())
                        .map(|(_, l)| *l)
                        .ok_or_else(|| {
                            format!(
                                "{spec:?}: unknown level {name:?} (valid: manifest, index, \
                                 manifest-descriptor, index-descriptor)"
                            )
                        })?;
                    levels.push(level);
                }
                (levels, platforms, key)
            }
            None => (vec![AnnotationLevel::Manifest], Vec::new(), left),
        };
        if key.is_empty() {
            return Err(format!("{spec:?}: empty key"));
        }
        let whole = |l: &AnnotationLevel| {
            matches!(l, AnnotationLevel::Index | AnnotationLevel::IndexDescriptor)
        };
        if !platforms.is_empty() && levels.iter().any(whole) {
            return Err(format!(
                "{spec:?}: a [PLATFORM] filter applies to manifest and manifest-descriptor only"
            ));
        }
        Ok(Annotation {
            levels,
            platforms,
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// The annotations of `all` for documents of `level`, about `platform` (`None` for the index
/// and its descriptor); a later one of the same key wins.
pub fn annotations_for(
    all: &[Annotation],
    level: AnnotationLevel,
    platform: Option<&Platform>,
) -> BTreeMap<String, String> {
    all.iter()
        .filter(|a| a.levels.contains(&level))
        .filter(|a| {
            a.platforms.is_empty()
                || platform.is_some_and(|p| a.platforms.iter().any(|q| q.same_as(p)))
        })
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_platform_filters() {
        let a = Annotation::parse("org.opencontainers.image.title=x").unwrap();
        assert_eq!(a.levels, vec![AnnotationLevel::Manifest]);
        let b = Annotation::parse("manifest[linux/amd64]:k=amd").unwrap();
        assert_eq!(b.platforms, vec![Platform::parse("linux/amd64").unwrap()]);
        let c = Annotation::parse("index,manifest-descriptor:k2=both").unwrap();
        assert_eq!(
            c.levels,
            vec![AnnotationLevel::Index, AnnotationLevel::ManifestDescriptor]
        );
        let d = Annotation::parse("index-descriptor:k3=v=with=equals").unwrap();
        assert_eq!(d.value, "v=with=equals");
        let all = [a, b, c, d];
        let amd = Platform::parse("linux/amd64").unwrap();
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        let m = annotations_for(&all, AnnotationLevel::Manifest, Some(&amd));
        assert_eq!(m.len(), 2);
        let m = annotations_for(&all, AnnotationLevel::Manifest, Some(&arm));
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["org.opencontainers.image.title"]
        );
        assert_eq!(annotations_for(&all, AnnotationLevel::Index, None).len(), 1);
        assert_eq!(
            annotations_for(&all, AnnotationLevel::IndexDescriptor, None)["k3"],
            "v=with=equals"
        );
    }

    #[test]
    fn bad_annotations() {
        assert!(Annotation::parse("novalue").is_err());
        assert!(Annotation::parse("manifest:=v").is_err());
        let e = Annotation::parse("layer:k=v").unwrap_err();
        assert!(e.contains("valid: manifest, index"), "{e}");
        assert!(Annotation::parse("index[linux/amd64]:k=v").is_err());
        assert!(Annotation::parse("manifest[linux/amd64:k=v").is_err());
    }
}
