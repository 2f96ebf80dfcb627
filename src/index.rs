//! Stitching per-platform image manifests into one OCI image index (image-spec image-index.md)
//! or Docker manifest list, for `polyarch build` and `polyarch merge` alike.
//!
//! Level 0: pure. Entries keep the order they are given in (the `--platform` order), each with
//! its platform; two images for the same normalised platform are refused. Attestation manifests
//! (BuildKit's convention: platform `unknown/unknown`, annotation
//! `vnd.docker.reference.type: attestation-manifest` naming their image in
//! `vnd.docker.reference.digest`) ride along without counting as a platform. The index is
//! serialised once to exact bytes, which are what is hashed, stored and pushed.

use std::collections::BTreeMap;

use crate::oci::{
    self, Descriptor, Digest, ImageIndex, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_INDEX,
};

/// Annotation naming what kind of reference an index entry is (BuildKit
/// `docs/attestations/attestation-storage.md`).
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Annotation of an attestation entry naming the image manifest it is about.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of [`ANNOTATION_REFERENCE_TYPE`] for attestation manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// Whether an index entry is an attestation manifest rather than an image for a platform:
/// marked by [`ANNOTATION_REFERENCE_TYPE`], or with the platform `unknown/unknown`.
pub fn is_attestation(d: &Descriptor) -> bool {
    let marked = d
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REFERENCE_TYPE))
        .is_some_and(|v| v == ATTESTATION_MANIFEST);
    let unknown = d
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
    marked || unknown
}

/// The image an attestation entry is about ([`ANNOTATION_REFERENCE_DIGEST`]), if it names one.
pub fn attestation_subject(d: &Descriptor) -> Option<Digest> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REFERENCE_DIGEST))
        .and_then(|v| v.parse().ok())
}

/// The document type an index is written as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndexFormat {
    /// An OCI image index (`application/vnd.oci.image.index.v1+json`).
    #[default]
    Oci,
    /// A Docker manifest list (`application/vnd.docker.distribution.manifest.list.v2+json`),
    /// which has no annotations.
    Docker,
}

impl IndexFormat {
    /// The media type of documents of this format.
    pub fn media_type(self) -> &'static str {
        match self {
            IndexFormat::Oci => MEDIA_TYPE_OCI_INDEX,
            IndexFormat::Docker => MEDIA_TYPE_DOCKER_LIST,
        }
    }
}

/// How an index is written, besides its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// OCI index or Docker list.
    pub format: IndexFormat,
    /// Annotations of the index itself (empty: none written).
    pub annotations: BTreeMap<String, String>,
}

/// Errors from stitching an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// No children at all: an empty index is never produced.
    #[error("refusing to write an image index with no manifests")]
    Empty,
    /// Two children for one platform.
    #[error("two manifests for platform {platform}: {first} and {second}")]
    DuplicatePlatform {
        /// The platform, normalised (`os/arch[/variant]`).
        platform: String,
        /// The digest of the first child.
        first: Digest,
        /// The digest of the second child.
        second: Digest,
    },
    /// A child descriptor without a platform.
    #[error("manifest {digest} has no platform")]
    NoPlatform {
        /// The child's digest.
        digest: Digest,
    },
    /// Annotations asked for in a Docker manifest list, which cannot carry them.
    #[error("a Docker manifest list cannot carry annotations ({what})")]
    AnnotationsInDockerList {
        /// Where the annotations were: `the index` or `the entry for <platform>`.
        what: String,
    },
    /// An attestation manifest in a Docker manifest list: it is only told apart by
    /// annotations, which that format cannot carry.
    #[error("attestation manifest {digest} cannot be listed in a Docker manifest list")]
    AttestationInDockerList {
        /// The attestation manifest's digest.
        digest: Digest,
    },
}

impl crate::exit::Classify for IndexError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::BadInput
    }

    fn hint(&self) -> Option<String> {
        match self {
            IndexError::DuplicatePlatform { .. } => {
                Some("give --replace to let the later source win, or drop one source".into())
            }
            IndexError::AnnotationsInDockerList { .. } => {
                Some("use --format oci, or leave the annotations out".into())
            }
            IndexError::AttestationInDockerList { .. } => {
                Some("use --format oci, or --drop-attestations".into())
            }
            _ => None,
        }
    }
}

