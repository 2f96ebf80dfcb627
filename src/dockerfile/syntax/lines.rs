//! Physical lines → logical lines: line endings and a BOM removed, continuation lines (the
//! escape character, possibly followed by blanks) joined, comment and blank lines inside a
//! continuation dropped, and a record of where each piece of the logical text came from.
//!
//! Level 0 (pure, no I/O). Must not split the logical line into words or read heredoc bodies.

/// A piece of the logical line taken from one physical line.
#[derive(Debug, Clone)]
pub(super) struct Seg {
    /// Byte offset in the logical text where the piece starts.
    pub(super) off: usize,
    /// 1-based physical line.
    pub(super) line: usize,
    /// Byte offset in the physical line where the piece starts.
    pub(super) byte_col: usize,
}

/// One instruction's text with continuation lines joined and trailing blanks trimmed.
pub(super) struct LogicalLine {
    /// The logical text (never empty).
    pub(super) text: String,
    /// Where each piece of `text` came from, in order.
    pub(super) segs: Vec<Seg>,
    /// 1-based physical line where the instruction starts.
    pub(super) start_line: usize,
    /// 1-based last physical line read for it.
    pub(super) end_line: usize,
    /// A blank line was dropped inside the continuation (BuildKit warns about it).
    pub(super) empty_continuation: bool,
}

/// Reads the logical line starting at physical line index `*i` and moves `*i` past it. `None`
/// when that line holds no instruction (blank, a comment, or continuations that join to
/// nothing).
pub(super) fn logical_line(lines: &[String], i: &mut usize, escape: char) -> Option<LogicalLine> {
    let raw = &lines[*i];
    *i += 1;
    let start_line = *i;
    let lead = raw.len() - raw.trim_start().len();
    let first = &raw[lead..];
    if first.is_empty() || first.starts_with('#') {
        return None;
    }
    let (content, mut cont) = trim_continuation(first, escape);
    let mut text = content.to_string();
    let mut segs = vec![Seg {
        off: 0,
        line: start_line,
        byte_col: lead,
    }];
    let mut end_line = start_line;
    let mut empty_continuation = false;
    while cont && *i < lines.len() {
        let raw = &lines[*i];
        *i += 1;
        end_line = *i;
        // Comment lines inside a continuation are dropped; blank ones too (with a warning).
        if is_comment(raw) {
            continue;
        }
        if raw.trim_start().is_empty() {
            empty_continuation = true;
            continue;
        }
        // Leading blanks of continuation lines are kept, as in BuildKit.
        let (content, c) = trim_continuation(raw, escape);
        segs.push(Seg {
            off: text.len(),
            line: *i,
            byte_col: 0,
        });
        text.push_str(content);
        cont = c;
    }
    let text = text
        .trim_end_matches(|c: char| c.is_whitespace())
        .to_string();
    if text.is_empty() {
        return None;
    }
    Some(LogicalLine {
        text,
        segs,
        start_line,
        end_line,
        empty_continuation,
    })
}

/// Removes a trailing continuation (escape + blanks), unless the escape is itself escaped.
/// Returns the text and whether the line continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(body) = t.strip_suffix(escape) {
        // BuildKit's regex: `([^\\])\\[ \t]*$|^\\[ \t]*$`.
        if body.is_empty() || !body.ends_with(escape) {
            return (body, true);
        }
    }
    (line, false)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Splits `text` into physical lines without line endings; a final newline ends the last line.
pub(super) fn split_lines(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    lines
}
