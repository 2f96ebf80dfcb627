//! Stitching per-platform image manifests into one OCI image index (image-spec image-index.md).
//!
//! Level 0: pure. Entries keep the order they are given in (the `--platform` order), each with
//! its platform; two entries for the same normalised platform are refused. The index is
//! serialised once to exact bytes, which are what is hashed, stored and pushed.

use crate::oci::{self, Descriptor, Digest, ImageIndex, MEDIA_TYPE_OCI_INDEX};

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
}

impl crate::exit::Classify for IndexError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::BadInput
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
            MEDIA_TYPE_OCI_INDEX,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// Builds the OCI image index for `children` (manifest descriptors, each with `platform` set),
/// in the given order. Errors on an empty list, a child without platform, or two children whose
/// platforms are the same after normalisation.
pub fn stitch(children: &[Descriptor]) -> Result<StitchedIndex, IndexError> {
    if children.is_empty() {
        return Err(IndexError::Empty);
    }
    for (i, c) in children.iter().enumerate() {
        let p = c.platform.as_ref().ok_or_else(|| IndexError::NoPlatform {
            digest: c.digest.clone(),
        })?;
        if let Some(prev) = children[..i]
            .iter()
            .find(|o| o.platform.as_ref().is_some_and(|q| q.same_as(p)))
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
        media_type: Some(MEDIA_TYPE_OCI_INDEX.to_string()),
        manifests: children.to_vec(),
        annotations: None,
    };
    let bytes = oci::to_bytes(&index);
    let digest = Digest::of(&bytes);
    Ok(StitchedIndex {
        index,
        bytes,
        digest,
    })
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
}