/// An index ready to be stored or pushed: the exact bytes and their digest.
#[derive(Debug, Clone)]
pub struct StitchedIndex {
    /// The index value.
    pub index: ImageIndex,
    /// The serialised bytes (what is pushed).
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

impl StitchedIndex {
    /// A descriptor for this index (media type, digest, size).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.index
                .media_type
                .clone()
                .unwrap_or_else(|| MEDIA_TYPE_OCI_INDEX.to_string()),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// Builds the OCI image index for `children` (manifest descriptors, each with `platform` set),
/// in the given order: [`stitch_with`] with the default options.
pub fn stitch(children: &[Descriptor]) -> Result<StitchedIndex, IndexError> {
    stitch_with(children, &IndexOptions::default())
}

/// Builds an index of `options.format` for `children` (manifest descriptors, each with
/// `platform` set), in the given order, with `options.annotations` on the index.
///
/// Errors: [`IndexError::Empty`] for no children (an empty index is never produced),
/// [`IndexError::NoPlatform`], [`IndexError::DuplicatePlatform`] for two images (attestations
/// aside) whose platforms are the same after normalisation, and for a Docker list
/// [`IndexError::AnnotationsInDockerList`] / [`IndexError::AttestationInDockerList`].
pub fn stitch_with(
    children: &[Descriptor],
    options: &IndexOptions,
) -> Result<StitchedIndex, IndexError> {
    if children.iter().all(is_attestation) {
        return Err(IndexError::Empty);
    }
    if options.format == IndexFormat::Docker {
        if !options.annotations.is_empty() {
            return Err(IndexError::AnnotationsInDockerList {
                what: "the index".into(),
            });
        }
        for c in children {
            if is_attestation(c) {
                return Err(IndexError::AttestationInDockerList {
                    digest: c.digest.clone(),
                });
            }
            if c.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
                return Err(IndexError::AnnotationsInDockerList {
                    what: format!(
                        "the entry for {}",
                        c.platform
                            .as_ref()
                            .map(|p| p.normalized().to_string())
                            .unwrap_or_else(|| c.digest.to_string())
                    ),
                });
            }
        }
    }
    for (i, c) in children.iter().enumerate() {
        let p = c.platform.as_ref().ok_or_else(|| IndexError::NoPlatform {
            digest: c.digest.clone(),
        })?;
        if is_attestation(c) {
            continue;
        }
        if let Some(prev) = children[..i]
            .iter()
            .find(|o| !is_attestation(o) && o.platform.as_ref().is_some_and(|q| q.same_as(p)))
        {
            return Err(IndexError::DuplicatePlatform {
                platform: p.normalized().to_string(),
                first: prev.digest.clone(),
                second: c.digest.clone(),
            });
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(options.format.media_type().to_string()),
        manifests: children.to_vec(),
        annotations: (!options.annotations.is_empty()).then(|| options.annotations.clone()),
    };
    let bytes = oci::to_bytes(&index);
    let digest = Digest::of(&bytes);
    Ok(StitchedIndex {
        index,
        bytes,
        digest,
    })
}

/// How [`select`] treats entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// A later image for a platform replaces an earlier one (else that is an error).
    pub replace: bool,
    /// Attestation manifests are left out.
    pub drop_attestations: bool,
}

/// Chooses which of `entries` (in source order) go into an index: the same manifest listed
/// twice is kept once; two different images for one normalised platform are an error unless
/// `replace` (the later wins); attestations are kept unless dropped, but only while the image
/// they name is kept. Returns the kept positions in order.
///
/// Errors: [`IndexError::NoPlatform`], [`IndexError::DuplicatePlatform`].
pub fn select(entries: &[Descriptor], how: Selection) -> Result<Vec<usize>, IndexError> {
    let mut kept: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let p = e.platform.as_ref().ok_or_else(|| IndexError::NoPlatform {
            digest: e.digest.clone(),
        })?;
        if kept.iter().any(|&k| entries[k].digest == e.digest) {
            continue;
        }
        if is_attestation(e) {
            if !how.drop_attestations {
                kept.push(i);
            }
            continue;
        }
        let clash = kept.iter().position(|&k| {
            !is_attestation(&entries[k])
                && entries[k].platform.as_ref().is_some_and(|q| q.same_as(p))
        });
        if let Some(at) = clash {
            if !how.replace {
                return Err(IndexError::DuplicatePlatform {
                    platform: p.normalized().to_string(),
                    first: entries[kept[at]].digest.clone(),
                    second: e.digest.clone(),
                });
            }
            kept.remove(at);
        }
        kept.push(i);
    }
    // Attestations about images that are no longer listed go too.
    let images: Vec<Digest> = kept
        .iter()
        .filter(|&&k| !is_attestation(&entries[k]))
        .map(|&k| entries[k].digest.clone())
        .collect();
    kept.retain(|&k| {
        !is_attestation(&entries[k])
            || attestation_subject(&entries[k]).is_none_or(|s| images.contains(&s))
    });
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_OCI_MANIFEST;
    use crate::platform::Platform;

