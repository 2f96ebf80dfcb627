//! What a `COPY --from` or a mount's `from=` names: an earlier stage (by name or index) or an
//! image (BuildKit `findStateByName`/`findStateByIndex`; `--from` is never expanded).
//!
//! Level 0: pure, no I/O.

use super::expand::invalid;
use super::step::CopyFrom;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, Word};

/// The stage a `--from` value names (BuildKit `findStateByName`/`findStateByIndex`: a stage
/// name, case-insensitive, or a stage index), or `None` when it names an image.
fn stage_by_name_or_index(df: &Dockerfile, value: &str) -> Option<usize> {
    if let Ok(i) = value.parse::<usize>() {
        if i < df.stages.len() {
            return Some(i);
        }
    }
    df.stage_index(value)
}

/// What a `--from` (or mount `from=`) refers to, checked: an earlier stage, or an image.
/// `what` names the flag in errors.
pub(super) fn resolve_from(
    df: &Dockerfile,
    current: usize,
    word: &Word,
    value: &str,
    what: &str,
) -> Result<CopyFrom, DockerfileError> {
    let width = word.text.chars().count();
    if let Some(i) = stage_by_name_or_index(df, value) {
        if i >= current {
            return Err(df.error_at(
                word.span,
                width,
                ErrorKind::LaterStage {
                    what: what.to_string(),
                    name: value.to_string(),
                    stage_line: df.stages[i].span.line,
                },
            ));
        }
        return Ok(CopyFrom::Stage(i));
    }
    // BuildKit never expands --from: a `$` (other than a trailing one) is a mistake.
    if value.find('$').is_some_and(|i| i + 1 != value.len()) {
        return Err(df.error_at(
            word.span,
            width,
            ErrorKind::FromVariable {
                what: what.to_string(),
                value: value.to_string(),
            },
        ));
    }
    if value.is_empty() {
        return Err(invalid(df, word, what, value, "empty"));
    }
    Ok(CopyFrom::Image(value.to_string()))
}
