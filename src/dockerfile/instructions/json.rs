//! Exec (JSON array) form against shell form (BuildKit `parseMaybeJSON`), with an error where
//! text clearly meant as JSON does not parse.
//!
//! Level 0 (pure). Must not know which instruction the form belongs to beyond its keyword.

use super::cx::Cx;
use crate::dockerfile::{DockerfileError, ErrorKind, ShellOrExec};

impl Cx<'_> {
    /// Shell or exec form (BuildKit `parseMaybeJSON`). Text that is clearly meant as a JSON
    /// array (`[` then a string followed by `,` or `]`) but does not parse is an error here;
    /// BuildKit would silently run it through the shell, which is never what was meant.
    pub(super) fn maybe_json(&self) -> Result<ShellOrExec, DockerfileError> {
        let args = self.node.args();
        if args.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        match self.json_array(args)? {
            Some(list) => Ok(ShellOrExec::Exec(list)),
            None => Ok(ShellOrExec::Shell(args.to_string())),
        }
    }

    /// `Some(list)` for a JSON array of strings, `None` for text that is not meant as JSON.
    pub(super) fn json_array(&self, args: &str) -> Result<Option<Vec<String>>, DockerfileError> {
        self.json_array_at(args, 0)
    }

    /// [`Cx::json_array`] for text starting at byte `base` of the arguments.
    pub(super) fn json_array_at(
        &self,
        args: &str,
        base: usize,
    ) -> Result<Option<Vec<String>>, DockerfileError> {
        if !args.starts_with('[') {
            return Ok(None);
        }
        let invalid = |off: usize, reason: String| {
            let off = off.min(args.len());
            self.err_at(
                self.span_at(self.node.args_off + base + off),
                1,
                ErrorKind::InvalidJson {
                    instruction: self.keyword.clone(),
                    reason,
                },
            )
        };
        match serde_json::from_str::<Vec<serde_json::Value>>(args) {
            Ok(values) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        serde_json::Value::String(s) => out.push(s),
                        other => {
                            return Err(invalid(
                                0,
                                format!("arrays must contain strings only, found {other}"),
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            Err(e) if looks_like_json(args) => {
                // serde_json counts columns in bytes on a single line; at the end of input
                // point just past the text.
                let off = if e.is_eof() {
                    args.len()
                } else {
                    e.column().saturating_sub(1)
                };
                let msg = e.to_string();
                let reason = msg
                    .split(" at line ")
                    .next()
                    .unwrap_or(msg.as_str())
                    .to_string();
                Err(invalid(off, reason))
            }
            Err(_) => Ok(None),
        }
    }
}

/// True when `args` is evidently an attempt at a JSON array: `[`, blanks, then either `]` or a
/// double-quoted string followed by `,`, `]` or the end. `[ "$A" = x ]` (a shell test) is not.
fn looks_like_json(args: &str) -> bool {
    let Some(rest) = args.strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.starts_with(']') {
        return true;
    }
    let Some(body) = rest.strip_prefix('"') else {
        return false;
    };
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let after = body[i + 1..].trim_start();
                return after.is_empty() || after.starts_with(',') || after.starts_with(']');
            }
            _ => {}
        }
    }
    // An unterminated string right after `[`.
    true
}
