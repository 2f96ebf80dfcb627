//! Attestations attached to images as BuildKit attaches them (moby/buildkit
//! `docs/attestations/attestation-storage.md`): per image an attestation manifest whose
//! layers are in-toto statements (`application/vnd.in-toto+json`, annotated
//! `in-toto.io/predicate-type`), listed in the index with platform `unknown/unknown` and the
//! annotations `vnd.docker.reference.type=attestation-manifest` and
//! `vnd.docker.reference.digest=<the image manifest>`. The statement made here is SLSA
//! provenance v1 (slsa.dev/spec/v1.0/provenance) in an in-toto Statement v1
//! (github.com/in-toto/attestation `spec/v1/statement.md`).
//!
//! Level 0: pure. Values in, canonical JSON bytes out (the same input gives the same bytes,
//! so with `SOURCE_DATE_EPOCH` the same digests); no I/O, no clock (times are given).

pub mod sbom;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::index::{ANNOTATION_REFERENCE_DIGEST, ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST};
use crate::oci::{
    self, Descriptor, Digest, ImageManifest, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST,
};
use crate::platform::Platform;

/// Media type of an in-toto statement layer.
pub const MEDIA_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
/// Annotation naming a statement layer's predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// in-toto Statement v1 `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1 predicate type.
pub const PREDICATE_SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// The `buildType` of polyarch's provenance: a Dockerfile build as the README describes it.
pub const BUILD_TYPE: &str = "urn:polyarch:dockerfile-build:v1";

/// `--provenance mode=`: how much the provenance says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// Builder, parameters (build args whose names look like secrets left out), the base
    /// images and the build context as resolved dependencies, times.
    Min,
    /// `Min`, and the Dockerfile's text and the instructions of the target platform's steps.
    Max,
}

/// What one image's provenance is made from.
#[derive(Debug, Clone)]
pub struct ProvenanceInput {
    /// How much it says.
    pub mode: ProvenanceMode,
    /// The image manifest it is about.
    pub subject: Digest,
    /// The subject's name, a purl (`pkg:docker/REPO@TAG?platform=linux%2Famd64`).
    pub subject_name: String,
    /// The Dockerfile's path relative to the context (as given).
    pub dockerfile_path: String,
    /// The Dockerfile's text (max mode only).
    pub dockerfile_text: String,
    /// Build args given (values of secret-looking names are left out by [`provenance`]).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// The image's platform and the platform of the builder.
    pub platforms: (Platform, Platform),
    /// Base images: (purl, manifest digest), in order of first use.
    pub bases: Vec<(String, Digest)>,
    /// The build context's digest (its whole selection as the step cache hashes it).
    pub context: Option<Digest>,
    /// The instructions of the target stage's steps as written (max mode only).
    pub steps: Vec<String>,
    /// `builder.id`: `pkg:cargo/polyarch@VERSION`.
    pub builder_id: String,
    /// `startedOn`, `finishedOn` (RFC 3339); `None` leaves `runDetails.metadata` out (the
    /// default provenance of a push without `SOURCE_DATE_EPOCH`, so that an unchanged rebuild
    /// gives the same statement).
    pub times: Option<(String, String)>,
}

/// `sha256:<hex>` as an in-toto DigestSet.
fn digest_set(d: &Digest) -> Value {
    json!({ "sha256": d.hex() })
}

/// The provenance statement of `input`, serialised canonically. Build args named like secrets
/// (`plan::looks_secret`: `*_TOKEN`, `PASSWORD`, ...) appear only by name, with the value
/// `"<redacted>"`; secret values never reach it (they are not build args).
pub fn provenance(input: &ProvenanceInput) -> Vec<u8> {
    let mut args = serde_json::Map::new();
    for (k, v) in &input.build_args {
        let v = if crate::plan::looks_secret(k) {
            "<redacted>"
        } else {
            v.as_str()
        };
        args.insert(format!("build-arg:{k}"), json!(v));
    }
    if let Some(t) = &input.target {
        args.insert("target".into(), json!(t));
    }
    let mut deps: Vec<Value> = input
        .bases
        .iter()
        .map(|(uri, d)| json!({ "uri": uri, "digest": digest_set(d) }))
        .collect();
    if let Some(c) = &input.context {
        deps.push(json!({ "uri": "context", "digest": digest_set(c) }));
    }
    let mut internal = json!({
        "builderPlatform": input.platforms.1.normalized().to_string(),
        "mode": match input.mode { ProvenanceMode::Min => "min", ProvenanceMode::Max => "max" },
    });
    if input.mode == ProvenanceMode::Max {
        internal["dockerfile"] = json!(input.dockerfile_text);
        internal["steps"] = json!(input.steps);
    }
    let mut run_details = json!({ "builder": { "id": input.builder_id } });
    if let Some((started, finished)) = &input.times {
        run_details["metadata"] = json!({ "startedOn": started, "finishedOn": finished });
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": input.subject_name, "digest": digest_set(&input.subject) }],
        "predicateType": PREDICATE_SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "configSource": { "path": input.dockerfile_path },
                    "request": {
                        "frontend": "dockerfile.v0",
                        "args": args,
                        "platform": input.platforms.0.normalized().to_string(),
                    },
                },
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": run_details,
        },
    });
    oci::to_bytes(&statement)
}

