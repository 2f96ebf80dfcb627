//! Orchestration of `polyarch build`: fan out one build per target platform, concurrently, and
//! publish the OCI image index last.
//!
//! Level 3. Per platform: resolve the base image from its index (variant-aware), pull and
//! unpack its layers into the store once per diff_id, run each step in the sandbox (overlayfs
//! upper dir = the step's diff), turn each diff into a deterministic layer, write the config and
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
use crate::executor::{Action, CopySpec, ExecError, Executor, RunSpec, SandboxSpec};
use crate::exit::{Classify, ExitCode};
use crate::index::{self, IndexError, StitchedIndex};
use crate::layer::{self, LayerError, LayerOptions};
use crate::oci::{
    self, Descriptor, Digest, History, ImageConfig, ImageIndex, ImageManifest, OciError,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP,
    MEDIA_TYPE_OCI_MANIFEST,
};
use crate::plan::{self, BaseConfig, BaseImage, PlanRequest, Selection, Step, StepKind};
use crate::platform::{self, Platform};
use crate::progress::{Event, Sink};
use crate::registry::{BlobPush, Reference, Registry, RegistryError};
use crate::store::{Store, StoreError};

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

/// Why a build failed. Each variant maps to an exit code (see [`Classify`]).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile could not be read.
    #[error("cannot read Dockerfile {path}: {source}")]
    ReadDockerfile {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile is malformed or uses something unsupported.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// The build context is unusable or a COPY source is wrong.
    #[error("{platform}: {location}: {source}")]
    Context {
        /// The platform being built.
        platform: String,
        /// `file:line` of the instruction, or `context`.
        location: String,
        /// The cause.
        #[source]
        source: Box<ContextError>,
    },
    /// Opening the build context failed.
    #[error(transparent)]
    OpenContext(Box<ContextError>),
    /// A platform this host cannot run.
    #[error(transparent)]
    Emulation(#[from] EmulationError),
    /// The base image has no manifest for a target platform.
    #[error("{reference} has no image for {wanted}; it offers: {available}")]
    NoMatchingPlatform {
        /// The base image reference.
        reference: String,
        /// The platform wanted (`os/arch[/variant]`).
        wanted: String,
        /// What the index offers, comma-separated.
        available: String,
    },
    /// The base image manifest is of a kind polyarch cannot use.
    #[error("{reference}: unsupported manifest media type {media_type}")]
    UnsupportedManifest {
        /// The base image reference.
        reference: String,
        /// The media type received.
        media_type: String,
    },
    /// A RUN step exited non-zero.
    #[error(
        "{platform}: step {step} at {location} failed with exit status {status}: {instruction}{}",
        tail_text(.tail)
    )]
    StepFailed {
        /// The platform.
        platform: String,
        /// 1-based step number.
        step: usize,
        /// `file:line` of the instruction.
        location: String,
        /// The instruction text.
        instruction: String,
        /// The exit status (128+n for a signal).
        status: i32,
        /// The last lines the step printed.
        tail: Vec<String>,
    },
    /// Running a step failed before the step itself could run.
    #[error("{platform}: step {step} at {location}: {source}")]
    Exec {
        /// The platform.
        platform: String,
        /// 1-based step number.
        step: usize,
        /// `file:line` of the instruction.
        location: String,
        /// The cause.
        #[source]
        source: ExecError,
    },
    /// A registry operation failed.
    #[error("{platform}: {source}")]
    Registry {
        /// The platform, or `index` for the final push.
        platform: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// A layer could not be written or unpacked.
    #[error("{platform}: {source}")]
    Layer {
        /// The platform.
        platform: String,
        /// The cause.
        #[source]
        source: LayerError,
    },
    /// The local store failed.
    #[error("{platform}: {source}")]
    Store {
        /// The platform, or `index`.
        platform: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// A malformed OCI document.
    #[error("{platform}: {source}")]
    Oci {
        /// The platform.
        platform: String,
        /// The cause.
        #[source]
        source: OciError,
    },
    /// The index could not be stitched.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// `--push` without a tag, or a tag on two registries.
    #[error("{0}")]
    Usage(String),
    /// A background task died.
    #[error("internal error: {0}")]
    Internal(String),
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        let mut s = String::from("\n  output (last lines):");
        for l in tail {
            s.push_str("\n  | ");
            s.push_str(l);
        }
        s
    }
}

