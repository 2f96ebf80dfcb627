//! Parser directives (`# escape=`, `# syntax=`, `# check=`) on the leading lines of a
//! Dockerfile (BuildKit `DirectiveParser`, `reDirectives`).
//!
//! Level 0 (pure, no I/O). Must not read past the directives.

use crate::dockerfile::{make_error, DockerfileError, ErrorKind, Span};

/// What the directives set.
pub(super) struct Directives {
    /// The escape character: `\` unless `# escape=` says a backtick.
    pub(super) escape: char,
    /// The `# syntax=` value, recorded but not acted upon.
    pub(super) syntax: Option<String>,
    /// Notes that a directive was ignored (`syntax`, `check`), one per directive, for the
    /// warnings.
    pub(super) notes: Vec<String>,
}

/// Reads the directives on the leading lines: the first other line (a comment, a blank line
/// or an instruction) ends them, and unknown directive names count as comments. Errors: a
/// directive given twice, an escape that is neither `\` nor a backtick.
pub(super) fn read_directives(lines: &[String], file: &str) -> Result<Directives, DockerfileError> {
    let err = |line: usize, col: usize, width: usize, kind: ErrorKind| {
        make_error(file, lines, Span { line, column: col }, width, kind)
    };
    let mut escape = '\\';
    let mut syntax_directive = None;
    let mut seen: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        // BuildKit `DirectiveParser.ParseLine`: the `#` must be the line's first character.
        let Some((name, value)) = directive(raw) else {
            break;
        };
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        let col = 1;
        if seen.contains(&name) {
            return Err(err(
                i + 1,
                col,
                raw.trim().chars().count(),
                ErrorKind::DuplicateDirective { directive: name },
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(
                            i + 1,
                            col,
                            raw.trim().chars().count(),
                            ErrorKind::InvalidDirective {
                                directive: name,
                                reason: format!("escape token {value:?} is neither ` nor \\"),
                            },
                        ))
                    }
                }
            }
            "syntax" => {
                notes.push(format!(
                    "{file}:{}: parser directive syntax={value} is ignored: polyarch reads \
                     Dockerfiles with its own front end (BuildKit's current syntax)",
                    i + 1
                ));
                syntax_directive = Some(value)
            }
            _ => notes.push(format!(
                "{file}:{}: parser directive check={value} is ignored: polyarch runs no build checks",
                i + 1
            )),
        }
    }
    Ok(Directives {
        escape,
        syntax: syntax_directive,
        notes,
    })
}

/// `# name = value` on a leading line (BuildKit `reDirectives`).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let first = rest.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}
