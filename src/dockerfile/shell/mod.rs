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
//! Level 0: pure.

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
    /// Quotes are ordinary characters (heredoc bodies).
    skip_quotes: bool,
    /// Escape characters are kept in the output (inside `${V#p}`, `${V%p}`, `${V/p/r}`, whose
    /// patterns interpret backslashes themselves).
    raw_escapes: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            chars: text.char_indices().collect(),
            pos: 0,
            len: text.len(),
            escape,
            lookup,
            skip_quotes: false,
            raw_escapes: false,
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

    /// [`Lexer::process_stop_on`] with escapes kept raw for its duration.
    fn process_stop_on_raw(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.raw_escapes;
        self.raw_escapes = true;
        let r = self.process_stop_on(stop);
        self.raw_escapes = saved;
        r
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
                '\'' if !self.skip_quotes => {
                    let s = self.single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' if !self.skip_quotes => {
                    let start = self.offset();
                    let s = self.double_quote()?;
                    if result.len() + s.len() > MAX_EXPANSION {
                        return Self::err(start, "expansion exceeds 1 MiB");
                    }
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '$' => {
                    let start = self.offset();
                    let s = self.dollar()?;
                    if result.len() + s.len() > MAX_EXPANSION {
                        return Self::err(start, "expansion exceeds 1 MiB");
                    }
                    words.add_string(&s);
                    result.push_str(&s);
                }
                '<' => {
                    let s = self.possible_heredoc();
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
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

    /// `<`: a lone `<` is a character; `<<` keeps the blanks after it so that `<< EOF` stays
    /// one word.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            self.next();
            out.push(c);
        }
        out
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
        let value = (self.lookup)(&name);
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

/// Go's `Regexp.ReplaceAllString` template expansion for a pattern without groups: `$$` is `$`,
/// `$0`/`${0}` the match, any other `$name`/`${name}` nothing.
fn go_expand_replacement(template: &str, matched: &str) -> String {
    let mut out = String::new();
    let mut it = template.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let rest = &template[i + 1..];
        if rest.starts_with('$') {
            it.next();
            out.push('$');
            continue;
        }
        let (name, used) = if let Some(b) = rest.strip_prefix('{') {
            match b.find('}') {
                Some(end)
                    if end > 0 && b[..end].chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    (&b[..end], end + 2)
                }
                _ => {
                    out.push('$');
                    continue;
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                out.push('$');
                continue;
            }
            (&rest[..end], end)
        };
        if name.chars().all(|c| c.is_ascii_digit()) && name.parse::<usize>() == Ok(0) {
            out.push_str(matched);
        }
        for _ in 0..rest[..used].chars().count() {
            it.next();
        }
    }
    out
}

/// One token of a shell pattern.
#[derive(Debug, Clone, PartialEq)]
enum PatTok {
    /// `*`: any string.
    Star,
    /// `?`: one character.
    Any,
    /// A literal character.
    Lit(char),
}

/// A compiled shell pattern (BuildKit `convertShellPatternToRegex`: `*`, `?`, a backslash escaping
/// `*`, `?` or a backslash; an escaped `}` or `/` is the character itself).
#[derive(Debug, Clone)]
struct Pattern {
    toks: Vec<PatTok>,
    greedy: bool,
}

impl Pattern {
    fn compile(pattern: &str, greedy: bool) -> Result<Pattern, String> {
        let mut toks = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => toks.push(PatTok::Star),
                '?' => toks.push(PatTok::Any),
                '\\' => match it.peek().copied() {
                    Some(n @ ('}' | '/')) => {
                        // The escape belongs to the `${}` syntax, not to the pattern; the
                        // character itself comes on the next turn.
                        let _ = n;
                    }
                    Some(n @ ('*' | '?' | '\\')) => {
                        it.next();
                        toks.push(PatTok::Lit(n));
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape '\\'".into()),
                },
                c => toks.push(PatTok::Lit(c)),
            }
        }
        Ok(Pattern { toks, greedy })
    }

    /// The length (in chars) of the prefix of `s` the pattern matches first, in the order a
    /// backtracking regex engine tries them (greedy stars longest first, lazy ones shortest
    /// first), which is the leftmost-first match Go's regexp reports. Failures are memoised per
    /// (token, position), so the search is polynomial whatever the pattern.
    fn first_prefix_match(&self, s: &[char]) -> Option<usize> {
        fn go(
            toks: &[PatTok],
            t: usize,
            s: &[char],
            at: usize,
            greedy: bool,
            failed: &mut std::collections::HashSet<(usize, usize)>,
        ) -> Option<usize> {
            if failed.contains(&(t, at)) {
                return None;
            }
            let found = match toks.get(t) {
                None => Some(at),
                Some(PatTok::Star) => {
                    let mut order: Box<dyn Iterator<Item = usize>> = if greedy {
                        Box::new((at..=s.len()).rev())
                    } else {
                        Box::new(at..=s.len())
                    };
                    order.find_map(|k| go(toks, t + 1, s, k, greedy, failed))
                }
                Some(PatTok::Any) => {
                    (at < s.len()).then(|| go(toks, t + 1, s, at + 1, greedy, failed))?
                }
                Some(PatTok::Lit(c)) => {
                    (s.get(at) == Some(c)).then(|| go(toks, t + 1, s, at + 1, greedy, failed))?
                }
            };
            if found.is_none() {
                failed.insert((t, at));
            }
            found
        }
        go(
            &self.toks,
            0,
            s,
            0,
            self.greedy,
            &mut std::collections::HashSet::new(),
        )
    }

    /// The leftmost match in `s` starting at byte offset `from` or later, as byte offsets.
    /// Among matches at one start, the first one a backtracking engine finds wins (Go's RE2
    /// reports the same leftmost-first match).
    fn find_from(&self, s: &str, from: usize) -> Option<(usize, usize)> {
        let chars: Vec<(usize, char)> = s.char_indices().collect();
        let only: Vec<char> = chars.iter().map(|&(_, c)| c).collect();
        let byte_at = |i: usize| chars.get(i).map_or(s.len(), |&(b, _)| b);
        let first = chars
            .iter()
            .position(|&(b, _)| b >= from)
            .unwrap_or(chars.len());
        (first..=only.len()).find_map(|start| {
            self.first_prefix_match(&only[start..])
                .map(|len| (byte_at(start), byte_at(start + len)))
        })
    }

    /// The match at the very start of `s`, if any, as a byte length.
    fn match_prefix(&self, s: &str) -> Option<usize> {
        let only: Vec<char> = s.chars().collect();
        self.first_prefix_match(&only)
            .map(|len| only[..len].iter().map(|c| c.len_utf8()).sum())
    }
}

