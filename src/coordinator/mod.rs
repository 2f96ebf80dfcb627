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

use crate::cache::{CacheError, CacheKey};
use crate::context::{BuildContext, ContextError};
use crate::dockerfile::{self, Dockerfile, DockerfileError, InstructionKind};
use crate::emulation::{self, EmulationError, Support};
use crate::executor::{
    Action, CopySpec, ExecError, Executor, RunSpec, SandboxSpec, Sensitive, Snapshotter,
};
use crate::exit::{Classify, ExitCode};
use crate::index::{self, IndexError, StitchedIndex};
use crate::layer::{self, LayerError, LayerOptions};
use crate::oci::{
    self, Descriptor, Digest, History, ImageConfig, ImageIndex, ImageManifest, OciError,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::plan::{
    self, BaseConfig, BaseImage, Entitlement, PlanRequest, Selection, StageGraph, Step, StepKind,
};
use crate::platform::{self, Platform};
use crate::progress::{Event, Sink};
use crate::registry::{BlobPush, Reference, Registry, RegistryError};
use crate::store::{Store, StoreError};

mod actions;
mod attest;
mod base;
mod buildx_inputs;
mod config;
mod direct_add;
mod error;
mod fan_out;
mod image;
mod image_meta;
mod lint;
mod materialise;
mod named;
mod outputs;
mod platforms;
mod publish;
mod remote;
mod sbom;
mod scope;
mod shared;
mod smoke;
mod sources;
mod stage;
mod step;
mod step_cache;
mod step_inputs;
mod upload;
mod worker;

pub use buildx_inputs::BuildxInputs;
pub use error::{BuildError, TagsPartlyMoved};
use image::build_platform;
pub use image_meta::ImageMeta;
pub use lint::lint;
use materialise::Origin;
pub use named::NamedContext;
pub use outputs::{Dest, Output, OutputError};
pub use remote::{probe_node, BuildPlan, NodeState, NodeStatus, Nodes};
pub use sources::SourceError;
pub use step_cache::CacheOptions;
use step_cache::{StepCache, StepRecord};
pub use worker::build_job;

/// Everything a build needs, resolved and validated from the command line.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// Target platforms, in the order the index lists them; no two alike after normalisation.
    pub platforms: Vec<Platform>,
    /// `--platform all`: also every platform the base image offers that this host can run
    /// (after `platforms`, without duplicates).
    pub all_platforms: bool,
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
    /// Push the images (and, for several platforms, the index) by digest to this repository
    /// and to no tag: one job of a CI matrix (`--push-by-digest REPO`; `tags` is empty).
    pub push_by_digest: Option<Reference>,
    /// Local outputs.
    pub outputs: Vec<Output>,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes and sets `created` times (seconds).
    pub source_date_epoch: Option<i64>,
    /// How layers made here are compressed (`--compression`, `--compression-level`).
    pub compression: layer::Compression,
    /// The binfmt_misc directory to check handlers in (normally `/proc/sys/fs/binfmt_misc`).
    pub binfmt_dir: PathBuf,
    /// `--secret` values by id, for `RUN --mount=type=secret`. Never written to a layer, the
    /// config, the history or the progress output.
    pub secrets: BTreeMap<String, Sensitive>,
    /// `--smoke-test`: a command run in every platform's finished image before it is pushed;
    /// a non-zero exit fails the build.
    pub smoke_test: Option<String>,
    /// How the step cache is used (`--no-cache`, `--cache-from`, ...).
    pub cache: CacheOptions,
    /// `--allow`: what steps may ask for beyond the sandbox's defaults (`RUN --network=host`,
    /// `RUN --security=insecure`).
    pub entitlements: Vec<Entitlement>,
    /// `--label` and `--annotation` (applied to images built here, not on build nodes).
    pub meta: ImageMeta,
    /// Named contexts, SSH agents and `RUN` settings from buildx's flags.
    pub buildx: BuildxInputs,
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
    /// The build node that built it; `None`: this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Steps run for it, over every stage it needed.
    #[serde(skip)]
    pub steps_run: usize,
    /// Steps whose result came from the step cache.
    #[serde(skip)]
    pub steps_cached: usize,
}

/// The result of a whole build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// What the build's result is, as buildx reports and pushes it: the image manifest (with
    /// its platform) for one platform without `index:` annotations, else the index.
    pub result: Descriptor,
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
    /// The `created` time of steps that run in this build (RFC 3339).
    created: String,
    /// The step cache.
    cache: StepCache,
    /// Layers already uploaded while they were written.
    early: upload::EarlyUploads,
}

