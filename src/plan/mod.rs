//! The per-platform build plan: from a parsed [`Dockerfile`](crate::dockerfile::Dockerfile), a
//! target platform, the build platform, `--build-arg` values and an optional `--target` stage,
//! the stages to build (the target and every stage it needs), each with the image it starts
//! from, the platform it runs as, and its ordered steps with every word expanded.
//!
//! Level 0: pure. No I/O, no tokio: platforms, build args and the base images' configs come in
//! as plain values.
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
//! The files, lowest first:
//! - data: `request` (what is asked for, what a stage starts from), `graph` (phase 1's result),
//!   `step` (phase 2's result: what a resolved step is, and nothing else);
//! - helpers: `paths` (slash paths in the image), `gofmt` (Go formatting in history strings),
//!   `display` (the instruction text progress and errors show),
//!   `heredoc`, `chmod` (symbolic modes), `expand` (one word), `scope` (the variables and state
//!   an instruction sees, ARG), `from` (what `--from` names), `mounts` (`RUN --mount` flags),
//!   `entitlements` (`RUN --security`, and what `--allow` must grant), `named` (named build
//!   contexts put into the Dockerfile before planning);
//! - phase 1: `select` (stages the target needs, with `secret_names`' warnings), `stage_key`
//!   (when platforms share a stage);
//! - phase 2: `resolve` (the walk), calling `config` (image-config instructions), `copy`
//!   (COPY/ADD) and `run` (RUN); `check` chains stages and checks a graph before any pull.

mod check;
mod chmod;
mod config;
mod copy;
mod display;
mod entitlements;
mod expand;
mod from;
mod gofmt;
mod graph;
mod heredoc;
mod mounts;
mod named;
mod paths;
mod request;
mod resolve;
mod run;
mod scope;
mod secret_names;
mod select;
mod stage_key;
mod step;
#[cfg(test)]
mod tests;

pub use check::check_graph;
pub use chmod::SymbolicMode;
pub use copy::is_url;
pub use entitlements::{check_entitlements, Entitlement};
pub use graph::{Selection, StageGraph, StageKey};
pub use named::{apply_named_contexts, NAMED_CONTEXT_SCHEME};
pub use request::{
    BaseConfig, BaseImage, PlanRequest, DEFAULT_PATH, DEFAULT_SHELL, PREDEFINED_ARGS,
};
pub use resolve::plan;
pub use scope::automatic_args;
pub use secret_names::looks_secret;
pub use select::{select, select_graph};
pub use step::{
    CacheSharing, CopyFrom, CopyStep, Healthcheck, InlineFile, MountSource, Network, Plan,
    RunMount, Security, Step, StepKind,
};
