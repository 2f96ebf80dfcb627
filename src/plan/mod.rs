//! The per-platform build plan: from a parsed [`Dockerfile`], a target platform, the build
//! platform, `--build-arg` values and an optional `--target` stage, the stages to build (the
//! target and every stage it needs), each with the image it starts from, the platform it runs as,
//! and its ordered steps with every word expanded. Level 0: pure.
//!
//! Two phases, because expansion needs each stage's starting config:
//! 1. [`select_graph`] expands every needed stage's FROM line with the global ARGs and the
//!    automatic platform ARGs and follows its dependencies (`FROM <earlier stage>`,
//!    `COPY --from`, `RUN --mount=...,from=`). Stages the target does not need are not selected.
//!    Each [`Selection`] carries a [`StageKey`]: two target platforms whose selections of a stage
//!    have equal keys (same stage, same resolved platform, same values for the ARGs the stage
//!    declares, same dependencies) get the same result, so the coordinator builds it once.
//! 2. [`Selection::resolve`] takes the stage's starting config ([`BaseConfig`]: the base image's,
//!    or the config an earlier stage ended with) and walks the stage: ONBUILD triggers of the
//!    base first, then ARG scoping, ENV, WORKDIR, USER, SHELL, ... producing [`Step`]s with
//!    expanded words, the environment each RUN sees, its mounts, and BuildKit-style history
//!    strings.
//!
//! Semantics follow BuildKit's `frontend/dockerfile/dockerfile2llb/convert.go` (`dispatchArg`,
//! `dispatchEnv`, `dispatchRun`, `dispatchCopy`, `dispatchExpose`, `runCommandString`, stage
//! resolution and `initOnBuildTriggers`), `convert_runmount.go`, `convert_copy.go` and the
//! Dockerfile reference ("ARG", "Automatic platform ARGs in the global scope", "Environment
//! replacement", "RUN --mount", "ONBUILD").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dockerfile::shell::expand_word;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, InstructionKind, Span, Word};
use crate::platform::Platform;

mod chmod;
mod mounts;
mod resolve;
#[cfg(test)]
mod tests;

pub use chmod::SymbolicMode;
pub use mounts::{CacheSharing, MountSource, Network, RunMount};
pub use resolve::is_url;

/// The PATH BuildKit gives a stage whose base image sets none (`system.DefaultPathEnvUnix`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The default shell for shell-form commands on Linux (BuildKit `defaultShell`).
pub const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// ARGs that may be passed with `--build-arg` without an ARG instruction; they reach RUN steps
/// but never the image history (Dockerfile reference, "Predefined ARGs").
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// The platform the image is built for (`--platform` entry).
    pub target_platform: Platform,
    /// The platform polyarch runs on.
    pub build_platform: Platform,
    /// `--build-arg NAME=VALUE` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage name; `None` builds the last stage.
    pub target_stage: Option<String>,
}

/// The image a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseImage {
    /// `FROM scratch`: an empty root filesystem and an empty config.
    Scratch,
    /// An image reference as written after expansion (`alpine:3.20`, `reg:5000/x@sha256:...`).
    Image(String),
    /// An earlier stage of the same Dockerfile, by index in [`Dockerfile::stages`].
    Stage(usize),
}

/// The parts of a stage's starting config the plan depends on (image-spec config.md
/// `config.Env`, `config.WorkingDir`, `config.User`; Docker's `Shell` and `OnBuild`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseConfig {
    /// `KEY=VALUE` entries, in order.
    #[serde(default)]
    pub env: Vec<String>,
    /// The working directory; `/` when absent or empty.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The user; root when absent or empty.
    #[serde(default)]
    pub user: Option<String>,
    /// The shell for shell-form commands; [`DEFAULT_SHELL`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// ONBUILD triggers to run first, as the config records them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// The environment is not known yet (the base image is not pulled): used by
    /// [`check_graph`], which then reports only errors that no base image could avoid.
    #[serde(skip)]
    pub env_unknown: bool,
}

