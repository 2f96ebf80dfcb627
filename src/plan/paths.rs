//! Slash paths in the image as BuildKit cleans them: Go's `path.Clean` and BuildKit's
//! `system.NormalizePath` (a path made absolute against the working directory, a trailing `/`
//! kept where it means "into this directory").
//!
//! Level 0: string functions only, no I/O (these are paths inside the image, never on the host).

/// Cleans an absolute slash path like Go's `path.Clean` (no `.`/`..`/empty components).
pub(crate) fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `p` made absolute against `cwd` and cleaned (BuildKit `system.NormalizePath`). With
/// `keep_slash`, a path that names a directory (`dir/`, `.`, `..`, `x/.`) keeps or gains a
/// trailing `/` so the executor copies *into* it.
pub(crate) fn normalize_path(cwd: &str, p: &str, keep_slash: bool) -> String {
    let joined = if p.starts_with('/') {
        clean_abs(p)
    } else {
        clean_abs(&format!("{cwd}/{p}"))
    };
    let dir_like =
        p.ends_with('/') || p == "." || p == ".." || p.ends_with("/.") || p.ends_with("/..");
    if keep_slash && dir_like && !joined.ends_with('/') {
        format!("{joined}/")
    } else {
        joined
    }
}

/// Go's `path.Clean` for relative or absolute paths (`""` becomes `.`).
pub(crate) fn go_clean(p: &str) -> String {
    if p.starts_with('/') {
        return clean_abs(p);
    }
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}
