//! Orchestration of `polyarch build`: fan out one build per target platform, concurrently, and
//! publish the OCI image index last.
//!
//! Level 3. Per platform: select the stages the target needs (multi-stage: `FROM <stage>`,
//! `COPY --from`, `RUN --mount from=`); build each stage once per distinct input (a stage that
//! several target platforms need with the same inputs, such as a `--platform=$BUILDPLATFORM`
//! builder that does not use the target's ARGs, is built once and shared, see [`stage`]):
//! resolve its base image from its index (variant-aware), pull and unpack its layers into the
//! store once per diff_id, run each step in the sandbox (overlayfs upper dir = the step's
//! diff), turn each diff into a deterministic layer. Then write the target's config and
//! manifest, and push them by digest. Only when every platform succeeded is the index stitched
//! (entries in `--platform` order) and pushed to the tags, so a tag never points at a
//! half-built release. The first failure cancels the sibling platforms (their sandboxes are
//! killed) and no tag moves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::context::{BuildContext, ContextError};
use crate::dockerfile::{self, Dockerfile, DockerfileError, InstructionKind};
use crate::emulation::{self, EmulationError, Support};
use crate::executor::{Action, CopySpec, ExecError, Executor, RunSpec, SandboxSpec, Sensitive};
use crate::exit::{Classify, ExitCode};
use crate::index::{self, IndexError, StitchedIndex};
use crate::layer::{self, LayerError, LayerOptions};
use crate::oci::{
    self, Descriptor, Digest, History, ImageConfig, ImageIndex, ImageManifest, OciError,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::plan::{
    self, BaseConfig, BaseImage, PlanRequest, Selection, StageGraph, Step, StepKind,
};
use crate::platform::{self, Platform};
use crate::progress::{Event, Sink};
use crate::registry::{BlobPush, Reference, Registry, RegistryError};
use crate::store::{Store, StoreError};

mod actions;
mod base;
mod error;
mod image;
mod sources;
mod stage;

pub use error::BuildError;
use image::build_platform;
pub use sources::SourceError;

/// Where the finished image goes besides (or instead of) a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory (image-spec image-layout.md) with the index tagged
    /// `ref_name`.
    OciLayout {
        /// The layout directory (created when missing).
        dest: PathBuf,
        /// The reference name recorded in its `index.json`.
        ref_name: String,
    },
}

/// Everything a build needs, resolved and validated from the command line.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// Target platforms, in the order the index lists them; no two alike after normalisation.
    pub platforms: Vec<Platform>,
    /// The platform of this host (for `BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage name; the last stage when `None`.
    pub target: Option<String>,
    /// Tags to push the index to (empty: push nothing to tags).
    pub tags: Vec<Reference>,
    /// Push the images and index to the registry of the tags.
    pub push: bool,
    /// Local outputs.
    pub outputs: Vec<Output>,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes and sets `created` times (seconds).
    pub source_date_epoch: Option<i64>,
    /// The binfmt_misc directory to check handlers in (normally `/proc/sys/fs/binfmt_misc`).
    pub binfmt_dir: PathBuf,
    /// `--secret` values by id, for `RUN --mount=type=secret`. Never written to a layer, the
    /// config, the history or the progress output.
    pub secrets: BTreeMap<String, Sensitive>,
}

/// What one platform's build produced.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    /// The platform as recorded in the index.
    pub platform: Platform,
    /// The image manifest descriptor (with `platform` set).
    pub manifest: Descriptor,
    /// The config blob's digest.
    pub config: Digest,
    /// Every blob the image consists of (config and layers), for outputs.
    #[serde(skip)]
    pub blobs: Vec<Digest>,
}

/// The result of a whole build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The stitched index.
    pub index: StitchedIndex,
    /// One image per platform, in `--platform` order.
    pub images: Vec<PlatformImage>,
    /// Tags the index was pushed to.
    pub pushed_tags: Vec<String>,
    /// Warnings collected from planning (e.g. unused build args).
    pub warnings: Vec<String>,
}

/// The parts a build talks to: the registry, the step executor, the local store, progress.
pub struct Deps<R, E> {
    /// The registry client.
    pub registry: R,
    /// Runs RUN and COPY steps.
    pub executor: E,
    /// The local content-addressed store.
    pub store: Store,
    /// Where progress events go.
    pub sink: Arc<dyn Sink>,
}

/// Everything fixed before the fan-out, shared by the per-platform tasks.
struct Shared<'a> {
    req: &'a BuildRequest,
    dockerfile: &'a Dockerfile,
    context: &'a BuildContext,
    created: String,
}

/// `file:line` of a step, for progress and errors.
fn location(df: &Dockerfile, step: &Step) -> String {
    format!("{}:{}", df.file, step.span.line)
}

