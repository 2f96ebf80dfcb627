//! `/`-separated context paths as Docker handles them: Go's `path.Clean`, a `COPY` source split
//! into components relative to the root, backslash escapes removed from a literal component, a
//! name joined under a destination directory.
//!
//! Level 1 (pure string work, no I/O). Must not touch the filesystem or know about ignore rules.

use super::error::ContextError;

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

/// `name` under the destination directory `dir` (`/` joins without a double slash).
pub(super) fn join_dest(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Removes backslash escapes from a literal path component.
pub(super) fn unescape_literal(s: &str) -> String {
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
pub(super) fn normalize_source(source: &str, chroot: bool) -> Result<Vec<String>, ContextError> {
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
}
