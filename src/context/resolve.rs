//! Resolving a `COPY` source path inside the context by hand, one component at a time, so that a
//! symlink is followed only while it stays inside the context (or, in an image root, as in a
//! chroot) and nothing outside is ever read.
//!
//! Level 1 (sync file I/O through explicit paths). Must not expand wildcards or walk trees.

use std::collections::VecDeque;

use super::error::ContextError;
use super::open::BuildContext;

/// Symlink hops allowed while resolving one source path (Linux `MAXSYMLINKS` is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// One resolved `COPY` source match.
pub(super) struct Match {
    /// Last component of the path as named (the name used under a directory destination).
    pub(super) name: String,
    /// Resolved path components relative to the root (no symlinks).
    pub(super) resolved: Vec<String>,
}

impl BuildContext {
    /// Resolves symlinks along `comps` inside the context. `Ok(None)` when a component is
    /// missing; an error when a link leads out of the context or loops.
    pub(super) fn resolve(
        &self,
        comps: &[String],
        name: &str,
    ) -> Result<Option<Vec<String>>, ContextError> {
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
}
