//! The local outputs of a build (`-o/--output`, `--load`; buildx's exporters): an OCI image
//! layout directory or archive, a Docker archive (for `docker load`/`podman load`), `podman
//! load` itself, the final root filesystem as files (`type=local`) or as a tar (`type=tar`),
//! to a file, a directory or stdout (`dest=-`).
//!
//! Level 3 (coordinator), below [`super::build_with`]: [`check`] runs before anything is built
//! (what a flag cannot say: the number of platforms, podman on the PATH, a destination that is
//! in the way), [`write_outputs`] after every platform succeeded. The archive formats are the
//! store's ([`crate::store`]); the root filesystem is materialised by the executor's copy of
//! the layers. Must not push anything or move a tag.

use std::fs;
use std::io::{self, BufWriter, Write};

use super::*;
use crate::store::DockerArchiveImage;

mod error;
mod load;
mod rootfs;

pub use error::OutputError;

/// Where an archive output goes: a file (written to a temp file beside it, then renamed) or
/// stdout (`dest=-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file path.
    File(PathBuf),
    /// Standard output.
    Stdout,
}

impl Dest {
    /// `-` is stdout, anything else a file.
    pub fn parse(s: &str) -> Dest {
        if s == "-" {
            Dest::Stdout
        } else {
            Dest::File(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::File(p) => write!(f, "{}", p.display()),
            Dest::Stdout => write!(f, "stdout"),
        }
    }
}

/// Where the finished image goes besides (or instead of) a registry (buildx's exporters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory (image-spec image-layout.md) with the index tagged
    /// `ref_name` (`type=oci,dest=DIR`, `tar=false`).
    OciLayout {
        /// The layout directory (created when missing).
        dest: PathBuf,
        /// The reference name recorded in its `index.json`.
        ref_name: String,
    },
    /// The same layout as one tar (`type=oci,dest=FILE.tar`, `tar=true`): an OCI archive.
    OciArchive {
        /// The archive file, or stdout.
        dest: Dest,
        /// The reference name recorded in its `index.json`.
        ref_name: String,
    },
    /// One platform's image as a Docker archive (`type=docker,dest=FILE`), loaded under
    /// `names` (`REPO:TAG`).
    DockerArchive {
        /// The archive file, or stdout.
        dest: Dest,
        /// `RepoTags` of `manifest.json`.
        names: Vec<String>,
    },
    /// One platform's image loaded into podman (`--load`, `type=docker` without `dest`).
    Load {
        /// The names it is loaded under.
        names: Vec<String>,
    },
    /// The final root filesystem as files (`type=local,dest=DIR`): in `DIR` for one platform,
    /// in `DIR/<os>_<arch>[_<variant>]` for several (buildx's `platform-split`).
    Local {
        /// The directory (created; must be empty or absent).
        dest: PathBuf,
        /// `platform-split`: `None` means "when there are several platforms".
        split: Option<bool>,
    },
    /// The final root filesystem as one tar (`type=tar,dest=FILE`), split as `Local`.
    Tar {
        /// The tar file, or stdout.
        dest: Dest,
        /// `platform-split`, as for `Local`.
        split: Option<bool>,
    },
}

impl Output {
    /// Whether this output writes to stdout.
    pub fn to_stdout(&self) -> bool {
        matches!(
            self,
            Output::OciArchive {
                dest: Dest::Stdout,
                ..
            } | Output::DockerArchive {
                dest: Dest::Stdout,
                ..
            } | Output::Tar {
                dest: Dest::Stdout,
                ..
            }
        )
    }

    /// buildx's name of the exporter, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Output::OciLayout { .. } | Output::OciArchive { .. } => "type=oci",
            Output::DockerArchive { .. } => "type=docker",
            Output::Load { .. } => "--load",
            Output::Local { .. } => "type=local",
            Output::Tar { .. } => "type=tar",
        }
    }

    fn split(&self) -> Option<Option<bool>> {
        match self {
            Output::Local { split, .. } | Output::Tar { split, .. } => Some(*split),
            _ => None,
        }
    }
}

