//! The per-platform build plan: from a parsed [`Dockerfile`], a target platform, the build
//! platform, `--build-arg` values and an optional `--target` stage, the base image to pull and
//! the ordered steps with every word expanded. Level 0: pure.
//!
//! Two phases, because expansion needs the base image's environment:
//! 1. [`select`] picks the target stage, expands its FROM line with the global ARGs and the
//!    automatic platform ARGs, and rejects what the target needs but polyarch does not do yet
//!    (an earlier stage as base, `COPY --from`, heredocs). Stages the target does not need are
//!    ignored. The result names the [`BaseImage`] to pull and the stage's platform.
//! 2. [`Selection::resolve`] takes the base image's config ([`BaseConfig`]) and walks the stage:
//!    ARG scoping, ENV, WORKDIR, USER, ... producing [`Step`]s with expanded words, the
//!    environment each RUN sees, and BuildKit-style history strings.
//!
//! Semantics follow BuildKit's `frontend/dockerfile/dockerfile2llb/convert.go` (`dispatchArg`,
//! `dispatchEnv`, `dispatchRun`, `dispatchCopy`, `dispatchExpose`, `runCommandString`) and the
//! Dockerfile reference ("ARG", "Automatic platform ARGs in the global scope", "Environment
//! replacement"). The later multi-stage work extends [`Selection`] to a list of stages with
//! dependencies; the per-stage walk stays as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dockerfile::shell::{expand_word, expand_words};
use crate::dockerfile::{
    Dockerfile, DockerfileError, ErrorKind, InstructionKind, ShellOrExec, Span, Word,
};
use crate::platform::Platform;

/// The PATH BuildKit gives a stage whose base image sets none (`system.DefaultPathEnvUnix`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseImage {
    /// `FROM scratch`: an empty root filesystem and an empty config.
    Scratch,
    /// An image reference as written after expansion (`alpine:3.20`, `reg:5000/x@sha256:...`).
    Image(String),
}

/// The parts of the base image's config the plan depends on (image-spec config.md
/// `config.Env`, `config.WorkingDir`, `config.User`).
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
}

/// The outcome of [`select`]: which stage, which base image, which platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the target stage in [`Dockerfile::stages`].
    pub stage_index: usize,
    /// The stage's name, if it has one.
    pub stage_name: Option<String>,
    /// The image to start from.
    pub base: BaseImage,
    /// The platform the stage runs as: `FROM --platform` when given, else the target.
    pub platform: Platform,
    /// Non-fatal findings: unused build args, parser warnings.
    pub warnings: Vec<String>,
    request: PlanRequest,
    /// Global scope: automatic platform ARGs, then global ARGs (value `None` when unset).
    meta: Vec<(String, Option<String>)>,
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
    /// The steps in order.
    pub steps: Vec<Step>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// One resolved instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Where the instruction starts in the Dockerfile.
    pub span: Span,
    /// The image history `created_by`, BuildKit style (`RUN /bin/sh -c make # buildkit`).
    pub created_by: String,
    /// What to do.
    pub kind: StepKind,
}

impl Step {
    /// True for steps that change the filesystem and get a layer (RUN, COPY); the others only
    /// change the config and get an `empty_layer` history entry.
    pub fn creates_layer(&self) -> bool {
        matches!(self.kind, StepKind::Run { .. } | StepKind::Copy { .. })
    }
}

/// What a step does, all words expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Run a program in the rootfs.
    Run {
        /// The program and arguments; shell form is `["/bin/sh", "-c", command]`.
        argv: Vec<String>,
        /// `KEY=VALUE`: the image env so far, then the ARGs in scope that have values and are
        /// not shadowed by ENV, then predefined proxy build args.
        env: Vec<String>,
        /// Absolute working directory.
        workdir: String,
        /// `user[:group]`; `None` for root.
        user: Option<String>,
    },
    /// Copy files from the build context.
    Copy {
        /// Sources relative to the build context root (may contain wildcards).
        sources: Vec<String>,
        /// Absolute destination; a trailing `/` means "into this directory".
        dest: String,
        /// `--chown` value (`user[:group]`, names or ids), resolved by the executor.
        chown: Option<String>,
        /// `--chmod` permission bits.
        chmod: Option<u32>,
    },
    /// Set environment variables in the image config.
    Env(Vec<(String, String)>),
    /// Declare build arguments (history only; their values reach RUN through its env).
    Arg(Vec<(String, Option<String>)>),
    /// Set the working directory (absolute); the executor creates it when missing, as BuildKit
    /// does.
    Workdir(String),
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
        /// The argv; shell form is `["/bin/sh", "-c", command]`.
        argv: Vec<String>,
        /// True when the inherited `Cmd` must be cleared: no CMD came earlier in this stage
        /// (BuildKit `dispatchEntrypoint`).
        clears_cmd: bool,
    },
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

