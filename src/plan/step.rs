//! What a resolved step is: the [`Plan`] of one stage for one platform and its [`Step`]s, each
//! with every word expanded and everything that decides its result spelled out as data: the
//! argv, environment, working directory, user, mounts and network of a RUN; the sources,
//! destination and flags of a COPY or ADD; the config change of the other instructions; and the
//! history string BuildKit would record.
//!
//! Level 0: plain serialisable data, no I/O and no resolution logic (that is in `resolve.rs` and
//! the instruction files it calls). Whatever is derived from a step (what the executor does, a
//! cache key) reads these values and nothing else.

use serde::Serialize;

use super::chmod::SymbolicMode;
use super::request::BaseImage;
use crate::dockerfile::Span;
use crate::platform::Platform;

/// The resolved steps of one stage for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Index of the stage in the Dockerfile.
    pub stage_index: usize,
    /// The stage's name.
    pub stage_name: Option<String>,
    /// The image to start from.
    pub base: BaseImage,
    /// The platform the stage runs as.
    pub platform: Platform,
    /// The config env the stage starts with: the base image's, plus `PATH` when it sets none
    /// (BuildKit adds it to the image config too).
    pub initial_env: Vec<String>,
    /// The steps in order (ONBUILD triggers of the base first).
    pub steps: Vec<Step>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// One resolved instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Where the instruction starts in the Dockerfile (the FROM line for ONBUILD triggers).
    pub span: Span,
    /// The image history `created_by`, BuildKit style (`RUN /bin/sh -c make # buildkit`).
    pub created_by: String,
    /// The instruction as the Dockerfile spells it, for progress and error lines
    /// (`RUN --mount=type=cache,target=/root/.cache pip install ...`, `CMD ["python3", "-m"]`).
    pub text: String,
    /// What to do.
    pub kind: StepKind,
}

impl Step {
    /// True for steps that may change the filesystem and get a layer (RUN, COPY, ADD, WORKDIR
    /// other than `/`); the others only change the config.
    pub fn creates_layer(&self) -> bool {
        match &self.kind {
            StepKind::Run { .. } | StepKind::Copy(_) => true,
            StepKind::Workdir { path, .. } => path != "/",
            _ => false,
        }
    }

    /// False for steps BuildKit records no history entry for (ONBUILD).
    pub fn in_history(&self) -> bool {
        !matches!(self.kind, StepKind::Onbuild(_))
    }
}

/// Where COPY reads its sources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFrom {
    /// The build context (honouring `.dockerignore`).
    Context,
    /// The final filesystem of an earlier stage, by index.
    Stage(usize),
    /// The filesystem of an image, pulled for the stage's platform.
    Image(String),
}

/// A file made from a heredoc (`COPY <<EOF /dest`) or written for a RUN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    /// The file name (the heredoc terminator).
    pub name: String,
    /// The contents, expanded when the terminator was unquoted.
    pub content: String,
}

/// A resolved COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyStep {
    /// ADD semantics: URL sources, local archives unpacked.
    pub add: bool,
    /// Where the sources come from.
    pub from: CopyFrom,
    /// Source paths relative to the source root (may contain wildcards), or `http(s)://` URLs
    /// for ADD.
    pub sources: Vec<String>,
    /// Heredoc sources, created as files with mode 0644.
    pub inline: Vec<InlineFile>,
    /// Absolute destination; a trailing `/` means "into this directory".
    pub dest: String,
    /// `--chown` value (`user[:group]`, names or ids), resolved by the executor in the image.
    pub chown: Option<String>,
    /// `--chmod` in octal: the permission bits.
    pub chmod: Option<u32>,
    /// `--chmod` in symbolic form (`u+x,go-w`), applied to each source's mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chmod_symbolic: Option<SymbolicMode>,
    /// `--link`: the layer is made against an empty tree, independent of earlier layers.
    pub link: bool,
    /// `--exclude` patterns (`.dockerignore` syntax), matched against paths inside each source.
    pub excludes: Vec<String>,
    /// ADD `--unpack`: `None` = the default (local archives unpacked, URLs not).
    pub unpack: Option<bool>,
    /// ADD `--checksum`: the digest (`sha256:<hex>`) a URL's content must have.
    pub checksum: Option<String>,
}

/// A resolved HEALTHCHECK (Docker image config `Healthcheck`, durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Nanoseconds; 0 inherits the default.
    pub interval: u64,
    /// Nanoseconds.
    pub timeout: u64,
    /// Nanoseconds.
    pub start_period: u64,
    /// Nanoseconds.
    pub start_interval: u64,
    /// Consecutive failures before unhealthy; 0 inherits the default.
    pub retries: u32,
}

