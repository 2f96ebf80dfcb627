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
//!
//! Pattern operators (`${V#p}`, `${V%p}`, `${V/p/r}`) are reported as unsupported.
//!
//! Level 0: pure.

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

/// Word accumulator with BuildKit's splitting rules (`wordsStruct`).
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    len: usize,
    escape: char,
    lookup: Lookup<'a>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            chars: text.char_indices().collect(),
            pos: 0,
            len: text.len(),
            escape,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.len, |&(o, _)| o)
    }

    fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExpandError> {
        Err(ExpandError {
            offset,
            message: message.into(),
        })
    }

    /// Processes up to the end of input, or up to and including `stop` (then it is an error to
    /// reach the end first). Returns the joined word and the split words.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    words.add_string(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        // The escape character makes the next one literal; at the end of the
                        // word it is dropped (BuildKit `processStopOn`).
                        match self.next() {
                            Some(escaped) => {
                                words.add_raw_char(escaped);
                                result.push(escaped);
                            }
                            None => break,
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Self::err(
                self.offset(),
                format!("unexpected end of statement while looking for matching {c}"),
            ),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
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

    fn double_quote(&mut self) -> Result<String, ExpandError> {
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
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.next();
                    if c == self.escape {
                        match self.peek() {
                            // A trailing escape inside an unterminated quote: the quote error
                            // follows on the next turn.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.next();
                                out.push(n);
                            }
                            // Other escapes stay literal, escape character included.
                            Some(_) => out.push(c),
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
    }

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

    fn dollar(&mut self) -> Result<String, ExpandError> {
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
            Some(m @ ('-' | '+' | '?')) => (m, false),
            Some(m @ ('#' | '%' | '/')) => {
                return Self::err(
                    start,
                    format!(
                        "unsupported modifier ({m}) in substitution: pattern removal and \
                         replacement are not implemented"
                    ),
                )
            }
            Some(m) => {
                return Self::err(start, format!("unsupported modifier ({m}) in substitution"))
            }
        };
        let word = match self.process_stop_on(Some('}')) {
            Ok((w, _)) => w,
            Err(_) if self.peek().is_none() => {
                return Self::err(start, "syntax error: missing '}'")
            }
            Err(e) => return Err(e),
        };
        let value = (self.lookup)(&name);
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match modifier {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("x  y".into()),
            "Ü" => Some("umlaut".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        expand_word(s, '\\', &env).unwrap()
    }

    fn ws(s: &str) -> Vec<String> {
        expand_words(s, '\\', &env).unwrap()
    }

    fn err(s: &str) -> ExpandError {
        expand_word(s, '\\', &env).unwrap_err()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A"), "a");
        assert_eq!(w("${A}"), "a");
        assert_eq!(w("x${A}y"), "xay");
        assert_eq!(w("$A.b"), "a.b");
        assert_eq!(w("$UNSET"), "");
        assert_eq!(w("${UNSET}z"), "z");
        assert_eq!(w("$"), "$");
        assert_eq!(w("a$ b"), "a$ b");
        assert_eq!(w("$1x"), "x");
        assert_eq!(w("$$"), "");
        assert_eq!(w("$Ü"), "umlaut");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${A:-d}"), "a");
        assert_eq!(w("${UNSET:-d}"), "d");
        assert_eq!(w("${EMPTY:-d}"), "d");
        assert_eq!(w("${A-d}"), "a");
        assert_eq!(w("${UNSET-d}"), "d");
        assert_eq!(w("${EMPTY-d}"), "");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${EMPTY:+alt}"), "");
        assert_eq!(w("${UNSET:+alt}"), "");
        assert_eq!(w("${A+alt}"), "alt");
        assert_eq!(w("${EMPTY+alt}"), "alt");
        assert_eq!(w("${UNSET+alt}"), "");
        assert_eq!(w("${UNSET:-${A}/x}"), "a/x");
        assert_eq!(w("${UNSET:-'$A'}"), "$A");
        assert_eq!(w("${UNSET:-\"$A b\"}"), "a b");
        assert_eq!(w("${A:?}"), "a");
        assert_eq!(
            err("${UNSET:?}").message,
            "UNSET: is not allowed to be unset"
        );
        assert_eq!(err("${EMPTY:?need it}").message, "EMPTY: need it");
        assert_eq!(w("${EMPTY?}"), "");
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "a");
        assert_eq!(w("\"a b\""), "a b");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\\\\"), "\\");
        assert_eq!(w("a\\"), "a");
        assert_eq!(w("\"\\$A \\\" \\\\ \\n\""), "$A \" \\ \\n");
        assert_eq!(w("'it''s'"), "its");
        assert_eq!(w("'a\\b'"), "a\\b");
        assert_eq!(expand_word("`$A", '`', &env).unwrap(), "$A");
        assert_eq!(expand_word("\\$A", '`', &env).unwrap(), "\\a");
        assert_eq!(expand_word("\"`\"\"", '`', &env).unwrap(), "\"");
    }

    #[test]
    fn word_splitting() {
        assert_eq!(ws("a b  c"), ["a", "b", "c"]);
        assert_eq!(ws("$SP z"), ["x", "y", "z"]);
        assert_eq!(ws("\"$SP\" z"), ["x  y", "z"]);
        assert_eq!(ws("'a b'c"), ["a bc"]);
        assert_eq!(ws("a\\ b"), ["a b"]);
        assert_eq!(ws(""), Vec::<String>::new());
        assert_eq!(w("a  b"), "a  b");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("${A").message, "syntax error: missing '}'");
        assert_eq!(err("x${}").message, "syntax error: bad substitution");
        assert_eq!(err("x${}").offset, 1);
        assert_eq!(err("${:-a}").message, "syntax error: bad substitution");
        assert_eq!(err("${A:-x").message, "syntax error: missing '}'");
        assert!(err("${A#x}")
            .message
            .starts_with("unsupported modifier (#)"));
        assert_eq!(
            err("${A:x}").message,
            "unsupported modifier (:x) in substitution"
        );
        assert_eq!(
            err("ab'cd").message,
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(err("ab'cd").offset, 2);
        assert_eq!(
            err("\"cd").message,
            "unexpected end of statement while looking for matching double-quote"
        );
    }
}