/// Runs a whole build: parse, plan, check the host, fan out, stitch, push or write outputs.
///
/// Errors: see [`BuildError`]; on any error no tag is moved and no output is written.
pub async fn build<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Result<BuildOutcome, BuildError> {
    if req.push && req.tags.is_empty() {
        return Err(BuildError::Usage(
            "--push needs at least one -t/--tag naming where to push".into(),
        ));
    }
    let text =
        std::fs::read_to_string(&req.dockerfile).map_err(|source| BuildError::ReadDockerfile {
            path: req.dockerfile.clone(),
            source,
        })?;
    let display = display_path(&req.dockerfile);
    let df = dockerfile::parse(&text, &display)?;
    let context = BuildContext::open(&req.context_dir, &req.dockerfile)
        .map_err(|e| BuildError::OpenContext(Box::new(e)))?;

    // Everything that can be checked without I/O is checked for every platform before any
    // platform starts: the stages and base references, and whether this host can run them.
    let mut warnings: Vec<String> = df.warnings.clone();
    let mut selections: Vec<StageGraph> = Vec::new();
    for p in &req.platforms {
        let graph = plan::select_graph(
            &df,
            &PlanRequest {
                target_platform: p.clone(),
                build_platform: req.build_platform.clone(),
                build_args: req.build_args.clone(),
                target_stage: req.target.clone(),
            },
        )?;
        for w in &graph.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        // Every error that does not depend on a base image's environment, before any pull.
        plan::check_graph(&df, &graph)?;
        selections.push(graph);
    }
    // Every platform a stage with RUN steps runs as must be runnable here: the targets, and
    // the build platform for `FROM --platform=$BUILDPLATFORM` stages.
    let mut run_platforms: Vec<Platform> = Vec::new();
    for graph in &selections {
        for sel in &graph.stages {
            let has_run = df.stages[sel.stage_index]
                .instructions
                .iter()
                .any(|i| matches!(i.kind, InstructionKind::Run { .. }));
            if has_run && !run_platforms.iter().any(|p| p.same_as(&sel.platform)) {
                run_platforms.push(sel.platform.clone());
            }
        }
    }
    let needs_run = !run_platforms.is_empty();
    if needs_run {
        for p in &run_platforms {
            let support = emulation::classify(p, &req.binfmt_dir)?;
            let runs = match &support {
                Support::Native => "natively".to_string(),
                Support::Emulated { handler, .. } => format!("emulated through {handler}"),
            };
            deps.sink.emit(Event::PlatformPlanned {
                platform: p.to_string(),
                runs,
            });
        }
        crate::executor::require_root().map_err(|source| BuildError::Exec {
            platform: req
                .platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            step: 0,
            location: display.clone(),
            source,
        })?;
    }
    for w in &warnings {
        deps.sink.emit(Event::Warning { message: w.clone() });
    }

    let created = oci::rfc3339(req.source_date_epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }));
    let shared = Shared {
        req,
        dockerfile: &df,
        context: &context,
        created,
    };

    // Fan out: one future per platform, all polled concurrently; the first error drops the
    // others (their sandbox processes are killed on drop) and is returned. Stage builds are
    // shared between them through `stages`.
    let stages = stage::Stages::new(&shared, deps);
    let builds = req
        .platforms
        .iter()
        .zip(selections)
        .map(|(p, graph)| build_platform(&shared, deps, &stages, p, graph));
    let images = futures::future::try_join_all(builds).await?;

    let children: Vec<Descriptor> = images.iter().map(|i| i.manifest.clone()).collect();
    let stitched = index::stitch(&children)?;
    let idx_blob = deps
        .store
        .put_bytes(&stitched.bytes)
        .map_err(|source| BuildError::Store {
            platform: "index".into(),
            source,
        })?;
    debug_assert_eq!(idx_blob.0, stitched.digest);

    let mut pushed_tags = Vec::new();
    if req.push {
        for tag in &req.tags {
            let name = tag.tag.clone().unwrap_or_else(|| "latest".into());
            deps.registry
                .push_manifest(tag, &name, &stitched.bytes, MEDIA_TYPE_OCI_INDEX)
                .await
                .map_err(|source| BuildError::Registry {
                    platform: "index".into(),
                    source,
                })?;
            let full = tag.to_string();
            deps.sink.emit(Event::IndexPushed {
                tag: full.clone(),
                digest: stitched.digest.clone(),
            });
            pushed_tags.push(full);
        }
    }
    for out in &req.outputs {
        match out {
            Output::OciLayout { dest, ref_name } => {
                let mut blobs = vec![stitched.digest.clone()];
                for i in &images {
                    blobs.push(i.manifest.digest.clone());
                    blobs.extend(i.blobs.iter().cloned());
                }
                deps.store
                    .write_oci_layout(dest, &stitched.descriptor(), ref_name, &blobs)
                    .map_err(|source| BuildError::Store {
                        platform: "index".into(),
                        source,
                    })?;
                deps.sink.emit(Event::LayoutWritten {
                    dest: dest.display().to_string(),
                    ref_name: ref_name.clone(),
                    digest: stitched.digest.clone(),
                });
            }
        }
    }
    Ok(BuildOutcome {
        index: stitched,
        images,
        pushed_tags,
        warnings,
    })
}

fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = p.strip_prefix(&cwd) {
            return rel.display().to_string();
        }
    }
    p.display().to_string()
}

/// A layer of the image being built: its blob and where it is unpacked.
#[derive(Debug, Clone)]
struct BuiltLayer {
    descriptor: Descriptor,
    diff_id: Digest,
    dir: PathBuf,
}

/// The registry the images are pushed to: the repository of the first tag.
fn push_target(req: &BuildRequest) -> Option<&Reference> {
    if req.push {
        req.tags.first()
    } else {
        None
    }
}
