//! Go's `filepath.Match` for one path segment: `*`, `?`, `[...]` classes and `\` escapes,
//! compiled once and matched in time linear in pattern times name. `COPY` wildcard sources use
//! it, and `.dockerignore` patterns are checked against its syntax.
//!
//! Level 1 (pure, no I/O). Must not know about paths with several segments or the filesystem.

/// One token of a Go `filepath.Match` pattern.
#[derive(Debug, Clone)]
enum GlobTok {
    Star,
    Any,
    Class {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
    Lit(char),
}

/// Parses a `[...]` class starting after the `[` at `chars[*i]` (Go `filepath.Match`: `^`
/// negates, `lo-hi` ranges, `\` escapes, an unescaped `-` or `]` cannot start an item).
fn parse_class(chars: &[char], i: &mut usize) -> Result<GlobTok, String> {
    let mut negate = false;
    if chars.get(*i) == Some(&'^') {
        negate = true;
        *i += 1;
    }
    let mut ranges = Vec::new();
    let esc = |i: &mut usize| -> Result<char, String> {
        match chars.get(*i) {
            None => Err("unclosed character class".into()),
            Some('-') | Some(']') => Err("unexpected `-` or `]` in character class".into()),
            Some('\\') => {
                let c = chars
                    .get(*i + 1)
                    .copied()
                    .ok_or_else(|| "trailing backslash".to_string())?;
                *i += 2;
                Ok(c)
            }
            Some(c) => {
                *i += 1;
                Ok(*c)
            }
        }
    };
    loop {
        if chars.get(*i) == Some(&']') && !ranges.is_empty() {
            *i += 1;
            return Ok(GlobTok::Class { negate, ranges });
        }
        let lo = esc(i)?;
        let mut hi = lo;
        if chars.get(*i) == Some(&'-') {
            *i += 1;
            hi = esc(i)?;
        }
        ranges.push((lo, hi));
    }
}

/// A compiled Go `filepath.Match` pattern for one path segment.
#[derive(Debug, Clone)]
pub(super) struct Glob(Vec<GlobTok>);

impl Glob {
    /// Compiles `pattern`; the error says what is malformed (an unclosed class, a trailing
    /// backslash).
    pub(super) fn new(pattern: &str) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            toks.push(match c {
                '*' => GlobTok::Star,
                '?' => GlobTok::Any,
                '[' => parse_class(&chars, &mut i)?,
                '\\' => {
                    let e = chars
                        .get(i)
                        .copied()
                        .ok_or_else(|| "trailing backslash".to_string())?;
                    i += 1;
                    GlobTok::Lit(e)
                }
                c => GlobTok::Lit(c),
            });
        }
        Ok(Glob(toks))
    }

    /// True when the whole of `name` matches.
    pub(super) fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        // Dynamic programming over (token, position): `reach[i]` is true when the tokens so
        // far can consume exactly the first `i` characters. Linear in the pattern times the
        // name, whatever the stars.
        let mut reach = vec![false; chars.len() + 1];
        reach[0] = true;
        for tok in &self.0 {
            let mut next = vec![false; chars.len() + 1];
            match tok {
                GlobTok::Star => {
                    // `*` matches any run of non-separator characters.
                    for i in 0..=chars.len() {
                        if reach[i] || (i > 0 && next[i - 1] && chars[i - 1] != '/') {
                            next[i] = true;
                        }
                    }
                }
                tok => {
                    for i in 0..chars.len() {
                        if !reach[i] {
                            continue;
                        }
                        let c = chars[i];
                        let ok = match tok {
                            GlobTok::Any => c != '/',
                            GlobTok::Lit(l) => c == *l,
                            GlobTok::Class { negate, ranges } => {
                                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate
                            }
                            GlobTok::Star => unreachable!("handled above"),
                        };
                        next[i + 1] = ok;
                    }
                }
            }
            reach = next;
        }
        reach[chars.len()]
    }
}

/// True when a source path has unescaped wildcard characters (`*`, `?`, `[`).
pub(super) fn has_wildcard(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_glob_segments() {
        let m = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", ".hidden.txt"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[abc]x", "bx"));
        assert!(m("[^abc]x", "dx"));
        assert!(!m("[^abc]x", "ax"));
        assert!(m("[a-z0-9]", "7"));
        assert!(m(r"\[x", "[x"));
        assert!(m("*", ""));
        assert!(Glob::new("[").is_err());
        assert!(Glob::new("[]").is_err());
        assert!(Glob::new("a\\").is_err());
    }
}