/// `file:line` of a step, for progress and errors.
fn location(df: &Dockerfile, step: &Step) -> String {
    format!("{}:{}", df.file, step.span.line)
}

/// Everything decided before any platform starts: the parsed Dockerfile, the context, the
/// target platforms with their stage selections.
struct Prepared {
    text: String,
    display: String,
    df: Dockerfile,
    context: BuildContext,
    targets: Vec<Platform>,
    selections: Vec<StageGraph>,
    warnings: Vec<String>,
    needs_run: bool,
    any_run: bool,
}

/// Parses the Dockerfile, opens the context and selects the stage for every platform (no I/O
/// but reading them, except the base image's index for `--platform all`).
async fn prepare<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Result<Prepared, BuildError> {
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
    let mut df = dockerfile::parse(&text, &display)?;
    named::apply(&mut df, &req.buildx.named_contexts);
    check_cache_filter(&df, &req.cache.no_cache_filter)?;
    let context = BuildContext::open(&req.context_dir, &req.dockerfile)
        .map_err(|e| BuildError::OpenContext(Box::new(e)))?;

    // Everything is checked for every platform before any layer is pulled: the stages and base
    // references (no I/O), whether this host runs them (binfmt_misc entries and a probe program),
    // and whether the base image offers them (its index only).
    let plan_for = |p: &Platform| {
        plan::select_graph(
            &df,
            &PlanRequest {
                target_platform: p.clone(),
                build_platform: req.build_platform.clone(),
                build_args: req.build_args.clone(),
                target_stage: req.target.clone(),
            },
        )
    };
    // Only Linux root filesystems can be run and captured here; another OS is a wrong flag,
    // not a missing emulator (`polyarch qemu install` says the same, exit 2).
    if let Some(p) = req.platforms.iter().find(|p| p.os != "linux") {
        return Err(BuildError::Usage(format!(
            "--platform {p}: polyarch builds Linux images only, not {} ones; name linux/{}",
            p.os, p.architecture
        )));
    }
    let first = plan_for(req.platforms.first().unwrap_or(&req.build_platform))?;
    let targets = if req.all_platforms {
        let first_runs = graph_runs_as_target(&df, &first, &req.build_platform);
        platforms::expand_all(req, deps, target_base(&first), first_runs).await?
    } else {
        req.platforms.clone()
    };
    if targets.is_empty() {
        return Err(BuildError::Usage("no target platform given".into()));
    }
    outputs::check(&req.outputs, &targets)?;
    let mut warnings: Vec<String> = df.warnings.clone();
    let mut selections: Vec<StageGraph> = Vec::new();
    for p in &targets {
        let graph = plan_for(p)?;
        for w in &graph.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        // Every error that does not depend on a base image's environment, before any pull.
        plan::check_graph(&df, &graph)?;
        plan::check_entitlements(&df, &graph, &req.entitlements)?;
        selections.push(graph);
    }
    // Emulation (or a node) is needed where a stage with RUN steps runs as a target platform;
    // root wherever any stage runs a command, `FROM --platform=$BUILDPLATFORM` ones included.
    // A smoke test runs each target platform's programs, as a RUN step would.
    let needs_run = req.smoke_test.is_some()
        || selections
            .iter()
            .any(|g| graph_runs_as_target(&df, g, &req.build_platform));
    let any_run = needs_run
        || selections.iter().any(|g| {
            g.stages
                .iter()
                .any(|sel| stage_has_run(&df, sel.stage_index))
        });
    Ok(Prepared {
        text,
        display,
        df,
        context,
        targets,
        selections,
        warnings,
        needs_run,
        any_run,
    })
}

/// Every `--no-cache-filter` name must name a stage of the Dockerfile (exit 2 otherwise).
fn check_cache_filter(df: &Dockerfile, names: &[String]) -> Result<(), BuildError> {
    let known: Vec<&str> = df.stages.iter().filter_map(|s| s.name.as_deref()).collect();
    match names.iter().find(|n| !known.contains(&n.as_str())) {
        Some(n) => Err(BuildError::Usage(format!(
            "--no-cache-filter {n}: {} has no stage named {n:?} (named stages: {})",
            df.file,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))),
        None => Ok(()),
    }
}

fn stage_has_run(df: &Dockerfile, stage: usize) -> bool {
    df.stages[stage]
        .instructions
        .iter()
        .any(|i| matches!(i.kind, InstructionKind::Run { .. }))
}

