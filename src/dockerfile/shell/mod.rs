//! Environment replacement in Dockerfile words (Dockerfile reference, "Environment
//! replacement"), following BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`):
//!
//! - `$NAME`, `${NAME}`; `${NAME:-word}` / `${NAME-word}` (default when empty-or-unset / unset),
//!   `${NAME:+word}` / `${NAME+word}` (alternative when set-and-non-empty / set),
//!   `${NAME:?msg}` / `${NAME?msg}` (error when empty-or-unset / unset). The word may itself
//!   contain quotes and substitutions. Unset variables expand to the empty string.
//! - single quotes: everything literal up to the next `'`, no escapes;
//! - double quotes: substitutions happen; the escape character escapes only `"`, `$` and itself,
//!   any other escape is kept literally;
//! - outside quotes the escape character makes the next character literal (a trailing escape is
//!   dropped);
//! - `$` not followed by a name is a literal `$`; `$0`..`$9`, `$$`, `$@`, ... are shell special
//!   parameters that are never set here, so they expand to the empty string as in BuildKit.
//! - `${NAME#pattern}` / `${NAME##pattern}` remove the shortest / longest matching prefix,
//!   `${NAME%pattern}` / `${NAME%%pattern}` the shortest / longest matching suffix,
//!   `${NAME/pattern/string}` replaces the first (longest) match, `${NAME//pattern/string}` every
//!   match; in patterns `*` is any string, `?` any character, `\` escapes `*`, `?` and `\`
//!   (BuildKit `convertShellPatternToRegex`; no bracket expressions).
//! - `<<` followed by blanks stays one word with what follows (BuildKit
//!   `processPossibleHeredoc`).
//!
//! Heredoc bodies of COPY/ADD are expanded with [`expand_heredoc`]: quotes are plain characters
//! there (BuildKit `SkipProcessQuotes`), the escape character is always `\`.
//!
//! Level 0: pure. The files: `lexer` (the walk through a word, word splitting), `quote`
//! (single and double quotes), `substitute` (`$` and the `${}` operators), `pattern` (shell
//! patterns and replacement templates). This file holds the public entry points.

mod lexer;
mod pattern;
mod quote;
mod substitute;

use lexer::Lexer;

/// The most one substitution may add to a word, in bytes (1 MiB): `ENV X=$X$X` repeated would
/// otherwise double a value per line until memory runs out.
pub const MAX_EXPANSION: usize = 1 << 20;

/// A failure to expand a word: a byte offset into the word and a lowercase message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// Byte offset into the word where the problem starts (the `$`, or the opening quote).
    pub offset: usize,
    /// What is wrong, e.g. `syntax error: missing '}'`.
    pub message: String,
}

/// Looks a variable up: `Some(value)` when set (possibly empty), `None` when unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one word without splitting it (BuildKit `ProcessWord`): quotes are removed,
/// escapes applied, variables substituted, and unquoted whitespace is kept as is.
pub fn expand_word(text: &str, escape: char, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(text, escape, lookup);
    lx.process_stop_on(None).map(|(word, _)| word)
}

/// Expands and splits into words (BuildKit `ProcessWords`): unquoted whitespace, including
/// whitespace produced by a substitution, separates words; quoted text never splits.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<String>, ExpandError> {
    let mut lx = Lexer::new(text, escape, lookup);
    lx.process_stop_on(None).map(|(_, words)| words)
}

/// Expands a COPY/ADD heredoc body (BuildKit `ExpandRaw`: a lexer with a backslash as escape
/// and `SkipProcessQuotes`): variables are substituted and a backslash escapes the next character, but
/// quotes are ordinary characters.
pub fn expand_heredoc(text: &str, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(text, '\\', lookup);
    lx.skip_quotes = true;
    lx.process_stop_on(None).map(|(word, _)| word)
}

#[cfg(test)]
mod tests;
