//! `.dockerignore` selection: reading an ignore file as moby's `ignorefile.ReadAll` does, deciding
//! whether a context path is excluded (`MatchesOrParentMatches`: last matching pattern wins, a
//! pattern also matches a parent directory), and whether an excluded directory must still be
//! walked because an exception could match inside it (BuildKit `fsutil` walker).
//!
//! Level 1 (pure, no I/O: the caller reads the file). Must not walk directories or resolve
//! `COPY` sources.

use std::path::Path;

use super::error::ContextError;
use super::path::clean_path;
use super::pattern::IgnorePattern;

/// A compiled `.dockerignore`: which context paths are excluded.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<IgnorePattern>,
    has_exclusions: bool,
}

impl Ignore {
    /// Reads ignore-file text as moby's `ignorefile.ReadAll` does: a UTF-8 BOM on the first line
    /// is dropped, lines starting with `#` are comments, whitespace is trimmed, each pattern is
    /// `filepath.Clean`ed and a leading `/` removed (`!` kept in front). `file` only names the
    /// source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Ignore, ContextError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = clean_path(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            if invert {
                cleaned.insert(0, '!');
            }
            lines.push((i + 1, line.to_string(), cleaned));
        }
        let mut ignore = Ignore::default();
        for (line, raw, cleaned) in lines {
            let compiled =
                IgnorePattern::new(&cleaned).map_err(|reason| ContextError::BadIgnorePattern {
                    file: file.to_path_buf(),
                    line,
                    pattern: raw.trim().to_string(),
                    reason,
                })?;
            if let Some(p) = compiled {
                ignore.has_exclusions |= p.exclusion;
                ignore.patterns.push(p);
            }
        }
        Ok(ignore)
    }

    /// Compiles `COPY --exclude` patterns (the `.dockerignore` syntax, one pattern each).
    /// `what` names them in errors (e.g. `Dockerfile:7 --exclude`).
    pub fn from_patterns(patterns: &[String], what: &Path) -> Result<Ignore, ContextError> {
        Ignore::parse(&patterns.join("\n"), what)
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when `rel` (a `/`-separated path relative to the context root) is excluded: moby
    /// `MatchesOrParentMatches`. Patterns apply in order and the last one that matches decides;
    /// a pattern also matches when it matches one of the path's parent directories. The context
    /// root itself is never excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let file = clean_path(rel);
        if file == "." {
            return false;
        }
        // Go `filepath.Dir`: everything up to the last separator, cleaned (`/x` → `/`).
        let parent = match file.rfind('/') {
            Some(i) => clean_path(&file[..=i]),
            None => ".".to_string(),
        };
        let parent = parent.as_str();
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion cannot change an already excluded path and an exception cannot
            // change a path nothing excluded yet.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            if !m && parent != "." {
                m = (1..=parent_dirs.len()).any(|n| p.matches(&parent_dirs[..n].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For an excluded directory `dir`: true when an exception (`!pattern`) could still match
    /// something inside it, so the directory must be walked. BuildKit fsutil `walker.go`: always
    /// when an exception (less a trailing `/**` or `/*`) has wildcards, else when the exception
    /// lies under `dir/`.
    pub fn may_include_inside(&self, dir: &str) -> bool {
        if !self.has_exclusions {
            return false;
        }
        let dir_slash = format!("{}/", clean_path(dir));
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            let s = p.cleaned.as_str();
            let trimmed = s.strip_suffix("/**").unwrap_or(s);
            let trimmed = trimmed.strip_suffix("/*").unwrap_or(trimmed);
            trimmed.contains(['*', '?', '[', '\\']) || format!("{s}/").starts_with(&dir_slash)
        })
    }

    /// True when `rel` is visible in the context: not excluded, or an excluded directory that an
    /// exception may reach into.
    pub(super) fn visible(&self, rel: &str, is_dir: bool) -> bool {
        !self.is_excluded(rel) || (is_dir && self.may_include_inside(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ign(patterns: &[&str]) -> Ignore {
        Ignore::parse(&patterns.join("\n"), Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn dockerignore_table() {
        // (patterns, path, excluded) — cases from moby patternmatcher's tests and the
        // .dockerignore documentation.
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*.go"], "main.go", true),
            (&["*.go"], "cmd/main.go", false),
            (&["**/*.go"], "cmd/main.go", true),
            (&["**/*.go"], "main.go", true),
            (&["*/temp*"], "somedir/temporary.txt", true),
            (&["*/temp*"], "somedir/sub/temporary.txt", false),
            (&["*/*/temp*"], "somedir/subdir/temporary.txt", true),
            (&["temp?"], "temp1", true),
            (&["temp?"], "temp12", false),
            (&["docs"], "docs/readme.md", true),
            (&["docs"], "docsx/readme.md", false),
            (&["/docs/"], "docs/a/b", true),
            (&["./docs"], "docs", true),
            (&["docs/../src"], "src/x", true),
            (&["*.md", "!README.md"], "README.md", false),
            (&["*.md", "!README.md"], "CHANGES.md", true),
            (
                &["*.md", "!README*.md", "README-secret.md"],
                "README-secret.md",
                true,
            ),
            (
                &["*.md", "!README*.md", "README-secret.md"],
                "README-public.md",
                false,
            ),
            (&["!README.md", "*.md"], "README.md", true),
            (&["dir/**"], "dir/a/b", true),
            (&["dir/**"], "dir", false),
            (&["**"], "anything/at/all", true),
            (&["**/node_modules"], "a/b/node_modules/x.js", true),
            (&["**/node_modules"], "node_modules", true),
            (&["**foo"], "barfoo", true),
            (&["a/**/b"], "a/b", true),
            (&["a/**/b"], "a/x/y/b", true),
            (&["a/**/b"], "a/x/y/c", false),
            (&["[a-c]*.txt"], "b1.txt", true),
            (&["[a-c]*.txt"], "d1.txt", false),
            (&["[^a-c]*.txt"], "d1.txt", true),
            (&[r"\*.txt"], "*.txt", true),
            (&[r"\*.txt"], "a.txt", false),
            (&["a.b"], "axb", false),
            (&["a(b)+c"], "a(b)+c", true),
            (&["# comment", "x"], "# comment", false),
            (&["  spaced.txt  "], "spaced.txt", true),
            (&["build", "!build/keep"], "build/keep", false),
            (&["build", "!build/keep"], "build/other", true),
            (&["*"], ".", false),
            // `**` anywhere, with and without slashes around it.
            (&["**"], "a", true),
            (&["**/"], "deep/er/file", true),
            (&["src/**/test"], "src/test", true),
            (&["src/**/test"], "src/a/b/test/x.go", true),
            (&["src/**/test"], "src/a/b/tests", false),
            (&["**/*.log"], "logs/2024/app.log", true),
            (&["**/*.log"], "app.log.1", false),
            (&["x**"], "xyz/deeper", true),
            (&["x**"], "yx", false),
            (&["**.md"], "docs/a.md", true),
            // Exceptions: order matters, and a later exclusion wins again.
            (&["*.md", "!*.md"], "a.md", false),
            (&["!*.md", "*.md"], "a.md", true),
            (
                &["docs", "!docs/api", "docs/api/private"],
                "docs/api/public.md",
                false,
            ),
            (
                &["docs", "!docs/api", "docs/api/private"],
                "docs/api/private/x",
                true,
            ),
            (&["**", "!keep/**"], "keep/a/b", false),
            (&["**", "!keep/**"], "other/keep/a", true),
            // Leading and trailing slashes, cleaned patterns and paths.
            (&["/a/b/"], "a/b", true),
            (&["a//b"], "a/b/c", true),
            (&["a/./b/../c"], "a/c/d", true),
            // A relative pattern keeps a leading `..` (Go `filepath.Clean`): it matches nothing.
            (&["../escape"], "escape", false),
            (&["a"], "./a/", true),
            (&["a"], "b/../a/x", true),
            (&["a/b"], "a", false),
            // Exact matches are literal text.
            (&["a+b"], "a+b", true),
            (&["a{1}"], "a{1}", true),
            (&["$x.txt"], "$x.txt", true),
            // As in moby's regex translation: `^` and `\d` keep their regex meaning once the
            // pattern has a wildcard, `.+()|{}$` are escaped.
            (&["a^*"], "a^b", false),
            (&[r"\d*"], "7zip", true),
            (&[r"\d*"], "dzip", false),
            (&["a.*"], "a.out", true),
            (&["a.*"], "abc", false),
            (&["(x)*"], "(x)y", true),
            // Classes: ranges, negation, escapes, non-ASCII.
            (&["[0-9][0-9]*"], "42.txt", true),
            (&["[0-9][0-9]*"], "4a.txt", false),
            (&["file[!]"], "file!", true),
            (&["v[^0-9]*"], "vx", true),
            (&["v[^0-9]*"], "v1", false),
            (&[r"a[\]]b"], "a]b", true),
            (&["[α-ω]*"], "λambda", true),
            (&["?.txt"], "é.txt", true),
            (&["a?b"], "a/b", false),
            // A pattern matches a parent directory: everything below is excluded.
            (&["*/tmp"], "x/tmp/a/b", true),
            (&["*/tmp"], "x/y/tmp/a", false),
            (&["node_modules"], "a/node_modules", false),
            // Regression (fuzz): the parent of `/x` is `/` (Go `filepath.Dir`).
            (&["/"], "/x", true),
        ];
        for (patterns, path, want) in cases {
            assert_eq!(
                ign(patterns).is_excluded(path),
                *want,
                "patterns {patterns:?} path {path:?}"
            );
        }
        assert!(cases.len() >= 80, "{} pairs", cases.len());
    }

    #[test]
    fn dockerignore_parsing_and_errors() {
        let i = Ignore::parse("\u{feff}*.log\n\n# c\n!keep.log\n", Path::new("x")).unwrap();
        assert!(i.is_excluded("a.log"));
        assert!(!i.is_excluded("keep.log"));
        let err = Ignore::parse("ok\n!\n", Path::new("ctx/.dockerignore")).unwrap_err();
        assert!(
            matches!(&err, ContextError::BadIgnorePattern { line: 2, .. }),
            "{err:?}"
        );
        let err = Ignore::parse("[a-\n", Path::new("x")).unwrap_err();
        assert!(matches!(
            err,
            ContextError::BadIgnorePattern { line: 1, .. }
        ));
        assert!(err.to_string().contains("x:1"));
    }

    #[test]
    fn descends_into_excluded_dirs_only_when_an_exception_could_match() {
        assert!(!ign(&["build"]).may_include_inside("build"));
        assert!(ign(&["build", "!build/keep"]).may_include_inside("build"));
        assert!(!ign(&["build", "!other/keep"]).may_include_inside("build"));
        assert!(ign(&["build", "!**/*.keep"]).may_include_inside("build"));
        assert!(ign(&["a", "!a/b/c"]).may_include_inside("a/b"));
    }
}
