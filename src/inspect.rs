//! `polyarch inspect IMAGE`: what a reference or an OCI layout points at, read and checked.
//!
//! Level 3, over [`crate::image::Source`]: a registry (the manifest fetched with all four
//! manifest/index media types accepted and its body hashed against the digest asked for, or the
//! registry's `Docker-Content-Digest`) or a layout on disk (no network; blobs checked against
//! their names). An OCI index or Docker list is described entry by entry (attestation manifests
//! marked, with the image they are about), or with a platform asked for, that platform's image;
//! an OCI or Docker image manifest with its config's platform, its layers and its history. The
//! result is one value that the command line renders as text, JSON or a template, keeping the
//! exact bytes for `--raw` and `--config`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::exit::{Classify, ExitCode};
use crate::image::{ImageError, Source};
use crate::index;
use crate::oci::{
    self, Descriptor, Digest, History, ImageConfig, ImageIndex, ImageManifest, OciError,
};
use crate::platform::Platform;
use crate::registry::Registry;

/// Why an inspection failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Reading the image failed (registry after retries, layout, digest checks).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The document is not a manifest or index that parses.
    #[error(transparent)]
    Malformed(#[from] OciError),
    /// The config blob could not be kept in a temporary file.
    #[error("cannot use a temporary file: {0}")]
    Temp(#[source] std::io::Error),
}

impl Classify for InspectError {
    fn exit_code(&self) -> ExitCode {
        match self {
            InspectError::Image(e) => e.exit_code(),
            InspectError::Malformed(e) => e.exit_code(),
            InspectError::Temp(_) => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            InspectError::Image(e) => e.hint(),
            _ => None,
        }
    }
}

/// What to read besides the document itself.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// For an index: describe this platform's image instead of the index.
    pub platform: Option<Platform>,
    /// For an image manifest: read its config (platform, history, the bytes for `--config`).
    pub config: bool,
}

/// One entry of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Child {
    /// The platform, normalised (`linux/arm64`, `unknown/unknown`); empty when the entry has
    /// none.
    pub platform: String,
    /// The platform exactly as the entry records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_recorded: Option<Platform>,
    /// The entry's media type.
    pub media_type: String,
    /// The entry's digest.
    pub digest: Digest,
    /// The entry's size, bytes.
    pub size: u64,
    /// Whether it is an attestation manifest rather than an image.
    pub attestation: bool,
    /// For an attestation, the image it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_for: Option<Digest>,
    /// The entry's annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A blob an image manifest lists (config or layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size, bytes.
    pub size: u64,
}

impl From<&Descriptor> for Blob {
    fn from(d: &Descriptor) -> Blob {
        Blob {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
        }
    }
}

/// What a reference points at (the `--json` form; keys are stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The reference, normalised (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The document's media type.
    pub media_type: String,
    /// sha256 of the exact bytes.
    pub digest: Digest,
    /// Size of the exact bytes.
    pub size: u64,
    /// Whether it is an index (OCI index or Docker list).
    pub is_index: bool,
    /// Index entries, in order (indexes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Child>>,
    /// The image's platform from its config, normalised (manifests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The config blob (manifests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Blob>,
    /// The layers, base first (manifests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Blob>>,
    /// The document's own annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The config's history, oldest first (manifests only, when the config was read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    /// The exact bytes served (for `--raw`).
    #[serde(skip)]
    pub raw: Vec<u8>,
    /// The config blob's exact bytes, when it was read (for `--config`).
    #[serde(skip)]
    pub config_raw: Option<Vec<u8>>,
}

