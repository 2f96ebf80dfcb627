//! Export as an OCI image layout (image-spec `image-layout.md`): `oci-layout`, the blobs
//! (hardlinked or copied from the store) and an `index.json` updated atomically; then the blobs
//! nothing in the index refers to any more are removed ([`collect_garbage`]), so writing a
//! layout again leaves no orphan behind.
//!
//! Level 1: synchronous file I/O; writes only under the destination directory it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::error::{io_err, StoreError};
use super::Store;
use crate::oci::{
    self, Descriptor, Digest, ImageIndex, ImageManifest, ANNOTATION_REF_NAME,
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

/// The content of an image layout's `oci-layout` file (image-spec `image-layout.md`).
const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

impl Store {
    /// Writes an OCI image layout at `dest` (image-spec `image-layout.md`): the `oci-layout`
    /// file, every blob in `blobs` plus `top`'s own blob under `blobs/sha256/` (hardlinked from
    /// the store when possible, copied otherwise; blobs already there are kept), and
    /// `index.json` listing `top` annotated `org.opencontainers.image.ref.name = ref_name`.
    /// An existing `index.json` keeps its other entries; an entry with the same ref name is
    /// replaced. The index is written last and atomically, so it never names a missing blob.
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::MalformedIndex`],
    /// [`StoreError::Io`].
    pub fn write_oci_layout(
        &self,
        dest: &Path,
        top: &Descriptor,
        ref_name: &str,
        blobs: &[Digest],
    ) -> Result<(), StoreError> {
        let dest_blobs = dest.join("blobs").join("sha256");
        fs::create_dir_all(&dest_blobs).map_err(io_err("create directory", &dest_blobs))?;
        write_atomic(&dest.join("oci-layout"), OCI_LAYOUT_FILE)?;

        let mut wanted: Vec<&Digest> = blobs.iter().chain([&top.digest]).collect();
        wanted.sort();
        wanted.dedup();
        for digest in wanted {
            self.export_blob(digest, &dest_blobs)?;
        }

        let index_path = dest.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(bytes) => oci::from_bytes::<ImageIndex>(&bytes, "index.json").map_err(|source| {
                StoreError::MalformedIndex {
                    path: index_path.clone(),
                    source,
                }
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ImageIndex {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_OCI_INDEX.to_string()),
                manifests: Vec::new(),
                annotations: None,
            },
            Err(e) => return Err(io_err("read", &index_path)(e)),
        };
        index
            .media_type
            .get_or_insert_with(|| MEDIA_TYPE_OCI_INDEX.to_string());
        index.manifests.retain(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REF_NAME))
                .map(String::as_str)
                != Some(ref_name)
        });
        let mut entry = top.clone();
        entry
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_REF_NAME.to_string(), ref_name.to_string());
        index.manifests.push(entry);
        write_atomic(&index_path, &oci::to_bytes(&index))?;
        collect_garbage(dest).map(|_| ())
    }

    /// Puts blob `digest` into `dest_blobs` (an image layout's `blobs/sha256/`).
    fn export_blob(&self, digest: &Digest, dest_blobs: &Path) -> Result<(), StoreError> {
        let src = self.blob_path(digest);
        let target = dest_blobs.join(digest.hex());
        if target.is_file() {
            return Ok(());
        }
        if !src.is_file() {
            return Err(StoreError::MissingBlob {
                digest: digest.clone(),
                path: src,
            });
        }
        match fs::hard_link(&src, &target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            // EXDEV (another filesystem), EPERM (protected_hardlinks, ...): copy instead.
            Err(_) => {}
        }
        let mut temp = NamedTempFile::new_in(dest_blobs)
            .map_err(io_err("create a temp file in", dest_blobs))?;
        let mut from = self.open_blob(digest)?;
        io::copy(&mut from, temp.as_file_mut()).map_err(io_err("copy blob to", &target))?;
        temp.as_file()
            .sync_all()
            .map_err(io_err("sync", temp.path()))?;
        temp.persist(&target)
            .map_err(|e| io_err("rename into place", &target)(e.error))?;
        Ok(())
    }
}

/// Removes the blobs of the OCI image layout `dest` that nothing its `index.json` names
/// reaches (indexes and manifests are followed to their children, configs and layers; a
/// document that cannot be read keeps what it would name). Returns the digests removed.
///
/// Errors: [`StoreError::MalformedIndex`] when `index.json` does not parse (nothing is
/// removed then), [`StoreError::Io`].
pub fn collect_garbage(dest: &Path) -> Result<Vec<Digest>, StoreError> {
    let index_path = dest.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_err("read", &index_path))?;
    let index: ImageIndex =
        oci::from_bytes(&bytes, "index.json").map_err(|source| StoreError::MalformedIndex {
            path: index_path.clone(),
            source,
        })?;
    let blobs = dest.join("blobs").join("sha256");
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<Descriptor> = index.manifests;
    while let Some(d) = todo.pop() {
        if !keep.insert(d.digest.hex().to_string()) {
            continue;
        }
        let Ok(doc) = fs::read(blobs.join(d.digest.hex())) else {
            continue;
        };
        match d.media_type.as_str() {
            MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_LIST => {
                if let Ok(i) = oci::from_bytes::<ImageIndex>(&doc, "index") {
                    todo.extend(i.manifests);
                }
            }
            MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
                if let Ok(m) = oci::from_bytes::<ImageManifest>(&doc, "manifest") {
                    keep.insert(m.config.digest.hex().to_string());
                    keep.extend(m.layers.iter().map(|l| l.digest.hex().to_string()));
                }
            }
            _ => {}
        }
    }
    let mut removed = Vec::new();
    let rd = fs::read_dir(&blobs).map_err(io_err("read", &blobs))?;
    for item in rd.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = item.path();
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        if let Ok(d) = format!("sha256:{name}").parse() {
            removed.push(d);
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `path` through a synced temp file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = NamedTempFile::new_in(dir).map_err(io_err("create a temp file in", dir))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err("write", path))?;
    // Temp files are 0600; layout files are meant to be read by other tools and users.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err("set permissions of", path))?;
    temp.persist(path)
        .map_err(|e| io_err("rename into place", path)(e.error))?;
    Ok(())
}