/// `${V#p}` / `${V##p}`: removes the shortest (longest) prefix matching `pattern`.
fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let pat = Pattern::compile(pattern, greedy)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    Ok(match pat.match_prefix(value) {
        Some(end) => value[end..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern keeping escapes in front of what they escape (`a\\*c` → `c\\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            units.push(format!("\\{}", chars[i + 1]));
            i += 2;
        } else {
            units.push(chars[i].to_string());
            i += 1;
        }
    }
    units.reverse();
    units.concat()
}

/// `${V%p}` / `${V%%p}`: removes the shortest (longest) suffix matching `pattern`, by matching
/// the reversed pattern against the reversed value as BuildKit does.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(out.chars().rev().collect())
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

    fn pv(name: &str) -> Option<String> {
        match name {
            "P" => Some("/usr/local/lib/libfoo.so.1.2".into()),
            "F" => Some("foo.tar.gz".into()),
            "S" => Some("a-b-c-b".into()),
            "U" => Some("äöü.x".into()),
            "STAR" => Some("a*b".into()),
            _ => None,
        }
    }

    fn p(s: &str) -> String {
        expand_word(s, '\\', &pv).unwrap()
    }

    #[test]
    fn pattern_forms() {
        // Prefix removal: shortest and longest.
        assert_eq!(p("${P#*/}"), "usr/local/lib/libfoo.so.1.2");
        assert_eq!(p("${P##*/}"), "libfoo.so.1.2");
        assert_eq!(p("${F#foo}"), ".tar.gz");
        assert_eq!(p("${F#bar}"), "foo.tar.gz");
        assert_eq!(p("${F#f?o}"), ".tar.gz");
        // Suffix removal.
        assert_eq!(p("${F%.*}"), "foo.tar");
        assert_eq!(p("${F%%.*}"), "foo");
        assert_eq!(p("${P%/*}"), "/usr/local/lib");
        assert_eq!(p("${P%%/*}"), "");
        assert_eq!(p("${U%.x}"), "äöü");
        assert_eq!(p("${U#ä?}"), "ü.x");
        // Replacement: first match (greedy), all matches.
        assert_eq!(p("${S/b/X}"), "a-X-c-b");
        assert_eq!(p("${S//b/X}"), "a-X-c-X");
        assert_eq!(p("${S/b*/X}"), "a-X");
        assert_eq!(p("${S//-/}"), "abcb");
        assert_eq!(p("${S/nomatch/X}"), "a-b-c-b");
        assert_eq!(p("${UNSET//a/b}"), "");
        assert_eq!(p("${UNSET#x}"), "");
        // Escaped wildcards are literal; `\}` and `\/` belong to the syntax.
        assert_eq!(p("${STAR/\\*/+}"), "a+b");
        assert_eq!(p("${STAR#a\\*}"), "b");
        assert_eq!(p("${P/\\/usr/X}"), "X/local/lib/libfoo.so.1.2");
        // Variables in patterns and replacements.
        assert_eq!(p("${F%.${UNSET:-gz}}"), "foo.tar");
        assert_eq!(p("${S//b/${F%%.*}}"), "a-foo-c-foo");
        // Go template expansion in a replace-all: `$$` is `$`.
        assert_eq!(p("${S//b/$$}"), "a--c-");
        assert_eq!(p("${S//b/\\$\\$}"), "a-\\$\\$-c-\\$\\$");
        // Empty matches: Go's ReplaceAllString rules.
        assert_eq!(p("${S//*/_}"), "_");
        assert_eq!(p("${UNSET//*/_}"), "_");
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let h = |s: &str| expand_heredoc(s, &env).unwrap();
        assert_eq!(h("say '$A' \"$A\"\n"), "say 'a' \"a\"\n");
        assert_eq!(h("\\$A \\\\ x\\y"), "$A \\ xy");
        assert_eq!(h("${UNSET:-dflt}"), "dflt");
        assert!(expand_heredoc("${A", &env).is_err());
    }

    #[test]
    fn heredoc_operator_stays_one_word() {
        assert_eq!(ws("cat << EOF x"), ["cat", "<< EOF", "x"]);
        assert_eq!(ws("a < b"), ["a", "<", "b"]);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("${A").message, "syntax error: missing '}'");
        assert_eq!(err("x${}").message, "syntax error: bad substitution");
        assert_eq!(err("x${}").offset, 1);
        assert_eq!(err("${:-a}").message, "syntax error: bad substitution");
        assert_eq!(err("${A:-x").message, "syntax error: missing '}'");
        assert_eq!(
            err("${A:#x}").message,
            "unsupported modifier (:#) in substitution"
        );
        assert_eq!(err("${A/x").message, "syntax error: missing '/' in ${}");
        assert_eq!(err("${A/x/y").message, "syntax error: missing '}'");
        assert_eq!(
            err("${A#\\x}").message,
            "invalid pattern (\\x) in substitution: invalid escape '\\x'"
        );
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
