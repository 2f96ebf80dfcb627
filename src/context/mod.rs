//! The build context: the directory whose files `COPY` can read, filtered by `.dockerignore`.
//!
//! Level 1 (sync file I/O through explicit paths). Two parts:
//! - [`Ignore`]: `.dockerignore` reading and matching with the semantics of moby's
//!   `patternmatcher` (`ignorefile.ReadAll`, `New`, `MatchesOrParentMatches`) and BuildKit's
//!   `fsutil` walker (when an excluded directory is still walked because an exception could match
//!   inside it);
//! - [`BuildContext::resolve_copy`]: Docker's `COPY` source rules turned into a flat, sorted list
//!   of [`CopyEntry`] values that the executor creates inside the image root filesystem.
//!
//! Paths inside the context are handled as `/`-separated UTF-8 strings relative to the context
//! root, as Docker does; symlinks are resolved by hand so that nothing outside the context is
//! ever read.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{Classify, ExitCode};

/// Symlink hops allowed while resolving one source path (Linux `MAXSYMLINKS` is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// Errors from opening a build context or resolving `COPY` sources in it.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be opened.
    #[error("cannot open build context {path}")]
    Open {
        /// The directory given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory inside the context cannot be read.
    #[error("cannot read {path} in the build context")]
    Read {
        /// The host path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `.dockerignore` pattern is malformed.
    #[error("{file}:{line}: bad ignore pattern {pattern:?}: {reason}")]
    BadIgnorePattern {
        /// The ignore file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A source path climbs above the context root with `..`.
    #[error("source {name:?} points outside the build context")]
    OutsideContext {
        /// The source as written in the Dockerfile.
        name: String,
    },
    /// A symlink on a source path leads outside the context.
    #[error("source {name:?} follows symlink {link} out of the build context")]
    SymlinkEscapes {
        /// The source as written.
        name: String,
        /// The symlink that escapes (host path).
        link: PathBuf,
    },
    /// Too many symlinks while resolving a source.
    #[error("too many levels of symbolic links resolving source {name:?}")]
    SymlinkLoop {
        /// The source as written.
        name: String,
    },
    /// A named source does not exist or is excluded by `.dockerignore`.
    #[error("file not found in build context or excluded by .dockerignore: {name}")]
    NotFound {
        /// The source as written.
        name: String,
    },
    /// `COPY` was given no sources at all.
    #[error("no source files were specified")]
    NoSources,
    /// A wildcard source is malformed (Go `filepath.Match` syntax).
    #[error("bad wildcard in source {name:?}: {reason}")]
    BadWildcard {
        /// The source as written.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A named source is neither a file, a directory nor a symlink (a socket, fifo or device).
    #[error("cannot copy {path}: not a regular file, directory or symlink")]
    UnsupportedFileType {
        /// The host path.
        path: PathBuf,
    },
    /// A path in the context is not valid UTF-8.
    #[error("path {path} in the build context is not valid UTF-8")]
    NonUtf8 {
        /// The host path.
        path: PathBuf,
    },
}

impl Classify for ContextError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }

    fn hint(&self) -> Option<String> {
        match self {
            ContextError::NotFound { .. } => Some(
                "COPY sources are relative to the build context; check the path and .dockerignore"
                    .into(),
            ),
            ContextError::OutsideContext { .. } | ContextError::SymlinkEscapes { .. } => Some(
                "move the file into the build context, or pick a wider context directory".into(),
            ),
            _ => None,
        }
    }
}

/// What a [`CopyEntry`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file, streamed from `src`.
    File,
    /// A directory (created if missing; an existing directory keeps its metadata).
    Dir,
    /// A symlink with this target, copied as a link (never followed).
    Symlink(String),
}

/// One filesystem object to create in the image root filesystem for a `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyEntry {
    /// Host path of the source inside the context, with every symlink on the way resolved (for
    /// [`EntryKind::Symlink`], the link itself).
    pub src: PathBuf,
    /// Absolute destination path in the root filesystem (`/app/main.go`).
    pub dest: String,
    /// What to create.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time of the source, seconds since the Unix epoch.
    pub mtime: i64,
    /// Owner to give the entry when COPY has no `--chown` (files unpacked from an ADD archive
    /// keep the archive's owners); `None` is `0:0`.
    #[serde(default)]
    pub owner: Option<(u32, u32)>,
}

