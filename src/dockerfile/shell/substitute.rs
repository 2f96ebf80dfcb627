//! Substitutions: `$NAME`, `${NAME}` and the `${NAME<op>word}` operators (`:-`, `-`, `:+`,
//! `+`, `:?`, `?`, `#`, `##`, `%`, `%%`, `/`, `//`), as BuildKit's `processDollar` reads and
//! applies them.
//!
//! Level 0 (pure). Must not match patterns itself (`pattern.rs`).

use super::lexer::Lexer;
use super::pattern::{go_expand_replacement, trim_prefix, trim_suffix, Pattern};
use super::{ExpandError, MAX_EXPANSION};

impl Lexer<'_> {
    /// A variable name after `$` or `${`: letters, digits and `_`, or one shell special
    /// parameter (`$0`..`$9` and more digits, `$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.next();
                name.push(ch);
                return name;
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    /// A substitution at `$`: `$NAME`, `${NAME}` or `${NAME<op>word}`; a `$` not followed by a
    /// name is a literal `$`. Errors: a missing `}`, a bad or unsupported operator, `?` on an
    /// unset variable, an invalid pattern.
    pub(super) fn dollar(&mut self) -> Result<String, ExpandError> {
        let start = self.offset();
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Self::err(start, "syntax error: missing '}'"),
            Some('{' | '}' | ':') => return Self::err(start, "syntax error: bad substitution"),
            _ => {}
        }
        let name = self.name();
        let missing_brace = |lx: &Self, e: ExpandError| {
            if lx.peek().is_none() {
                Self::err(start, "syntax error: missing '}'")
            } else {
                Err(e)
            }
        };
        let (modifier, null_is_unset) = match self.next() {
            None => return Self::err(start, "syntax error: missing '}'"),
            Some('}') => return Ok((self.lookup)(&name).unwrap_or_default()),
            Some(':') => match self.next() {
                Some(m @ ('-' | '+' | '?')) => (m, true),
                None => return Self::err(start, "syntax error: missing '}'"),
                Some(m) => {
                    return Self::err(
                        start,
                        format!("unsupported modifier (:{m}) in substitution"),
                    )
                }
            },
            Some(m @ ('-' | '+' | '?' | '#' | '%')) => (m, false),
            Some('/') => return self.replace(start, &name),
            Some(m) => {
                return Self::err(start, format!("unsupported modifier ({m}) in substitution"))
            }
        };
        let word = if matches!(modifier, '#' | '%') {
            self.process_stop_on_raw(Some('}'))
        } else {
            self.process_stop_on(Some('}'))
        };
        let word = match word {
            Ok((w, _)) => w,
            Err(e) => return missing_brace(self, e),
        };
        self.apply_modifier(start, &name, modifier, null_is_unset, word)
    }

    /// `${NAME<modifier>word}` once `word` is read: `-` default, `+` alternative, `?` error,
    /// `#`/`%` (doubled at the start of `word`: greedy) trimmed prefix/suffix. With
    /// `null_is_unset` (written with `:`) an empty value counts as unset. `start` is the `$`,
    /// where errors point.
    fn apply_modifier(
        &self,
        start: usize,
        name: &str,
        modifier: char,
        null_is_unset: bool,
        word: String,
    ) -> Result<String, ExpandError> {
        let value = (self.lookup)(name);
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match modifier {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '#' | '%' => {
                let value = value.unwrap_or_default();
                // `##`/`%%` are greedy (longest match).
                let (greedy, pattern) = match word.strip_prefix(modifier) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                let trimmed = if modifier == '#' {
                    trim_prefix(&pattern, &value, greedy)
                } else {
                    trim_suffix(&pattern, &value, greedy)
                };
                trimmed.map_err(|message| ExpandError {
                    offset: start,
                    message,
                })
            }
            _ => {
                if unset {
                    let what = if value.is_none() {
                        "is not allowed to be unset"
                    } else {
                        "is not allowed to be empty"
                    };
                    let msg = if word.is_empty() {
                        what.to_string()
                    } else {
                        word
                    };
                    Self::err(start, format!("{name}: {msg}"))
                } else {
                    Ok(value.unwrap_or_default())
                }
            }
        }
    }

    /// `${NAME/pattern/string}` and `${NAME//pattern/string}` after the first `/`.
    fn replace(&mut self, start: usize, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on_raw(Some('/')) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => {
                return Self::err(start, "syntax error: missing '/' in ${}")
            }
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on_raw(Some('}')) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => {
                return Self::err(start, "syntax error: missing '}'")
            }
            Err(e) => return Err(e),
        };
        let value = (self.lookup)(name).unwrap_or_default();
        let pat = Pattern::compile(&pattern, true).map_err(|message| ExpandError {
            offset: start,
            message: format!("invalid pattern ({pattern}) in substitution: {message}"),
        })?;
        if !all {
            // BuildKit: the first match is replaced by the replacement as it is.
            return Ok(match pat.find_from(&value, 0) {
                Some((s, e)) => format!("{}{replacement}{}", &value[..s], &value[e..]),
                None => value,
            });
        }
        // Go's `Regexp.ReplaceAllString`, step for step: an empty match right after another
        // match is not replaced, and the search always advances by at least one character.
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= value.len() {
            let Some((s, e)) = pat.find_from(&value, search) else {
                break;
            };
            out.push_str(&value[last_end..s]);
            if e > last_end || s == 0 {
                out.push_str(&go_expand_replacement(&replacement, &value[s..e]));
                if out.len() > MAX_EXPANSION {
                    return Self::err(start, "expansion exceeds 1 MiB");
                }
            }
            last_end = e;
            let width = value[search..].chars().next().map_or(0, char::len_utf8);
            if search + width > e {
                search += width;
            } else if search + 1 > e {
                search += 1;
            } else {
                search = e;
            }
        }
        out.push_str(&value[last_end..]);
        Ok(out)
    }
}