/// Phase 1: chooses the target stage and its base image and platform.
///
/// Errors: `--target` naming no stage; a FROM line that fails to expand, expands to nothing, or
/// has an invalid `--platform`; a target based on an earlier stage; `COPY --from` or heredocs
/// in the target stage.
pub fn select(df: &Dockerfile, req: &PlanRequest) -> Result<Selection, DockerfileError> {
    let stage_index = match &req.target_stage {
        Some(t) => df.stage_index(t).ok_or_else(|| {
            df.error_file(ErrorKind::TargetNotFound {
                target: t.clone(),
                available: df.stages.iter().filter_map(|s| s.name.clone()).collect(),
            })
        })?,
        None => df
            .stages
            .len()
            .checked_sub(1)
            .ok_or_else(|| df.error_file(ErrorKind::NoStage))?,
    };
    let stage = &df.stages[stage_index];

    // Global scope: automatic platform ARGs, then the ARGs before the first FROM in order.
    // A default is expanded with what is declared above it; a build arg wins over it; a
    // declaration without either keeps an automatic value of the same name.
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
    let lookup = |n: &str| get_var(&meta, n);

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
    if let Some(earlier) = df.stages[..stage_index]
        .iter()
        .find(|s| s.name.as_deref() == Some(base_name.to_ascii_lowercase().as_str()))
    {
        return Err(df.error_at(
            stage.base.span,
            stage.base.text.chars().count(),
            ErrorKind::MultiStage {
                stage: earlier.name.clone().unwrap_or_default(),
            },
        ));
    }
    let base = if base_name == "scratch" {
        BaseImage::Scratch
    } else {
        BaseImage::Image(base_name)
    };
    let platform = match &stage.platform {
        Some(word) => {
            let text = expand(df, word, &lookup)?;
            Platform::parse(&text).map_err(|e| invalid(df, word, "platform", &text, &e.reason))?
        }
        None => req.target_platform.clone(),
    };

    for ins in &stage.instructions {
        match &ins.kind {
            InstructionKind::Copy { from: Some(w), .. } => {
                return Err(df.error_at(w.span, w.text.chars().count(), ErrorKind::CopyFrom))
            }
            InstructionKind::Copy { heredocs, .. } | InstructionKind::Run { heredocs, .. }
                if !heredocs.is_empty() =>
            {
                return Err(df.error_at(
                    ins.span,
                    ins.kind.keyword().len(),
                    ErrorKind::Heredoc {
                        instruction: ins.kind.keyword().to_string(),
                    },
                ))
            }
            _ => {}
        }
    }

    let mut warnings = df.warnings.clone();
    for name in req.build_args.keys() {
        let declared = df.global_args.iter().any(|a| &a.name == name)
            || stage.instructions.iter().any(|i| match &i.kind {
                InstructionKind::Arg(decls) => decls.iter().any(|d| &d.name == name),
                _ => false,
            })
            || meta.iter().any(|(k, _)| k == name)
            || PREDEFINED_ARGS.contains(&name.as_str());
        if !declared {
            warnings.push(format!(
                "build argument {name:?} is not declared by any ARG instruction of the built stage and is ignored"
            ));
        }
    }

    Ok(Selection {
        stage_index,
        stage_name: stage.name.clone(),
        base,
        platform,
        warnings,
        request: req.clone(),
        meta,
    })
}

/// Phase 1 and 2 in one call, for callers that already have the base config (or use scratch).
pub fn plan(
    df: &Dockerfile,
    req: &PlanRequest,
    base: &BaseConfig,
) -> Result<Plan, DockerfileError> {
    select(df, req)?.resolve(df, base)
}