/// Identifies one stage build: equal keys mean equal inputs and so an equal result. Shown as
/// `stage-index/platform/hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StageKey(pub String);

impl std::fmt::Display for StageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One needed stage for one target platform: which stage, which base, which platform, and its
/// dependencies. The outcome of phase 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the stage in [`Dockerfile::stages`].
    pub stage_index: usize,
    /// The stage's name, if it has one.
    pub stage_name: Option<String>,
    /// The image to start from.
    pub base: BaseImage,
    /// The platform the stage runs as: `FROM --platform` when given, else the target.
    pub platform: Platform,
    /// Equal for selections (of any target platform) that build the same thing.
    pub key: StageKey,
    /// Earlier stages this one uses (base, `COPY --from`, mount `from`), by index, ascending.
    pub deps: Vec<usize>,
    /// Images this stage reads files from (`COPY --from=image`, mount `from=image`).
    pub images: Vec<String>,
    /// Non-fatal findings: unused build args, parser warnings (on the target's selection).
    pub warnings: Vec<String>,
    request: PlanRequest,
    /// Global scope: automatic platform ARGs, then global ARGs (value `None` when unset).
    meta: Vec<(String, Option<String>)>,
    /// Keys of the stages in `deps`, for [`Selection::dep_key`].
    dep_keys: BTreeMap<usize, StageKey>,
}

/// Every stage one target platform needs, dependencies first, the target last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// The selections, in ascending stage order (a stage only uses earlier stages).
    pub stages: Vec<Selection>,
    /// Non-fatal findings: unused build args, parser warnings.
    pub warnings: Vec<String>,
}

impl StageGraph {
    /// The target stage's selection.
    pub fn target(&self) -> &Selection {
        self.stages
            .last()
            .unwrap_or_else(|| unreachable!("a graph always has its target"))
    }

    /// The selection of stage `index`, when the target needs it.
    pub fn get(&self, index: usize) -> Option<&Selection> {
        self.stages.iter().find(|s| s.stage_index == index)
    }
}

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

/// The automatic platform ARGs (Dockerfile reference, "Automatic platform ARGs in the global
/// scope") from the normalised platforms: `linux/arm64/v8` gives `TARGETARCH=arm64`,
/// `TARGETVARIANT=` and `TARGETPLATFORM=linux/arm64`.
pub fn automatic_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    for (prefix, p) in [
        ("BUILD", build.normalized()),
        ("TARGET", target.normalized()),
    ] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant_str().to_string()));
    }
    out
}

fn set_var(vars: &mut Vec<(String, Option<String>)>, name: &str, value: Option<String>) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_string(), value)),
    }
}

fn get_var(vars: &[(String, Option<String>)], name: &str) -> Option<String> {
    vars.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}

