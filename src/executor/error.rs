//! [`ExecError`]: every way running a step can fail, on either side of the helper boundary, and
//! which exit code class (bad input, host, step failure) each one is.
//!
//! Level 2, values only: builds and classifies errors, performs no I/O itself.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit::{Classify, ExitCode};

/// Errors from running a step, on either side of the helper boundary.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The sandbox helper's parent (the polyarch that started it) is gone: nothing is run.
    #[error("the polyarch process that started this sandbox helper is gone; nothing was run")]
    Orphaned,
    /// Not running as root.
    #[error("RUN steps need root here (running as uid {uid}): namespaces, overlayfs and pivot_root are privileged")]
    NotRoot {
        /// The effective uid.
        uid: u32,
    },
    /// The helper process could not be started.
    #[error("cannot start the sandbox helper {program}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Talking to the helper failed (writing its spec, reading its output, waiting for it).
    #[error("sandbox helper i/o failed while {action}")]
    HelperIo {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The helper reported its own failure (namespaces, mounts, user lookup, copying), with the
    /// class it gave it: bad input (2) for what the Dockerfile names, host (4) otherwise.
    #[error("{}{message}", if *.exit == ExitCode::Host { "sandbox: " } else { "" })]
    Sandbox {
        /// The helper's message (error and causes joined by `: `).
        message: String,
        /// The exit code class the helper gave the error.
        exit: ExitCode,
        /// Advice the helper gave, if any.
        hint: Option<String>,
    },
    /// The step ran longer than allowed and was killed.
    #[error("step timed out after {after:?} and was killed")]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The step exited non-zero.
    #[error("step failed with exit status {status}")]
    StepFailed {
        /// The exit status (128 + n for signal n).
        status: i32,
        /// Last lines of output.
        tail: Vec<String>,
    },
    /// Helper side: the spec on stdin is not valid JSON for [`super::SandboxSpec`].
    #[error("invalid sandbox spec on stdin")]
    BadSpec {
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Helper side: a system call failed.
    #[error("{action} failed for {path}")]
    Sys {
        /// What was being done (`mount overlay`, `unshare`, `chroot`, ...).
        action: &'static str,
        /// The path involved (or `-`).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Helper side: a path cannot be given to overlayfs (contains `,`, `:` or `\`).
    #[error("path {path} cannot be used as an overlayfs directory (contains `,`, `:` or `\\`)")]
    BadOverlayPath {
        /// The path.
        path: PathBuf,
    },
    /// Helper side: the overlayfs options exceed the kernel's one-page limit.
    #[error(
        "overlayfs options for {layers} layers are {len} bytes, over the kernel's 4096-byte limit"
    )]
    TooManyLayers {
        /// Number of lower directories.
        layers: usize,
        /// Length of the option string.
        len: usize,
    },
    /// Helper side: a user or group name is not in the root filesystem's passwd/group files.
    #[error("unknown {what} {name:?} in the image's /etc/{file}")]
    UnknownUser {
        /// `user` or `group`.
        what: &'static str,
        /// The name.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
    /// Helper side: a copy destination conflicts with what is in the root filesystem.
    #[error("cannot copy to {dest}: {reason}")]
    CopyConflict {
        /// The destination path in the root filesystem.
        dest: String,
        /// What is in the way.
        reason: String,
    },
    /// Helper side: the step has nothing to run.
    #[error("RUN has an empty command")]
    EmptyCommand,
    /// Helper side: a mount target cannot be made (something of another kind is in the way).
    #[error("cannot mount at {target}: {reason}")]
    MountTarget {
        /// The target path in the root filesystem.
        target: String,
        /// What is in the way.
        reason: String,
    },
    /// The default network of `RUN` steps needs `pasta`, which is not installed here.
    #[error("RUN steps on the default network need pasta (a user-mode network stack), and it is not installed here")]
    NoPasta,
    /// Helper side: pasta could not attach to or configure the step's network namespace.
    #[error("pasta ({program}) could not set up the step's network: {message}")]
    Pasta {
        /// The program.
        program: PathBuf,
        /// What it said (its log), or why it could not be started.
        message: String,
    },
    /// Helper side: a `COPY --from` source could not be resolved in the source stage.
    #[error("COPY --from: {source}")]
    CopySource {
        /// The cause.
        #[source]
        source: Box<crate::context::ContextError>,
    },
}

/// Helper-side actions on paths that the Dockerfile names inside the image (`WORKDIR`, `COPY`
/// destinations, mount targets): when one of them fails because of what the image has there,
/// the input is at fault, not the host.
const IMAGE_PATH_ACTIONS: &[&str] = &[
    "create working directory",
    "chdir",
    "open directory",
    "create directory",
    "create file",
    "create symlink",
    "replace",
    "create mount point",
    "stat mount point",
    "open mount point",
    "open mount",
    "stat",
    "read symlink",
];

/// Errors that say "the image has something else at this path" (open(2), mkdir(2)): a file where
/// a directory is needed or the reverse, a symlink loop, a name too long.
fn is_path_conflict(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        [
            Errno::LOOP,
            Errno::NOTDIR,
            Errno::EXIST,
            Errno::ISDIR,
            Errno::NAMETOOLONG,
        ]
        .iter()
        .any(|x| x.raw_os_error() == n)
    })
}

