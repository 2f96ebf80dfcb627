//! `--provenance` and `--sbom`: an SLSA provenance statement and an SPDX SBOM ([`super::sbom`])
//! per image ([`crate::attest`]), put in an attestation manifest that is stored, pushed by digest with its blobs (when the build
//! pushes), and listed in the index right after its image, as BuildKit lists them.
//!
//! Level 3 (coordinator), after every platform succeeded and before the index is stitched.
//! Reads the base images' manifests again through the registry client (whose tag memory makes
//! that free within a build) and packs the context once to digest it. Must not move a tag.

use super::*;
use crate::attest::{self, ProvenanceInput};

/// What the provenance of a build is made from, besides the request.
pub(super) struct Inputs<'a> {
    /// The Dockerfile's text and its path as shown.
    pub dockerfile: (&'a str, &'a str),
    /// The parsed Dockerfile (the target stage's instructions, for max mode).
    pub df: &'a Dockerfile,
    /// The build context (digested for the resolved dependencies).
    pub context: &'a BuildContext,
    /// The step cache's content hasher (its memo of file digests makes the context's digest
    /// cheap when COPY steps hashed the files already).
    pub hasher: std::sync::Arc<crate::cache::ContentHasher>,
    /// Each platform's stage graph, in `--platform` order.
    pub graphs: Vec<StageGraph>,
    /// When the build started (RFC 3339; `SOURCE_DATE_EPOCH` when set).
    pub started: String,
}

/// The index's children: each image, followed by its attestation manifest when `--provenance`
/// asks for one (made, stored and, when the build pushes, pushed here).
///
/// Errors: [`BuildError::Registry`], [`BuildError::Store`], [`BuildError::Context`] and
/// [`BuildError::Cache`] (digesting the build context).
pub(super) async fn children<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    inputs: &Inputs<'_>,
    images: &[PlatformImage],
) -> Result<Vec<Descriptor>, BuildError> {
    if req.meta.provenance.is_none() && !req.meta.sbom {
        return Ok(images.iter().map(|i| i.manifest.clone()).collect());
    }
    let finished = match req.source_date_epoch {
        Some(e) => oci::rfc3339(e),
        None => created_now(req),
    };
    let context = match req.meta.provenance {
        Some(_) => Some(context_digest(inputs).await?),
        None => None,
    };
    let mut out = Vec::new();
    for (image, graph) in images.iter().zip(&inputs.graphs) {
        let name = subject_name(req, &image.platform);
        let mut statements = Vec::new();
        if let Some(mode) = req.meta.provenance {
            let input = ProvenanceInput {
                mode,
                subject: image.manifest.digest.clone(),
                subject_name: name.clone(),
                dockerfile_path: dockerfile_path(req),
                dockerfile_text: inputs.dockerfile.0.to_string(),
                build_args: req.build_args.clone(),
                target: req.target.clone(),
                platforms: (image.platform.clone(), req.build_platform.clone()),
                bases: bases(deps, graph).await?,
                context: context.clone(),
                steps: inputs.df.stages[graph.target().stage_index]
                    .instructions
                    .iter()
                    .map(|i| i.source.clone())
                    .collect(),
                builder_id: format!("pkg:cargo/polyarch@{}", env!("CARGO_PKG_VERSION")),
                times: (req.meta.provenance_times || req.source_date_epoch.is_some())
                    .then(|| (inputs.started.clone(), finished.clone())),
            };
            statements.push((
                attest::provenance(&input),
                attest::PREDICATE_SLSA_V1.to_string(),
            ));
        }
        if req.meta.sbom {
            let st = super::sbom::statement(deps, image, &name, &finished)?;
            statements.push((st, attest::sbom::PREDICATE_SPDX.to_string()));
        }
        let att = attest::attestation_manifest(&image.manifest.digest, &statements);
        store_and_push(req, deps, &image.platform, &att, &statements).await?;
        out.push(image.manifest.clone());
        out.push(att.descriptor);
    }
    Ok(out)
}