/// Expands one word, mapping lexer errors to the word's place.
fn expand(
    df: &Dockerfile,
    word: &Word,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DockerfileError> {
    expand_word(&word.text, df.escape, lookup).map_err(|e| expansion_error(df, word, e))
}

fn expansion_error(
    df: &Dockerfile,
    word: &Word,
    e: crate::dockerfile::shell::ExpandError,
) -> DockerfileError {
    df.error_at(
        word.span,
        word.text.chars().count(),
        ErrorKind::Expansion {
            word: word.text.clone(),
            reason: e.message,
        },
    )
}

fn invalid(df: &Dockerfile, word: &Word, what: &str, value: &str, reason: &str) -> DockerfileError {
    df.error_at(
        word.span,
        word.text.chars().count(),
        ErrorKind::InvalidValue {
            what: what.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        },
    )
}

/// The global scope: automatic platform ARGs, then the ARGs before the first FROM in order. A
/// default is expanded with what is declared above it; a build arg wins over it; a declaration
/// without either keeps an automatic value of the same name.
fn global_scope(
    df: &Dockerfile,
    req: &PlanRequest,
) -> Result<Vec<(String, Option<String>)>, DockerfileError> {
    let mut meta: Vec<(String, Option<String>)> =
        automatic_args(&req.target_platform, &req.build_platform)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
    for arg in &df.global_args {
        let value = if let Some(v) = req.build_args.get(&arg.name) {
            Some(v.clone())
        } else if let Some(default) = &arg.default {
            let word = Word {
                text: default.clone(),
                span: arg.span,
            };
            let m = meta.clone();
            Some(expand(df, &word, &|n| get_var(&m, n))?)
        } else {
            get_var(&meta, &arg.name)
        };
        set_var(&mut meta, &arg.name, value);
    }
    Ok(meta)
}

/// The stage a `--from` value names (BuildKit `findStateByName`/`findStateByIndex`: a stage
/// name, case-insensitive, or a stage index), or `None` when it names an image.
fn stage_by_name_or_index(df: &Dockerfile, value: &str) -> Option<usize> {
    if let Ok(i) = value.parse::<usize>() {
        if i < df.stages.len() {
            return Some(i);
        }
    }
    df.stage_index(value)
}

/// What a `--from` (or mount `from=`) refers to, checked: an earlier stage, or an image.
/// `what` names the flag in errors.
fn resolve_from(
    df: &Dockerfile,
    current: usize,
    word: &Word,
    value: &str,
    what: &str,
) -> Result<CopyFrom, DockerfileError> {
    let width = word.text.chars().count();
    if let Some(i) = stage_by_name_or_index(df, value) {
        if i >= current {
            return Err(df.error_at(
                word.span,
                width,
                ErrorKind::LaterStage {
                    what: what.to_string(),
                    name: value.to_string(),
                    stage_line: df.stages[i].span.line,
                },
            ));
        }
        return Ok(CopyFrom::Stage(i));
    }
    // BuildKit never expands --from: a `$` (other than a trailing one) is a mistake.
    if value.find('$').is_some_and(|i| i + 1 != value.len()) {
        return Err(df.error_at(
            word.span,
            width,
            ErrorKind::FromVariable {
                what: what.to_string(),
                value: value.to_string(),
            },
        ));
    }
    if value.is_empty() {
        return Err(invalid(df, word, what, value, "empty"));
    }
    Ok(CopyFrom::Image(value.to_string()))
}

/// The `from=` of every `--mount` of a RUN, without expanding anything else (BuildKit checks
/// `from` at parse time and never expands it).
fn mount_froms(mounts: &[Word]) -> Vec<(Word, String)> {
    let mut out = Vec::new();
    for m in mounts {
        for field in mounts::csv_fields(&m.text).unwrap_or_default() {
            if let Some((k, v)) = field.split_once('=') {
                if k.eq_ignore_ascii_case("from") {
                    out.push((m.clone(), v.to_string()));
                }
            }
        }
    }
    out
}

/// Phase 1 for one stage: base, platform, direct dependencies.
fn select_stage(
    df: &Dockerfile,
    req: &PlanRequest,
    meta: &[(String, Option<String>)],
    stage_index: usize,
) -> Result<(BaseImage, Platform, BTreeSet<usize>, Vec<String>), DockerfileError> {
    let stage = &df.stages[stage_index];
    let lookup = |n: &str| get_var(meta, n);
    let base_name = expand(df, &stage.base, &lookup)?;
    if base_name.is_empty() {
        return Err(invalid(
            df,
            &stage.base,
            "base image",
            &base_name,
            "empty after expansion",
        ));
    }
    let mut deps = BTreeSet::new();
    let mut images = Vec::new();
    // FROM names an earlier stage by name only (BuildKit registers stages in order).
    let earlier = df.stages[..stage_index]
        .iter()
        .position(|s| s.name.as_deref() == Some(base_name.to_ascii_lowercase().as_str()));
    let base = match earlier {
        Some(i) => {
            deps.insert(i);
            BaseImage::Stage(i)
        }
        None if base_name == "scratch" => BaseImage::Scratch,
        None => BaseImage::Image(base_name),
    };
    let platform = match &stage.platform {
        Some(word) => {
            let text = expand(df, word, &lookup)?;
            if text.is_empty() {
                return Err(invalid(
                    df,
                    word,
                    "platform",
                    &text,
                    "empty after expansion",
                ));
            }
            Platform::parse(&text).map_err(|e| invalid(df, word, "platform", &text, &e.reason))?
        }
        None => match &base {
            // A stage based on another stage runs as that stage does (BuildKit copies the
            // parent's platform).
            BaseImage::Stage(i) => {
                let (_, p, _, _) = select_stage(df, req, meta, *i)?;
                p
            }
            _ => req.target_platform.clone(),
        },
    };
    for ins in &stage.instructions {
        let mut froms: Vec<(Word, String, &str)> = Vec::new();
        match &ins.kind {
            InstructionKind::Copy { from: Some(w), .. } => {
                froms.push((w.clone(), w.text.clone(), "COPY --from"))
            }
            InstructionKind::Run { mounts, .. } => {
                for (w, v) in mount_froms(mounts) {
                    froms.push((w, v, "RUN --mount from"));
                }
            }
            _ => {}
        }
        for (word, value, what) in froms {
            match resolve_from(df, stage_index, &word, &value, what)? {
                CopyFrom::Stage(i) => {
                    deps.insert(i);
                }
                CopyFrom::Image(r) => {
                    if !images.contains(&r) {
                        images.push(r);
                    }
                }
                CopyFrom::Context => {}
            }
        }
    }
    Ok((base, platform, deps, images))
}

/// The stage index `--target` names (or the last stage).
fn target_index(df: &Dockerfile, req: &PlanRequest) -> Result<usize, DockerfileError> {
    match &req.target_stage {
        Some(t) => df.stage_index(t).ok_or_else(|| {
            df.error_file(ErrorKind::TargetNotFound {
                target: t.clone(),
                available: df.stages.iter().filter_map(|s| s.name.clone()).collect(),
            })
        }),
        None => df
            .stages
            .len()
            .checked_sub(1)
            .ok_or_else(|| df.error_file(ErrorKind::NoStage)),
    }
}

/// Builds the [`Selection`] of `stage_index`, selecting its dependencies first into `done`.
fn select_into(
    df: &Dockerfile,
    req: &PlanRequest,
    meta: &[(String, Option<String>)],
    stage_index: usize,
    done: &mut BTreeMap<usize, Selection>,
) -> Result<(), DockerfileError> {
    if done.contains_key(&stage_index) {
        return Ok(());
    }
    let (base, platform, deps, images) = select_stage(df, req, meta, stage_index)?;
    for &d in &deps {
        select_into(df, req, meta, d, done)?;
    }
    let dep_keys: BTreeMap<usize, StageKey> =
        deps.iter().map(|&d| (d, done[&d].key.clone())).collect();
    let stage = &df.stages[stage_index];
    // The inputs that can differ between target platforms: the values the ARGs declared in
    // the stage can take from the global scope, the base, the platform, the dependencies.
    let mut arg_inputs: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for ins in &stage.instructions {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for d in decls {
                arg_inputs.push((
                    d.name.clone(),
                    req.build_args.get(&d.name).cloned(),
                    get_var(meta, &d.name),
                ));
            }
        }
    }
    let inputs = serde_json::json!({
        "stage": stage_index,
        "platform": platform.normalized().to_string(),
        "base": base,
        "args": arg_inputs,
        "build_args": req.build_args,
        "deps": dep_keys,
        "images": images,
    });
    let digest = crate::oci::Digest::of(inputs.to_string().as_bytes());
    let key = StageKey(format!(
        "{}/{}/{}",
        stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{stage_index}")),
        platform.normalized(),
        &digest.hex()[..12]
    ));
    done.insert(
        stage_index,
        Selection {
            stage_index,
            stage_name: stage.name.clone(),
            base,
            platform,
            key,
            deps: deps.into_iter().collect(),
            images,
            warnings: Vec::new(),
            request: req.clone(),
            meta: meta.to_vec(),
            dep_keys,
        },
    );
    Ok(())
}

