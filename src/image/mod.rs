//! An image wherever it is: in a registry (`REGISTRY/REPO[:TAG|@DIGEST]`, `docker://...`) or in
//! an OCI image layout on disk (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, or a local path
//! given as is). Its index, manifests, configs and blobs are read and checked against their
//! digests the same way from both, and a platform's manifest is picked from an index as a build
//! picks its base's (variant-aware, [`crate::platform::best_match`]).
//!
//! Level 3, over the [`Registry`] port and the [`OciLayout`] reader; used by `inspect` and
//! `run`. Reads only: never pushes, never writes into a layout.

use std::path::{Path, PathBuf};

use crate::exit::{Classify, ExitCode};
use crate::layout::{LayoutError, OciLayout};
use crate::oci::{self, Descriptor, ImageIndex, OciError};
use crate::platform::{self, Platform};
use crate::registry::{RawManifest, Reference, Registry, RegistryError};
use crate::store::{Store, StoreError};

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name is neither a reference nor a layout.
    #[error("{name}: {why}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Reading from the registry failed (after retries), or content did not match its digest.
    #[error("{what}: {source}")]
    Registry {
        /// What was being read.
        what: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// Reading the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A document does not parse.
    #[error(transparent)]
    Malformed(#[from] OciError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A temporary file could not be used.
    #[error("cannot use a temporary file: {0}")]
    Temp(#[source] std::io::Error),
    /// The index has no image for the platform asked for.
    #[error("{name} has no image for {wanted}; it offers: {available}")]
    NoMatchingPlatform {
        /// The image.
        name: String,
        /// The platform asked for.
        wanted: String,
        /// What it offers, comma-separated.
        available: String,
    },
}

impl Classify for ImageError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ImageError::BadName { .. } | ImageError::NoMatchingPlatform { .. } => {
                ExitCode::BadInput
            }
            ImageError::Registry { source, .. } => source.exit_code(),
            ImageError::Layout(e) => e.exit_code(),
            ImageError::Malformed(e) => e.exit_code(),
            ImageError::Store(e) => e.exit_code(),
            ImageError::Temp(_) => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ImageError::Registry { source, .. } => source.hint(),
            ImageError::Layout(e) => e.hint(),
            ImageError::NoMatchingPlatform { .. } => {
                Some("name one of the platforms it offers with --platform".into())
            }
            _ => None,
        }
    }
}

/// Where an image is, as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In a registry.
    Registry(Reference),
    /// In an OCI layout directory, under a ref name (`None`: its only image).
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick.
        ref_name: Option<String>,
    },
    /// In an `oci-archive` tar file.
    Archive {
        /// The file.
        file: PathBuf,
        /// The ref name to pick.
        ref_name: Option<String>,
    },
}

/// `PATH[:REF]` where PATH exists: the whole string when it is a path, else split at the last
/// `:` whose left side is one.
fn split_path(s: &str) -> Option<(PathBuf, Option<String>)> {
    if Path::new(s).exists() {
        return Some((PathBuf::from(s), None));
    }
    let (path, r) = s.rsplit_once(':')?;
    (Path::new(path).exists() && !r.contains('/'))
        .then(|| (PathBuf::from(path), Some(r.to_string())))
}

impl Location {
    /// Reads a name: `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker://REF`, a local path
    /// (a directory is a layout, a file an archive: never a Docker Hub lookup), else a registry
    /// reference.
    ///
    /// Errors: [`ImageError::BadName`] for a reference that does not parse or an `oci:` path
    /// that does not exist.
    pub fn parse(name: &str) -> Result<Location, ImageError> {
        let bad = |why: String| ImageError::BadName {
            name: name.to_string(),
            why,
        };
        let local = |rest: &str, archive: bool| {
            let (path, ref_name) = split_path(rest)
                .ok_or_else(|| bad(format!("{rest}: no such file or directory")))?;
            Ok(if archive {
                Location::Archive {
                    file: path,
                    ref_name,
                }
            } else {
                Location::Layout {
                    dir: path,
                    ref_name,
                }
            })
        };
        if let Some(rest) = name.strip_prefix("oci:") {
            return local(rest, false);
        }
        if let Some(rest) = name.strip_prefix("oci-archive:") {
            return local(rest, true);
        }
        let registry = |r: &str| {
            r.parse::<Reference>()
                .map(Location::Registry)
                .map_err(|e| bad(e.to_string()))
        };
        if let Some(rest) = name.strip_prefix("docker://") {
            return registry(rest);
        }
        if let Some((path, _)) = split_path(name) {
            return local(name, !path.is_dir());
        }
        registry(name)
    }
}

