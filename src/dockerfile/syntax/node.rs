//! One instruction as the syntax layer sees it: keyword, flags and arguments of a logical line,
//! its heredoc bodies, and the way back from a byte offset of the logical text to a line and
//! column of the file; also the instruction behind `ONBUILD` as a node of its own.
//!
//! Level 0 (pure, no I/O). Must not interpret arguments (that is `instructions`).

use super::lines::{LogicalLine, Seg};
use super::words::{extract_flags, is_ws, RawFlag};
use crate::dockerfile::{Heredoc, Span};

/// One instruction: its logical line and where each part came from.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The keyword as written (`run`, `RUN`, ...).
    pub keyword: String,
    /// The logical line, continuation lines joined, trimmed.
    pub text: String,
    /// Flags before the arguments.
    pub flags: Vec<RawFlag>,
    /// Byte offset of the arguments in `text` (`text.len()` when there are none).
    pub args_off: usize,
    /// Last physical line (heredoc bodies included).
    pub end_line: usize,
    /// Heredoc bodies, in the order named.
    pub heredocs: Vec<Heredoc>,
    segs: Vec<Seg>,
}

impl Node {
    /// The node of a logical line: the keyword is its first word, then come the flags, then
    /// the arguments; no heredocs yet.
    pub(super) fn new(line: LogicalLine) -> Node {
        let LogicalLine {
            text,
            segs,
            end_line,
            ..
        } = line;
        let kw_len = text.find(is_ws).unwrap_or(text.len());
        let keyword = text[..kw_len].to_string();
        let rest_off = text[kw_len..]
            .find(|c: char| !is_ws(c))
            .map_or(text.len(), |o| kw_len + o);
        let (flags, args_off) = extract_flags(&text, rest_off);
        Node {
            keyword,
            text,
            flags,
            args_off,
            end_line,
            heredocs: Vec::new(),
            segs,
        }
    }

    /// The arguments after the flags.
    pub fn args(&self) -> &str {
        &self.text[self.args_off..]
    }

    /// The position of byte offset `off` of the logical text in the physical file.
    pub fn span_at(&self, off: usize, lines: &[String]) -> Span {
        let seg = self
            .segs
            .iter()
            .rev()
            .find(|s| s.off <= off)
            .unwrap_or(&self.segs[0]);
        let byte_col = seg.byte_col + (off - seg.off);
        let line = lines.get(seg.line - 1).map_or("", String::as_str);
        let column = line
            .get(..byte_col.min(line.len()))
            .map_or(byte_col, |p| p.chars().count())
            + 1;
        Span {
            line: seg.line,
            column,
        }
    }

    /// The span of the keyword (the instruction's span).
    pub fn span(&self, lines: &[String]) -> Span {
        self.span_at(0, lines)
    }

    /// The instruction after `ONBUILD` as a node of its own, with spans still pointing into the
    /// file and the heredoc bodies attached. `None` when there is nothing after ONBUILD.
    pub fn trigger(&self) -> Option<Node> {
        let args = self.args();
        if args.is_empty() {
            return None;
        }
        let base = self.args_off;
        let kw_len = args.find(is_ws).unwrap_or(args.len());
        let rest_off = args[kw_len..]
            .find(|c: char| !is_ws(c))
            .map_or(args.len(), |o| kw_len + o);
        let (flags, args_off) = extract_flags(args, rest_off);
        // Re-base the segments so that offset 0 is the trigger's keyword.
        let mut segs: Vec<Seg> = Vec::new();
        for s in &self.segs {
            let end = s.off;
            if end <= base {
                segs.clear();
                segs.push(Seg {
                    off: 0,
                    line: s.line,
                    byte_col: s.byte_col + (base - s.off),
                });
            } else {
                segs.push(Seg {
                    off: s.off - base,
                    line: s.line,
                    byte_col: s.byte_col,
                });
            }
        }
        Some(Node {
            keyword: args[..kw_len].to_string(),
            text: args.to_string(),
            flags,
            args_off,
            end_line: self.end_line,
            heredocs: self.heredocs.clone(),
            segs,
        })
    }
}