/// Phase 1: the target stage and every stage it needs, for one target platform.
///
/// Errors: `--target` naming no stage; a FROM line that fails to expand, expands to nothing, or
/// has an invalid `--platform`; a `--from` naming a later stage or using a variable.
pub fn select_graph(df: &Dockerfile, req: &PlanRequest) -> Result<StageGraph, DockerfileError> {
    let target = target_index(df, req)?;
    let meta = global_scope(df, req)?;
    let mut done = BTreeMap::new();
    select_into(df, req, &meta, target, &mut done)?;

    let mut warnings = df.warnings.clone();
    for name in req.build_args.keys() {
        let declared = df.global_args.iter().any(|a| &a.name == name)
            || done.keys().any(|&i| {
                df.stages[i].instructions.iter().any(|ins| match &ins.kind {
                    InstructionKind::Arg(decls) => decls.iter().any(|d| &d.name == name),
                    _ => false,
                })
            })
            || meta.iter().any(|(k, _)| k == name)
            || PREDEFINED_ARGS.contains(&name.as_str());
        if !declared {
            warnings.push(format!(
                "build argument {name:?} is not declared by any ARG instruction of the built stages and is ignored"
            ));
        }
    }
    let mut stages: Vec<Selection> = done.into_values().collect();
    if let Some(t) = stages.last_mut() {
        t.warnings = warnings.clone();
    }
    Ok(StageGraph { stages, warnings })
}