/// Reads the image `source` names and describes it (see [`InspectOptions`]).
///
/// Errors: [`InspectError::Image`] (not found: exit 2; network, auth, digest: exit 3; a layout
/// that is not one: exit 2), [`InspectError::Malformed`].
pub async fn inspect<R: Registry>(
    source: &Source<'_, R>,
    opts: &InspectOptions,
) -> Result<Inspection, InspectError> {
    let mut name = source.name();
    let mut raw = source.top().await?;
    if let (Some(p), true) = (&opts.platform, raw.is_index()) {
        raw = source.for_platform(raw, p).await?;
        name = format!("{name} ({p}: {})", raw.digest);
    }
    let mut out = Inspection {
        name: name.clone(),
        media_type: raw.media_type.clone(),
        digest: raw.digest.clone(),
        size: raw.bytes.len() as u64,
        is_index: raw.is_index(),
        manifests: None,
        platform: None,
        config: None,
        layers: None,
        annotations: BTreeMap::new(),
        history: None,
        raw: raw.bytes.clone(),
        config_raw: None,
    };
    if raw.is_index() {
        let idx: ImageIndex = oci::from_bytes(&raw.bytes, &name)?;
        out.annotations = idx.annotations.unwrap_or_default();
        out.manifests = Some(idx.manifests.iter().map(child).collect());
        return Ok(out);
    }
    let m: ImageManifest = oci::from_bytes(&raw.bytes, &name)?;
    out.annotations = m.annotations.clone().unwrap_or_default();
    out.config = Some(Blob::from(&m.config));
    out.layers = Some(m.layers.iter().map(Blob::from).collect());
    if opts.config {
        let dir = tempfile::tempdir().map_err(InspectError::Temp)?;
        let bytes = source.small_blob(&m.config, dir.path()).await?;
        // Attestation manifests and artifacts have configs that are not image configs.
        if let Ok(c) = oci::from_bytes::<ImageConfig>(&bytes, &name) {
            out.platform = Some(c.platform().normalized().to_string());
            out.history = Some(c.history.clone());
        }
        out.config_raw = Some(bytes);
    }
    Ok(out)
}

/// An index entry as described.
fn child(d: &Descriptor) -> Child {
    Child {
        platform: d
            .platform
            .as_ref()
            .map(|p| p.normalized().to_string())
            .unwrap_or_default(),
        platform_recorded: d.platform.clone(),
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        attestation: index::is_attestation(d),
        attestation_for: index::attestation_subject(d),
        annotations: d.annotations.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Location;
    use crate::oci::{MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};
    use crate::registry::fake::FakeRegistry;
    use crate::registry::Reference;

    #[test]
    fn index_and_manifest_are_described() {
        let fake = FakeRegistry::new();
        let repo = Reference::parse("127.0.0.1:5000/x/y").unwrap();
        let config = ImageConfig {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
            ..ImageConfig::default()
        };
        let mut cd = fake.insert_blob(&repo, &oci::to_bytes(&config));
        cd.media_type = MEDIA_TYPE_OCI_CONFIG.into();
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
            config: cd,
            layers: vec![],
            annotations: None,
        };
        let mb = oci::to_bytes(&m);
        let md = fake.insert_manifest(&repo, None, &mb, MEDIA_TYPE_OCI_MANIFEST);
        let mut child = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, md.clone(), mb.len() as u64);
        child.platform = Some(Platform::parse("linux/arm64/v8").unwrap());
        let mut att = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, Digest::of(b"att"), 3);
        att.platform = Some(Platform::new("unknown", "unknown", None));
        att.annotations = Some(BTreeMap::from([
            (
                index::ANNOTATION_REFERENCE_TYPE.into(),
                index::ATTESTATION_MANIFEST.into(),
            ),
            (index::ANNOTATION_REFERENCE_DIGEST.into(), md.to_string()),
        ]));
        let idx = ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
            manifests: vec![child, att],
            annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
        };
        let ib = oci::to_bytes(&idx);
        fake.insert_manifest(&repo, Some("v1"), &ib, MEDIA_TYPE_OCI_INDEX);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let opts = InspectOptions {
            platform: None,
            config: true,
        };
        let work = tempfile::tempdir().unwrap();
        let at = |r: Reference| Source::open(&Location::Registry(r), &fake, work.path()).unwrap();
        let got = rt
            .block_on(inspect(&at(repo.with_tag("v1").unwrap()), &opts))
            .unwrap();
        assert!(got.is_index);
        assert_eq!(got.raw, ib);
        let children = got.manifests.unwrap();
        assert_eq!(children[0].platform, "linux/arm64");
        assert!(!children[0].attestation && children[1].attestation);
        assert_eq!(children[1].attestation_for.as_ref(), Some(&md));
        assert_eq!(got.annotations["a"], "b");
        let single = rt
            .block_on(inspect(&at(repo.with_digest(&md)), &opts))
            .unwrap();
        assert!(!single.is_index);
        assert_eq!(single.platform.as_deref(), Some("linux/arm64"));
        assert_eq!(single.layers.unwrap().len(), 0);
        // With a platform, an index is described by that platform's image.
        let arm = InspectOptions {
            platform: Some(Platform::parse("linux/arm64").unwrap()),
            config: true,
        };
        let picked = rt
            .block_on(inspect(&at(repo.with_tag("v1").unwrap()), &arm))
            .unwrap();
        assert_eq!(picked.digest, md);
        assert_eq!(picked.config_raw.unwrap(), oci::to_bytes(&config));
    }
}