impl Classify for BuildError {
    fn exit_code(&self) -> ExitCode {
        match self {
            BuildError::ReadDockerfile { .. } | BuildError::Usage(_) => ExitCode::BadInput,
            BuildError::Dockerfile(e) => e.exit_code(),
            BuildError::Context { source, .. } | BuildError::OpenContext(source) => {
                source.exit_code()
            }
            BuildError::Emulation(e) => e.exit_code(),
            BuildError::NoMatchingPlatform { .. } | BuildError::UnsupportedManifest { .. } => {
                ExitCode::BadInput
            }
            BuildError::StepFailed { .. } => ExitCode::StepFailed,
            BuildError::Exec { source, .. } => source.exit_code(),
            BuildError::Registry { source, .. } => source.exit_code(),
            BuildError::Layer { source, .. } => source.exit_code(),
            BuildError::Store { source, .. } => source.exit_code(),
            BuildError::Oci { source, .. } => source.exit_code(),
            BuildError::Index(e) => e.exit_code(),
            BuildError::Internal(_) => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Dockerfile(e) => e.hint(),
            BuildError::Context { source, .. } | BuildError::OpenContext(source) => source.hint(),
            BuildError::Emulation(e) => e.hint(),
            BuildError::Exec { source, .. } => source.hint(),
            BuildError::Registry { source, .. } => source.hint(),
            BuildError::Layer { source, .. } => source.hint(),
            BuildError::NoMatchingPlatform { .. } => Some(
                "pick platforms the base image offers, or use a base image built for this one"
                    .into(),
            ),
            _ => None,
        }
    }
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
    // platform starts: the stage and base reference, and whether this host can run it.
    let mut warnings: Vec<String> = df.warnings.clone();
    let mut selections = Vec::new();
    for p in &req.platforms {
        let sel = plan::select(
            &df,
            &PlanRequest {
                target_platform: p.clone(),
                build_platform: req.build_platform.clone(),
                build_args: req.build_args.clone(),
                target_stage: req.target.clone(),
            },
        )?;
        for w in &sel.warnings {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        selections.push(sel);
    }
    let needs_run = selections.first().is_some_and(|sel| {
        df.stages[sel.stage_index]
            .instructions
            .iter()
            .any(|i| matches!(i.kind, InstructionKind::Run { .. }))
    });
    if needs_run {
        for p in &req.platforms {
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
    // others (their sandbox processes are killed on drop) and is returned.
    let builds = req
        .platforms
        .iter()
        .zip(selections)
        .map(|(p, sel)| build_platform(&shared, deps, p, sel));
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

async fn build_platform<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    selection: Selection,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let (mut config, mut layers) = match &selection.base {
        BaseImage::Scratch => {
            deps.sink.emit(Event::BaseResolved {
                platform: pname.clone(),
                reference: "scratch".into(),
                digest: None,
            });
            (ImageConfig::default(), Vec::new())
        }
        BaseImage::Image(reference) => pull_base(deps, platform, reference).await?,
    };
    // The target platform as the user spelled it (normalised spelling) is what the config and
    // the index record (e.g. variant v8 for linux/arm64/v8).
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.os_version = platform.os_version.clone();
    config.created = Some(sh.created.clone());

    let plan = selection.resolve(
        sh.dockerfile,
        &BaseConfig {
            env: config.config.env.clone().unwrap_or_default(),
            working_dir: config.config.working_dir.clone(),
            user: config.config.user.clone(),
        },
    )?;
    let steps = plan.steps;
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let started = Instant::now();
        deps.sink.emit(Event::StepStarted {
            platform: pname.clone(),
            step: n,
            total,
            location: location(sh.dockerfile, step),
            text: step.created_by.clone(),
        });
        let made = run_step(sh, deps, platform, &layers, step, n).await?;
        let layer_digest = made.as_ref().map(|l| l.descriptor.digest.clone());
        if let Some(layer) = made {
            config.rootfs.diff_ids.push(layer.diff_id.clone());
            layers.push(layer);
        } else {
            apply_config(&mut config, &step.kind);
        }
        config.history.push(History {
            created: Some(sh.created.clone()),
            created_by: Some(step.created_by.clone()),
            comment: Some("polyarch".into()),
            empty_layer: layer_digest.is_none(),
        });
        deps.sink.emit(Event::StepFinished {
            platform: pname.clone(),
            step: n,
            millis: started.elapsed().as_millis() as u64,
            layer: layer_digest,
        });
    }

    // Config and manifest: serialised once; these bytes are stored, hashed and pushed.
    let config_bytes = oci::to_bytes(&config);
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let (config_digest, config_size) = deps.store.put_bytes(&config_bytes).map_err(store_err)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations: None,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let (manifest_digest, manifest_size) =
        deps.store.put_bytes(&manifest_bytes).map_err(store_err)?;
    let mut blobs = vec![config_digest.clone()];
    blobs.extend(layers.iter().map(|l| l.descriptor.digest.clone()));

    if let Some(target) = push_target(sh.req) {
        let reg_err = |source| BuildError::Registry {
            platform: pname.clone(),
            source,
        };
        for desc in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            let path = deps.store.blob_path(&desc.digest);
            let pushed = deps
                .registry
                .push_blob(target, desc, &path)
                .await
                .map_err(reg_err)?;
            deps.sink.emit(Event::BlobPushed {
                platform: pname.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                existed: pushed == BlobPush::AlreadyPresent,
            });
        }
        let pushed = deps
            .registry
            .push_manifest(
                target,
                &manifest_digest.to_string(),
                &manifest_bytes,
                MEDIA_TYPE_OCI_MANIFEST,
            )
            .await
            .map_err(reg_err)?;
        if pushed != manifest_digest {
            return Err(BuildError::Oci {
                platform: pname.clone(),
                source: OciError::DigestMismatch {
                    what: format!("manifest pushed to {}", target.repo_string()),
                    expected: manifest_digest,
                    found: pushed,
                },
            });
        }
    }
    deps.sink.emit(Event::PlatformDone {
        platform: pname.clone(),
        digest: manifest_digest.clone(),
        size: manifest_size,
    });
    let mut descriptor = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, manifest_digest, manifest_size);
    descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: config_digest,
        blobs,
    })
}