/// Phase 1 for the target stage only (its dependencies are checked but not returned; see
/// [`select_graph`] for all of them).
pub fn select(df: &Dockerfile, req: &PlanRequest) -> Result<Selection, DockerfileError> {
    let graph = select_graph(df, req)?;
    Ok(graph.target().clone())
}

/// Phase 1 and 2 of the target stage in one call, for callers that already have its starting
/// config.
pub fn plan(
    df: &Dockerfile,
    req: &PlanRequest,
    base: &BaseConfig,
) -> Result<Plan, DockerfileError> {
    select(df, req)?.resolve(df, base)
}

/// Phase 2 for every stage of `graph` before any base image is pulled: walks each stage with
/// what is known of its starting config (nothing for an image base, whose environment is then
/// unknown; the earlier stage's end for a stage base) and fails on every error that does not
/// depend on a base image's environment: malformed mounts, flags, values, substitutions, ...
/// Errors in words that use variables the base image might set are left to
/// [`Selection::resolve`] once the image is pulled. This is what lets a bad Dockerfile fail
/// with exit 2 before anything is pulled or built.
///
/// Errors: as [`Selection::resolve`].
pub fn check_graph(df: &Dockerfile, graph: &StageGraph) -> Result<(), DockerfileError> {
    let mut ends: BTreeMap<usize, BaseConfig> = BTreeMap::new();
    for sel in &graph.stages {
        let base = match &sel.base {
            BaseImage::Scratch => BaseConfig::default(),
            BaseImage::Image(_) => BaseConfig {
                env_unknown: true,
                ..BaseConfig::default()
            },
            BaseImage::Stage(i) => ends.get(i).cloned().unwrap_or(BaseConfig {
                env_unknown: true,
                ..BaseConfig::default()
            }),
        };
        let plan = sel.resolve(df, &base)?;
        let mut after = Selection::config_after(&plan, &base);
        after.env_unknown = base.env_unknown;
        ends.insert(sel.stage_index, after);
    }
    Ok(())
}