/// What a step does, all words expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Run a program in the rootfs.
    Run {
        /// The program and arguments; shell form is the shell (`/bin/sh -c`) plus the command.
        argv: Vec<String>,
        /// `KEY=VALUE`: the image env so far, then the ARGs in scope that have values and are
        /// not shadowed by ENV, then predefined proxy build args.
        env: Vec<String>,
        /// Absolute working directory.
        workdir: String,
        /// `user[:group]`; `None` for root.
        user: Option<String>,
        /// `--mount`s, plus the file a `RUN <<EOF` with a `#!` line runs.
        mounts: Vec<RunMount>,
        /// `--network`.
        network: Network,
        /// `--security`.
        security: Security,
    },
    /// Copy files (COPY or ADD).
    Copy(CopyStep),
    /// Set environment variables in the image config.
    Env(Vec<(String, String)>),
    /// Declare build arguments (history only; their values reach RUN through its env).
    Arg(Vec<(String, Option<String>)>),
    /// Set the working directory (absolute) and, unless it is `/`, create it (with parents,
    /// mode 0755, owned by the stage's user) when missing, as BuildKit does.
    Workdir {
        /// The absolute directory.
        path: String,
        /// The stage's `USER` at that point, who owns a created directory; `None` is root.
        user: Option<String>,
    },
    /// Set the user.
    User(String),
    /// Add labels.
    Label(Vec<(String, String)>),
    /// Add exposed ports, normalised `port/proto`.
    Expose(Vec<String>),
    /// Set the default command.
    Cmd(Vec<String>),
    /// Set the entrypoint.
    Entrypoint {
        /// The argv; shell form is the shell plus the command.
        argv: Vec<String>,
        /// True when the inherited `Cmd` must be cleared: no CMD came earlier in this stage
        /// (BuildKit `dispatchEntrypoint`).
        clears_cmd: bool,
    },
    /// Set the shell for later shell-form commands (config `Shell`).
    Shell(Vec<String>),
    /// Set or disable the healthcheck (config `Healthcheck`).
    Healthcheck(Healthcheck),
    /// Set the stop signal (config `StopSignal`).
    StopSignal(String),
    /// Add volumes (config `Volumes`).
    Volume(Vec<String>),
    /// Add an ONBUILD trigger (config `OnBuild`).
    Onbuild(String),
    /// Set the author (config `author`) and the `maintainer` label.
    Maintainer(String),
}

/// Where a bind mount's files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountSource {
    /// The build context (what `.dockerignore` allows).
    Context,
    /// An earlier stage's filesystem, by index.
    Stage(usize),
    /// An image's filesystem, pulled for the stage's platform.
    Image(String),
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Any number of concurrent users (the default).
    Shared,
    /// A concurrent user gets a separate, new directory.
    Private,
    /// One user at a time; the others wait.
    Locked,
}

/// One mount of a RUN step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMount {
    /// `type=bind`: files from the context, a stage or an image; writes are discarded.
    Bind {
        /// Absolute path in the container.
        target: String,
        /// Where from.
        from: MountSource,
        /// Path inside the source (`/` = all of it).
        source: String,
        /// `ro` (the default) or `rw` (writes go to a throw-away layer).
        readonly: bool,
    },
    /// `type=cache`: a directory kept in the state directory between builds.
    Cache {
        /// Absolute path in the container.
        target: String,
        /// The cache's identity (`id=`, default the target).
        id: String,
        /// Concurrent use.
        sharing: CacheSharing,
        /// Read-only.
        readonly: bool,
        /// Mode of the cache directory when first created (default 0755).
        mode: u32,
        /// Owner of the cache directory when first created.
        uid: u32,
        /// Group of the cache directory when first created.
        gid: u32,
    },
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs {
        /// Absolute path in the container.
        target: String,
        /// `size=` in bytes; `None` is the kernel's default (half of RAM).
        size: Option<u64>,
    },
    /// `type=secret`: a secret given with `--secret`, as a file and/or an environment variable.
    Secret {
        /// The secret's id (`id=`, or `source=`, or the target's file name).
        id: String,
        /// The file to create (default `/run/secrets/<id>` unless `env=` is given).
        target: Option<String>,
        /// An environment variable to set to the secret's value.
        env: Option<String>,
        /// Fail when the secret was not given (default: skip the mount).
        required: bool,
        /// File mode (default 0400).
        mode: u32,
        /// File owner.
        uid: u32,
        /// File group.
        gid: u32,
    },
    /// `type=ssh`: the SSH agent socket given with `--ssh ID=...`, bound onto `target`
    /// (BuildKit `dispatchSSH`); the first one's target is also `SSH_AUTH_SOCK`.
    Ssh {
        /// The agent's id (`id=`, default `default`).
        id: String,
        /// Where the socket appears (default `/run/buildkit/ssh_agent.N`, N counting the
        /// step's ssh mounts from 0).
        target: String,
        /// Fail when the agent was not given (default: skip the mount).
        required: bool,
    },
    /// A file written for the step (the script of `RUN <<EOF` starting with `#!`), read-only.
    File {
        /// Absolute path in the container (`/dev/pipes/EOF`).
        target: String,
        /// The contents.
        content: String,
        /// The file mode.
        mode: u32,
    },
}

impl RunMount {
    /// The path in the container, if the mount has one (a secret given only as `env=` has
    /// none).
    pub fn target(&self) -> Option<&str> {
        match self {
            RunMount::Bind { target, .. }
            | RunMount::Cache { target, .. }
            | RunMount::Tmpfs { target, .. }
            | RunMount::Ssh { target, .. }
            | RunMount::File { target, .. } => Some(target),
            RunMount::Secret { target, .. } => target.as_deref(),
        }
    }
}

/// `RUN --security=` (BuildKit `SecurityMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// `sandbox`: the sandbox's defaults.
    #[default]
    Sandbox,
    /// `insecure`: every capability, no seccomp filter, no masked kernel paths (needs the
    /// `security.insecure` entitlement).
    Insecure,
}

/// `RUN --network=` (BuildKit `NetworkMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// `default`: the host's network here (polyarch has no bridge or CNI).
    #[default]
    Default,
    /// `none`: a new network namespace with only loopback.
    None,
    /// `host`: the host's network namespace.
    Host,
}