/// Checks the outputs against what is known before the build: a Docker archive or `--load`
/// holds one platform; `--load` needs podman on the PATH; a `type=local` destination must be
/// absent or empty; `platform-split=false` needs one platform.
///
/// Errors: [`OutputError`] (exit 2, or 4 for a missing podman).
pub(super) fn check(outputs: &[Output], targets: &[Platform]) -> Result<(), BuildError> {
    let err = |e: OutputError| BuildError::Output(Box::new(e));
    let platforms = || {
        targets
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for out in outputs {
        if matches!(out, Output::DockerArchive { .. } | Output::Load { .. }) && targets.len() != 1 {
            return Err(err(OutputError::OnePlatform {
                output: out.kind(),
                platforms: platforms(),
            }));
        }
        if out.split() == Some(Some(false)) && targets.len() != 1 {
            return Err(err(OutputError::OnePlatform {
                output: "platform-split=false",
                platforms: platforms(),
            }));
        }
        if let Output::Load { .. } = out {
            load::podman().map_err(err)?;
        }
        if let Output::Local { dest, .. } = out {
            if let Ok(mut rd) = fs::read_dir(dest) {
                if rd.next().is_some() {
                    return Err(err(OutputError::NotEmpty { dest: dest.clone() }));
                }
            } else if dest.exists() {
                return Err(err(OutputError::NotEmpty { dest: dest.clone() }));
            }
        }
    }
    Ok(())
}

/// What the outputs are written from: the index (stored), every platform's image (manifest,
/// config and layer blobs in the store).
struct Built<'a> {
    /// The stitched index.
    stitched: &'a StitchedIndex,
    /// The images, in `--platform` order.
    images: &'a [PlatformImage],
    /// `index-descriptor:` annotations, for the index's entry in a layout's `index.json`.
    index_descriptor: Option<BTreeMap<String, String>>,
}

/// Writes every output of `req` (see [`Output`]); called once every platform succeeded.
///
/// Errors: [`BuildError::Output`], [`BuildError::Store`].
pub(super) fn write_outputs<R, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    stitched: &StitchedIndex,
    images: &[PlatformImage],
) -> Result<(), BuildError> {
    let result = &Built {
        stitched,
        images,
        index_descriptor: req
            .meta
            .annotations(oci::AnnotationLevel::IndexDescriptor, None),
    };
    let mtime = req.source_date_epoch.unwrap_or(0).max(0) as u64;
    for out in &req.outputs {
        match out {
            Output::OciLayout { dest, ref_name } => {
                write_layout(deps, result, dest, ref_name)?;
                deps.sink.emit(Event::LayoutWritten {
                    dest: dest.display().to_string(),
                    ref_name: ref_name.clone(),
                    digest: result.stitched.digest.clone(),
                });
            }
            Output::OciArchive { dest, ref_name } => {
                let tmp = deps.store.temp_dir("oci-archive-").map_err(store_err)?;
                let layout = tmp.path().join("layout");
                write_layout(deps, result, &layout, ref_name)?;
                to_dest(dest, |w, shown| {
                    crate::store::tar_tree(&layout, w, (shown, mtime)).map_err(store_err)
                })?;
            }
            Output::DockerArchive { dest, names } => {
                let image = docker_image(deps, result, names)?;
                to_dest(dest, |w, shown| {
                    deps.store
                        .write_docker_archive(&image, w, (shown, mtime))
                        .map_err(store_err)
                })?;
            }
            Output::Load { names } => {
                let image = docker_image(deps, result, names)?;
                load::load(deps, &image, mtime)?;
            }
            Output::Local { dest, split } => {
                rootfs::write_local(deps, result.images, dest, *split)?;
            }
            Output::Tar { dest, split } => {
                let options = rootfs::TarOptions {
                    split: *split,
                    epoch: req.source_date_epoch.map(|e| e.max(0) as u64),
                };
                rootfs::write_tar(deps, result.images, dest, options)?;
            }
        }
    }
    Ok(())
}

/// Materialises `image`'s root filesystem in `dest`, an existing empty directory (for the
/// SBOM).
///
/// Errors: as `type=local`.
pub(super) fn materialise_image<R, E>(
    deps: &Deps<R, E>,
    image: &PlatformImage,
    dest: &Path,
) -> Result<(), BuildError> {
    rootfs::materialise_one(deps, image, dest)
}

fn store_err(source: StoreError) -> BuildError {
    BuildError::Store {
        platform: "output".into(),
        source,
    }
}

