//! Expanding a wildcard `COPY` source (Go `filepath.Glob`) into the matching paths of the
//! context, component by component, each resolved inside the context and filtered by the
//! ignore rules.
//!
//! Level 1 (sync file I/O through explicit paths). Must not walk into the matches.

use super::error::ContextError;
use super::glob::{has_wildcard, Glob};
use super::open::BuildContext;
use super::path::unescape_literal;
use super::resolve::Match;

impl BuildContext {
    /// Expands a wildcard source component by component (Go `filepath.Glob`: names sorted per
    /// directory; `*` matches dot files too). Excluded matches are dropped.
    pub(super) fn expand(
        &self,
        source: &str,
        comps: &[String],
    ) -> Result<Vec<Match>, ContextError> {
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
}