/// Go's `path.Clean` for `/`-separated paths: collapses `//`, `.` and `..`, drops a trailing
/// slash; `..` at the root of a rooted path stays at the root; `""` becomes `"."`.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

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
struct Glob(Vec<GlobTok>);

impl Glob {
    fn new(pattern: &str) -> Result<Glob, String> {
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

    fn matches(&self, name: &str) -> bool {
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
fn has_wildcard(s: &str) -> bool {
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
struct IgnorePattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchKind,
}

impl IgnorePattern {
    /// moby `patternmatcher.New` for one line + `Pattern.compile`, character for character:
    /// the pattern is checked with Go's `filepath.Match` syntax, then turned into a Go regular
    /// expression the way moby does it (`*` → `[^/]*`, `?` → `[^/]`, `**` → `(.*/)?` or `.*`,
    /// only `.+()|{}$` escaped, brackets and `\X` passed through, so `^` and `\d` keep their
    /// regex meaning as in Docker), which [`go_regex_to_rust`] makes mean the same to the
    /// `regex` crate.
    fn new(raw: &str) -> Result<Option<IgnorePattern>, String> {
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
        #[derive(PartialEq)]
        enum T {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let chars: Vec<char> = p.chars().collect();
        let mut re = String::from("^");
        let mut t = T::Exact;
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
                        if t == T::Exact {
                            t = T::Prefix;
                        } else {
                            re.push_str(".*");
                            t = T::Regex;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        t = T::Regex;
                    }
                    if token == 0 {
                        t = T::Suffix;
                    }
                }
                '*' => {
                    re.push_str("[^/]*");
                    t = T::Regex;
                }
                '?' => {
                    re.push_str("[^/]");
                    t = T::Regex;
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
                        t = T::Regex;
                    }
                    None => re.push('\\'),
                },
                '[' | ']' => {
                    re.push(c);
                    t = T::Regex;
                }
                c => re.push(c),
            }
            token += 1;
        }
        let kind = match t {
            T::Exact => MatchKind::Exact,
            T::Prefix => MatchKind::Prefix(p[..p.len() - 2].to_string()),
            T::Suffix => MatchKind::Suffix(p[2..].to_string()),
            T::Regex => {
                re.push('$');
                let rust = go_regex_to_rust(&re);
                MatchKind::Regex(regex::Regex::new(&rust).map_err(|e| e.to_string())?)
            }
        };
        Ok(Some(IgnorePattern {
            cleaned: p,
            exclusion,
            kind,
        }))
    }

