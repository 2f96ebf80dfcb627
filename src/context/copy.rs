//! `COPY` source selection: Docker's source rules (names relative to the context root,
//! wildcards, a trailing `/` or several sources making the destination a directory, directory
//! sources copying their contents) turned into a flat list of [`CopyEntry`] values sorted by
//! destination. This is the one place that decides which files a `COPY` takes.
//!
//! Level 1 (sync file I/O through explicit paths). Must not read file contents or hash them.

use std::collections::BTreeMap;

use super::entry::{entry, insert, link_hardlinks, CopyEntry, DestKey, EntryKind};
use super::error::ContextError;
use super::glob::has_wildcard;
use super::ignore::Ignore;
use super::open::BuildContext;
use super::path::{clean_path, join_dest, normalize_source};
use super::resolve::Match;
use super::walk::Walk;

impl BuildContext {
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
    /// symlink on the source path is followed only within the context; device nodes and fifos
    /// are copied as themselves, sockets inside a tree are left out (a named one is
    /// [`ContextError::UnsupportedFileType`]); files with several names among the selected
    /// ones become one file and [`EntryKind::Hardlink`]s to it; excluded files are skipped and
    /// a named source that is excluded or missing is [`ContextError::NotFound`].
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
                    insert(&mut out, entry(&host, &dest, EntryKind::Dir, &md)?);
                }
                let mut children = Vec::new();
                let walk = Walk {
                    base_len: m.resolved.len(),
                    excludes,
                };
                self.walk(&m.resolved, &dest, &walk, &mut children)?;
                if self.ignore.is_excluded(&rel) && !children.is_empty() && dest != "/" {
                    insert(&mut out, entry(&host, &dest, EntryKind::Dir, &md)?);
                }
                for c in children {
                    insert(&mut out, c);
                }
            } else if let Some(kind) = EntryKind::special(&md) {
                if !excludes.is_empty() && excludes.is_excluded(&m.name) {
                    continue;
                }
                let target = if dest_is_dir {
                    join_dest(&dest, &m.name)
                } else {
                    dest.clone()
                };
                insert(&mut out, entry(&host, &target, kind, &md)?);
            } else {
                return Err(ContextError::UnsupportedFileType { path: host });
            }
        }
        let mut entries: Vec<CopyEntry> = out.into_values().collect();
        link_hardlinks(&mut entries);
        Ok(entries)
    }
}