    fn child(p: &str, content: &[u8]) -> Descriptor {
        let mut d = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, Digest::of(content), 10);
        d.platform = Some(Platform::parse(p).unwrap());
        d
    }

    #[test]
    fn keeps_order_and_platforms() {
        let s = stitch(&[child("linux/amd64", b"a"), child("linux/arm64/v8", b"b")]).unwrap();
        let text = String::from_utf8(s.bytes.clone()).unwrap();
        assert!(text.starts_with(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json""#
        ));
        assert!(text.find("amd64").unwrap() < text.find("arm64").unwrap());
        assert!(text.contains(r#""platform":{"architecture":"arm64","os":"linux","variant":"v8"}"#));
        assert_eq!(s.digest, Digest::of(&s.bytes));
        let again = stitch(&[child("linux/amd64", b"a"), child("linux/arm64/v8", b"b")]).unwrap();
        assert_eq!(again.bytes, s.bytes);
    }

    #[test]
    fn refuses_empty_and_duplicates() {
        assert!(matches!(stitch(&[]), Err(IndexError::Empty)));
        let e = stitch(&[child("linux/arm64", b"a"), child("linux/aarch64/v8", b"b")]);
        assert!(matches!(e, Err(IndexError::DuplicatePlatform { .. })));
        let mut no = child("linux/amd64", b"a");
        no.platform = None;
        assert!(matches!(stitch(&[no]), Err(IndexError::NoPlatform { .. })));
    }

    fn attestation(for_image: &Descriptor, content: &[u8]) -> Descriptor {
        let mut d = child("linux/amd64", content);
        d.platform = Some(Platform::new("unknown", "unknown", None));
        d.annotations = Some(BTreeMap::from([
            (
                ANNOTATION_REFERENCE_TYPE.to_string(),
                ATTESTATION_MANIFEST.to_string(),
            ),
            (
                ANNOTATION_REFERENCE_DIGEST.to_string(),
                for_image.digest.to_string(),
            ),
        ]));
        d
    }

    #[test]
    fn attestations_are_not_platforms_and_docker_lists_refuse_them() {
        let amd = child("linux/amd64", b"a");
        let arm = child("linux/arm64", b"b");
        let children = [
            amd.clone(),
            attestation(&amd, b"x"),
            arm.clone(),
            attestation(&arm, b"y"),
        ];
        let s = stitch(&children).unwrap();
        assert_eq!(s.index.manifests.len(), 4);
        assert!(matches!(
            stitch(&[attestation(&amd, b"x")]),
            Err(IndexError::Empty)
        ));
        let docker = IndexOptions {
            format: IndexFormat::Docker,
            ..IndexOptions::default()
        };
        assert!(matches!(
            stitch_with(&children, &docker),
            Err(IndexError::AttestationInDockerList { .. })
        ));
        let list = stitch_with(&[amd.clone(), arm.clone()], &docker).unwrap();
        assert_eq!(list.descriptor().media_type, MEDIA_TYPE_DOCKER_LIST);
        assert!(String::from_utf8(list.bytes)
            .unwrap()
            .contains(MEDIA_TYPE_DOCKER_LIST));
        let annotated = IndexOptions {
            format: IndexFormat::Docker,
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
        };
        assert!(matches!(
            stitch_with(std::slice::from_ref(&amd), &annotated),
            Err(IndexError::AnnotationsInDockerList { .. })
        ));
        let oci = IndexOptions {
            format: IndexFormat::Oci,
            ..annotated
        };
        let s = stitch_with(&[amd], &oci).unwrap();
        assert!(String::from_utf8(s.bytes)
            .unwrap()
            .ends_with(r#""annotations":{"k":"v"}}"#));
    }

    #[test]
    fn selection_dedupes_replaces_and_drops() {
        let amd = child("linux/amd64", b"a");
        let amd2 = child("linux/amd64", b"a2");
        let arm = child("linux/arm64/v8", b"b");
        let att = attestation(&amd, b"x");
        let entries = [
            amd.clone(),
            att.clone(),
            arm.clone(),
            amd.clone(),
            amd2.clone(),
        ];
        // The same manifest twice is one entry; a second amd64 image is a clash.
        let e = select(&entries, Selection::default()).unwrap_err();
        assert!(
            matches!(e, IndexError::DuplicatePlatform { ref platform, .. } if platform == "linux/amd64")
        );
        // With --replace the later amd64 wins, and the attestation of the replaced one goes.
        let kept = select(
            &entries,
            Selection {
                replace: true,
                ..Selection::default()
            },
        )
        .unwrap();
        assert_eq!(kept, vec![2, 4]);
        let kept = select(&entries[..3], Selection::default()).unwrap();
        assert_eq!(kept, vec![0, 1, 2]);
        let kept = select(
            &entries[..3],
            Selection {
                drop_attestations: true,
                ..Selection::default()
            },
        )
        .unwrap();
        assert_eq!(kept, vec![0, 2]);
    }
}
