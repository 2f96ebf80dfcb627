//! Opening a build context (its canonical root and the ignore file that applies to it) or an
//! image root filesystem used as a `COPY --from` source, and reaching files under that root.
//!
//! Level 1 (sync file I/O through explicit paths). Must not select `COPY` sources (that is
//! `copy.rs`).

use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::ignore::Ignore;

/// An opened build context.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The canonical root directory.
    pub(super) root: PathBuf,
    /// The compiled ignore rules (empty for an image root).
    pub(super) ignore: Ignore,
    /// The ignore file that was read, if any.
    pub(super) ignore_file: Option<PathBuf>,
    /// An image root filesystem rather than a build context: symlinks resolve as in a chroot
    /// (absolute targets from the root, `..` stops at the root) instead of being refused when
    /// they point outside.
    pub(super) chroot: bool,
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

    /// The host path of `comps` (components relative to the root, taken as they are).
    pub(super) fn host_path(&self, comps: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(comps);
        p
    }

    /// `lstat` of `comps` under the root. Errors: [`ContextError::Read`].
    pub(super) fn lstat(&self, comps: &[String]) -> Result<std::fs::Metadata, ContextError> {
        let path = self.host_path(comps);
        std::fs::symlink_metadata(&path).map_err(|source| ContextError::Read { path, source })
    }
}
