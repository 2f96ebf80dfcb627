//! Chaining stages: the config a stage ends with, which is what a stage based on it starts
//! from ([`Selection::config_after`]), and the check of a whole graph with what is known before
//! any base image is pulled ([`check_graph`]).
//!
//! Level 0: pure, no I/O.

use std::collections::BTreeMap;

use super::graph::{Selection, StageGraph};
use super::request::{BaseConfig, BaseImage};
use super::step::{Plan, StepKind};
use crate::dockerfile::{Dockerfile, DockerfileError};

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