    fn matches(&self, path: &str) -> bool {
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

/// Rewrites a Go (RE2) regular expression so that the `regex` crate reads it the same way. The
/// two agree outside brackets; inside a bracket expression Go takes `[` as a plain character
/// (unless it opens `[:class:]`) where the `regex` crate opens a nested class, and `&&`, `--`,
/// `~~` are set operations only to the latter. Those are escaped.
pub(crate) fn go_regex_to_rust(re: &str) -> String {
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
    fn visible(&self, rel: &str, is_dir: bool) -> bool {
        !self.is_excluded(rel) || (is_dir && self.may_include_inside(rel))
    }
}

/// An opened build context.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    ignore: Ignore,
    ignore_file: Option<PathBuf>,
    /// An image root filesystem rather than a build context: symlinks resolve as in a chroot
    /// (absolute targets from the root, `..` stops at the root) instead of being refused when
    /// they point outside.
    chroot: bool,
}

/// One resolved `COPY` source match.
struct Match {
    /// Last component of the path as named (the name used under a directory destination).
    name: String,
    /// Resolved path components relative to the root (no symlinks).
    resolved: Vec<String>,
}

impl BuildContext {
    /// Opens the context directory `dir` and reads its ignore file. The Dockerfile-specific
    /// `<dockerfile>.dockerignore` next to the Dockerfile takes precedence over `dir/.dockerignore`
    /// (BuildKit "Dockerfile-specific ignore-file"); neither existing means nothing is excluded.
    pub fn open(dir: &Path, dockerfile: &Path) -> Result<BuildContext, ContextError> {
        let open_err = |source| ContextError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let root = std::fs::canonicalize(dir).map_err(open_err)?;
        if !root.is_dir() {
            return Err(open_err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let mut specific = dockerfile.as_os_str().to_owned();
        specific.push(".dockerignore");
        let candidates = [PathBuf::from(specific), root.join(".dockerignore")];
        for path in candidates {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let ignore = Ignore::parse(&text, &path)?;
                    return Ok(BuildContext {
                        root,
                        ignore,
                        ignore_file: Some(path),
                        chroot: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ContextError::Read { path, source }),
            }
        }
        Ok(BuildContext {
            root,
            ignore: Ignore::default(),
            ignore_file: None,
            chroot: false,
        })
    }

    /// Opens an image root filesystem (a mounted stage or image) as a COPY source: nothing is
    /// ignored, and symlinks resolve as they would inside the image (absolute targets from its
    /// root, `..` stopping at the root), so `COPY --from` never reads outside it.
    pub fn rootfs(dir: &Path) -> Result<BuildContext, ContextError> {
        let root = std::fs::canonicalize(dir).map_err(|source| ContextError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(BuildContext {
            root,
            ignore: Ignore::default(),
            ignore_file: None,
            chroot: true,
        })
    }

    /// The canonical context root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The compiled ignore rules.
    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    /// The ignore file that was read, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// Resolves a `COPY <sources...> <dest>` into the entries to create, parents before
    /// children, sorted by destination path (a later source overrides an earlier one at the same
    /// destination). `dest` is absolute in the root filesystem; a relative `dest` is taken from
    /// `/` (join it with `WORKDIR` before calling).
    ///
    /// Docker rules (Dockerfile reference, "COPY"): each source is relative to the context root
    /// (a leading `/` too; `..` above the root is [`ContextError::OutsideContext`]); `*`, `?`,
    /// `[...]` are Go `filepath.Match` wildcards; a directory source copies its contents; several
    /// sources, several wildcard matches or a trailing `/` make `dest` a directory, otherwise a
    /// file source is written to `dest` itself; symlinks inside copied trees stay symlinks, a
    /// symlink on the source path is followed only within the context; excluded files are
    /// skipped and a named source that is excluded or missing is [`ContextError::NotFound`].
    pub fn resolve_copy(
        &self,
        sources: &[String],
        dest: &str,
    ) -> Result<Vec<CopyEntry>, ContextError> {
        self.resolve_copy_with(sources, dest, &Ignore::default())
    }

    /// [`BuildContext::resolve_copy`] with `COPY --exclude` patterns: they are matched against
    /// each path relative to the source that brought it in (for a directory source, its
    /// contents; for a file, its name), as BuildKit's copy does. A wildcard that matches nothing
    /// copies nothing (BuildKit `AllowEmptyWildcard`), so `COPY go.sum* ./` works without the
    /// file.
    pub fn resolve_copy_with(
        &self,
        sources: &[String],
        dest: &str,
        excludes: &Ignore,
    ) -> Result<Vec<CopyEntry>, ContextError> {
        if sources.is_empty() {
            return Err(ContextError::NoSources);
        }
        let mut matches = Vec::new();
        for source in sources {
            let comps = normalize_source(source, self.chroot)?;
            if has_wildcard(source) {
                matches.extend(self.expand(source, &comps)?);
            } else {
                let resolved =
                    self.resolve(&comps, source)?
                        .ok_or_else(|| ContextError::NotFound {
                            name: source.clone(),
                        })?;
                let md = self.lstat(&resolved)?;
                let named = comps.join("/");
                if !self.ignore.visible(&named, md.is_dir())
                    || !self.ignore.visible(&resolved.join("/"), md.is_dir())
                {
                    return Err(ContextError::NotFound {
                        name: source.clone(),
                    });
                }
                matches.push(Match {
                    name: comps.last().cloned().unwrap_or_default(),
                    resolved,
                });
            }
        }
        let dest_is_dir = dest.ends_with('/')
            || dest.ends_with("/.")
            || dest == "."
            || sources.len() > 1
            || matches.len() > 1;
        let dest = clean_path(&format!("/{dest}"));

        let mut out: BTreeMap<DestKey, CopyEntry> = BTreeMap::new();
        for m in matches {
            let rel = m.resolved.join("/");
            let host = self.host_path(&m.resolved);
            let md = self.lstat(&m.resolved)?;
            if md.is_dir() {
                if !self.ignore.is_excluded(&rel) && dest != "/" {
                    insert(&mut out, entry(&host, &dest, EntryKind::Dir, &md));
                }
                let mut children = Vec::new();
                let walk = Walk {
                    base_len: m.resolved.len(),
                    excludes,
                };
                self.walk(&m.resolved, &dest, &walk, &mut children)?;
                if self.ignore.is_excluded(&rel) && !children.is_empty() && dest != "/" {
                    insert(&mut out, entry(&host, &dest, EntryKind::Dir, &md));
                }
                for c in children {
                    insert(&mut out, c);
                }
            } else if md.is_file() {
                if !excludes.is_empty() && excludes.is_excluded(&m.name) {
                    continue;
                }
                let target = if dest_is_dir {
                    join_dest(&dest, &m.name)
                } else {
                    dest.clone()
                };
                insert(&mut out, entry(&host, &target, EntryKind::File, &md));
            } else {
                return Err(ContextError::UnsupportedFileType { path: host });
            }
        }
        Ok(out.into_values().collect())
    }

    fn host_path(&self, comps: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(comps);
        p
    }

    fn lstat(&self, comps: &[String]) -> Result<std::fs::Metadata, ContextError> {
        let path = self.host_path(comps);
        std::fs::symlink_metadata(&path).map_err(|source| ContextError::Read { path, source })
    }

    /// Resolves symlinks along `comps` inside the context. `Ok(None)` when a component is
    /// missing; an error when a link leads out of the context or loops.
    fn resolve(&self, comps: &[String], name: &str) -> Result<Option<Vec<String>>, ContextError> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: VecDeque<String> = comps.iter().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            let path = self.host_path(&done).join(&c);
            if c == ".." {
                if done.pop().is_none() && !self.chroot {
                    return Err(ContextError::SymlinkEscapes {
                        name: name.to_string(),
                        link: path,
                    });
                }
                continue;
            }
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.kind() == std::io::ErrorKind::NotADirectory =>
                {
                    return Ok(None)
                }
                Err(source) => return Err(ContextError::Read { path, source }),
            };
            if !md.file_type().is_symlink() {
                done.push(c);
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(ContextError::SymlinkLoop {
                    name: name.to_string(),
                });
            }
            let target = std::fs::read_link(&path).map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            let target_str = target
                .to_str()
                .ok_or_else(|| ContextError::NonUtf8 { path: path.clone() })?
                .to_string();
            let rest: Vec<String> = if target.is_absolute() && self.chroot {
                // In an image root an absolute target starts at that root.
                done.clear();
                target_str.split('/').map(str::to_string).collect()
            } else if target.is_absolute() {
                // An absolute target is a host path: allowed only when it is inside the context.
                let inside =
                    target
                        .strip_prefix(&self.root)
                        .map_err(|_| ContextError::SymlinkEscapes {
                            name: name.to_string(),
                            link: path.clone(),
                        })?;
                done.clear();
                inside
                    .to_str()
                    .ok_or_else(|| ContextError::NonUtf8 { path: path.clone() })?
                    .split('/')
                    .map(str::to_string)
                    .collect()
            } else {
                target_str.split('/').map(str::to_string).collect()
            };
            for r in rest.into_iter().rev() {
                todo.push_front(r);
            }
        }
        Ok(Some(done))
    }

