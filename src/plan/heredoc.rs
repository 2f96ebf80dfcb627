//! Heredoc bodies as BuildKit reads them: `<<-` removes leading tabs from every line (Go's
//! `parser.ChompHeredocContent`).
//!
//! Level 0: string functions only, no I/O. Expanding a body is the caller's choice (an
//! unquoted terminator).

use crate::dockerfile::Heredoc;

/// Go's `parser.ChompHeredocContent`: leading tabs removed from every line.
fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// The body of `doc`, chomped when it was written with `<<-`.
pub(super) fn heredoc_body(doc: &Heredoc) -> String {
    if doc.chomp {
        chomp(&doc.content)
    } else {
        doc.content.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chomping() {
        assert_eq!(chomp("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
