//! The syntax layer: physical lines → parser directives → logical lines (continuations
//! joined, comments dropped) → nodes `KEYWORD [--flags] args` with spans, heredoc bodies
//! attached. Follows BuildKit `frontend/dockerfile/parser/parser.go` (`Parse`,
//! `trimContinuationCharacter`, `splitCommand`, `extractBuilderFlags`, `heredocsFromLine`).
//!
//! Level 0 (pure, no I/O). The files, in the order the text goes through them: `lines`
//! (physical → logical lines), `directives` (leading parser directives), `words` (blanks,
//! flags, quote-aware words), `node` (one instruction with spans), `heredoc` (bodies after the
//! line). This file only ties them together.

mod directives;
mod heredoc;
mod lines;
mod node;
mod words;

use super::{make_error, DockerfileError, ErrorKind, Span};
use directives::{read_directives, Directives};
use heredoc::{can_contain_heredoc, read_heredocs};
use lines::{logical_line, split_lines};

pub(crate) use heredoc::heredoc_word_name;
pub(crate) use node::Node;
pub(crate) use words::{fields, is_ws, parse_words};

/// The whole file as nodes.
pub(crate) struct Tree {
    pub lines: Vec<String>,
    pub escape: char,
    pub syntax: Option<String>,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

/// Parses Dockerfile text into nodes. `file` names it in messages. Errors: a repeated or
/// invalid parser directive, an unterminated heredoc, a file with no instructions.
pub(crate) fn parse(text: &str, file: &str) -> Result<Tree, DockerfileError> {
    let lines = split_lines(text);
    let Directives {
        escape,
        syntax: syntax_directive,
        notes,
    } = read_directives(&lines, file)?;

    let mut nodes = Vec::new();
    let mut warnings = notes;
    let mut i = 0;
    while i < lines.len() {
        let Some(line) = logical_line(&lines, &mut i, escape) else {
            continue;
        };
        if line.empty_continuation {
            let (start_line, text) = (line.start_line, &line.text);
            warnings.push(format!(
                "{file}:{start_line}: empty continuation line found in: {text} (empty \
                 continuation lines will become errors in a future release)"
            ));
        }
        let mut node = Node::new(line);

        // Heredocs: RUN, COPY and ADD in shell form, also as an ONBUILD trigger (BuildKit
        // `canContainHeredoc`, `heredocCompoundDirectives`).
        if can_contain_heredoc(&node) && node.text.contains("<<") {
            read_heredocs(&mut node, &lines, &mut i, escape, file)?;
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(make_error(
            file,
            &lines,
            Span { line: 0, column: 0 },
            0,
            ErrorKind::Empty,
        ));
    }
    Ok(Tree {
        lines,
        escape,
        syntax: syntax_directive,
        nodes,
        warnings,
    })
}

#[cfg(test)]
mod tests;