    /// Expands a wildcard source component by component (Go `filepath.Glob`: names sorted per
    /// directory; `*` matches dot files too). Excluded matches are dropped.
    fn expand(&self, source: &str, comps: &[String]) -> Result<Vec<Match>, ContextError> {
        // (named components, resolved components)
        let mut cands: Vec<(Vec<String>, Vec<String>)> = vec![(Vec::new(), Vec::new())];
        for comp in comps {
            let mut next = Vec::new();
            for (named, resolved) in cands {
                if !has_wildcard(comp) {
                    let mut n = named.clone();
                    n.push(unescape_literal(comp));
                    let mut r = resolved.clone();
                    r.push(unescape_literal(comp));
                    if let Some(r) = self.resolve(&r, source)? {
                        next.push((n, r));
                    }
                    continue;
                }
                let glob = Glob::new(comp).map_err(|reason| ContextError::BadWildcard {
                    name: source.to_string(),
                    reason,
                })?;
                let dir = self.host_path(&resolved);
                if !dir.is_dir() {
                    continue;
                }
                let mut names = Vec::new();
                let rd = std::fs::read_dir(&dir).map_err(|source| ContextError::Read {
                    path: dir.clone(),
                    source,
                })?;
                for item in rd {
                    let item = item.map_err(|source| ContextError::Read {
                        path: dir.clone(),
                        source,
                    })?;
                    let name = item
                        .file_name()
                        .into_string()
                        .map_err(|_| ContextError::NonUtf8 { path: item.path() })?;
                    if glob.matches(&name) {
                        names.push(name);
                    }
                }
                names.sort();
                for name in names {
                    let mut n = named.clone();
                    n.push(name.clone());
                    let mut r = resolved.clone();
                    r.push(name);
                    if let Some(r) = self.resolve(&r, source)? {
                        next.push((n, r));
                    }
                }
            }
            cands = next;
        }
        let mut out = Vec::new();
        for (named, resolved) in cands {
            let is_dir = self.lstat(&resolved)?.is_dir();
            if self.ignore.visible(&named.join("/"), is_dir)
                && self.ignore.visible(&resolved.join("/"), is_dir)
            {
                out.push(Match {
                    name: named.last().cloned().unwrap_or_default(),
                    resolved,
                });
            }
        }
        Ok(out)
    }