impl Classify for ExecError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ExecError::StepFailed { .. } | ExecError::Timeout { .. } => ExitCode::StepFailed,
            ExecError::Sandbox { exit, .. } => *exit,
            ExecError::UnknownUser { .. }
            | ExecError::EmptyCommand
            | ExecError::MountTarget { .. }
            | ExecError::CopyConflict { .. }
            | ExecError::CopySource { .. } => ExitCode::BadInput,
            ExecError::Sys { action, source, .. }
                if IMAGE_PATH_ACTIONS.contains(action) && is_path_conflict(source) =>
            {
                ExitCode::BadInput
            }
            _ => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ExecError::NotRoot { .. } => Some(
                "run polyarch as root (e.g. with sudo); rootless RUN steps are not supported yet"
                    .into(),
            ),
            ExecError::TooManyLayers { .. } => {
                Some("store layers under a shorter path, or squash the base image".into())
            }
            ExecError::Sandbox { hint, .. } => hint.clone(),
            ExecError::UnknownUser { what: "user", .. } => Some(
                "add the user to the image's /etc/passwd first (e.g. RUN useradd NAME), or use a \
                 numeric uid"
                    .into(),
            ),
            ExecError::UnknownUser { .. } => Some(
                "add the group to the image's /etc/group first (e.g. RUN groupadd NAME), or use a \
                 numeric gid"
                    .into(),
            ),
            ExecError::Sys {
                action: "create working directory" | "chdir",
                path,
                ..
            } if self.exit_code() == ExitCode::BadInput => Some(format!(
                "WORKDIR {} is (or is under) something that is not a directory in the image: \
                 choose another working directory",
                path.display()
            )),
            ExecError::Sys { path, .. } if self.exit_code() == ExitCode::BadInput => Some(format!(
                "{} (or a directory above it) is not what the step needs in the image (a file \
                 where a directory is needed, or the reverse): choose another path",
                path.display()
            )),
            ExecError::NoPasta => Some(
                "install passt (Debian, Ubuntu: apt-get install passt; Fedora: dnf install \
                 passt), or give the step RUN --network=none (no network) or, with --allow \
                 network.host, RUN --network=host"
                    .into(),
            ),
            ExecError::CopyConflict { .. } => {
                Some("remove what is in the way first (RUN rm ...), or copy to another path".into())
            }
            _ => None,
        }
    }
}

impl ExecError {
    /// A failed system call or file operation: [`ExecError::Sys`] with what was done to which
    /// path.
    pub(super) fn sys(
        action: &'static str,
        path: impl Into<PathBuf>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        ExecError::Sys {
            action,
            path: path.into(),
            source: e.into(),
        }
    }
}

/// For `map_err` on a failed `nix` call of the helper: [`ExecError::Sys`] naming `action` and
/// `path` (`-` when there is none).
pub(super) fn sys(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(nix::Error) -> ExecError {
    let path = path.into();
    move |e| ExecError::sys(action, path, std::io::Error::from(e))
}

/// For `map_err` on a failed `rustix` call of the helper: [`ExecError::Sys`] naming `action` and
/// `path`.
pub(super) fn sys_rx(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(rustix::io::Errno) -> ExecError {
    let path = path.into();
    move |e| ExecError::sys(action, path, std::io::Error::from(e))
}