/// An opened image: a registry reference with the client to read it, or a layout.
pub enum Source<'r, R> {
    /// In a registry.
    Registry {
        /// The client.
        registry: &'r R,
        /// The reference.
        reference: Reference,
    },
    /// In a layout, with the ref name to pick.
    Layout(OciLayout, Option<String>),
}

impl<'r, R: Registry> Source<'r, R> {
    /// Opens `location`: a layout is read (an archive unpacked under `work`), a registry
    /// reference only remembered.
    ///
    /// Errors: [`ImageError::Layout`].
    pub fn open(location: &Location, registry: &'r R, work: &Path) -> Result<Self, ImageError> {
        Ok(match location {
            Location::Registry(reference) => Source::Registry {
                registry,
                reference: reference.clone(),
            },
            Location::Layout { dir, ref_name } => {
                Source::Layout(OciLayout::open(dir)?, ref_name.clone())
            }
            Location::Archive { file, ref_name } => {
                Source::Layout(OciLayout::open_archive(file, work)?, ref_name.clone())
            }
        })
    }

    /// The image's name for messages: the normalised reference, or `oci:PATH[:REF]`.
    pub fn name(&self) -> String {
        match self {
            Source::Registry { reference, .. } => reference.to_string(),
            Source::Layout(l, r) => {
                let kind = if l.path.is_file() {
                    "oci-archive"
                } else {
                    "oci"
                };
                match r {
                    Some(r) => format!("{kind}:{}:{r}", l.path.display()),
                    None => format!("{kind}:{}", l.path.display()),
                }
            }
        }
    }

    /// The manifest or index the name points at, its bytes checked against its digest.
    ///
    /// Errors: [`ImageError::Registry`], [`ImageError::Layout`].
    pub async fn top(&self) -> Result<RawManifest, ImageError> {
        match self {
            Source::Registry {
                registry,
                reference,
            } => registry
                .get_manifest(reference)
                .await
                .map_err(|source| ImageError::Registry {
                    what: format!("read {reference}"),
                    source,
                }),
            Source::Layout(l, r) => {
                let desc = l.resolve(r.as_deref())?;
                self.manifest(&desc).await
            }
        }
    }

    /// The manifest `desc` names (an index's entry), checked against its digest.
    ///
    /// Errors: [`ImageError::Registry`], [`ImageError::Layout`].
    pub async fn manifest(&self, desc: &Descriptor) -> Result<RawManifest, ImageError> {
        match self {
            Source::Registry {
                registry,
                reference,
            } => {
                let child = reference.with_digest(&desc.digest);
                registry
                    .get_manifest(&child)
                    .await
                    .map_err(|source| ImageError::Registry {
                        what: format!("read {child}"),
                        source,
                    })
            }
            Source::Layout(l, _) => Ok(RawManifest {
                bytes: l.read_blob(&desc.digest)?,
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
            }),
        }
    }