/// Whether a stage of `graph` runs commands as a platform other than the build platform (so the
/// target platform needs emulation or a node).
fn graph_runs_as_target(df: &Dockerfile, graph: &StageGraph, build: &Platform) -> bool {
    let target_is_build = graph.target().platform.same_as(build);
    graph.stages.iter().any(|sel| {
        stage_has_run(df, sel.stage_index) && (target_is_build || !sel.platform.same_as(build))
    })
}

/// The image the target stage ultimately starts from, following `FROM <stage>` links while
/// they stay on the target's platform; `scratch` when the chain leaves it (nothing to check).
fn target_base(graph: &StageGraph) -> &BaseImage {
    let target = graph.target();
    let mut sel = target;
    loop {
        match &sel.base {
            BaseImage::Stage(i) => match graph.get(*i) {
                Some(next) if next.platform.same_as(&target.platform) => sel = next,
                _ => return &BaseImage::Scratch,
            },
            other => return other,
        }
    }
}

/// Runs a whole build on this host: parse, plan, check the host, fan out, stitch, push or write
/// outputs ([`build_with`] without nodes).
///
/// Errors: see [`BuildError`]; on any error no tag is moved and no output is written.
pub async fn build<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Result<BuildOutcome, BuildError> {
    build_with(req, deps, &Nodes::none()).await
}

/// The plan of a build (`polyarch build --dry-run`): where each platform would run and why,
/// after probing this host and the nodes. Nothing is pulled, built or pushed.
pub async fn plan<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    nodes: &Nodes,
) -> Result<BuildPlan, BuildError> {
    let prepared = prepare(req, deps).await?;
    remote::place(req, deps, nodes, &prepared.targets, prepared.needs_run).await
}

/// Runs a whole build with build nodes: each platform goes where [`plan`] puts it (a node over
/// SSH, this host natively or emulated), a platform whose node drops mid-build is retried once
/// at the next candidate, and the index is stitched here from every platform's manifest.
///
/// Errors: see [`BuildError`]; on any error no tag is moved and no output is written.
pub async fn build_with<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    nodes: &Nodes,
) -> Result<BuildOutcome, BuildError> {
    let Prepared {
        text,
        display,
        df,
        context,
        targets,
        selections,
        warnings,
        needs_run,
        any_run,
    } = prepare(req, deps).await?;
    preflight(req, deps).await?;
    abandon_leftover_uploads(deps).await;
    let bases: Vec<(Platform, &BaseImage)> = targets
        .iter()
        .cloned()
        .zip(selections.iter().map(target_base))
        .collect();
    // Where each platform runs: a platform nothing can run fails (exit 4) before any registry
    // call.
    let placed = remote::place(req, deps, nodes, &targets, needs_run).await?;
    announce_placement(deps.sink.as_ref(), &placed, needs_run);
    if any_run && placed.runs_locally() {
        crate::executor::require_root().map_err(|source| BuildError::NeedsRoot {
            platforms: targets
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            source,
        })?;
    }
    // Then the base image must offer every platform (exit 2, listing what it offers); only its
    // index is fetched.
    platforms::check_offers(deps, &bases).await?;
    for w in &warnings {
        deps.sink.emit(Event::Warning { message: w.clone() });
    }

    let shared = Shared {
        req,
        dockerfile: &df,
        context: &context,
        created: created_now(req),
        cache: StepCache::open(&deps.store, &req.cache, shared::import_all(req, deps).await)?,
        early: upload::EarlyUploads::default(),
    };

    // Fan out (see `fan_out`); stage builds are shared between the local platforms through
    // `stages`.
    let stages = stage::Stages::new(&shared, deps);
    let target_stages: Vec<plan::StageKey> =
        selections.iter().map(|g| g.target().key.clone()).collect();
    let attest_inputs = attest::Inputs {
        dockerfile: (&text, &display),
        df: &df,
        context: &context,
        hasher: shared.cache.hasher.clone(),
        graphs: selections.clone(),
        started: shared.created.clone(),
    };
    let images = fan_out::fan_out(
        &stages,
        nodes,
        (&text, &display),
        (&targets, selections),
        &placed,
    )
    .await;
    shared.cache.save();
    let images = images?;
    // Before any tag moves: a failed export fails the build with nothing published.
    shared::export_all(req, deps, &stages, &target_stages).await?;

    let children = attest::children(req, deps, &attest_inputs, &images).await?;
    let stitched = stitch_and_store(req, deps, &children)?;
    let result = publish::tag_target(req, deps, &stitched, &images)?;
    let pushed_tags = publish::publish(req, deps, &stitched, &result).await?;
    outputs::write_outputs(req, deps, &stitched, &images)?;
    Ok(BuildOutcome {
        result: result.descriptor,
        index: stitched,
        images,
        pushed_tags,
        warnings,
    })
}

