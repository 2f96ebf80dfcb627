//! Text from the build made safe for a terminal: control characters escaped, so that nothing
//! a Dockerfile, a build argument or a step's output carries can move the cursor, rewrite
//! lines of the live view or hide text in a log.
//!
//! Level 4 (edge), under `render/`: pure text; used by the plain renderer and the live view's
//! model.

/// `line` with every control character but TAB written as an escape (`\x1b`, `\u{9b}`), so
/// that nothing a Dockerfile or a build argument carries (a value with ESC sequences, a
/// carriage return) can move the cursor, rewrite earlier lines or hide text in a terminal or
/// CI log. JSON progress is escaped by the JSON encoder already.
pub(super) fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    // Issue 12: a build-arg value with terminal escapes or a carriage return is shown escaped
    // in plain progress, never raw.
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("RUN echo \u{1b}[2Jx\ry\u{9b}\tz"),
            "RUN echo \\x1b[2Jx\\x0dy\\u{9b}\tz"
        );
        assert_eq!(escape_controls("plain ünïcode"), "plain ünïcode");
    }
}
