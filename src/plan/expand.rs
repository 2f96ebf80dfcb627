//! Expanding one Dockerfile word with a variable lookup (Dockerfile reference, "Environment
//! replacement"), and the errors that point at the word: a substitution that fails, a value
//! that is not allowed.
//!
//! Level 0: pure, no I/O. Which variables a word sees is `scope.rs`'s business.

use crate::dockerfile::shell::{expand_word, ExpandError};
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, Word};

/// Expands one word, mapping lexer errors to the word's place.
pub(super) fn expand(
    df: &Dockerfile,
    word: &Word,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DockerfileError> {
    expand_word(&word.text, df.escape, lookup).map_err(|e| expansion_error(df, word, e))
}

/// The error of a word whose expansion failed, pointing at the word.
pub(super) fn expansion_error(df: &Dockerfile, word: &Word, e: ExpandError) -> DockerfileError {
    df.error_at(
        word.span,
        word.text.chars().count(),
        ErrorKind::Expansion {
            word: word.text.clone(),
            reason: e.message,
        },
    )
}

/// The error of a word whose (expanded) value is not allowed: `what` names the thing, `reason`
/// says why.
pub(super) fn invalid(
    df: &Dockerfile,
    word: &Word,
    what: &str,
    value: &str,
    reason: &str,
) -> DockerfileError {
    df.error_at(
        word.span,
        word.text.chars().count(),
        ErrorKind::InvalidValue {
            what: what.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        },
    )
}