/// Writes an OCI layout holding the index, every image's manifest and all their blobs.
fn write_layout<R, E>(
    deps: &Deps<R, E>,
    result: &Built<'_>,
    dest: &Path,
    ref_name: &str,
) -> Result<(), BuildError> {
    let mut blobs = vec![result.stitched.digest.clone()];
    for i in result.images {
        blobs.push(i.manifest.digest.clone());
        blobs.extend(i.blobs.iter().cloned());
    }
    // Attestation manifests and their blobs (in the store since they were made).
    for child in &result.stitched.index.manifests {
        if crate::index::is_attestation(child) {
            let bytes = deps.store.read_blob(&child.digest).map_err(store_err)?;
            let m: ImageManifest =
                oci::from_bytes(&bytes, "attestation manifest").map_err(|source| {
                    BuildError::Oci {
                        platform: "attestation".into(),
                        source,
                    }
                })?;
            blobs.push(child.digest.clone());
            blobs.push(m.config.digest);
            blobs.extend(m.layers.into_iter().map(|l| l.digest));
        }
    }
    let mut top = result.stitched.descriptor();
    top.annotations = result.index_descriptor.clone();
    deps.store
        .write_oci_layout(dest, &top, ref_name, &blobs)
        .map_err(store_err)
}

/// The one image of a Docker archive (checked before the build: there is one platform).
fn docker_image<R, E>(
    deps: &Deps<R, E>,
    result: &Built<'_>,
    names: &[String],
) -> Result<DockerArchiveImage, BuildError> {
    let [image] = result.images else {
        return Err(BuildError::Internal(
            "a Docker archive holds one platform".into(),
        ));
    };
    let bytes = deps
        .store
        .read_blob(&image.manifest.digest)
        .map_err(store_err)?;
    let manifest: ImageManifest =
        oci::from_bytes(&bytes, "manifest").map_err(|source| BuildError::Oci {
            platform: image.platform.to_string(),
            source,
        })?;
    Ok(DockerArchiveImage {
        config: manifest.config.digest,
        layers: manifest.layers.into_iter().map(|l| l.digest).collect(),
        repo_tags: names.iter().map(|n| docker_name(n)).collect(),
    })
}

/// A name as `RepoTags` holds it: with a tag (`:latest` when it has none).
fn docker_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Runs `write` on `dest`: stdout (buffered), or a temp file beside the file that is renamed
/// over it once complete (so a failed build never leaves half an archive).
fn to_dest(
    dest: &Dest,
    write: impl FnOnce(&mut dyn Write, &Path) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    match dest {
        Dest::Stdout => {
            let mut out = BufWriter::new(io::stdout().lock());
            write(&mut out, Path::new("stdout"))?;
            out.flush().map_err(|source| {
                store_err(StoreError::Io {
                    action: "write",
                    path: "stdout".into(),
                    source,
                })
            })
        }
        Dest::File(path) => {
            let io = |action| {
                move |source| {
                    store_err(StoreError::Io {
                        action,
                        path: path.clone(),
                        source,
                    })
                }
            };
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let temp =
                tempfile::NamedTempFile::new_in(dir).map_err(io("create a temp file for"))?;
            let mut out = BufWriter::new(temp);
            write(&mut out, path)?;
            let temp = out.into_inner().map_err(|e| io("write")(e.into_error()))?;
            temp.as_file().sync_all().map_err(io("sync"))?;
            let temp = temp.into_temp_path();
            fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .map_err(io("set permissions of"))?;
            temp.persist(path)
                .map_err(|e| io("rename into place")(e.error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_get_a_tag() {
        assert_eq!(
            docker_name("127.0.0.1:5000/a/b"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(
            docker_name("127.0.0.1:5000/a/b:v1"),
            "127.0.0.1:5000/a/b:v1"
        );
        assert_eq!(docker_name("app"), "app:latest");
    }

    #[test]
    fn outputs_to_stdout() {
        let tar = Output::Tar {
            dest: Dest::parse("-"),
            split: None,
        };
        assert!(tar.to_stdout());
        let file = Output::DockerArchive {
            dest: Dest::parse("x.tar"),
            names: vec![],
        };
        assert!(!file.to_stdout());
    }
}
