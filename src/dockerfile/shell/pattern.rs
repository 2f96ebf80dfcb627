//! Shell patterns in `${NAME#p}`, `${NAME%p}` and `${NAME/p/r}`: BuildKit turns them into Go
//! regular expressions (`convertShellPatternToRegex`); this matches them directly with the
//! same leftmost-first answers, and expands replacement templates as Go's
//! `Regexp.ReplaceAllString` does.
//!
//! Level 0 (pure). Must not know about variables or the lexer.

/// Go's `Regexp.ReplaceAllString` template expansion for a pattern without groups: `$$` is `$`,
/// `$0`/`${0}` the match, any other `$name`/`${name}` nothing.
pub(super) fn go_expand_replacement(template: &str, matched: &str) -> String {
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
pub(super) struct Pattern {
    toks: Vec<PatTok>,
    greedy: bool,
}

impl Pattern {
    pub(super) fn compile(pattern: &str, greedy: bool) -> Result<Pattern, String> {
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
    pub(super) fn find_from(&self, s: &str, from: usize) -> Option<(usize, usize)> {
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
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
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
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed: String = value.chars().rev().collect();
    let out = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(out.chars().rev().collect())
}