    /// Collects the contents of directory `dir` (resolved components) as entries under `dest`,
    /// depth first, names in byte order, applying the ignore rules to each path.
    fn walk(
        &self,
        dir: &[String],
        dest: &str,
        w: &Walk<'_>,
        out: &mut Vec<CopyEntry>,
    ) -> Result<(), ContextError> {
        let host = self.host_path(dir);
        let mut names = Vec::new();
        let rd = std::fs::read_dir(&host).map_err(|source| ContextError::Read {
            path: host.clone(),
            source,
        })?;
        for item in rd {
            let item = item.map_err(|source| ContextError::Read {
                path: host.clone(),
                source,
            })?;
            names.push(
                item.file_name()
                    .into_string()
                    .map_err(|_| ContextError::NonUtf8 { path: item.path() })?,
            );
        }
        names.sort();
        for name in names {
            let mut comps = dir.to_vec();
            comps.push(name.clone());
            let rel = comps.join("/");
            let path = self.host_path(&comps);
            let md = self.lstat(&comps)?;
            let target = join_dest(dest, &name);
            let inner = comps[w.base_len..].join("/");
            let by_flag = !w.excludes.is_empty() && w.excludes.is_excluded(&inner);
            let excluded = self.ignore.is_excluded(&rel) || by_flag;
            let ft = md.file_type();
            if ft.is_dir() {
                let may_include = (!self.ignore.is_excluded(&rel)
                    || self.ignore.may_include_inside(&rel))
                    && (!by_flag || w.excludes.may_include_inside(&inner));
                if excluded && !may_include {
                    continue;
                }
                let mut children = Vec::new();
                self.walk(&comps, &target, w, &mut children)?;
                if !excluded || !children.is_empty() {
                    out.push(entry(&path, &target, EntryKind::Dir, &md));
                    out.append(&mut children);
                }
            } else if excluded {
                continue;
            } else if ft.is_symlink() {
                let link = std::fs::read_link(&path).map_err(|source| ContextError::Read {
                    path: path.clone(),
                    source,
                })?;
                let link = link
                    .into_os_string()
                    .into_string()
                    .map_err(|_| ContextError::NonUtf8 { path: path.clone() })?;
                out.push(entry(&path, &target, EntryKind::Symlink(link), &md));
            } else if ft.is_file() {
                out.push(entry(&path, &target, EntryKind::File, &md));
            }
            // Sockets, fifos and device nodes inside a copied tree are skipped.
        }
        Ok(())
    }
}

/// What a directory walk needs besides the ignore file: where the source that brought the
/// walk in starts (its components count), and the `--exclude` patterns relative to it.
struct Walk<'a> {
    base_len: usize,
    excludes: &'a Ignore,
}