/// The index of `children` (images and their attestations, with the `index:` annotations),
/// put in the store.
fn stitch_and_store<R, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    children: &[Descriptor],
) -> Result<StitchedIndex, BuildError> {
    let options = index::IndexOptions {
        format: index::IndexFormat::Oci,
        annotations: req
            .meta
            .annotations(oci::AnnotationLevel::Index, None)
            .unwrap_or_default(),
    };
    let stitched = index::stitch_with(children, &options)?;
    let idx_blob = deps
        .store
        .put_bytes(&stitched.bytes)
        .map_err(|source| BuildError::Store {
            platform: "index".into(),
            source,
        })?;
    debug_assert_eq!(idx_blob.0, stitched.digest);
    Ok(stitched)
}

/// Checks the push target before anything is pulled or run: a registry that cannot be reached
/// or pushed to fails the build now (exit 3), not after the steps.
async fn preflight<R: Registry, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Result<(), BuildError> {
    let Some(target) = push_target(req) else {
        return Ok(());
    };
    deps.registry
        .check_push(target)
        .await
        .map_err(|source| BuildError::Registry {
            platform: "pre-flight".into(),
            source,
        })
}

/// Abandons the registry upload sessions killed polyarch processes left open (their upload
/// journals, kept when their leftovers were removed); best effort: a registry purges stale
/// sessions itself after a while.
async fn abandon_leftover_uploads<R: Registry, E>(deps: &Deps<R, E>) {
    for u in deps.store.take_abandoned_uploads() {
        match deps.registry.abandon_upload(&u.registry, &u.location).await {
            Ok(()) => tracing::info!(
                "abandoned the upload session {} (left by a killed polyarch)",
                u.location
            ),
            Err(e) => tracing::info!("cannot abandon the upload session {}: {e}", u.location),
        }
    }
}

/// The `created` time of the steps this build runs: `SOURCE_DATE_EPOCH`, else now (RFC 3339).
fn created_now(req: &BuildRequest) -> String {
    oci::rfc3339(req.source_date_epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }))
}

/// Tells progress where the platforms run: the placement's notes as warnings, and each
/// platform's place when it runs commands or goes to a node.
fn announce_placement(sink: &dyn Sink, placed: &BuildPlan, needs_run: bool) {
    for note in &placed.notes {
        sink.emit(Event::Warning {
            message: note.clone(),
        });
    }
    for pl in &placed.schedule.placements {
        if needs_run || pl.first().node().is_some() {
            let (node, runs) = match pl.first() {
                crate::schedule::Place::Node { name, runs, .. } => (Some(name.clone()), Some(runs)),
                crate::schedule::Place::Local { runs } => (None, runs.as_ref()),
            };
            let emulator = match runs {
                Some(crate::schedule::Runs::Emulated { handler }) => Some(handler.clone()),
                _ => None,
            };
            sink.emit(Event::PlatformPlanned {
                platform: pl.platform.to_string(),
                runs: remote::planned_text(pl),
                node,
                emulator,
            });
        }
    }
}

fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = p.strip_prefix(&cwd) {
            return rel.display().to_string();
        }
    }
    p.display().to_string()
}

/// A layer of the image being built: its blob's descriptor and diff_id, and where its blob
/// can be fetched when the store lacks it. Its bytes and files are materialised only when
/// needed ([`materialise`]).
#[derive(Debug, Clone)]
struct BuiltLayer {
    descriptor: Descriptor,
    diff_id: Digest,
    /// Where the blob comes from (a base image's repository, a shared cache); `None` for
    /// layers built here or found in the local step cache (in the store).
    origin: Option<Origin>,
}

/// A finished stage (or a pulled image): its config (history included) and its layers, base
/// first; the key of its result, and the step cache entries of its own steps.
#[derive(Debug, Clone)]
struct BuiltStage {
    config: ImageConfig,
    layers: Vec<BuiltLayer>,
    /// The key of its final state (an image's: its base key).
    result: CacheKey,
    /// Its steps' entries, in order (none for an image).
    steps: Vec<StepRecord>,
    /// How many of its steps ran.
    run: usize,
    /// How many came from the step cache.
    cached: usize,
}

/// The registry the images are pushed to: the `--push-by-digest` repository, else the
/// repository of the first tag.
fn push_target(req: &BuildRequest) -> Option<&Reference> {
    if let Some(repo) = &req.push_by_digest {
        Some(repo)
    } else if req.push {
        req.tags.first()
    } else {
        None
    }
}
