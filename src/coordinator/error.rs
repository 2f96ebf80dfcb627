//! Why a build failed, and the exit code each failure maps to.
//!
//! Level 3 (coordinator). Values and their messages only: no I/O, and no advice glued into a
//! message (hints come apart, through [`Classify`]).

use super::*;

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
    /// `--platform all` found nothing in the base image that this host can run.
    #[error(
        "--platform all: this host runs none of the platforms {reference} offers ({})",
        offered.join(", ")
    )]
    NothingRunsHere {
        /// The base image reference.
        reference: String,
        /// What its index offers.
        offered: Vec<String>,
        /// Each offered platform with why it does not run.
        skipped: Vec<String>,
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
    /// `--smoke-test` exited non-zero in a platform's finished image.
    #[error(
        "{platform}: the smoke test {command:?} failed with exit status {status}{}",
        tail_text(.tail)
    )]
    SmokeTestFailed {
        /// The platform.
        platform: String,
        /// The command as given.
        command: String,
        /// Its exit status (128+n for a signal).
        status: i32,
        /// The last lines it printed.
        tail: Vec<String>,
    },
    /// The build runs commands (RUN) but this process cannot create their sandbox (not root).
    #[error("{platforms}: {source}")]
    NeedsRoot {
        /// The platforms being built, comma-separated.
        platforms: String,
        /// The cause.
        #[source]
        source: ExecError,
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
    /// Pushing the index to one of several tags failed after others had moved: the tags are
    /// listed exactly (a registry cannot move several tags at once).
    #[error(
        "the index {} moved tags {} but not {}",
        .0.digest,
        .0.moved.join(", "),
        .0.not_moved.join(", ")
    )]
    TagsPartlyMoved(#[source] Box<TagsPartlyMoved>),
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
    /// A build node failed: unusable, dropped with nowhere left to go, or its build failed.
    #[error(transparent)]
    Node(Box<crate::node::NodeError>),
    /// No place may build some platform (`--node-policy native-only`), or a node declares a
    /// platform it cannot run.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// `--push` without a tag, or a tag on two registries.
    #[error("{0}")]
    Usage(String),
    /// A background task died.
    #[error("internal error: {0}")]
    Internal(String),
    /// A failure of a stage build that several platforms share, reported to each of them.
    #[error(transparent)]
    Shared(Arc<BuildError>),
    /// Exporting to a shared cache (`--cache-to`) failed.
    #[error(transparent)]
    SharedCache(Box<crate::shared_cache::SharedCacheError>),
    /// A local output (`-o type=oci|docker|local|tar`, `--load`) could not be written.
    #[error(transparent)]
    Output(Box<super::outputs::OutputError>),
    /// The step cache's files could not be read or written.
    #[error("step cache: {0}")]
    Cache(#[source] CacheError),
    /// Preparing what a step reads (ADD URLs and archives, heredocs, secrets, cache mounts)
    /// failed.
    #[error("{platform}: {location}: {source}")]
    Source {
        /// The platform label of the stage.
        platform: String,
        /// `file:line` of the instruction.
        location: String,
        /// The cause.
        #[source]
        source: SourceError,
    },
}

impl From<crate::node::NodeError> for BuildError {
    fn from(e: crate::node::NodeError) -> BuildError {
        BuildError::Node(Box::new(e))
    }
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
            BuildError::StepFailed { .. } | BuildError::SmokeTestFailed { .. } => {
                ExitCode::StepFailed
            }
            BuildError::Exec { source, .. } | BuildError::NeedsRoot { source, .. } => {
                source.exit_code()
            }
            BuildError::Registry { source, .. } => source.exit_code(),
            BuildError::TagsPartlyMoved(p) => p.source.exit_code(),
            BuildError::Layer { source, .. } => source.exit_code(),
            BuildError::Store { source, .. } => source.exit_code(),
            BuildError::Oci { source, .. } => source.exit_code(),
            BuildError::Index(e) => e.exit_code(),
            BuildError::Node(e) => e.exit_code(),
            BuildError::Schedule(e) => e.exit_code(),
            BuildError::Internal(_) | BuildError::NothingRunsHere { .. } => ExitCode::Host,
            BuildError::Shared(e) => e.exit_code(),
            BuildError::Source { source, .. } => source.exit_code(),
            BuildError::Cache(e) => e.exit_code(),
            BuildError::SharedCache(e) => e.exit_code(),
            BuildError::Output(e) => e.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Dockerfile(e) => e.hint(),
            BuildError::Context { source, .. } | BuildError::OpenContext(source) => source.hint(),
            BuildError::Emulation(e) => e.hint(),
            BuildError::Exec { source, .. } | BuildError::NeedsRoot { source, .. } => source.hint(),
            BuildError::Registry { source, .. } => source.hint(),
            BuildError::TagsPartlyMoved(p) => Some(format!(
                "run the build again (the same inputs give index {}), or push that index to {} \
                 with `polyarch merge -t TAG {}@{}`",
                p.digest,
                p.not_moved.join(", "),
                p.repository,
                p.digest
            )),
            BuildError::Layer { source, .. } => source.hint(),
            BuildError::Node(e) => e.hint(),
            BuildError::Schedule(e) => e.hint(),
            BuildError::NothingRunsHere { .. } => Some(
                "`polyarch qemu status` shows what runs here; `polyarch qemu install ARCH` (as \
                 root) adds an emulator"
                    .into(),
            ),
            BuildError::Shared(e) => e.hint(),
            BuildError::Source { source, .. } => source.hint(),
            BuildError::SharedCache(e) => e.hint(),
            BuildError::Output(e) => e.hint(),
            BuildError::NoMatchingPlatform { .. } => Some(
                "pick platforms the base image offers, or use a base image built for this one"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Which tags an index push moved before one failed.
#[derive(Debug, thiserror::Error)]
#[error("pushing to {failed}: {source}")]
pub struct TagsPartlyMoved {
    /// The index digest.
    pub digest: Digest,
    /// `registry/repository` of the tags.
    pub repository: String,
    /// Tags that hold the new index now, in `-t` order.
    pub moved: Vec<String>,
    /// Tags that do not (the failed one first).
    pub not_moved: Vec<String>,
    /// The tag whose push failed.
    pub failed: String,
    /// Why.
    #[source]
    pub source: RegistryError,
}
