//! What can go wrong opening a build context or selecting `COPY` sources in it: one error enum
//! for the whole `context` module, with its exit code and hints.
//!
//! Level 1 (the `context` module's floor): plain data, no I/O of its own. Must not know how
//! paths are matched or walked.

use std::path::PathBuf;

use crate::exit::{Classify, ExitCode};

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
    /// A named source is a socket, which a layer cannot hold.
    #[error("cannot copy {path}: it is a socket, which an image layer cannot hold")]
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
