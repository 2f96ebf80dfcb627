//! ONBUILD: a trigger instruction checked now and recorded as text (BuildKit `parseOnBuild`),
//! and parsing such a trigger back from a base image's config.
//!
//! Level 0 (pure). Must not run triggers (the planner inserts them into the child's stage).

use super::cx::Cx;
use crate::dockerfile::syntax;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, Instruction, InstructionKind};

/// Parses the text of one ONBUILD trigger from a base image's config (`RUN make`, `COPY . /x`,
/// heredoc bodies appended) into an instruction. `file` names it in errors.
pub(crate) fn parse_trigger(text: &str, file: &str) -> Result<Instruction, DockerfileError> {
    let tree = syntax::parse(text, file)?;
    let df = Dockerfile {
        file: file.to_string(),
        escape: tree.escape,
        syntax: None,
        global_args: Vec::new(),
        stages: Vec::new(),
        warnings: Vec::new(),
        lines: tree.lines,
    };
    let node = tree
        .nodes
        .first()
        .ok_or_else(|| df.error_file(ErrorKind::Empty))?;
    let cx = Cx {
        df: &df,
        node,
        keyword: node.keyword.to_ascii_uppercase(),
    };
    if tree.nodes.len() > 1 || matches!(cx.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
        return Err(cx.keyword_err(ErrorKind::InvalidTrigger {
            reason: format!(
                "{} isn't allowed as an ONBUILD trigger",
                if tree.nodes.len() > 1 {
                    "more than one instruction".to_string()
                } else {
                    cx.keyword.clone()
                }
            ),
        }));
    }
    let kind = cx.instruction()?;
    Ok(Instruction {
        span: node.span(&df.lines),
        end_line: node.end_line,
        source: node.text.clone(),
        kind,
    })
}

impl Cx<'_> {
    /// `ONBUILD INSTRUCTION ...` (BuildKit `parseOnBuild`): the trigger is checked now and
    /// recorded as text.
    pub(super) fn onbuild(&self) -> Result<InstructionKind, DockerfileError> {
        self.flags(&[])?;
        let Some(sub) = self.node.trigger() else {
            return Err(self.args_err("requires at least one argument"));
        };
        let inner = Cx {
            df: self.df,
            node: &sub,
            keyword: sub.keyword.to_ascii_uppercase(),
        };
        match inner.keyword.as_str() {
            "ONBUILD" => {
                return Err(inner.keyword_err(ErrorKind::InvalidTrigger {
                    reason: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                }))
            }
            "MAINTAINER" | "FROM" => {
                return Err(inner.keyword_err(ErrorKind::InvalidTrigger {
                    reason: format!("{} isn't allowed as an ONBUILD trigger", inner.keyword),
                }))
            }
            _ => {}
        }
        let trigger = inner.instruction()?;
        let mut expression = self.node.args().to_string();
        for doc in &self.node.heredocs {
            expression.push('\n');
            expression.push_str(&doc.content);
            expression.push_str(&doc.name);
        }
        Ok(InstructionKind::Onbuild {
            expression,
            trigger: Box::new(trigger),
        })
    }
}