/// Destination key ordering: by path components, so a directory sorts before its children.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DestKey(Vec<String>);

impl Ord for DestKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for DestKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn insert(out: &mut BTreeMap<DestKey, CopyEntry>, e: CopyEntry) {
    let key = DestKey(
        e.dest
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
    );
    out.insert(key, e);
}

fn entry(src: &Path, dest: &str, kind: EntryKind, md: &std::fs::Metadata) -> CopyEntry {
    let mode = if matches!(kind, EntryKind::Symlink(_)) {
        0o777
    } else {
        md.permissions().mode() & 0o7777
    };
    CopyEntry {
        src: src.to_path_buf(),
        dest: dest.to_string(),
        kind,
        mode,
        mtime: md.mtime(),
        owner: None,
    }
}

fn join_dest(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Removes backslash escapes from a literal path component.
fn unescape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Splits a source into components relative to the context root. A leading `/` means the
/// root; `..` that climbs above the root is an error naming the source (in a `chroot` tree it
/// stays at the root).
fn normalize_source(source: &str, chroot: bool) -> Result<Vec<String>, ContextError> {
    let mut out: Vec<String> = Vec::new();
    for comp in source.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                // In an image root `..` stops at `/`, as in a chroot.
                if out.pop().is_none() && !chroot {
                    return Err(ContextError::OutsideContext {
                        name: source.to_string(),
                    });
                }
            }
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn ign(patterns: &[&str]) -> Ignore {
        Ignore::parse(&patterns.join("\n"), Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn clean_path_follows_go() {
        for (input, want) in [
            ("", "."),
            ("a/b/", "a/b"),
            ("a//b/./c", "a/b/c"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("/", "/"),
            ("./a/", "a"),
            ("a/b/../c", "a/c"),
        ] {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
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

    /// A context tree:
    /// ```text
    /// a.txt b.txt c.md dir/{x.txt, sub/y.txt, link -> x.txt, abs -> /etc/passwd}
    /// ignored.log build/{out.bin, keep.txt} lnk-dir -> dir  lnk-out -> ../outside
    /// ```
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        std::fs::create_dir_all(ctx.join("dir/sub")).unwrap();
        std::fs::create_dir_all(ctx.join("build")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), "s").unwrap();
        for f in [
            "a.txt",
            "b.txt",
            "c.md",
            "dir/x.txt",
            "dir/sub/y.txt",
            "ignored.log",
            "build/out.bin",
            "build/keep.txt",
        ] {
            std::fs::write(ctx.join(f), f).unwrap();
        }
        std::fs::set_permissions(ctx.join("a.txt"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        symlink("x.txt", ctx.join("dir/link")).unwrap();
        symlink("/etc/passwd", ctx.join("dir/abs")).unwrap();
        symlink("dir", ctx.join("lnk-dir")).unwrap();
        symlink("../outside", ctx.join("lnk-out")).unwrap();
        std::fs::write(ctx.join(".dockerignore"), "*.log\nbuild\n!build/keep.txt\n").unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
        (tmp, ctx)
    }

    fn open(ctx: &Path) -> BuildContext {
        BuildContext::open(ctx, &ctx.join("Dockerfile")).unwrap()
    }

    fn dests(entries: &[CopyEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.dest.as_str()).collect()
    }

    fn srcs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_file_to_file_and_to_directory() {
        let (_t, ctx) = tree();
        let c = open(&ctx);
        let e = c.resolve_copy(&srcs(&["a.txt"]), "/app/renamed").unwrap();
        assert_eq!(dests(&e), ["/app/renamed"]);
        assert_eq!(e[0].kind, EntryKind::File);
        assert_eq!(e[0].mode, 0o750);
        assert_eq!(e[0].src, c.root().join("a.txt"));
        let md = std::fs::metadata(ctx.join("a.txt")).unwrap();
        assert_eq!(e[0].mtime, md.mtime());
        let e = c.resolve_copy(&srcs(&["/a.txt"]), "/app/").unwrap();
        assert_eq!(dests(&e), ["/app/a.txt"]);
        let e = c.resolve_copy(&srcs(&["./dir/../a.txt"]), "app").unwrap();
        assert_eq!(dests(&e), ["/app"]);
    }

    #[test]
    fn multiple_sources_make_dest_a_directory() {
        let (_t, ctx) = tree();
        let e = open(&ctx)
            .resolve_copy(&srcs(&["b.txt", "a.txt"]), "/app")
            .unwrap();
        assert_eq!(dests(&e), ["/app/a.txt", "/app/b.txt"]);
    }

    #[test]
    fn directory_copies_contents_with_symlinks_as_links() {
        let (_t, ctx) = tree();
        let e = open(&ctx).resolve_copy(&srcs(&["dir"]), "/srv").unwrap();
        assert_eq!(
            dests(&e),
            [
                "/srv",
                "/srv/abs",
                "/srv/link",
                "/srv/sub",
                "/srv/sub/y.txt",
                "/srv/x.txt"
            ]
        );
        assert_eq!(e[0].kind, EntryKind::Dir);
        assert_eq!(e[1].kind, EntryKind::Symlink("/etc/passwd".into()));
        assert_eq!(e[2].kind, EntryKind::Symlink("x.txt".into()));
        assert_eq!(e[3].kind, EntryKind::Dir);
        // Parents before children everywhere.
        for (i, x) in e.iter().enumerate() {
            for y in &e[i + 1..] {
                assert!(
                    !x.dest.starts_with(&format!("{}/", y.dest)),
                    "{x:?} after {y:?}"
                );
            }
        }
    }

    #[test]
    fn whole_context_honours_dockerignore() {
        let (_t, ctx) = tree();
        let e = open(&ctx).resolve_copy(&srcs(&["."]), "/").unwrap();
        let d = dests(&e);
        assert!(d.contains(&"/a.txt"));
        assert!(d.contains(&"/build"), "parent of an exception is kept");
        assert!(d.contains(&"/build/keep.txt"));
        assert!(!d.contains(&"/build/out.bin"));
        assert!(!d.contains(&"/ignored.log"));
        assert!(!d.contains(&"/"), "the root itself is never an entry");
        assert!(
            d.contains(&"/lnk-out"),
            "a symlink inside the tree is copied as a link"
        );
    }

    #[test]
    fn wildcards_follow_go_match() {
        let (_t, ctx) = tree();
        let c = open(&ctx);
        let e = c.resolve_copy(&srcs(&["*.txt"]), "/d/").unwrap();
        assert_eq!(dests(&e), ["/d/a.txt", "/d/b.txt"]);
        let e = c.resolve_copy(&srcs(&["?.md"]), "/d/c.md").unwrap();
        assert_eq!(
            dests(&e),
            ["/d/c.md"],
            "one match keeps the file destination"
        );
        let e = c.resolve_copy(&srcs(&["[ab].txt"]), "/d").unwrap();
        assert_eq!(
            dests(&e),
            ["/d/a.txt", "/d/b.txt"],
            "two matches make a directory"
        );
        let e = c.resolve_copy(&srcs(&["d*/s*/*.txt"]), "/d/").unwrap();
        assert_eq!(dests(&e), ["/d/y.txt"]);
        // BuildKit `AllowEmptyWildcard`: a wildcard matching nothing copies nothing.
        assert!(c
            .resolve_copy(&srcs(&["*.nope"]), "/d/")
            .unwrap()
            .is_empty());
        let e = c.resolve_copy(&srcs(&["*.nope", "a.txt"]), "/d/").unwrap();
        assert_eq!(dests(&e), ["/d/a.txt"]);
        assert!(
            c.resolve_copy(&srcs(&["*.log"]), "/d/").unwrap().is_empty(),
            "ignored files do not match"
        );
        let err = c.resolve_copy(&srcs(&["[x"]), "/d/").unwrap_err();
        assert!(matches!(err, ContextError::BadWildcard { .. }));
    }

    #[test]
    fn dotdot_above_root_is_an_error_naming_the_source() {
        let (_t, ctx) = tree();
        let err = open(&ctx)
            .resolve_copy(&srcs(&["../outside/secret"]), "/x")
            .unwrap_err();
        assert!(
            matches!(&err, ContextError::OutsideContext { name } if name == "../outside/secret")
        );
        assert!(err.to_string().contains("../outside/secret"));
        assert_eq!(err.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn symlinked_sources_are_followed_only_inside() {
        let (_t, ctx) = tree();
        let c = open(&ctx);
        let e = c.resolve_copy(&srcs(&["dir/link"]), "/x").unwrap();
        assert_eq!(e[0].kind, EntryKind::File);
        assert_eq!(e[0].src, c.root().join("dir/x.txt"));
        let e = c.resolve_copy(&srcs(&["lnk-dir/sub"]), "/s").unwrap();
        assert_eq!(dests(&e), ["/s", "/s/y.txt"]);
        let e = c.resolve_copy(&srcs(&["dir/link"]), "/d/").unwrap();
        assert_eq!(dests(&e), ["/d/link"], "the name as written is kept");
        for bad in ["lnk-out/secret", "dir/abs"] {
            let err = c.resolve_copy(&srcs(&[bad]), "/x").unwrap_err();
            assert!(
                matches!(err, ContextError::SymlinkEscapes { .. }),
                "{bad}: {err:?}"
            );
        }
        symlink("loop2", ctx.join("loop1")).unwrap();
        symlink("loop1", ctx.join("loop2")).unwrap();
        let err = c.resolve_copy(&srcs(&["loop1"]), "/x").unwrap_err();
        assert!(matches!(err, ContextError::SymlinkLoop { .. }));
        // An absolute link into the context itself is fine.
        symlink(c.root().join("a.txt"), ctx.join("abs-in")).unwrap();
        let e = c.resolve_copy(&srcs(&["abs-in"]), "/x").unwrap();
        assert_eq!(e[0].src, c.root().join("a.txt"));
    }

    #[test]
    fn missing_and_ignored_named_sources() {
        let (_t, ctx) = tree();
        let c = open(&ctx);
        for bad in ["nope.txt", "ignored.log", "build/out.bin", "dir/x.txt/more"] {
            let err = c.resolve_copy(&srcs(&[bad]), "/x").unwrap_err();
            assert!(
                matches!(&err, ContextError::NotFound { name } if name == bad),
                "{bad}"
            );
            assert!(err
                .to_string()
                .starts_with("file not found in build context or excluded by .dockerignore"));
        }
        let e = c.resolve_copy(&srcs(&["build/keep.txt"]), "/k").unwrap();
        assert_eq!(dests(&e), ["/k"]);
        let e = c.resolve_copy(&srcs(&["build"]), "/b").unwrap();
        assert_eq!(dests(&e), ["/b", "/b/keep.txt"]);
        assert!(matches!(
            c.resolve_copy(&[], "/x").unwrap_err(),
            ContextError::NoSources
        ));
    }

    #[test]
    fn dockerfile_specific_ignore_file_takes_precedence() {
        let (_t, ctx) = tree();
        std::fs::create_dir_all(ctx.join("docker")).unwrap();
        let df = ctx.join("docker/app.Dockerfile");
        std::fs::write(&df, "FROM scratch\n").unwrap();
        std::fs::write(ctx.join("docker/app.Dockerfile.dockerignore"), "*.txt\n").unwrap();
        let c = BuildContext::open(&ctx, &df).unwrap();
        assert_eq!(
            c.ignore_file(),
            Some(ctx.join("docker/app.Dockerfile.dockerignore").as_path())
        );
        assert!(c.ignore().is_excluded("a.txt"));
        assert!(
            !c.ignore().is_excluded("ignored.log"),
            "the general file is not merged"
        );
        let c = BuildContext::open(&ctx, &ctx.join("Dockerfile")).unwrap();
        assert!(c.ignore().is_excluded("ignored.log"));
        let err = BuildContext::open(&ctx.join("missing"), &df).unwrap_err();
        assert!(matches!(err, ContextError::Open { .. }));
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let (_t, ctx) = tree();
        let e = open(&ctx)
            .resolve_copy(&srcs(&["a.txt", "dir/x.txt", "dir/sub/y.txt"]), "/o/")
            .unwrap();
        assert_eq!(dests(&e), ["/o/a.txt", "/o/x.txt", "/o/y.txt"]);
        std::fs::write(ctx.join("x.txt"), "top").unwrap();
        let e = open(&ctx)
            .resolve_copy(&srcs(&["dir/x.txt", "x.txt"]), "/o/")
            .unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].src.ends_with("ctx/x.txt"));
    }
}
