//! [`OutputError`]: why a local output cannot be written, and its exit code class.
//!
//! Level 3 (coordinator, outputs). Values and messages only: no I/O.

use std::path::PathBuf;

use crate::exit::{Classify, ExitCode};

/// Why an output (`-o`, `--load`) cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An output that holds one image, asked of a build of several platforms (buildx: "docker
    /// exporter does not currently support exporting manifest lists").
    #[error("{output} holds one platform's image, and this build makes {platforms}")]
    OnePlatform {
        /// The output (`type=docker`, `--load`, `platform-split=false`).
        output: &'static str,
        /// The build's platforms, comma-separated.
        platforms: String,
    },
    /// `--load` without podman on the PATH.
    #[error("--load needs podman on the PATH (there is no Docker engine to load into): {why}")]
    NoPodman {
        /// What the PATH lookup said.
        why: String,
    },
    /// `podman load` failed.
    #[error("podman load failed ({status}): {stderr}")]
    PodmanLoad {
        /// Its exit status.
        status: String,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// A `type=local` destination that already holds something.
    #[error("type=local,dest={}: the directory is not empty (or not a directory)", dest.display())]
    NotEmpty {
        /// The destination.
        dest: PathBuf,
    },
    /// The root filesystem could not be materialised.
    #[error("{platform}: cannot write the root filesystem to {dest}: {source}")]
    Rootfs {
        /// The platform.
        platform: String,
        /// Where it was being written.
        dest: String,
        /// The cause.
        #[source]
        source: crate::executor::ExecError,
    },
    /// The root filesystem tar could not be written.
    #[error("cannot write the root filesystem tar to {dest}: {source}")]
    RootfsTar {
        /// Where it was being written.
        dest: String,
        /// The cause.
        #[source]
        source: crate::layer::LayerError,
    },
}

impl Classify for OutputError {
    fn exit_code(&self) -> ExitCode {
        match self {
            OutputError::OnePlatform { .. } | OutputError::NotEmpty { .. } => ExitCode::BadInput,
            OutputError::NoPodman { .. }
            | OutputError::PodmanLoad { .. }
            | OutputError::Rootfs { .. }
            | OutputError::RootfsTar { .. } => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            OutputError::OnePlatform { .. } => Some(
                "pick one with --platform, or write every platform with -o type=oci,dest=FILE.tar"
                    .into(),
            ),
            OutputError::NoPodman { .. } => Some(
                "install podman (`apt-get install podman`), or write the archive with \
                 -o type=docker,dest=FILE.tar and load it elsewhere"
                    .into(),
            ),
            OutputError::NotEmpty { .. } => {
                Some("name a new or empty directory (nothing in it is overwritten)".into())
            }
            _ => None,
        }
    }
}