/// The Dockerfile's path as the provenance records it (BuildKit's `configSource.path`):
/// relative to the build context when it lies inside it, else its file name (`-f -`, a
/// Dockerfile elsewhere). Never a host path: where the context sits on a CI runner must change
/// neither the statement nor the index digest.
fn dockerfile_path(req: &BuildRequest) -> String {
    req.dockerfile
        .strip_prefix(&req.context_dir)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| req.dockerfile.file_name().map(std::path::Path::new))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".into())
}

/// The subject's purl: the first tag's repository and tag (or the `--push-by-digest`
/// repository), else `polyarch-build@latest`.
fn subject_name(req: &BuildRequest, platform: &Platform) -> String {
    let (name, version) = match (req.tags.first(), &req.push_by_digest) {
        (Some(t), _) => (
            t.repo_string(),
            t.tag.clone().unwrap_or_else(|| "latest".into()),
        ),
        (None, Some(r)) => (r.repo_string(), "latest".into()),
        (None, None) => ("polyarch-build".into(), "latest".into()),
    };
    attest::image_purl(&name, &version, platform)
}

/// The base images `graph`'s stages start from: (purl, manifest digest), each once.
async fn bases<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    graph: &StageGraph,
) -> Result<Vec<(String, Digest)>, BuildError> {
    let mut out: Vec<(String, Digest)> = Vec::new();
    for sel in &graph.stages {
        let BaseImage::Image(reference) = &sel.base else {
            continue;
        };
        let r: Reference = reference.parse().map_err(|source| BuildError::Registry {
            platform: sel.platform.to_string(),
            source,
        })?;
        let raw = base::platform_manifest(deps, &r, &sel.platform, reference).await?;
        let version = r.tag.clone().unwrap_or_else(|| "latest".into());
        let purl = attest::image_purl(&r.repo_string(), &version, &sel.platform);
        if !out.iter().any(|(p, _)| *p == purl) {
            out.push((purl, raw.digest));
        }
    }
    Ok(out)
}

/// The build context's digest for the provenance: the digest of the whole context as a COPY
/// of `.` selects it (after `.dockerignore`: names, kinds, modes, owners, link targets and
/// file contents), as the step cache hashes a selection ([`crate::cache::ContentHasher`]).
async fn context_digest(inputs: &Inputs<'_>) -> Result<Digest, BuildError> {
    let context = inputs.context.clone();
    let hasher = inputs.hasher.clone();
    tokio::task::spawn_blocking(move || {
        let entries =
            context
                .resolve_copy(&[".".to_string()], "/")
                .map_err(|e| BuildError::Context {
                    platform: "provenance".into(),
                    location: "the build context".into(),
                    source: Box::new(e),
                })?;
        hasher.selection_digest(&entries).map_err(BuildError::Cache)
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
}

/// Puts the statement, the attestation config and manifest in the store and, when the build
/// pushes, in the registry by digest.
async fn store_and_push<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    platform: &Platform,
    att: &attest::AttestationManifest,
    statements: &[(Vec<u8>, String)],
) -> Result<(), BuildError> {
    let pname = platform.to_string();
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let mut blobs = Vec::new();
    let docs = statements
        .iter()
        .map(|(b, _)| (b.as_slice(), attest::MEDIA_TYPE_IN_TOTO))
        .chain([(att.config.as_slice(), MEDIA_TYPE_OCI_CONFIG)]);
    for (bytes, media_type) in docs {
        let (digest, size) = deps.store.put_bytes(bytes).map_err(store_err)?;
        blobs.push((digest, size, media_type));
    }
    deps.store.put_bytes(&att.manifest).map_err(store_err)?;
    let Some(target) = push_target(req) else {
        return Ok(());
    };
    for (digest, size, media_type) in blobs {
        let desc = Descriptor::new(media_type, digest.clone(), size);
        let path = deps.store.blob_path(&digest);
        deps.registry
            .push_blob(target, &desc, &path)
            .await
            .map_err(reg_err)?;
    }
    deps.registry
        .push_manifest(
            target,
            &att.descriptor.digest.to_string(),
            &att.manifest,
            MEDIA_TYPE_OCI_MANIFEST,
        )
        .await
        .map_err(reg_err)?;
    Ok(())
}
