//! `ADD archive.tar /dest` onto an empty tree (`FROM scratch`, or `--link`): the archive is
//! unpacked straight into the step's upper directory, with no sandbox and no second copy, as
//! BuildKit untars an ADD into its destination. With nothing below, the merged view a COPY
//! would write through is the upper directory itself, so the result is the same; it saves
//! writing (and later removing) the whole tree twice, which is most of the cost of adding a
//! root filesystem.
//!
//! Only the plain case goes this way: one local source that is an archive, no `--chown`,
//! `--chmod`, `--exclude` or `SOURCE_DATE_EPOCH` (which change the metadata the archive
//! gives), and an archive without `.wh.` entries (which a layer would read as whiteouts).
//! Anything else takes the general COPY path, reusing the tree unpacked here.
//!
//! Level 3 (coordinator), under [`super::actions`]: works in the step's input directory only;
//! runs nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::sources::{self, SourceError};
use crate::context::{BuildContext, CopyEntry, EntryKind, Ignore};
use crate::layer::ExactEntry;
use crate::plan::{CopyFrom, CopyStep};

/// An upper directory made without the sandbox.
#[derive(Debug)]
pub(super) struct MadeUpper {
    /// The directory to take as the step's upper directory (renamed into place).
    pub dir: PathBuf,
    /// Entries it holds differently from what the layer must say.
    pub exact: Vec<ExactEntry>,
}

/// What [`try_direct`] found.
pub(super) enum Direct {
    /// The step's upper directory, made.
    Made(MadeUpper),
    /// The archive was unpacked into `dir` but holds whiteouts: copy `entries` instead.
    Entries(Vec<CopyEntry>),
    /// Not the plain case: nothing was done.
    No,
}

/// Whether `c` can be an archive unpacked into an empty tree (see the module docs).
pub(super) fn eligible(c: &CopyStep, empty_tree: bool, epoch: Option<i64>) -> bool {
    empty_tree
        && epoch.is_none()
        && c.add
        && c.from == CopyFrom::Context
        && c.sources.len() == 1
        && c.inline.is_empty()
        && c.chown.is_none()
        && c.chmod.is_none()
        && c.chmod_symbolic.is_none()
        && c.excludes.is_empty()
        && c.unpack != Some(false)
        && !crate::plan::is_url(&c.sources[0])
        && c.dest.split('/').all(|part| part != "..")
}

/// Unpacks the one source of `c` (an eligible step) into a directory under `inputs` laid out
/// as the step's upper directory would be (`dest` inside it), when it is an archive.
///
/// Errors: the context and unpacking errors of the general path.
pub(super) fn try_direct(
    ctx: &BuildContext,
    c: &CopyStep,
    inputs: &Path,
) -> Result<Direct, SourceError> {
    let probe = ctx.resolve_copy_with(&c.sources, "/probe/", &Ignore::default())?;
    let [only] = probe.as_slice() else {
        return Ok(Direct::No);
    };
    if only.kind != EntryKind::File || only.dest.matches('/').count() != 2 {
        return Ok(Direct::No);
    }
    let Some(media_type) = sources::archive_media_type(&only.src)? else {
        return Ok(Direct::No);
    };
    let work = inputs.join("direct-add");
    let dest = c.dest.trim_matches('/');
    let upper = work.join("upper");
    let at = if dest.is_empty() {
        upper.clone()
    } else {
        upper.join(dest)
    };
    std::fs::create_dir_all(&at).map_err(io_err("create", &at))?;
    let unpacked = sources::unpack_into(&only.src, media_type, &at)?;
    if unpacked.has_whiteouts {
        let entries = sources::entries_of_unpacked(&at, &c.dest, unpacked.inexact)?;
        return Ok(Direct::Entries(entries));
    }
    if !dest.is_empty() {
        // As the general path makes it: the archive root's mode and mtime, owned by root.
        std::os::unix::fs::lchown(&at, Some(0), Some(0)).map_err(io_err("chown", &at))?;
        let mut parent = at.parent();
        while let Some(p) = parent.filter(|p| *p != upper) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", p))?;
            parent = p.parent();
        }
    }
    let exact = unpacked
        .inexact
        .into_iter()
        .map(|mut e| {
            e.path = if dest.is_empty() {
                e.path
            } else if e.path.is_empty() {
                dest.to_string()
            } else {
                format!("{dest}/{}", e.path)
            };
            e
        })
        .collect();
    Ok(Direct::Made(MadeUpper { dir: upper, exact }))
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SourceError + 'a {
    move |source| SourceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(dest: &str) -> CopyStep {
        CopyStep {
            add: true,
            from: CopyFrom::Context,
            sources: vec!["rootfs.tar".into()],
            inline: Vec::new(),
            dest: dest.into(),
            chown: None,
            chmod: None,
            chmod_symbolic: None,
            link: false,
            excludes: Vec::new(),
            unpack: None,
            checksum: None,
        }
    }

    #[test]
    fn only_the_plain_case_is_unpacked_directly() {
        assert!(eligible(&add("/"), true, None));
        assert!(eligible(&add("/opt/root/"), true, None));
        assert!(!eligible(&add("/"), false, None), "something below");
        assert!(!eligible(&add("/"), true, Some(0)), "SOURCE_DATE_EPOCH");
        assert!(!eligible(&add("/a/../b"), true, None));
        let mut c = add("/");
        c.chown = Some("1:1".into());
        assert!(!eligible(&c, true, None));
        let mut c = add("/");
        c.add = false;
        assert!(!eligible(&c, true, None), "COPY never unpacks");
        let mut c = add("/");
        c.sources.push("b.tar".into());
        assert!(!eligible(&c, true, None));
        let mut c = add("/");
        c.sources = vec!["https://example.com/r.tar".into()];
        assert!(!eligible(&c, true, None));
        let mut c = add("/");
        c.unpack = Some(false);
        assert!(!eligible(&c, true, None));
    }
}
