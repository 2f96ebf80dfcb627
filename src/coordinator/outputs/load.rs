//! `--load` (buildx's `type=docker` into the local engine): there is no Docker engine here, so
//! the image goes into podman, as a Docker archive given to `podman load -i`.
//!
//! Level 3 (coordinator, outputs). Runs podman with an explicit argument vector and the
//! process's environment (podman's own `CONTAINERS_STORAGE_CONF` and friends decide its
//! store); writes only a temp file in the state directory.

use std::path::PathBuf;
use std::process::Command;

use super::error::OutputError;
use super::{store_err, BuildError, Deps, DockerArchiveImage};

/// podman's path on the PATH.
///
/// Errors: [`OutputError::NoPodman`].
pub(super) fn podman() -> Result<PathBuf, OutputError> {
    which::which("podman").map_err(|e| OutputError::NoPodman { why: e.to_string() })
}

/// Writes `image` as a Docker archive to a temp file and runs `podman load -i` on it (podman's
/// own lines go to the diagnostics, `-v`).
///
/// Errors: [`OutputError::NoPodman`], [`OutputError::PodmanLoad`], store errors.
pub(super) fn load<R, E>(
    deps: &Deps<R, E>,
    image: &DockerArchiveImage,
    mtime: u64,
) -> Result<(), BuildError> {
    let err = |e| BuildError::Output(Box::new(e));
    let podman = podman().map_err(err)?;
    let tmp = deps.store.temp_dir("load-").map_err(store_err)?;
    let file = tmp.path().join("image.tar");
    let out = std::fs::File::create(&file).map_err(|source| {
        store_err(crate::store::StoreError::Io {
            action: "create",
            path: file.clone(),
            source,
        })
    })?;
    deps.store
        .write_docker_archive(image, std::io::BufWriter::new(out), (&file, mtime))
        .map_err(store_err)?;
    let done = Command::new(&podman)
        .arg("load")
        .arg("-i")
        .arg(&file)
        .output()
        .map_err(|e| {
            err(OutputError::PodmanLoad {
                status: "not started".into(),
                stderr: e.to_string(),
            })
        })?;
    if !done.status.success() {
        let stderr = String::from_utf8_lossy(&done.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        return Err(err(OutputError::PodmanLoad {
            status: done.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }));
    }
    for line in String::from_utf8_lossy(&done.stdout).lines() {
        tracing::info!("podman: {line}");
    }
    Ok(())
}