impl Selection {
    /// The key of dependency stage `index` as selected with this selection's inputs.
    pub fn dep_key(&self, index: usize) -> Option<&StageKey> {
        self.dep_keys.get(&index)
    }

    /// Selects an earlier stage with the same request as this selection: for stages that only
    /// an ONBUILD trigger of the base names (they cannot be known before the base is pulled).
    ///
    /// Errors: as [`select_graph`].
    pub fn select_dependency(
        &self,
        df: &Dockerfile,
        index: usize,
    ) -> Result<StageGraph, DockerfileError> {
        let mut done = BTreeMap::new();
        select_into(df, &self.request, &self.meta, index, &mut done)?;
        Ok(StageGraph {
            stages: done.into_values().collect(),
            warnings: Vec::new(),
        })
    }

    /// The config a stage ends with when it starts from `base` and runs `plan`'s steps: what a
    /// stage based on this one starts from. RUN and COPY do not change it.
    pub fn config_after(plan: &Plan, base: &BaseConfig) -> BaseConfig {
        let mut out = BaseConfig {
            env: plan.initial_env.clone(),
            working_dir: base.working_dir.clone(),
            user: base.user.clone(),
            shell: base.shell.clone(),
            // Triggers never carry over from the base (BuildKit clears them).
            on_build: Vec::new(),
            env_unknown: false,
        };
        for step in &plan.steps {
            match &step.kind {
                StepKind::Env(pairs) => {
                    for (k, v) in pairs {
                        let entry = format!("{k}={v}");
                        match out
                            .env
                            .iter_mut()
                            .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
                        {
                            Some(slot) => *slot = entry,
                            None => out.env.push(entry),
                        }
                    }
                }
                StepKind::Workdir { path, .. } => out.working_dir = Some(path.clone()),
                StepKind::User(u) => out.user = Some(u.clone()),
                StepKind::Shell(s) => out.shell = Some(s.clone()),
                StepKind::Onbuild(t) => out.on_build.push(t.clone()),
                _ => {}
            }
        }
        out
    }
}

/// Cleans an absolute slash path like Go's `path.Clean` (no `.`/`..`/empty components).
pub(crate) fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `p` made absolute against `cwd` and cleaned (BuildKit `system.NormalizePath`). With
/// `keep_slash`, a path that names a directory (`dir/`, `.`, `..`, `x/.`) keeps or gains a
/// trailing `/` so the executor copies *into* it.
pub(crate) fn normalize_path(cwd: &str, p: &str, keep_slash: bool) -> String {
    let joined = if p.starts_with('/') {
        clean_abs(p)
    } else {
        clean_abs(&format!("{cwd}/{p}"))
    };
    let dir_like =
        p.ends_with('/') || p == "." || p == ".." || p.ends_with("/.") || p.ends_with("/..");
    if keep_slash && dir_like && !joined.ends_with('/') {
        format!("{joined}/")
    } else {
        joined
    }
}

/// Go's `%q` for one string (`strconv.Quote`), as BuildKit's CMD/ENTRYPOINT history uses.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` for a string slice: `["a" "b"]`.
pub(crate) fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Parses one EXPOSE item `port[-port][/proto]` into `port/proto` entries (docker
/// `nat.ParsePortSpecs`; ranges are expanded as BuildKit does).
pub(crate) fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    if spec.contains(':') {
        return Err("EXPOSE does not publish ports: write port[/protocol]".into());
    }
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("unknown protocol {proto:?}: use tcp, udp or sctp"));
    }
    let num = |s: &str| -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n),
            _ => Err(format!("{s:?} is not a port number between 1 and 65535")),
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(ports)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} ends before it starts"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Go's `path.Clean` for relative or absolute paths (`""` becomes `.`).
pub(crate) fn go_clean(p: &str) -> String {
    if p.starts_with('/') {
        return clean_abs(p);
    }
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}
