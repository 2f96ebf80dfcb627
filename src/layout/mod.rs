//! Reading OCI image layouts on disk (image-spec v1.1 `image-layout.md`): a directory
//! (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) or an `oci-archive` (the same tree as a
//! tar, as skopeo and buildah write it). Blobs are read by digest and checked against it.
//!
//! Level 1: synchronous file I/O under the layout (and, for an archive, a temporary directory it
//! is unpacked into); no network, no tokio. Writing layouts is [`crate::store::Store`]'s
//! (`store/layout.rs`); must not write into a layout.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::exit::{Classify, ExitCode};
use crate::oci::{self, Descriptor, Digest, ImageIndex, OciError, ANNOTATION_REF_NAME};

/// Why a layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `oci-layout` file naming a version this reader knows.
    #[error("{path} is not an OCI image layout ({why})")]
    NotALayout {
        /// The directory or archive.
        path: PathBuf,
        /// What is missing or wrong.
        why: String,
    },
    /// `index.json` or a document in it does not parse.
    #[error(transparent)]
    Malformed(#[from] OciError),
    /// No `index.json` entry carries the ref name asked for, or several entries and none asked.
    #[error("{path}: {why}; ref names in index.json: {available}")]
    NoSuchRef {
        /// The layout.
        path: PathBuf,
        /// What was asked.
        why: String,
        /// The ref names it has, comma-separated (`-` for none).
        available: String,
    },
    /// A blob the layout should hold is missing.
    #[error("{path}: blob {digest} is missing")]
    MissingBlob {
        /// The layout.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A blob's content does not hash to its name.
    #[error("{path}: blob {expected} holds content with digest {found}")]
    DigestMismatch {
        /// The layout.
        path: PathBuf,
        /// Its name.
        expected: Digest,
        /// What its content hashes to.
        found: Digest,
    },
    /// An archive entry that has no place in a layout (a link, a device, a path leaving it).
    #[error("{path}: archive entry {entry} is not part of an OCI layout")]
    UnsafeEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path.
        entry: String,
    },
}

impl Classify for LayoutError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LayoutError::Io { .. } => ExitCode::Host,
            _ => ExitCode::BadInput,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LayoutError::NoSuchRef { .. } => {
                Some("name the image as oci:DIR:REF with one of the ref names".into())
            }
            _ => None,
        }
    }
}

/// The version of `oci-layout` this reader knows (image-layout.md "oci-layout file").
const LAYOUT_VERSION: &str = "1.0.0";

