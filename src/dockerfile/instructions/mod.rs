//! Nodes → typed instructions grouped into stages (BuildKit `frontend/dockerfile/instructions/
//! parse.go`): argument forms per instruction, flag validation, stage names.
//!
//! Level 0 (pure, no I/O). This file turns the nodes into stages and dispatches each node to
//! the file of its instruction family: `stage` (FROM, ARG), `run` (RUN), `copy` (COPY, ADD),
//! `metadata` (ENV, LABEL, WORKDIR, USER, STOPSIGNAL, MAINTAINER, EXPOSE, VOLUME, SHELL),
//! `healthcheck`, `onbuild`. Beneath them: `cx` (the per-node context, spans and errors),
//! `flags` (flag declarations and checks), `json` (exec against shell form), `duration` (Go
//! durations), `suggest` ("did you mean").

mod copy;
mod cx;
mod duration;
mod flags;
mod healthcheck;
mod json;
mod metadata;
mod onbuild;
mod run;
mod stage;
mod suggest;

use cx::Cx;
use suggest::suggest;

use super::syntax::Tree;
use super::{
    Dockerfile, DockerfileError, ErrorKind, Instruction, InstructionKind, Span, INSTRUCTIONS,
};

pub(crate) use copy::heredoc_name;
pub(crate) use duration::parse_go_duration;
pub(crate) use onbuild::parse_trigger;
pub(crate) use suggest::nearest;

/// Builds the typed Dockerfile from the syntax tree.
pub(crate) fn build(tree: Tree, file: &str) -> Result<Dockerfile, DockerfileError> {
    let mut df = Dockerfile {
        file: file.to_string(),
        escape: tree.escape,
        syntax: tree.syntax,
        global_args: Vec::new(),
        stages: Vec::new(),
        warnings: tree.warnings,
        lines: tree.lines,
    };
    let mut first_node: Option<Span> = None;
    for node in &tree.nodes {
        let cx = Cx {
            df: &df,
            node,
            keyword: node.keyword.to_ascii_uppercase(),
        };
        let span = node.span(&df.lines);
        first_node.get_or_insert(span);
        if cx.keyword == "FROM" {
            let stage = cx.from()?;
            if let Some(name) = &stage.name {
                if let Some(first) = df.stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                    return Err(cx.err_at(
                        stage.span,
                        node.text.chars().count(),
                        ErrorKind::DuplicateStage {
                            name: name.clone(),
                            first_line: first.span.line,
                        },
                    ));
                }
            }
            df.stages.push(stage);
            continue;
        }
        let kind = cx.instruction()?;
        if df.stages.is_empty() {
            match kind {
                InstructionKind::Arg(args) => df.global_args.extend(args),
                kind => {
                    return Err(cx.err_at(
                        span,
                        node.keyword.chars().count(),
                        ErrorKind::BeforeFrom {
                            instruction: kind.keyword().to_string(),
                        },
                    ))
                }
            }
            continue;
        }
        let instruction = Instruction {
            span,
            end_line: node.end_line,
            source: node.text.clone(),
            kind,
        };
        if let Some(stage) = df.stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    if df.stages.is_empty() {
        // Point at the first instruction: the file has only ARGs.
        let span = first_node.unwrap_or(Span { line: 0, column: 0 });
        let width = df.source_line(span.line).trim().chars().count();
        return Err(df.error_at(span, width, ErrorKind::NoStage));
    }
    Ok(df)
}

impl Cx<'_> {
    /// The typed instruction of this node, dispatched on its keyword to the file of its
    /// family. Errors: an unknown instruction (with a suggestion), FROM (reached only as an
    /// ONBUILD trigger), and whatever the instruction's own parsing refuses.
    fn instruction(&self) -> Result<InstructionKind, DockerfileError> {
        let kw = self.keyword.as_str();
        if !INSTRUCTIONS.contains(&kw) {
            return Err(self.keyword_err(ErrorKind::UnknownInstruction {
                word: self.node.keyword.clone(),
                suggestion: suggest(&self.node.keyword),
            }));
        }
        Ok(match kw {
            "FROM" => {
                // Only reached for ONBUILD FROM: a stage header elsewhere is handled by `build`.
                return Err(self.keyword_err(ErrorKind::InvalidTrigger {
                    reason: "FROM isn't allowed as an ONBUILD trigger".into(),
                }));
            }
            "RUN" => self.run()?,
            "CMD" => InstructionKind::Cmd(self.no_flags_then(Self::maybe_json)?),
            "ENTRYPOINT" => InstructionKind::Entrypoint(self.no_flags_then(Self::maybe_json)?),
            "COPY" => self.copy()?,
            "ADD" => self.add()?,
            "ENV" => InstructionKind::Env(self.no_flags_then(Self::name_val)?),
            "LABEL" => InstructionKind::Label(self.no_flags_then(Self::name_val)?),
            "ARG" => self.arg()?,
            "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => self.single_word(kw)?,
            "EXPOSE" => self.expose()?,
            "VOLUME" => self.volume()?,
            "SHELL" => self.shell()?,
            "HEALTHCHECK" => self.healthcheck()?,
            "ONBUILD" => self.onbuild()?,
            _ => unreachable!("every instruction in INSTRUCTIONS is handled above"),
        })
    }
}

#[cfg(test)]
mod tests;
