//! Phase 1, stage selection: from `--target` (or the last stage) to every stage it needs, for
//! one target platform. Each needed stage's FROM line is expanded with the global scope, its
//! platform resolved, and its dependencies followed (`FROM <earlier stage>`, `COPY --from`,
//! `RUN --mount=...,from=`); stages the target does not need are not selected. Build args that
//! no built stage declares are reported as warnings.
//!
//! Level 0: pure, no I/O. Semantics follow BuildKit's `dockerfile2llb/convert.go` stage
//! resolution.

use super::secret_names::secret_name_warnings;
use std::collections::{BTreeMap, BTreeSet};

use super::expand::{expand, invalid};
use super::from::resolve_from;
use super::graph::{Selection, StageGraph, StageKey};
use super::mounts::mount_froms;
use super::request::{BaseImage, PlanRequest, PREDEFINED_ARGS};
use super::scope::{get_var, global_scope};
use super::stage_key::stage_key;
use super::step::CopyFrom;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, InstructionKind, Word};
use crate::platform::Platform;

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
    let platform = stage_platform(df, req, meta, stage_index, &base)?;
    from_dependencies(df, stage_index, &mut deps, &mut images)?;
    Ok((base, platform, deps, images))
}

/// The platform stage `stage_index` runs as: its `FROM --platform` expanded with the global
/// scope, else its base stage's platform, else the target platform.
fn stage_platform(
    df: &Dockerfile,
    req: &PlanRequest,
    meta: &[(String, Option<String>)],
    stage_index: usize,
    base: &BaseImage,
) -> Result<Platform, DockerfileError> {
    let lookup = |n: &str| get_var(meta, n);
    Ok(match &df.stages[stage_index].platform {
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
        None => match base {
            // A stage based on another stage runs as that stage does (BuildKit copies the
            // parent's platform).
            BaseImage::Stage(i) => {
                let (_, p, _, _) = select_stage(df, req, meta, *i)?;
                p
            }
            _ => req.target_platform.clone(),
        },
    })
}

/// Adds what the stage's `COPY --from` and `RUN --mount=...,from=` name: earlier stages to
/// `deps`, images (each once, in order of appearance) to `images`.
fn from_dependencies(
    df: &Dockerfile,
    stage_index: usize,
    deps: &mut BTreeSet<usize>,
    images: &mut Vec<String>,
) -> Result<(), DockerfileError> {
    for ins in &df.stages[stage_index].instructions {
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
    Ok(())
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
    let mut selection = Selection {
        stage_index,
        stage_name: df.stages[stage_index].name.clone(),
        base,
        platform,
        key: StageKey(String::new()),
        deps: deps.into_iter().collect(),
        images,
        warnings: Vec::new(),
        request: req.clone(),
        meta: meta.to_vec(),
        dep_keys,
    };
    selection.key = stage_key(df, &selection);
    done.insert(stage_index, selection);
    Ok(())
}

/// Warnings for the build args that neither a global ARG, an ARG of a selected stage, an
/// automatic platform ARG nor a predefined ARG declares.
fn unused_build_args(
    df: &Dockerfile,
    req: &PlanRequest,
    meta: &[(String, Option<String>)],
    selected: &BTreeMap<usize, Selection>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in req.build_args.keys() {
        let declared = df.global_args.iter().any(|a| &a.name == name)
            || selected.keys().any(|&i| {
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
    warnings
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
    warnings.extend(secret_name_warnings(df));
    warnings.extend(unused_build_args(df, req, &meta, &done));
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

impl Selection {
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
}
