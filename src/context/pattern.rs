//! One `.dockerignore` pattern compiled the way moby's `patternmatcher` does it
//! (`Pattern.compile`): an exact path, a prefix, a suffix or a Go regular expression, which is
//! rewritten so that the `regex` crate reads it as Go's RE2 would.
//!
//! Level 1 (pure, no I/O). Must not decide the order or outcome of several patterns (that is
//! `ignore.rs`) nor read files.

use super::glob::Glob;
use super::path::clean_path;

/// How one ignore pattern matches (moby `patternmatcher` `matchType`).
#[derive(Debug, Clone)]
enum MatchKind {
    /// No wildcards: the path equals the pattern.
    Exact,
    /// `prefix**`: the path starts with the prefix.
    Prefix(String),
    /// `**suffix` with nothing else wild: the path ends with the suffix (or equals it without
    /// the leading `/`).
    Suffix(String),
    /// Anything else, as an anchored regular expression.
    Regex(regex::Regex),
}

/// One `.dockerignore` pattern, cleaned and compiled.
#[derive(Debug, Clone)]
pub(super) struct IgnorePattern {
    /// The pattern cleaned, without its leading `!`.
    pub(super) cleaned: String,
    /// A `!` exception: a match re-includes the path.
    pub(super) exclusion: bool,
    kind: MatchKind,
}

impl IgnorePattern {
    /// moby `patternmatcher.New` for one line + `Pattern.compile`, character for character:
    /// the pattern is checked with Go's `filepath.Match` syntax, then turned into a Go regular
    /// expression the way moby does it (`*` → `[^/]*`, `?` → `[^/]`, `**` → `(.*/)?` or `.*`,
    /// only `.+()|{}$` escaped, brackets and `\X` passed through, so `^` and `\d` keep their
    /// regex meaning as in Docker), which [`go_regex_to_rust`] makes mean the same to the
    /// `regex` crate.
    pub(super) fn new(raw: &str) -> Result<Option<IgnorePattern>, String> {
        let p = raw.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let p = clean_path(p);
        let (exclusion, p) = match p.strip_prefix('!') {
            Some("") => return Err("illegal exclusion pattern: \"!\"".into()),
            Some(rest) => (true, rest.to_string()),
            None => (false, p),
        };
        // moby: `filepath.Match(p, ".")` for its error only.
        Glob::new(&p).map_err(|e| format!("syntax error in pattern: {e}"))?;
        let kind = compile(&p)?;
        Ok(Some(IgnorePattern {
            cleaned: p,
            exclusion,
            kind,
        }))
    }

    /// True when the cleaned context path `path` matches this pattern alone.
    pub(super) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Regex(re) => re.is_match(path),
        }
    }
}

/// moby `Pattern.compile`'s match type while a pattern is translated; [`MatchKind`] is what it
/// compiles to.
#[derive(PartialEq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Compiles a cleaned, syntax-checked pattern (no `!`) into how it matches. Errors: the
/// translated regular expression does not compile.
fn compile(p: &str) -> Result<MatchKind, String> {
    let (t, mut re) = translate(p);
    Ok(match t {
        MatchType::Exact => MatchKind::Exact,
        MatchType::Prefix => MatchKind::Prefix(p[..p.len() - 2].to_string()),
        MatchType::Suffix => MatchKind::Suffix(p[2..].to_string()),
        MatchType::Regex => {
            re.push('$');
            let rust = go_regex_to_rust(&re);
            MatchKind::Regex(regex::Regex::new(&rust).map_err(|e| e.to_string())?)
        }
    })
}

/// moby `Pattern.compile`'s loop: the pattern's match type and its Go regular expression
/// (anchored at the start; the caller adds `$` when it is used).
fn translate(p: &str) -> (MatchType, String) {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut t = MatchType::Exact;
    let mut i = 0;
    let mut token = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is treated as `**`: the slash is eaten.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if t == MatchType::Exact {
                        t = MatchType::Prefix;
                    } else {
                        re.push_str(".*");
                        t = MatchType::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    t = MatchType::Regex;
                }
                if token == 0 {
                    t = MatchType::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                t = MatchType::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                t = MatchType::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.get(i) {
                Some(&e) => {
                    re.push('\\');
                    re.push(e);
                    i += 1;
                    t = MatchType::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(c);
                t = MatchType::Regex;
            }
            c => re.push(c),
        }
        token += 1;
    }
    (t, re)
}

/// Rewrites a Go (RE2) regular expression so that the `regex` crate reads it the same way. The
/// two agree outside brackets; inside a bracket expression Go takes `[` as a plain character
/// (unless it opens `[:class:]`) where the `regex` crate opens a nested class, and `&&`, `--`,
/// `~~` are set operations only to the latter. Those are escaped.
fn go_regex_to_rust(re: &str) -> String {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Position right after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            out.push(c);
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
            }
            i += 2;
            class_start = false;
            continue;
        }
        if !in_class {
            if c == '[' {
                in_class = true;
                class_start = true;
                out.push(c);
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            ']' if !class_start => {
                in_class = false;
                out.push(']');
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                // `[:alpha:]`: copied through to its closing `:]`.
                let rest: String = chars[i..].iter().collect();
                match rest.find(":]") {
                    Some(end) if end > 1 => {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        class_start = false;
                        continue;
                    }
                    _ => out.push_str("\\["),
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if chars.get(i + 1) == Some(&'-') => out.push_str("\\-"),
            c => out.push(c),
        }
        class_start = false;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_regexes_read_the_same_in_rust() {
        assert_eq!(go_regex_to_rust("^a[b-d]e$"), "^a[b-d]e$");
        assert_eq!(go_regex_to_rust("^[[]$"), "^[\\[]$");
        assert_eq!(go_regex_to_rust("^[]a]$"), "^[]a]$");
        assert_eq!(go_regex_to_rust("^[^]a]$"), "^[^]a]$");
        assert_eq!(
            go_regex_to_rust("^[a&&b~~c--d]$"),
            "^[a\\&\\&b\\~\\~c\\--d]$"
        );
        assert_eq!(go_regex_to_rust("^[[:digit:]x]$"), "^[[:digit:]x]$");
        assert_eq!(go_regex_to_rust(r"^\[[^/]*$"), r"^\[[^/]*$");
        // moby turns `[*]` into `[[^/]*]`: a class of `[`, `^`, `/`, then `*`, then `]`.
        let re = regex::Regex::new(&go_regex_to_rust("^[[^/]*]$")).unwrap();
        assert!(re.is_match("[[]") && re.is_match("/]") && re.is_match("]"));
        assert!(!re.is_match("a]"));
    }
}
