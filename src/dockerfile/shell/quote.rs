//! Quoting (Dockerfile reference, "Environment replacement"; BuildKit `processSingleQuote`,
//! `processDoubleQuote`): single quotes keep everything literal, double quotes still substitute
//! and let the escape character escape only `"`, `$` and itself.
//!
//! Level 0 (pure). Must not split words.

use super::lexer::Lexer;
use super::{ExpandError, MAX_EXPANSION};

impl Lexer<'_> {
    /// A single-quoted string at `'`: everything literal up to the next `'`.
    pub(super) fn single_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Self::err(
                        start,
                        "unexpected end of statement while looking for matching single-quote",
                    )
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// A double-quoted string at `"`: substitutions happen; the escape character escapes
    /// `"`, `$` and itself, any other escape stays literal.
    pub(super) fn double_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Self::err(
                        start,
                        "unexpected end of statement while looking for matching double-quote",
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => {
                    let at = self.offset();
                    let v = self.dollar()?;
                    if out.len() + v.len() > MAX_EXPANSION {
                        return Self::err(at, "expansion exceeds 1 MiB");
                    }
                    out.push_str(&v);
                }
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // A trailing escape inside an unterminated quote: the quote error
                            // follows on the next turn.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                            }
                            // Other escapes stay literal, escape character included (twice
                            // in raw mode, as BuildKit writes it).
                            Some(_) => out.push(c),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }
}
