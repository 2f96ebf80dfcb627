//! The context an instruction is built in: the Dockerfile so far, the node, the keyword in upper
//! case, and the helpers that turn a byte offset of the node into a span, a word or an error.
//!
//! Level 0 (pure). Must not parse any instruction's arguments.

use crate::dockerfile::syntax::Node;
use crate::dockerfile::{make_error, Dockerfile, DockerfileError, ErrorKind, Span, Word};

/// Per-node context for building one instruction.
pub(super) struct Cx<'a> {
    /// The Dockerfile built so far (file name, lines, escape character).
    pub(super) df: &'a Dockerfile,
    /// The node being built.
    pub(super) node: &'a Node,
    /// Its keyword in upper case.
    pub(super) keyword: String,
}

impl Cx<'_> {
    /// An error at `span`, underlining `width` characters.
    pub(super) fn err_at(&self, span: Span, width: usize, kind: ErrorKind) -> DockerfileError {
        make_error(&self.df.file, &self.df.lines, span, width, kind)
    }

    /// The span of byte offset `off` of the node's logical text.
    pub(super) fn span_at(&self, off: usize) -> Span {
        self.node.span_at(off, &self.df.lines)
    }

    /// An error pointing at the keyword.
    pub(super) fn keyword_err(&self, kind: ErrorKind) -> DockerfileError {
        self.err_at(self.span_at(0), self.node.keyword.chars().count(), kind)
    }

    /// [`ErrorKind::Arguments`] about this instruction, pointing at the keyword.
    pub(super) fn args_err(&self, message: impl Into<String>) -> DockerfileError {
        self.keyword_err(ErrorKind::Arguments {
            instruction: self.keyword.clone(),
            message: message.into(),
        })
    }

    /// A word at byte offset `off` of the arguments.
    pub(super) fn word(&self, text: String, off: usize) -> Word {
        Word {
            span: self.span_at(self.node.args_off + off),
            text,
        }
    }
}