/// An attestation manifest ready to store and push: its config, its manifest, and the index
/// entry that lists it.
#[derive(Debug, Clone)]
pub struct AttestationManifest {
    /// The config blob (`{"architecture":"unknown","os":"unknown",...}`, as BuildKit writes).
    pub config: Vec<u8>,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The index entry: platform `unknown/unknown`, the reference annotations.
    pub descriptor: Descriptor,
}

/// The attestation manifest about image `subject` whose layers are `statements` (each: the
/// statement's bytes, stored and pushed as given, and its predicate type).
pub fn attestation_manifest(
    subject: &Digest,
    statements: &[(Vec<u8>, String)],
) -> AttestationManifest {
    let diff_ids: Vec<String> = statements
        .iter()
        .map(|(b, _)| Digest::of(b).to_string())
        .collect();
    let config = oci::to_bytes(&json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }));
    let layers = statements
        .iter()
        .map(|(b, predicate)| {
            let mut d = Descriptor::new(MEDIA_TYPE_IN_TOTO, Digest::of(b), b.len() as u64);
            d.annotations = Some(BTreeMap::from([(
                ANNOTATION_PREDICATE_TYPE.to_string(),
                predicate.clone(),
            )]));
            d
        })
        .collect();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(
            MEDIA_TYPE_OCI_CONFIG,
            Digest::of(&config),
            config.len() as u64,
        ),
        layers,
        annotations: None,
    };
    let manifest = oci::to_bytes(&manifest);
    let mut descriptor = Descriptor::new(
        MEDIA_TYPE_OCI_MANIFEST,
        Digest::of(&manifest),
        manifest.len() as u64,
    );
    descriptor.platform = Some(Platform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        os_version: None,
        variant: None,
    });
    descriptor.annotations = Some(BTreeMap::from([
        (ANNOTATION_REFERENCE_DIGEST.to_string(), subject.to_string()),
        (
            ANNOTATION_REFERENCE_TYPE.to_string(),
            ATTESTATION_MANIFEST.to_string(),
        ),
    ]));
    AttestationManifest {
        config,
        manifest,
        descriptor,
    }
}

/// The purl of an image (package-url `docker` type): `pkg:docker/NAME@VERSION?platform=P`
/// with the platform percent-encoded (`/` as `%2F`).
pub fn image_purl(name: &str, version: &str, platform: &Platform) -> String {
    let p = platform.normalized().to_string().replace('/', "%2F");
    format!("pkg:docker/{name}@{version}?platform={p}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: ProvenanceMode) -> ProvenanceInput {
        let p = Platform::parse("linux/amd64").unwrap();
        ProvenanceInput {
            mode,
            subject: Digest::of(b"image"),
            subject_name: image_purl("r/a", "v1", &p),
            dockerfile_path: "Dockerfile".into(),
            dockerfile_text: "FROM x\n".into(),
            build_args: BTreeMap::from([
                ("VERSION".to_string(), "1.2".to_string()),
                ("API_TOKEN".to_string(), "hunter2".to_string()),
            ]),
            target: None,
            platforms: (p.clone(), p),
            bases: vec![(
                "pkg:docker/x@latest?platform=linux%2Famd64".into(),
                Digest::of(b"b"),
            )],
            context: Some(Digest::of(b"ctx")),
            steps: vec!["COPY a /a".into()],
            builder_id: "pkg:cargo/polyarch@0.1.0".into(),
            times: Some(("1970-01-01T00:00:00Z".into(), "1970-01-01T00:00:00Z".into())),
        }
    }

    #[test]
    fn provenance_redacts_secret_args_and_is_deterministic() {
        let a = provenance(&input(ProvenanceMode::Min));
        assert_eq!(a, provenance(&input(ProvenanceMode::Min)));
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"build-arg:VERSION\":\"1.2\""));
        assert!(!text.contains("FROM x"), "min mode has no Dockerfile");
        assert!(text.contains("\"startedOn\""), "{text}");
        let untimed = ProvenanceInput {
            times: None,
            ..input(ProvenanceMode::Min)
        };
        let text = String::from_utf8(provenance(&untimed)).unwrap();
        assert!(
            !text.contains("metadata") && text.contains("\"builder\""),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(
            v["predicate"]["buildDefinition"]["resolvedDependencies"][1]["uri"],
            "context"
        );
        let max = String::from_utf8(provenance(&input(ProvenanceMode::Max))).unwrap();
        assert!(max.contains("FROM x") && max.contains("COPY a /a"));
    }

    #[test]
    fn attestation_manifest_is_marked_as_buildkit_marks_it() {
        let subject = Digest::of(b"image");
        let m = attestation_manifest(&subject, &[(b"{}".to_vec(), PREDICATE_SLSA_V1.into())]);
        assert!(crate::index::is_attestation(&m.descriptor));
        assert_eq!(
            crate::index::attestation_subject(&m.descriptor),
            Some(subject)
        );
        let parsed: ImageManifest = oci::from_bytes(&m.manifest, "m").unwrap();
        assert_eq!(parsed.layers[0].media_type, MEDIA_TYPE_IN_TOTO);
        assert_eq!(parsed.config.digest, Digest::of(&m.config));
    }
}
