//! Scopes: what the words of an instruction see (Dockerfile reference, "ARG", "Automatic
//! platform ARGs in the global scope", "Using ARG variables", "Environment replacement"). The
//! automatic platform ARGs and the global scope (the ARGs before the first FROM) for FROM lines;
//! inside a stage, [`StageState`]: the image env and the stage's ARGs (ENV wins over ARG), the
//! working directory, user and shell so far, and the ARG instruction that declares variables.
//! What a RUN sees as its environment is decided here too ([`StageState::run_env`]).
//!
//! Level 0: pure, no I/O.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::expand::expand;
use super::paths::normalize_path;
use super::request::{BaseConfig, PlanRequest, DEFAULT_PATH, DEFAULT_SHELL, PREDEFINED_ARGS};
use super::step::StepKind;
use crate::dockerfile::{ArgDecl, Dockerfile, DockerfileError, ShellOrExec, Word};
use crate::platform::Platform;

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

/// Sets `name` in `vars`, in place when it is there, else at the end.
pub(super) fn set_var(vars: &mut Vec<(String, Option<String>)>, name: &str, value: Option<String>) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_string(), value)),
    }
}

/// The value of `name` in `vars`; `None` when absent or unset.
pub(super) fn get_var(vars: &[(String, Option<String>)], name: &str) -> Option<String> {
    vars.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}

/// The global scope: automatic platform ARGs, then the ARGs before the first FROM in order. A
/// default is expanded with what is declared above it; a build arg wins over it; a declaration
/// without either keeps an automatic value of the same name.
pub(super) fn global_scope(
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

/// The per-stage state while walking the instructions.
#[derive(Clone)]
pub(super) struct StageState {
    /// The image config env, in order.
    pub(super) env: Vec<(String, String)>,
    /// ARGs declared in the stage, in declaration order.
    pub(super) args: Vec<(String, Option<String>)>,
    /// The absolute working directory.
    pub(super) workdir: String,
    /// The user; `None` for root.
    pub(super) user: Option<String>,
    /// The shell for shell-form commands.
    pub(super) shell: Vec<String>,
    /// A CMD came earlier in this stage.
    pub(super) cmd_set: bool,
    /// The base image's environment is not known (see [`super::check_graph`]).
    pub(super) env_unknown: bool,
    /// Set when a lookup asked for a variable that only the unknown environment could set
    /// (shared by a state and its clones).
    pub(super) touched_unknown: Rc<Cell<bool>>,
}

impl StageState {
    /// The state a stage starts in from its starting config: an empty or missing working
    /// directory is `/`, an empty user root, an empty or missing shell [`DEFAULT_SHELL`], and
    /// the env gains `PATH` ([`DEFAULT_PATH`]) when it sets none.
    pub(super) fn new(base: &BaseConfig) -> StageState {
        let mut st = StageState {
            env: Vec::new(),
            args: Vec::new(),
            workdir: base
                .working_dir
                .as_deref()
                .filter(|w| !w.is_empty())
                .map_or_else(|| "/".to_string(), |w| normalize_path("/", w, false)),
            user: base.user.clone().filter(|u| !u.is_empty()),
            shell: base
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()),
            cmd_set: false,
            env_unknown: base.env_unknown,
            touched_unknown: Rc::new(Cell::new(false)),
        };
        for entry in &base.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            st.set_env(k.to_string(), v.to_string());
        }
        if !st.env.iter().any(|(k, _)| k == "PATH") {
            st.env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        st
    }

    /// Variables for expansion: ENV wins over ARG (Dockerfile reference, "Using ARG
    /// variables").
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        // Without the base image, anything not set by an ENV of this stage might come from
        // the image's environment (which wins over ARG).
        if self.env_unknown {
            self.touched_unknown.set(true);
        }
        get_var(&self.args, name)
    }

    /// Sets an image env variable, in place when it is there, else at the end.
    pub(super) fn set_env(&mut self, key: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }

    /// The argv for a command: shell form through the stage's shell, exec form as written.
    pub(super) fn argv(&self, c: &ShellOrExec) -> Vec<String> {
        match c {
            ShellOrExec::Shell(s) => {
                let mut v = self.shell.clone();
                v.push(s.clone());
                v
            }
            ShellOrExec::Exec(v) => v.clone(),
        }
    }

    /// `KEY=VALUE` entries a RUN sees: the image env so far, then the ARGs in scope that have
    /// values and are not shadowed by ENV, then predefined proxy build args the stage does not
    /// declare.
    pub(super) fn run_env(&self, build_args: &BTreeMap<String, String>) -> Vec<String> {
        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (k, v) in &self.args {
            if let Some(v) = v {
                if !self.env.iter().any(|(ek, _)| ek == k) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        for name in PREDEFINED_ARGS {
            if let Some(v) = build_args.get(*name) {
                if !self.args.iter().any(|(k, _)| k == name) {
                    env.push(format!("{name}={v}"));
                }
            }
        }
        env
    }

    /// An ARG instruction: each declaration takes its build arg, else its default expanded
    /// with `before` (the variables before the instruction), else the value of the same name in
    /// the global scope `global`; then all are declared in the stage. Returns the history
    /// string and the step.
    pub(super) fn declare_args(
        &mut self,
        df: &Dockerfile,
        before: &dyn Fn(&str) -> Option<String>,
        decls: &[ArgDecl],
        build_args: &BTreeMap<String, String>,
        global: &[(String, Option<String>)],
    ) -> Result<(String, StepKind), DockerfileError> {
        let mut resolved = Vec::with_capacity(decls.len());
        for d in decls {
            let value = if let Some(v) = build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(default) = &d.default {
                let word = Word {
                    text: default.clone(),
                    span: d.span,
                };
                Some(expand(df, &word, before)?)
            } else {
                // `ARG NAME` alone takes the global value (a global ARG or an
                // automatic platform ARG), if there is one.
                get_var(global, &d.name)
            };
            resolved.push((d.name.clone(), value));
        }
        for (k, v) in &resolved {
            set_var(&mut self.args, k, v.clone());
        }
        let text: Vec<String> = resolved
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        Ok((format!("ARG {}", text.join(" ")), StepKind::Arg(resolved)))
    }
}
