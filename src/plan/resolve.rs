//! Phase 2: the walk through one stage's instructions with its starting config. The base's
//! ONBUILD triggers come first (BuildKit `initOnBuildTriggers`), then each instruction is
//! resolved into a [`Step`] by the file of its kind: ARG by `scope.rs`, RUN by `run.rs`,
//! COPY and ADD by `copy.rs`, the others by `config.rs`.
//!
//! Level 0: pure, no I/O.

use crate::dockerfile::{
    parse_trigger, Dockerfile, DockerfileError, ErrorKind, Instruction, InstructionKind, Span,
};

use super::config;
use super::copy::copy_step;
use super::graph::Selection;
use super::request::{BaseConfig, PlanRequest};
use super::run::run_step;
use super::scope::StageState;
use super::select::select;
use super::step::{Plan, Step};

/// Phase 1 and 2 of the target stage in one call, for callers that already have its starting
/// config.
pub fn plan(
    df: &Dockerfile,
    req: &PlanRequest,
    base: &BaseConfig,
) -> Result<Plan, DockerfileError> {
    select(df, req)?.resolve(df, base)
}

/// Where a step of a trigger points: the stage's FROM line.
struct TriggerInfo<'a> {
    span: Span,
    text: &'a str,
}

impl Selection {
    /// Phase 2: walks the stage with its starting config (the base image's, or the config an
    /// earlier stage ended with, see [`Selection::config_after`]) and produces the steps. The
    /// base's ONBUILD triggers run first.
    ///
    /// Errors (each pointing at the word): a word that fails to expand, an empty WORKDIR, USER
    /// or COPY source after expansion, a bad EXPOSE port, `--chmod` mode, `--mount`,
    /// `--network`, `--checksum` or STOPSIGNAL; an ONBUILD trigger that does not parse.
    pub fn resolve(&self, df: &Dockerfile, base: &BaseConfig) -> Result<Plan, DockerfileError> {
        let stage = &df.stages[self.stage_index];
        let mut st = StageState::new(base);
        let initial_env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();

        let mut steps = Vec::with_capacity(stage.instructions.len() + base.on_build.len());
        // ONBUILD triggers of the base run first, as if written right after FROM (BuildKit
        // `initOnBuildTriggers`); errors in them point at the FROM line.
        for trigger in &base.on_build {
            let from_span = stage.span;
            let fail = |reason: String| {
                df.error_at(
                    from_span,
                    stage.source.chars().count(),
                    ErrorKind::Trigger {
                        trigger: trigger.clone(),
                        reason,
                    },
                )
            };
            let ins = parse_trigger(trigger, "ONBUILD").map_err(|e| fail(e.kind.to_string()))?;
            let info = TriggerInfo {
                span: from_span,
                text: trigger,
            };
            let step = self
                .step(df, &mut st, &ins, Some(&info))
                .map_err(|e| fail(e.kind.to_string()))?;
            steps.push(step);
        }
        for ins in &stage.instructions {
            st.touched_unknown.set(false);
            match self.step(df, &mut st, ins, None) {
                Ok(step) => steps.push(step),
                // Checking without the base image: a word that uses a variable the image might
                // set cannot be judged yet.
                Err(_) if st.env_unknown && st.touched_unknown.get() => {}
                Err(e) => return Err(e),
            }
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

    /// Resolves one instruction. `trigger` is set for ONBUILD triggers of the base, whose words
    /// are not in the Dockerfile (errors are then reported against the trigger text).
    fn step(
        &self,
        df: &Dockerfile,
        st: &mut StageState,
        ins: &Instruction,
        trigger: Option<&TriggerInfo<'_>>,
    ) -> Result<Step, DockerfileError> {
        // A trigger's words are expanded and checked against a Dockerfile made of the trigger
        // text, so that error positions make sense in it.
        let trigger_df;
        let df = match trigger {
            Some(t) => {
                trigger_df =
                    crate::dockerfile::parse(&format!("FROM scratch\n{}", t.text), "ONBUILD")
                        .unwrap_or_else(|_| df.clone());
                &trigger_df
            }
            None => df,
        };
        let build_args = &self.request.build_args;
        // Every word of one instruction sees the variables as they were before it
        // (`ENV a=1 b=$a` gives b the old a), as BuildKit expands a whole command first.
        let snapshot = st.clone();
        let before = |n: &str| snapshot.lookup(n);
        let (created_by, kind) = match &ins.kind {
            InstructionKind::Arg(decls) => {
                st.declare_args(df, &before, decls, build_args, &self.meta)?
            }
            InstructionKind::Env(pairs) => config::env(df, st, &before, pairs)?,
            InstructionKind::Label(pairs) => config::label(df, &before, pairs)?,
            InstructionKind::Workdir(w) => config::workdir(df, st, &before, w)?,
            InstructionKind::User(w) => config::user(df, st, &before, w)?,
            InstructionKind::Expose(words) => config::expose(df, &before, words)?,
            InstructionKind::Cmd(c) => config::cmd(st, c),
            InstructionKind::Entrypoint(c) => config::entrypoint(st, c),
            InstructionKind::Shell(shell) => config::shell(st, shell),
            InstructionKind::Healthcheck(spec) => config::healthcheck(spec.as_ref()),
            InstructionKind::StopSignal(w) => config::stop_signal(df, &before, w)?,
            InstructionKind::Volume(words) => config::volume(df, &before, words)?,
            InstructionKind::Onbuild { expression, .. } => config::onbuild(expression),
            InstructionKind::Maintainer(w) => config::maintainer(w),
            InstructionKind::Run { .. } => {
                run_step(df, st, &before, ins, self.stage_index, build_args)?
            }
            InstructionKind::Copy { .. } | InstructionKind::Add { .. } => copy_step(
                df,
                st,
                &before,
                &ins.kind,
                self.stage_index,
                trigger.is_some(),
            )?,
        };
        let span = trigger.map_or(ins.span, |t| t.span);
        Ok(Step {
            span,
            created_by,
            text: super::display::instruction_text(ins),
            kind,
        })
    }
}