/// Resolves, pulls and unpacks the base image for `platform`: returns its config and layers.
async fn pull_base<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    platform: &Platform,
    reference: &str,
) -> Result<(ImageConfig, Vec<BuiltLayer>), BuildError> {
    let pname = platform.to_string();
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let oci_err = |source| BuildError::Oci {
        platform: pname.clone(),
        source,
    };
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let r: Reference = reference.parse().map_err(reg_err)?;
    let top = deps.registry.get_manifest(&r).await.map_err(reg_err)?;
    let manifest_raw = match top.media_type.as_str() {
        MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_LIST => {
            let idx: ImageIndex = oci::from_bytes(&top.bytes, reference).map_err(oci_err)?;
            let offered: Vec<Platform> = idx
                .manifests
                .iter()
                .map(|d| {
                    d.platform.clone().unwrap_or_else(|| Platform {
                        architecture: "unknown".into(),
                        os: "unknown".into(),
                        os_version: None,
                        variant: None,
                    })
                })
                .collect();
            let i = platform::best_match(platform, &offered).ok_or_else(|| {
                BuildError::NoMatchingPlatform {
                    reference: reference.to_string(),
                    wanted: platform.to_string(),
                    available: offered
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            let child = r.with_digest(&idx.manifests[i].digest);
            deps.registry.get_manifest(&child).await.map_err(reg_err)?
        }
        _ => top,
    };
    if !is_image_manifest(&manifest_raw.media_type) {
        return Err(BuildError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type: manifest_raw.media_type,
        });
    }
    let manifest: ImageManifest =
        oci::from_bytes(&manifest_raw.bytes, reference).map_err(oci_err)?;
    deps.sink.emit(Event::BaseResolved {
        platform: pname.clone(),
        reference: reference.to_string(),
        digest: Some(manifest_raw.digest.clone()),
    });
    let config_bytes = fetch_small_blob(deps, &r, &manifest.config)
        .await
        .map_err(|e| match e {
            FetchError::Registry(source) => reg_err(source),
            FetchError::Store(source) => store_err(source),
        })?;
    let config: ImageConfig = oci::from_bytes(&config_bytes, reference).map_err(oci_err)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(BuildError::UnsupportedManifest {
            reference: reference.to_string(),
            media_type: format!(
                "{} (config lists {} diff_ids for {} layers)",
                manifest_raw.media_type,
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    if !config.platform().same_as(platform) && !platform_compatible(&config.platform(), platform) {
        return Err(BuildError::NoMatchingPlatform {
            reference: reference.to_string(),
            wanted: platform.to_string(),
            available: config.platform().to_string(),
        });
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let dir = if deps.store.has_layer(diff_id) {
            deps.store.layer_dir(diff_id)
        } else {
            fetch_into_store(deps, &r, desc)
                .await
                .map_err(|e| match e {
                    FetchError::Registry(source) => reg_err(source),
                    FetchError::Store(source) => store_err(source),
                })?;
            let store = deps.store.clone();
            let (blob, mt, id) = (
                desc.digest.clone(),
                desc.media_type.clone(),
                diff_id.clone(),
            );
            tokio::task::spawn_blocking(move || store.unpack_blob(&blob, &mt, Some(&id)))
                .await
                .map_err(|e| BuildError::Internal(e.to_string()))?
                .map_err(store_err)?
        };
        let mut d = desc.clone();
        d.media_type = oci_layer_media_type(&d.media_type);
        d.platform = None;
        layers.push(BuiltLayer {
            descriptor: d,
            diff_id: diff_id.clone(),
            dir,
        });
    }
    Ok((config, layers))
}

/// Docker layer media types become their OCI equivalents in the OCI manifest we write (the
/// bytes are the same format).
fn oci_layer_media_type(mt: &str) -> String {
    match mt {
        oci::MEDIA_TYPE_DOCKER_LAYER_GZIP => MEDIA_TYPE_OCI_LAYER_GZIP.into(),
        other => other.into(),
    }
}

fn is_image_manifest(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_MANIFEST || mt == oci::MEDIA_TYPE_DOCKER_MANIFEST
}

/// A single-manifest base whose config names a compatible (older) variant, e.g. an arm/v6 image
/// used for arm/v7.
fn platform_compatible(have: &Platform, want: &Platform) -> bool {
    platform::best_match(want, std::slice::from_ref(have)).is_some()
}

enum FetchError {
    Registry(RegistryError),
    Store(StoreError),
}

/// Downloads a blob into the store unless it is there already; the registry client verifies
/// the digest while streaming and the store checks it again before renaming it into place.
async fn fetch_into_store<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    r: &Reference,
    desc: &Descriptor,
) -> Result<(), FetchError> {
    if deps.store.has_blob(&desc.digest) {
        return Ok(());
    }
    let tmp = deps.store.temp_dir("fetch").map_err(FetchError::Store)?;
    let path = tmp.path().join("blob");
    deps.registry
        .fetch_blob(r, desc, &path)
        .await
        .map_err(FetchError::Registry)?;
    deps.store
        .import_file(&path, &desc.digest)
        .map_err(FetchError::Store)?;
    Ok(())
}

/// Fetches a small blob (a config) through the store, verified.
async fn fetch_small_blob<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    r: &Reference,
    desc: &Descriptor,
) -> Result<Vec<u8>, FetchError> {
    fetch_into_store(deps, r, desc).await?;
    deps.store
        .read_blob(&desc.digest)
        .map_err(FetchError::Store)
}

/// Runs one step; returns the layer it made, or `None` for config-only steps and steps that
/// changed nothing.
async fn run_step<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    layers: &[BuiltLayer],
    step: &Step,
    n: usize,
) -> Result<Option<BuiltLayer>, BuildError> {
    let pname = platform.to_string();
    let action = match &step.kind {
        StepKind::Run {
            argv,
            env,
            workdir,
            user,
        } => Action::Run(RunSpec {
            argv: argv.clone(),
            env: env.clone(),
            cwd: workdir.clone(),
            user: user.clone(),
        }),
        StepKind::Copy {
            sources,
            dest,
            chown,
            chmod,
        } => {
            let mut entries =
                sh.context
                    .resolve_copy(sources, dest)
                    .map_err(|source| BuildError::Context {
                        platform: pname.clone(),
                        location: location(sh.dockerfile, step),
                        source: Box::new(source),
                    })?;
            // With SOURCE_DATE_EPOCH, copied files get clamped mtimes already in the rootfs,
            // not only in the layer tar: later RUN steps (`ls -l`, make) then see the same
            // times whatever the context's mtimes were, and the build stays reproducible.
            if let Some(epoch) = sh.req.source_date_epoch {
                for e in &mut entries {
                    e.mtime = e.mtime.min(epoch);
                }
            }
            Action::Copy(CopySpec {
                entries,
                chown: chown.clone(),
                chmod: *chmod,
            })
        }
        _ => return Ok(None),
    };
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let scratch = deps.store.temp_dir("step").map_err(store_err)?;
    let upper = scratch.path().join("upper");
    let work = scratch.path().join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|source| {
            store_err(StoreError::Io {
                action: "create directory",
                path: d.to_path_buf(),
                source,
            })
        })?;
    }
    let spec = SandboxSpec {
        lowerdirs: layers.iter().rev().map(|l| l.dir.clone()).collect(),
        upperdir: upper.clone(),
        workdir: work.clone(),
        action,
        hostname: "polyarch".into(),
    };
    let sink = deps.sink.clone();
    let p2 = pname.clone();
    let outcome = deps
        .executor
        .run(&spec, move |line| {
            sink.emit(Event::Output {
                platform: p2.clone(),
                step: n,
                stream: line.stream,
                line: line.line,
            })
        })
        .await
        .map_err(|source| BuildError::Exec {
            platform: pname.clone(),
            step: n,
            location: location(sh.dockerfile, step),
            source,
        })?;
    if outcome.status != 0 {
        return Err(BuildError::StepFailed {
            platform: pname,
            step: n,
            location: location(sh.dockerfile, step),
            instruction: step.created_by.clone(),
            status: outcome.status,
            tail: outcome.tail,
        });
    }
    if dir_is_empty(&upper) {
        return Ok(None);
    }
    // Tar, compress and hash on a blocking thread: plain `Write` code (STYLE habit 9).
    let store = deps.store.clone();
    let opts = LayerOptions {
        source_date_epoch: sh.req.source_date_epoch.map(|e| e.max(0) as u64),
        ..LayerOptions::default()
    };
    let upper2 = upper.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
        let mut w = store.blob_writer().map_err(|source| BuildError::Store {
            platform: String::new(),
            source,
        })?;
        let blob =
            layer::write_layer(&upper2, &mut w, &opts).map_err(|source| BuildError::Layer {
                platform: String::new(),
                source,
            })?;
        w.commit(Some(&blob.digest))
            .map_err(|source| BuildError::Store {
                platform: String::new(),
                source,
            })?;
        let dir = store
            .adopt_layer_dir(&upper2, &blob.diff_id)
            .map_err(|source| BuildError::Store {
                platform: String::new(),
                source,
            })?;
        Ok((blob, dir))
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
    .map_err(|e| with_platform(e, &pname))?;
    let (blob, dir) = written;
    Ok(Some(BuiltLayer {
        descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
        diff_id: blob.diff_id.clone(),
        dir,
    }))
}

