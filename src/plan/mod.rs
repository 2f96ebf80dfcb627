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
//!
//! The files, lowest first: `request` (what is asked for, what a stage starts from), `graph`
//! (phase 1's result) and `step` (phase 2's result: what a resolved step is); `paths`, `gofmt`,
//! `chmod`, `expand`, `scope` (variables), `from` (what `--from` names), `mounts`; `select` and
//! `stage_key` (phase 1); `config` (image-config instructions), `resolve` (phase 2) and `check`
//! (chaining stages, checking a graph before any pull).

mod check;
mod chmod;
mod config;
mod expand;
mod from;
mod gofmt;
mod graph;
mod mounts;
mod paths;
mod request;
mod resolve;
mod scope;
mod select;
mod stage_key;
mod step;
#[cfg(test)]
mod tests;

pub use check::check_graph;
pub use chmod::SymbolicMode;
pub use graph::{Selection, StageGraph, StageKey};
pub use request::{
    BaseConfig, BaseImage, PlanRequest, DEFAULT_PATH, DEFAULT_SHELL, PREDEFINED_ARGS,
};
pub use resolve::{is_url, plan};
pub use scope::automatic_args;
pub use select::{select, select_graph};
pub use step::{
    CacheSharing, CopyFrom, CopyStep, Healthcheck, InlineFile, MountSource, Network, Plan,
    RunMount, Step, StepKind,
};
