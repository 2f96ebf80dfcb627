//! What the command line adds to the images besides the Dockerfile: `--label` (config labels,
//! winning over the Dockerfile's `LABEL`s as BuildKit's `label:` frontend options do) and
//! `--annotation` (on manifests, the index, their descriptors; see
//! [`crate::oci::Annotation`]), and `--provenance` (made in [`super::attest`]).
//!
//! Level 3 (coordinator), but pure: no I/O. Must not change anything a step cache key depends
//! on (labels go on the final config only).

use std::collections::BTreeMap;

use crate::oci::{annotations_for, Annotation, AnnotationLevel, ImageConfig};
use crate::platform::Platform;

/// `--label` and `--annotation` values of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMeta {
    /// Labels added to every image's config (`--label`, `BUILDX_GIT_LABELS`).
    pub labels: BTreeMap<String, String>,
    /// Annotations, in the order given.
    pub annotations: Vec<Annotation>,
    /// `--provenance`: attach SLSA provenance to each image (`None`: no attestation).
    pub provenance: Option<crate::attest::ProvenanceMode>,
    /// Whether the provenance was asked for (`--provenance`, `--attest`): then it gives the
    /// build's start and end times; the default provenance of a push gives them only when
    /// `SOURCE_DATE_EPOCH` fixes them.
    pub provenance_times: bool,
    /// `--sbom`: attach an SPDX SBOM of each image's packages.
    pub sbom: bool,
}

impl ImageMeta {
    /// Adds the labels to `config` (over the Dockerfile's of the same name).
    pub(super) fn apply_labels(&self, config: &mut ImageConfig) {
        if !self.labels.is_empty() {
            config
                .config
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(self.labels.clone());
        }
    }

    /// The annotations of documents of `level` about `platform` (`None`: none at all).
    pub(super) fn annotations(
        &self,
        level: AnnotationLevel,
        platform: Option<&Platform>,
    ) -> Option<BTreeMap<String, String>> {
        let a = annotations_for(&self.annotations, level, platform);
        (!a.is_empty()).then_some(a)
    }
}