fn with_platform(e: BuildError, p: &str) -> BuildError {
    match e {
        BuildError::Store { source, .. } => BuildError::Store {
            platform: p.into(),
            source,
        },
        BuildError::Layer { source, .. } => BuildError::Layer {
            platform: p.into(),
            source,
        },
        other => other,
    }
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Applies a config-only step to the image config (Dockerfile reference: ENV, WORKDIR, USER,
/// LABEL, EXPOSE, CMD, ENTRYPOINT).
fn apply_config(config: &mut ImageConfig, kind: &StepKind) {
    let c = &mut config.config;
    match kind {
        StepKind::Env(pairs) => {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
                {
                    Some(slot) => *slot = entry,
                    None => env.push(entry),
                }
            }
        }
        StepKind::Workdir(w) => c.working_dir = Some(w.clone()),
        StepKind::User(u) => c.user = Some(u.clone()),
        StepKind::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(k.clone(), v.clone());
            }
        }
        StepKind::Expose(ports) => {
            let map = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                map.insert(p.clone(), oci::EmptyObject {});
            }
        }
        StepKind::Cmd(argv) => c.cmd = Some(argv.clone()),
        StepKind::Entrypoint { argv, clears_cmd } => {
            c.entrypoint = Some(argv.clone());
            // Dockerfile reference: "If CMD is defined from the base image, setting ENTRYPOINT
            // will reset CMD to an empty value."
            if *clears_cmd {
                c.cmd = None;
            }
        }
        _ => {}
    }
}