    /// The manifest for `platform`: `top` itself when it is no index, else the entry of `top`
    /// that best matches (variant-aware; attestations have no platform and never match).
    ///
    /// Errors: [`ImageError::NoMatchingPlatform`], and those of [`Source::manifest`].
    pub async fn for_platform(
        &self,
        top: RawManifest,
        platform: &Platform,
    ) -> Result<RawManifest, ImageError> {
        if !top.is_index() {
            return Ok(top);
        }
        let idx: ImageIndex = oci::from_bytes(&top.bytes, &self.name())?;
        let offered: Vec<Platform> = idx
            .manifests
            .iter()
            .map(|d| {
                d.platform
                    .clone()
                    .unwrap_or_else(|| Platform::new("unknown", "unknown", None))
            })
            .collect();
        let i = platform::best_match(platform, &offered).ok_or_else(|| {
            ImageError::NoMatchingPlatform {
                name: self.name(),
                wanted: platform.to_string(),
                available: offered
                    .iter()
                    .filter(|p| p.os != "unknown")
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        self.manifest(&idx.manifests[i]).await
    }

    /// A small blob (a config), read whole and checked against its digest; a registry's is
    /// fetched through a file under `work`.
    ///
    /// Errors: [`ImageError::Registry`], [`ImageError::Layout`], [`ImageError::Temp`].
    pub async fn small_blob(&self, desc: &Descriptor, work: &Path) -> Result<Vec<u8>, ImageError> {
        match self {
            Source::Layout(l, _) => Ok(l.read_blob(&desc.digest)?),
            Source::Registry {
                registry,
                reference,
            } => {
                let path = work.join(desc.digest.hex());
                registry
                    .fetch_blob(reference, desc, &path)
                    .await
                    .map_err(|source| ImageError::Registry {
                        what: format!("fetch {} from {}", desc.digest, reference.repo_string()),
                        source,
                    })?;
                let bytes = std::fs::read(&path).map_err(ImageError::Temp);
                let _ = std::fs::remove_file(&path);
                bytes
            }
        }
    }

    /// Puts the blob `desc` names into `store` (streamed and verified), unless it is there.
    ///
    /// Errors: [`ImageError::Registry`], [`ImageError::Store`] (a layout blob whose content
    /// does not match its digest is refused there).
    pub async fn blob_into_store(
        &self,
        desc: &Descriptor,
        store: &Store,
    ) -> Result<(), ImageError> {
        if store.has_blob(&desc.digest) {
            return Ok(());
        }
        match self {
            Source::Layout(l, _) => {
                let path = l.blob_path(&desc.digest);
                if !path.is_file() {
                    return Err(LayoutError::MissingBlob {
                        path: l.path.clone(),
                        digest: desc.digest.clone(),
                    }
                    .into());
                }
                store.import_file(&path, &desc.digest)?;
            }
            Source::Registry {
                registry,
                reference,
            } => {
                let tmp = store.temp_dir("fetch")?;
                let path = tmp.path().join("blob");
                registry
                    .fetch_blob(reference, desc, &path)
                    .await
                    .map_err(|source| ImageError::Registry {
                        what: format!("fetch {} from {}", desc.digest, reference.repo_string()),
                        source,
                    })?;
                store.import_file(&path, &desc.digest)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_layouts_or_references() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        let file = t.path().join("img.tar");
        std::fs::write(&file, b"").unwrap();
        let d = dir.display().to_string();
        assert_eq!(
            Location::parse(&format!("oci:{d}:v1")).unwrap(),
            Location::Layout {
                dir: dir.clone(),
                ref_name: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse(&d).unwrap(),
            Location::Layout {
                dir: dir.clone(),
                ref_name: None
            }
        );
        assert_eq!(
            Location::parse(&format!("{}:latest", file.display())).unwrap(),
            Location::Archive {
                file: file.clone(),
                ref_name: Some("latest".into())
            }
        );
        assert!(matches!(
            Location::parse("oci:/nonexistent/x"),
            Err(ImageError::BadName { .. })
        ));
        let Location::Registry(r) = Location::parse("busybox:1.36").unwrap() else {
            panic!("a reference");
        };
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        assert!(matches!(
            Location::parse("docker://127.0.0.1:5000/x/y@sha256:00").unwrap_err(),
            ImageError::BadName { .. }
        ));
    }
}
