//! `polyarch run [--platform P] IMAGE [ARG...]`: an image from a registry or an OCI layout,
//! pulled and unpacked into the local store (each layer once per diff_id, digests checked), then
//! run in the same sandbox as a Dockerfile `RUN` (emulated through the platform's binfmt_misc
//! handler where this host does not run it natively), with this process's stdin, stdout and
//! stderr, and its exit status passed through.
//!
//! Level 3, over [`crate::image::Source`], the [`Store`] and the executor's attached mode
//! ([`SandboxExecutor::run_attached`]). Writes only to the store; never pushes.

mod command;

use std::path::PathBuf;

use crate::emulation::{self, EmulationError};
use crate::executor::{Action, ExecError, SandboxExecutor, SandboxSpec, Snapshotter};
use crate::exit::{Classify, ExitCode};
use crate::image::{ImageError, Location, Source};
use crate::oci::{self, ImageConfig, ImageManifest, OciError};
use crate::platform::Platform;
use crate::registry::Registry;
use crate::store::{Store, StoreError};

pub use command::{image_command, set_platform, shell_or_exec};

/// Why an image could not be run (its command's own exit status is not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A manifest or config does not parse, or the manifest is of another kind.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The local store failed (a layer that does not unpack, a diff_id that does not match).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This host cannot run the platform's programs.
    #[error(transparent)]
    Emulation(#[from] EmulationError),
    /// The sandbox could not be set up.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The image names no command and none was given.
    #[error("{name} has no ENTRYPOINT or CMD: name the command to run after the image")]
    NothingToRun {
        /// The image.
        name: String,
    },
    /// The image's config lists another number of layers than its manifest.
    #[error("{name}: the config lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount {
        /// The image.
        name: String,
        /// diff_ids in the config.
        diff_ids: usize,
        /// Layers in the manifest.
        layers: usize,
    },
}

impl Classify for RunError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Image(e) => e.exit_code(),
            RunError::Oci(e) => e.exit_code(),
            RunError::Store(e) => e.exit_code(),
            RunError::Emulation(e) => e.exit_code(),
            RunError::Exec(e) => e.exit_code(),
            RunError::NothingToRun { .. } | RunError::LayerCount { .. } => ExitCode::BadInput,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RunError::Image(e) => e.hint(),
            RunError::Emulation(e) => e.hint(),
            RunError::Exec(e) => e.hint(),
            _ => None,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The image.
    pub location: Location,
    /// Its platform (an index's entry is picked for it).
    pub platform: Platform,
    /// Arguments after the entrypoint (empty: the image's `CMD`).
    pub args: Vec<String>,
    /// Run `args` instead of the entrypoint too.
    pub replace_entrypoint: bool,
    /// The binfmt_misc directory (normally `/proc/sys/fs/binfmt_misc`).
    pub binfmt_dir: PathBuf,
}

/// Pulls `req`'s image into `store` and runs it attached; returns the command's exit status.
///
/// Errors: see [`RunError`]; a command that exits non-zero is `Ok(status)`.
pub async fn run<R: Registry>(
    req: &RunRequest,
    registry: &R,
    store: &Store,
    executor: &SandboxExecutor,
) -> Result<i32, RunError> {
    crate::executor::require_root()?;
    let work = store.temp_dir("run-")?;
    let source = Source::open(&req.location, registry, work.path())?;
    let name = source.name();
    let top = source.top().await?;
    let raw = source.for_platform(top, &req.platform).await?;
    let manifest: ImageManifest = oci::from_bytes(&raw.bytes, &name)?;
    let config_bytes = source.small_blob(&manifest.config, work.path()).await?;
    let config: ImageConfig = oci::from_bytes(&config_bytes, &name)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RunError::LayerCount {
            name,
            diff_ids: config.rootfs.diff_ids.len(),
            layers: manifest.layers.len(),
        });
    }
    // The platform the image is for (an image without an index says so in its config) must
    // run here: natively, or through a working binfmt_misc handler.
    emulation::verify(&config.platform(), &req.binfmt_dir, work.path())?;
    let mut lowerdirs = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        source.blob_into_store(desc, store).await?;
        let (store, blob, mt, id) = (
            store.clone(),
            desc.digest.clone(),
            desc.media_type.clone(),
            diff_id.clone(),
        );
        let dir = tokio::task::spawn_blocking(move || store.unpack_blob(&blob, &mt, Some(&id)))
            .await
            .map_err(|e| ExecError::HelperIo {
                action: "unpacking a layer",
                source: std::io::Error::other(e.to_string()),
            })??;
        lowerdirs.push(dir);
    }
    lowerdirs.reverse();
    let mut run = image_command(&config, &req.args, req.replace_entrypoint)
        .ok_or(RunError::NothingToRun { name })?;
    set_platform(&mut run, &config.platform());
    let (upper, scratch) = (work.path().join("upper"), work.path().join("work"));
    for d in [&upper, &scratch] {
        std::fs::create_dir_all(d).map_err(|source| ExecError::HelperIo {
            action: "creating the run's directories",
            source,
        })?;
    }
    let spec = SandboxSpec {
        lowerdirs,
        upperdir: upper,
        workdir: scratch,
        action: Action::Run(run),
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    Ok(executor.run_attached(&spec, work.path()).await?)
}
