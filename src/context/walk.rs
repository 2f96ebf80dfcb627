//! Walking a directory of the build context that a `COPY` source names: its contents as
//! [`CopyEntry`] values, depth first, names in byte order, `.dockerignore` and `--exclude`
//! applied to each path, symlinks kept as links, device nodes and fifos as themselves.
//!
//! Level 1 (sync file I/O through explicit paths). Must not follow symlinks or hash contents.

use super::entry::{entry, CopyEntry, EntryKind};
use super::error::ContextError;
use super::ignore::Ignore;
use super::open::BuildContext;
use super::path::join_dest;

/// What a directory walk needs besides the ignore file: where the source that brought the
/// walk in starts (its components count), and the `--exclude` patterns relative to it.
pub(super) struct Walk<'a> {
    /// How many components the source that brought the walk in has.
    pub(super) base_len: usize,
    /// The `COPY --exclude` patterns, matched relative to that source.
    pub(super) excludes: &'a Ignore,
}

impl BuildContext {
    /// Collects the contents of directory `dir` (resolved components) as entries under `dest`,
    /// depth first, names in byte order, applying the ignore rules to each path.
    pub(super) fn walk(
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
                    out.push(entry(&path, &target, EntryKind::Dir, &md)?);
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
                out.push(entry(&path, &target, EntryKind::Symlink(link), &md)?);
            } else if let Some(kind) = EntryKind::special(&md) {
                // Regular files, device nodes and fifos; sockets are left out (a tar cannot
                // hold them, and containerd and BuildKit skip them the same way).
                out.push(entry(&path, &target, kind, &md)?);
            }
        }
        Ok(())
    }
}