/// Cleans an absolute slash path like Go's `path.Clean` (no `.`/`..`/empty components).
fn clean_abs(p: &str) -> String {
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
fn normalize_path(cwd: &str, p: &str, keep_slash: bool) -> String {
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
fn go_quote(s: &str) -> String {
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
fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Parses one EXPOSE item `port[-port][/proto]` into `port/proto` entries (docker
/// `nat.ParsePortSpecs`; ranges are expanded as BuildKit does).
fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
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

/// The per-stage state while walking the instructions.
struct StageState {
    /// The image config env, in order.
    env: Vec<(String, String)>,
    /// ARGs declared in the stage, in declaration order.
    args: Vec<(String, Option<String>)>,
    workdir: String,
    user: Option<String>,
    cmd_set: bool,
}

impl StageState {
    /// Variables for expansion: ENV wins over ARG (Dockerfile reference, "Using ARG
    /// variables").
    fn lookup(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| get_var(&self.args, name))
    }

    fn set_env(&mut self, key: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }
}

impl Selection {
    /// Phase 2: walks the target stage with the base image's config and produces the steps.
    ///
    /// Errors (each pointing at the word): a word that fails to expand, an empty WORKDIR, USER
    /// or COPY source after expansion, a bad EXPOSE port or `--chmod` mode.
    pub fn resolve(&self, df: &Dockerfile, base: &BaseConfig) -> Result<Plan, DockerfileError> {
        let stage = &df.stages[self.stage_index];
        let mut st = StageState {
            env: Vec::new(),
            args: Vec::new(),
            workdir: base
                .working_dir
                .as_deref()
                .filter(|w| !w.is_empty())
                .map_or_else(|| "/".to_string(), |w| normalize_path("/", w, false)),
            user: base.user.clone().filter(|u| !u.is_empty()),
            cmd_set: false,
        };
        for entry in &base.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            st.set_env(k.to_string(), v.to_string());
        }
        if !st.env.iter().any(|(k, _)| k == "PATH") {
            st.env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        let initial_env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let build_args = &self.request.build_args;

        let mut steps = Vec::with_capacity(stage.instructions.len());
        for ins in &stage.instructions {
            // Every word of one instruction sees the variables as they were before it
            // (`ENV a=1 b=$a` gives b the old a), as BuildKit expands a whole command first.
            let before = |n: &str| st.lookup(n);
            let (created_by, kind) = match &ins.kind {
                InstructionKind::Arg(decls) => {
                    let mut resolved = Vec::with_capacity(decls.len());
                    for d in decls {
                        let value = if let Some(v) = build_args.get(&d.name) {
                            Some(v.clone())
                        } else if let Some(default) = &d.default {
                            let word = Word {
                                text: default.clone(),
                                span: d.span,
                            };
                            Some(expand(df, &word, &before)?)
                        } else {
                            // `ARG NAME` alone takes the global value (a global ARG or an
                            // automatic platform ARG), if there is one.
                            get_var(&self.meta, &d.name)
                        };
                        resolved.push((d.name.clone(), value));
                    }
                    for (k, v) in &resolved {
                        set_var(&mut st.args, k, v.clone());
                    }
                    let text: Vec<String> = resolved
                        .iter()
                        .map(|(k, v)| match v {
                            Some(v) => format!("{k}={v}"),
                            None => k.clone(),
                        })
                        .collect();
                    (format!("ARG {}", text.join(" ")), StepKind::Arg(resolved))
                }
                InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => {
                    let is_env = matches!(ins.kind, InstructionKind::Env(_));
                    let mut out = Vec::with_capacity(pairs.len());
                    for kv in pairs {
                        let key = expand(df, &kv.key, &before)?;
                        if key.is_empty() {
                            return Err(invalid(
                                df,
                                &kv.key,
                                "name",
                                &key,
                                "empty after expansion",
                            ));
                        }
                        out.push((key, expand(df, &kv.value, &before)?));
                    }
                    let text: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    if is_env {
                        for (k, v) in &out {
                            st.set_env(k.clone(), v.clone());
                        }
                        (format!("ENV {}", text.join(" ")), StepKind::Env(out))
                    } else {
                        (format!("LABEL {}", text.join(" ")), StepKind::Label(out))
                    }
                }
                InstructionKind::Workdir(w) => {
                    let p = expand(df, w, &before)?;
                    if p.is_empty() {
                        return Err(invalid(df, w, "WORKDIR", &p, "empty after expansion"));
                    }
                    st.workdir = normalize_path(&st.workdir, &p, false);
                    (
                        format!("WORKDIR {}", st.workdir),
                        StepKind::Workdir(st.workdir.clone()),
                    )
                }
                InstructionKind::User(w) => {
                    let u = expand(df, w, &before)?;
                    if u.is_empty() {
                        return Err(invalid(df, w, "USER", &u, "empty after expansion"));
                    }
                    st.user = Some(u.clone());
                    (format!("USER {u}"), StepKind::User(u))
                }
                InstructionKind::Expose(words) => {
                    let mut ports: Vec<String> = Vec::new();
                    for w in words {
                        let items = expand_words(&w.text, df.escape, &before)
                            .map_err(|e| expansion_error(df, w, e))?;
                        for item in items {
                            let list = expose_ports(&item)
                                .map_err(|reason| invalid(df, w, "EXPOSE port", &item, &reason))?;
                            for p in list {
                                if !ports.contains(&p) {
                                    ports.push(p);
                                }
                            }
                        }
                    }
                    // BuildKit records `fmt.Sprintf("EXPOSE %v", portMap)`: Go prints a map
                    // with sorted keys as `map[k:{} ...]`.
                    let mut sorted = ports.clone();
                    sorted.sort();
                    let text: Vec<String> = sorted.iter().map(|p| format!("{p}:{{}}")).collect();
                    (
                        format!("EXPOSE map[{}]", text.join(" ")),
                        StepKind::Expose(ports),
                    )
                }
                InstructionKind::Cmd(c) => {
                    let argv = shell_argv(c);
                    st.cmd_set = true;
                    (format!("CMD {}", go_quote_list(&argv)), StepKind::Cmd(argv))
                }
                InstructionKind::Entrypoint(c) => {
                    let argv = shell_argv(c);
                    (
                        format!("ENTRYPOINT {}", go_quote_list(&argv)),
                        StepKind::Entrypoint {
                            argv,
                            clears_cmd: !st.cmd_set,
                        },
                    )
                }
                InstructionKind::Run { command, .. } => {
                    let argv = shell_argv(command);
                    if argv.is_empty() {
                        return Err(df.error_at(
                            ins.span,
                            3,
                            ErrorKind::Arguments {
                                instruction: "RUN".into(),
                                message: "requires a command: the JSON array is empty".into(),
                            },
                        ));
                    }
                    let mut env: Vec<String> =
                        st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    for (k, v) in &st.args {
                        if let Some(v) = v {
                            if !st.env.iter().any(|(ek, _)| ek == k) {
                                env.push(format!("{k}={v}"));
                            }
                        }
                    }
                    for name in PREDEFINED_ARGS {
                        if let Some(v) = build_args.get(*name) {
                            if !st.args.iter().any(|(k, _)| k == name) {
                                env.push(format!("{name}={v}"));
                            }
                        }
                    }
                    // BuildKit `runCommandString`: `|N K=V ...` for the stage's ARGs, then the
                    // argv; unset ARGs show as `K=`.
                    let mut history: Vec<String> = st
                        .args
                        .iter()
                        .map(|(k, v)| {
                            let v = st.lookup(k).or_else(|| v.clone()).unwrap_or_default();
                            format!("{k}={v}")
                        })
                        .collect();
                    if !history.is_empty() {
                        history.insert(0, format!("|{}", history.len()));
                    }
                    history.extend(argv.iter().cloned());
                    (
                        format!("RUN {} # buildkit", history.join(" ")),
                        StepKind::Run {
                            argv,
                            env,
                            workdir: st.workdir.clone(),
                            user: st.user.clone(),
                        },
                    )
                }
                InstructionKind::Copy {
                    chown,
                    chmod,
                    sources,
                    dest,
                    ..
                } => {
                    let mut srcs = Vec::with_capacity(sources.len());
                    for s in sources {
                        let v = expand(df, s, &before)?;
                        if v.is_empty() {
                            return Err(invalid(df, s, "COPY source", &v, "empty after expansion"));
                        }
                        srcs.push(v);
                    }
                    let raw_dest = expand(df, dest, &before)?;
                    let dest_abs = if raw_dest.is_empty() {
                        st.workdir.clone()
                    } else {
                        normalize_path(&st.workdir, &raw_dest, true)
                    };
                    let chown = match chown {
                        Some(w) => Some(expand(df, w, &before)?).filter(|s| !s.is_empty()),
                        None => None,
                    };
                    let chmod_bits = match chmod {
                        Some(w) => {
                            let text = expand(df, w, &before)?;
                            match u32::from_str_radix(&text, 8) {
                                Ok(bits) if bits <= 0o7777 => Some(bits),
                                _ => {
                                    return Err(invalid(
                                        df,
                                        w,
                                        "--chmod",
                                        &text,
                                        "expected octal permission bits such as 755 or 0644",
                                    ))
                                }
                            }
                        }
                        None => None,
                    };
                    let mut msg = String::from("COPY");
                    if let Some(c) = &chown {
                        msg.push_str(&format!(" --chown={c}"));
                    }
                    if let (Some(w), Some(_)) = (chmod, chmod_bits) {
                        msg.push_str(&format!(" --chmod={}", expand(df, w, &before)?));
                    }
                    for s in &srcs {
                        msg.push(' ');
                        msg.push_str(s);
                    }
                    msg.push(' ');
                    msg.push_str(&raw_dest);
                    msg.push_str(" # buildkit");
                    (
                        msg,
                        StepKind::Copy {
                            sources: srcs,
                            dest: dest_abs,
                            chown,
                            chmod: chmod_bits,
                        },
                    )
                }
            };
            steps.push(Step {
                span: ins.span,
                created_by,
                kind,
            });
        }

        Ok(Plan {
            stage_index: self.stage_index,
            stage_name: self.stage_name.clone(),
            base: self.base.clone(),
            platform: self.platform.clone(),
            initial_env,
            steps,
            warnings: self.warnings.clone(),
        })
    }
}

/// The argv for a command: shell form through `/bin/sh -c` (BuildKit's default Linux shell),
/// exec form as written.
fn shell_argv(c: &ShellOrExec) -> Vec<String> {
    match c {
        ShellOrExec::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        ShellOrExec::Exec(v) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use std::path::{Path, PathBuf};

    fn req(target: &str) -> PlanRequest {
        PlanRequest {
            target_platform: Platform::parse(target).unwrap(),
            build_platform: Platform::parse("linux/amd64").unwrap(),
            build_args: BTreeMap::new(),
            target_stage: None,
        }
    }

    fn plan_for(text: &str, r: &PlanRequest, base: &BaseConfig) -> Result<Plan, DockerfileError> {
        let df = parse(text, "Dockerfile")?;
        plan(&df, r, base)
    }

    fn run_env(p: &Plan, i: usize) -> Vec<String> {
        match &p.steps[i].kind {
            StepKind::Run { env, .. } => env.clone(),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn automatic_args_are_normalised() {
        let a = automatic_args(
            &Platform::parse("linux/arm64/v8").unwrap(),
            &Platform::parse("linux/amd64").unwrap(),
        );
        let m: BTreeMap<_, _> = a.into_iter().collect();
        assert_eq!(m["TARGETPLATFORM"], "linux/arm64");
        assert_eq!(m["TARGETARCH"], "arm64");
        assert_eq!(m["TARGETVARIANT"], "");
        assert_eq!(m["BUILDPLATFORM"], "linux/amd64");
        let a = automatic_args(
            &Platform::parse("linux/arm/v7").unwrap(),
            &Platform::parse("linux/amd64").unwrap(),
        );
        let m: BTreeMap<_, _> = a.into_iter().collect();
        assert_eq!(m["TARGETPLATFORM"], "linux/arm/v7");
        assert_eq!(m["TARGETVARIANT"], "v7");
        assert_eq!(m["TARGETOS"], "linux");
    }

    #[test]
    fn platform_args_only_where_declared() {
        let text = "FROM scratch\nRUN echo $TARGETARCH\nARG TARGETARCH\nARG TARGETVARIANT\nRUN echo $TARGETARCH\n";
        let p = plan_for(text, &req("linux/arm/v7"), &BaseConfig::default()).unwrap();
        assert!(!run_env(&p, 0).iter().any(|e| e.starts_with("TARGETARCH")));
        let env = run_env(&p, 3);
        assert!(env.contains(&"TARGETARCH=arm".to_string()), "{env:?}");
        assert!(env.contains(&"TARGETVARIANT=v7".to_string()), "{env:?}");
        assert_eq!(
            p.steps[3].created_by,
            "RUN |2 TARGETARCH=arm TARGETVARIANT=v7 /bin/sh -c echo $TARGETARCH # buildkit"
        );
        let p = plan_for(text, &req("linux/arm64/v8"), &BaseConfig::default()).unwrap();
        assert!(run_env(&p, 3).contains(&"TARGETVARIANT=".to_string()));
    }

    #[test]
    fn from_sees_global_and_automatic_args() {
        let text = "ARG TAG=3.20\nARG REPO\nFROM --platform=$BUILDPLATFORM ${REPO:-alpine}:${TAG}-$TARGETARCH\nRUN true\n";
        let df = parse(text, "Dockerfile").unwrap();
        let s = select(&df, &req("linux/arm64/v8")).unwrap();
        assert_eq!(s.base, BaseImage::Image("alpine:3.20-arm64".into()));
        assert_eq!(s.platform, Platform::parse("linux/amd64").unwrap());
        let mut r = req("linux/arm64");
        r.build_args.insert("TAG".into(), "edge".into());
        r.build_args.insert("REPO".into(), "reg/x".into());
        let s = select(&df, &r).unwrap();
        assert_eq!(s.base, BaseImage::Image("reg/x:edge-arm64".into()));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn arg_scoping() {
        let text = "ARG G=global\nARG H=h\nFROM scratch\nRUN echo\nARG G\nARG L=local-$G\nENV E=$L\nRUN echo\n";
        let mut r = req("linux/amd64");
        r.build_args.insert("L".into(), "from-cli".into());
        r.build_args.insert("UNUSED".into(), "x".into());
        r.build_args
            .insert("HTTP_PROXY".into(), "http://proxy:3128".into());
        let p = plan_for(text, &r, &BaseConfig::default()).unwrap();
        // Global ARGs are invisible in the stage until redeclared.
        assert_eq!(
            run_env(&p, 0),
            [
                format!("PATH={DEFAULT_PATH}"),
                "HTTP_PROXY=http://proxy:3128".into()
            ]
        );
        assert_eq!(
            run_env(&p, 4),
            [
                format!("PATH={DEFAULT_PATH}"),
                "E=from-cli".into(),
                "G=global".into(),
                "L=from-cli".into(),
                "HTTP_PROXY=http://proxy:3128".into()
            ]
        );
        assert_eq!(p.steps[1].created_by, "ARG G=global");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("\"UNUSED\""));
        // Without the build arg, the default expands with the stage's G.
        let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
        assert!(run_env(&p, 4).contains(&"E=local-global".to_string()));
    }

    #[test]
    fn env_wins_over_arg_and_sees_previous_values() {
        let text = "FROM scratch\nARG A=arg\nENV A=env B=$A\nENV C=$A\nRUN x\n";
        let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
        assert_eq!(
            p.steps[1].kind,
            StepKind::Env(vec![("A".into(), "env".into()), ("B".into(), "arg".into())])
        );
        assert_eq!(
            p.steps[2].kind,
            StepKind::Env(vec![("C".into(), "env".into())])
        );
        let env = run_env(&p, 3);
        assert!(env.contains(&"A=env".to_string()) && !env.contains(&"A=arg".to_string()));
    }

    #[test]
    fn base_config_is_used() {
        let base = BaseConfig {
            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            working_dir: Some("/srv".into()),
            user: Some("nobody".into()),
        };
        let text = "FROM x\nWORKDIR app\nCOPY a .\nCOPY b c/\nCOPY d ../e\nRUN ls $HOME\nWORKDIR $HOME/../tmp\n";
        let p = plan_for(text, &req("linux/amd64"), &base).unwrap();
        assert_eq!(p.initial_env, ["PATH=/bin", "HOME=/root"]);
        assert_eq!(p.steps[0].kind, StepKind::Workdir("/srv/app".into()));
        let dests: Vec<&str> = p.steps[1..4]
            .iter()
            .map(|s| match &s.kind {
                StepKind::Copy { dest, .. } => dest.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(dests, ["/srv/app/", "/srv/app/c/", "/srv/e"]);
        match &p.steps[4].kind {
            StepKind::Run {
                workdir, user, env, ..
            } => {
                assert_eq!(workdir, "/srv/app");
                assert_eq!(user.as_deref(), Some("nobody"));
                assert_eq!(env, &["PATH=/bin", "HOME=/root"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.steps[5].kind, StepKind::Workdir("/tmp".into()));
    }

    #[test]
    fn expose_and_history_strings() {
        let text = "FROM scratch\nARG P=8080\nEXPOSE 80 $P/UDP 53/udp 8000-8002\nCMD [\"a\", \"b \\\"c\\\"\"]\nENTRYPOINT run it\nCMD x\nENTRYPOINT y\nUSER 1000:1000\nLABEL a=\"b c\" d=e\n";
        let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
        assert_eq!(
            p.steps[1].kind,
            StepKind::Expose(vec![
                "80/tcp".into(),
                "8080/udp".into(),
                "53/udp".into(),
                "8000/tcp".into(),
                "8001/tcp".into(),
                "8002/tcp".into()
            ])
        );
        assert_eq!(
            p.steps[1].created_by,
            "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{} 8002/tcp:{} 8080/udp:{}]"
        );
        assert_eq!(p.steps[2].created_by, r#"CMD ["a" "b \"c\""]"#);
        assert_eq!(
            p.steps[3].created_by,
            r#"ENTRYPOINT ["/bin/sh" "-c" "run it"]"#
        );
        assert_eq!(
            p.steps[3].kind,
            StepKind::Entrypoint {
                argv: vec!["/bin/sh".into(), "-c".into(), "run it".into()],
                clears_cmd: false
            }
        );
        assert_eq!(
            p.steps[5].kind,
            StepKind::Entrypoint {
                argv: vec!["/bin/sh".into(), "-c".into(), "y".into()],
                clears_cmd: false
            }
        );
        let p = plan_for(
            "FROM scratch\nENTRYPOINT [\"x\"]\n",
            &req("linux/amd64"),
            &BaseConfig::default(),
        )
        .unwrap();
        assert_eq!(
            p.steps[0].kind,
            StepKind::Entrypoint {
                argv: vec!["x".into()],
                clears_cmd: true
            }
        );
    }

    #[test]
    fn plan_errors_point_at_words() {
        let base = BaseConfig::default();
        let e = plan_for(
            "FROM scratch\nEXPOSE 80/tcp 99999\n",
            &req("linux/amd64"),
            &base,
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (2, 15));
        assert!(
            e.to_string().contains("invalid EXPOSE port \"99999\""),
            "{e}"
        );
        let e = plan_for("FROM a AS b\nFROM b\n", &req("linux/amd64"), &base).unwrap_err();
        assert_eq!(*e.kind, ErrorKind::MultiStage { stage: "b".into() });
        let e = plan_for("FROM a\nCOPY --from=x a b\n", &req("linux/amd64"), &base).unwrap_err();
        assert_eq!(
            (e.line, e.column, *e.kind.clone()),
            (2, 13, ErrorKind::CopyFrom)
        );
        let e = plan_for("FROM a\nCOPY --chmod=9z a b\n", &req("linux/amd64"), &base).unwrap_err();
        assert!(e.to_string().contains("invalid --chmod \"9z\""), "{e}");
        let e = plan_for(
            "FROM a\nWORKDIR ${X:?must be set}\n",
            &req("linux/amd64"),
            &base,
        )
        .unwrap_err();
        assert!(e.to_string().contains("X: must be set"), "{e}");
        let e = plan_for("FROM --platform=linux/nope a\n", &req("linux/amd64"), &base).unwrap_err();
        assert!(
            e.to_string().contains("invalid platform \"linux/nope\""),
            "{e}"
        );
        let mut r = req("linux/amd64");
        r.target_stage = Some("missing".into());
        let e = plan_for("FROM a AS one\nFROM b AS two\n", &r, &base).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile: target stage \"missing\" not found (stages: one, two)"
        );
    }

    #[test]
    fn unneeded_stages_are_ignored() {
        let text = "FROM a AS build\nCOPY --from=x y z\nFROM build AS derived\nFROM alpine AS final\nRUN true\nFROM final\n";
        let mut r = req("linux/amd64");
        r.target_stage = Some("FINAL".into());
        let p = plan_for(text, &r, &BaseConfig::default()).unwrap();
        assert_eq!(p.stage_index, 2);
        assert_eq!(p.base, BaseImage::Image("alpine".into()));
        // The last stage is based on `final`: multi-stage.
        let e = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap_err();
        assert_eq!(e.line, 6);
    }

    #[test]
    fn paths_and_quoting_helpers() {
        assert_eq!(clean_abs("/a/./b/../c//"), "/a/c");
        assert_eq!(clean_abs("/../x"), "/x");
        assert_eq!(normalize_path("/w", ".", true), "/w/");
        assert_eq!(normalize_path("/w", "x/.", true), "/w/x/");
        assert_eq!(normalize_path("/w", "/abs/", true), "/abs/");
        assert_eq!(normalize_path("/w", "f", true), "/w/f");
        assert_eq!(go_quote("a\tb\u{1}é"), "\"a\\tb\\x01é\"");
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert!(expose_ports("0").is_err());
        assert!(expose_ports("80/xyz").is_err());
        assert!(expose_ports("8080:80").is_err());
        assert!(expose_ports("90-80").is_err());
    }

    // --- golden tests -------------------------------------------------------------------

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dockerfile")
    }

    fn cases(kind: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    }

    /// Runs one case: the Dockerfile, plus optional `build-args` (KEY=VALUE lines), `target`
    /// (stage name) and `base.json` ([`BaseConfig`]; by default an image's env is just PATH).
    /// Target linux/arm64/v8, build platform linux/amd64.
    fn run_case(dir: &Path) -> Result<Plan, DockerfileError> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let text = read("Dockerfile").expect("case without Dockerfile");
        let mut r = req("linux/arm64/v8");
        for line in read("build-args").unwrap_or_default().lines() {
            if let Some((k, v)) = line.split_once('=') {
                r.build_args.insert(k.to_string(), v.to_string());
            }
        }
        r.target_stage = read("target").map(|t| t.trim().to_string());
        let df = parse(&text, "Dockerfile")?;
        let sel = select(&df, &r)?;
        let base = match read("base.json") {
            Some(j) => serde_json::from_str(&j).expect("bad base.json"),
            None if sel.base == BaseImage::Scratch => BaseConfig::default(),
            None => BaseConfig {
                env: vec![format!("PATH={DEFAULT_PATH}")],
                ..BaseConfig::default()
            },
        };
        sel.resolve(&df, &base)
    }

    /// Compares with (or, with UPDATE_GOLDEN=1, rewrites) the expected file.
    fn check(path: &Path, got: &str, failures: &mut Vec<String>) {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(path).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "{}:\n--- want\n{want}\n--- got\n{got}",
                path.display()
            ));
        }
    }

    #[test]
    fn golden_positive() {
        let mut failures = Vec::new();
        let all = cases("positive");
        assert!(all.len() >= 12, "only {} positive cases", all.len());
        for dir in all {
            match run_case(&dir) {
                Ok(p) => {
                    let got = serde_json::to_string_pretty(&p).unwrap() + "\n";
                    check(&dir.join("expected.json"), &got, &mut failures);
                }
                Err(e) => failures.push(format!("{}: unexpected error:\n{e}", dir.display())),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn golden_negative() {
        let mut failures = Vec::new();
        let all = cases("negative");
        assert!(all.len() >= 8, "only {} negative cases", all.len());
        for dir in all {
            match run_case(&dir) {
                Ok(_) => failures.push(format!("{}: planned without error", dir.display())),
                Err(e) => check(&dir.join("expected.txt"), &format!("{e}\n"), &mut failures),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