/// An opened OCI image layout.
#[derive(Debug)]
pub struct OciLayout {
    /// Where it is (for messages): the directory or the archive.
    pub path: PathBuf,
    /// The directory holding `index.json` (the temporary one for an archive).
    root: PathBuf,
    /// Its `index.json`.
    pub index: ImageIndex,
    /// Keeps an archive's unpacked tree alive.
    _unpacked: Option<tempfile::TempDir>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl OciLayout {
    /// Opens the layout directory `dir`: checks its `oci-layout` file and reads `index.json`.
    ///
    /// Errors: [`LayoutError::NotALayout`], [`LayoutError::Io`], [`LayoutError::Malformed`].
    pub fn open(dir: &Path) -> Result<OciLayout, LayoutError> {
        Self::open_at(dir, dir, None)
    }

    fn open_at(
        shown: &Path,
        root: &Path,
        unpacked: Option<tempfile::TempDir>,
    ) -> Result<OciLayout, LayoutError> {
        let not = |why: &str| LayoutError::NotALayout {
            path: shown.to_path_buf(),
            why: why.into(),
        };
        let marker = fs::read(root.join("oci-layout")).map_err(|_| not("no oci-layout file"))?;
        let version: serde_json::Value =
            serde_json::from_slice(&marker).map_err(|_| not("oci-layout is not JSON"))?;
        if version["imageLayoutVersion"] != LAYOUT_VERSION {
            return Err(not(&format!(
                "imageLayoutVersion {}, not {LAYOUT_VERSION}",
                version["imageLayoutVersion"]
            )));
        }
        let index_path = root.join("index.json");
        let bytes = fs::read(&index_path).map_err(io_err(&index_path))?;
        let index: ImageIndex = oci::from_bytes(&bytes, &index_path.display().to_string())?;
        Ok(OciLayout {
            path: shown.to_path_buf(),
            root: root.to_path_buf(),
            index,
            _unpacked: unpacked,
        })
    }

    /// Opens the `oci-archive` `file` (an uncompressed tar of a layout), unpacking it into a
    /// temporary directory under `work` that lives as long as the result. Only directories and
    /// regular files inside the tree are taken.
    ///
    /// Errors: [`LayoutError::UnsafeEntry`], and those of [`OciLayout::open`].
    pub fn open_archive(file: &Path, work: &Path) -> Result<OciLayout, LayoutError> {
        let dir = tempfile::Builder::new()
            .prefix("oci-archive-")
            .tempdir_in(work)
            .map_err(io_err(work))?;
        let tar_file = fs::File::open(file).map_err(io_err(file))?;
        let mut archive = tar::Archive::new(tar_file);
        for entry in archive.entries().map_err(io_err(file))? {
            let mut entry = entry.map_err(io_err(file))?;
            let name = entry.path().map_err(io_err(file))?.into_owned();
            let unsafe_entry = || LayoutError::UnsafeEntry {
                path: file.to_path_buf(),
                entry: name.display().to_string(),
            };
            if name
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(unsafe_entry());
            }
            let target = dir.path().join(&name);
            match entry.header().entry_type() {
                tar::EntryType::Directory => {
                    fs::create_dir_all(&target).map_err(io_err(&target))?;
                }
                tar::EntryType::Regular => {
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(io_err(parent))?;
                    }
                    let mut out = fs::File::create(&target).map_err(io_err(&target))?;
                    std::io::copy(&mut entry, &mut out).map_err(io_err(&target))?;
                }
                _ => return Err(unsafe_entry()),
            }
        }
        let root = dir.path().to_path_buf();
        Self::open_at(file, &root, Some(dir))
    }

    /// The `index.json` entry named `ref_name` (annotation `org.opencontainers.image.ref.name`),
    /// or with `None` the only entry.
    ///
    /// Errors: [`LayoutError::NoSuchRef`] when none matches, or no name was given and there
    /// are several entries (or none).
    pub fn resolve(&self, ref_name: Option<&str>) -> Result<Descriptor, LayoutError> {
        let name_of = |d: &Descriptor| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REF_NAME))
                .cloned()
        };
        let found = match ref_name {
            Some(r) => self
                .index
                .manifests
                .iter()
                .find(|d| name_of(d).as_deref() == Some(r)),
            None if self.index.manifests.len() == 1 => self.index.manifests.first(),
            None => None,
        };
        found.cloned().ok_or_else(|| {
            let names: Vec<String> = self.index.manifests.iter().filter_map(name_of).collect();
            LayoutError::NoSuchRef {
                path: self.path.clone(),
                why: match ref_name {
                    Some(r) => format!("no image named {r:?}"),
                    None => format!(
                        "{} images and no ref name given",
                        self.index.manifests.len()
                    ),
                },
                available: if names.is_empty() {
                    "-".into()
                } else {
                    names.join(", ")
                },
            }
        })
    }

    /// Where blob `digest` is in the layout (it may be missing).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// The blob `digest`, read whole and checked against it (for manifests and configs).
    ///
    /// Errors: [`LayoutError::MissingBlob`], [`LayoutError::DigestMismatch`],
    /// [`LayoutError::Io`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        let mut f = fs::File::open(&path).map_err(|_| LayoutError::MissingBlob {
            path: self.path.clone(),
            digest: digest.clone(),
        })?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io_err(&path))?;
        let found = Digest::of(&bytes);
        if &found != digest {
            return Err(LayoutError::DigestMismatch {
                path: self.path.clone(),
                expected: digest.clone(),
                found,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_OCI_INDEX;
    use std::collections::BTreeMap;

    fn layout(dir: &Path, refs: &[&str]) -> Digest {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let blob = b"{}";
        let d = Digest::of(blob);
        fs::write(dir.join("blobs/sha256").join(d.hex()), blob).unwrap();
        let manifests = refs
            .iter()
            .map(|r| {
                let mut desc = Descriptor::new(MEDIA_TYPE_OCI_INDEX, d.clone(), 2);
                desc.annotations = Some(BTreeMap::from([(
                    ANNOTATION_REF_NAME.to_string(),
                    r.to_string(),
                )]));
                desc
            })
            .collect();
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
            manifests,
            annotations: None,
        };
        fs::write(dir.join("index.json"), oci::to_bytes(&index)).unwrap();
        d
    }

    #[test]
    fn directory_refs_and_blobs() {
        let t = tempfile::tempdir().unwrap();
        let d = layout(t.path(), &["a", "b"]);
        let l = OciLayout::open(t.path()).unwrap();
        assert_eq!(l.resolve(Some("b")).unwrap().digest, d);
        let e = l.resolve(None).unwrap_err().to_string();
        assert!(
            e.contains("2 images and no ref name given") && e.contains("a, b"),
            "{e}"
        );
        assert!(matches!(
            l.resolve(Some("c")),
            Err(LayoutError::NoSuchRef { .. })
        ));
        assert_eq!(l.read_blob(&d).unwrap(), b"{}");
        fs::write(l.blob_path(&d), b"[]").unwrap();
        assert!(matches!(
            l.read_blob(&d),
            Err(LayoutError::DigestMismatch { .. })
        ));
        let not = OciLayout::open(&t.path().join("blobs")).unwrap_err();
        assert!(matches!(not, LayoutError::NotALayout { .. }));
        assert_eq!(not.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn archives_unpack_and_refuse_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let d = layout(&src, &["only"]);
        let tar_path = t.path().join("img.tar");
        let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
        b.append_dir_all(".", &src).unwrap();
        b.finish().unwrap();
        drop(b);
        let l = OciLayout::open_archive(&tar_path, t.path()).unwrap();
        assert_eq!(l.resolve(None).unwrap().digest, d);
        assert_eq!(l.read_blob(&d).unwrap(), b"{}");

        let bad = t.path().join("bad.tar");
        let mut b = tar::Builder::new(fs::File::create(&bad).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "index.json", "/etc/passwd").unwrap();
        b.finish().unwrap();
        drop(b);
        assert!(matches!(
            OciLayout::open_archive(&bad, t.path()),
            Err(LayoutError::UnsafeEntry { .. })
        ));
    }
}
