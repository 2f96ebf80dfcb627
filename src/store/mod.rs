//! The local content-addressed store under the state directory: blobs by digest, unpacked layers
//! by diff_id (ready to be overlayfs lower directories), and export as an OCI image layout.
//!
//! Level 1: synchronous file I/O only, no tokio. Layout on disk (all on one filesystem, so that
//! every publish is a `rename(2)`):
//!
//! ```text
//! <root>/blobs/sha256/<hex>     blob content, read-only, named by its sha256
//! <root>/layers/<hex>/root      an unpacked layer, <hex> its diff_id; usable as a lowerdir
//! <root>/tmp/                   work in progress; renamed into place when complete
//! ```
//!
//! Writers hash while writing, verify on commit, fsync, then rename atomically, so a reader never
//! sees a partial blob or layer, and two processes producing the same content both succeed with
//! one copy kept (the habit of ocidir's `BlobWriter`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempDir, TempPath};

use crate::exit::{Classify, ExitCode};
use crate::layer::{self, LayerError};
use crate::oci::{
    self, Descriptor, Digest, DigestWriter, ImageIndex, OciError, ANNOTATION_REF_NAME,
    MEDIA_TYPE_OCI_INDEX,
};

/// The content of an image layout's `oci-layout` file (image-spec `image-layout.md`).
const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Errors from the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation on the state directory (or an export destination) failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create directory", "rename into place".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Content whose sha256 is not the digest it was written or stored under.
    #[error("digest mismatch for blob: expected {expected}, found {found}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes actually there.
        found: Digest,
    },
    /// A layer blob whose uncompressed content does not hash to the expected diff_id.
    #[error("layer blob {blob} has diff_id {found}, expected {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        blob: Digest,
        /// The diff_id the image config names.
        expected: Digest,
        /// The diff_id of the unpacked stream.
        found: Digest,
    },
    /// A blob that is not in the store.
    #[error("blob {digest} is not in the store (looked for {path})")]
    MissingBlob {
        /// The digest asked for.
        digest: Digest,
        /// Where it would be.
        path: PathBuf,
    },
    /// A layer blob could not be unpacked.
    #[error("cannot unpack layer blob {blob}: {source}")]
    Unpack {
        /// The layer blob.
        blob: Digest,
        /// What went wrong.
        #[source]
        source: LayerError,
    },
    /// An existing `index.json` of an image layout that does not parse.
    #[error("cannot update the image layout index {path}: {source}")]
    MalformedIndex {
        /// The `index.json` file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: OciError,
    },
}

impl Classify for StoreError {
    fn exit_code(&self) -> ExitCode {
        match self {
            StoreError::Io { .. } | StoreError::MissingBlob { .. } => ExitCode::Host,
            StoreError::DigestMismatch { .. }
            | StoreError::DiffIdMismatch { .. }
            | StoreError::MalformedIndex { .. } => ExitCode::BadInput,
            StoreError::Unpack { source, .. } => source.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StoreError::Unpack { source, .. } => source.hint(),
            _ => None,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The local content-addressed store, rooted at the state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating `blobs/sha256/`, `layers/` and `tmp/` as needed.
    ///
    /// Errors: [`StoreError::Io`] naming the directory that could not be created.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.layers_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        Ok(store)
    }

    /// The state directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob `digest` is (or would be): `<root>/blobs/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob `digest` is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a whole blob into memory and checks its digest; for small documents (manifests,
    /// indexes, configs), never layers.
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::Io`], [`StoreError::DigestMismatch`]
    /// when the stored bytes were corrupted.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|source| self.missing_or(digest, &path, source))?;
        let found = Digest::of(&bytes);
        if &found != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming (layers); the content is not verified here.
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::Io`].
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| self.missing_or(digest, &path, source))
    }

    fn missing_or(&self, digest: &Digest, path: &Path, source: io::Error) -> StoreError {
        if source.kind() == io::ErrorKind::NotFound {
            StoreError::MissingBlob {
                digest: digest.clone(),
                path: path.to_path_buf(),
            }
        } else {
            io_err("read blob", path)(source)
        }
    }

    /// Starts writing a blob: a [`BlobWriter`] on a temp file under `tmp/`.
    ///
    /// Errors: [`StoreError::Io`] when the temp file cannot be created.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.tmp_dir();
        let (file, temp) = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp)
            .map_err(io_err("create a temp file in", &tmp))?
            .into_parts();
        Ok(BlobWriter {
            inner: DigestWriter::new(BufWriter::with_capacity(256 * 1024, file)),
            temp,
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Moves the finished file `path` (under this store's `tmp/`, e.g. a download into
    /// [`Store::temp_dir`]) into the store as a blob after hashing it: a file whose sha256 is not
    /// `expected` is refused (and removed). Returns the digest and size (bytes). When the blob is
    /// already stored, `path` is removed.
    ///
    /// Errors: [`StoreError::DigestMismatch`], [`StoreError::Io`].
    pub fn import_file(&self, path: &Path, expected: &Digest) -> Result<(Digest, u64), StoreError> {
        let mut file = File::open(path).map_err(io_err("open", path))?;
        let mut hashing = DigestWriter::new(io::sink());
        io::copy(&mut file, &mut hashing).map_err(io_err("read", path))?;
        let (_, found, size) = hashing.finish();
        if &found != expected {
            let _ = fs::remove_file(path);
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                found,
            });
        }
        let dest = self.blob_path(expected);
        if dest.exists() {
            fs::remove_file(path).map_err(io_err("remove", path))?;
            return Ok((found, size));
        }
        let mut perms = fs::metadata(path)
            .map_err(io_err("stat", path))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(path, perms).map_err(io_err("chmod", path))?;
        fs::rename(path, &dest).map_err(io_err("rename into place", &dest))?;
        Ok((found, size))
    }

    /// Stores `bytes` as a blob and returns its digest and size (bytes).
    ///
    /// Errors: [`StoreError::Io`].
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64), StoreError> {
        let mut writer = self.blob_writer()?;
        writer
            .write_all(bytes)
            .map_err(io_err("write", &writer.temp))?;
        writer.commit(None)
    }

    /// Where the unpacked layer with diff_id `diff_id` is (or would be):
    /// `<root>/layers/<hex>/root`, usable as an overlayfs lowerdir.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex()).join("root")
    }

    /// Whether the layer with diff_id `diff_id` is unpacked in the store.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Unpacks the stored layer blob `blob` (of media type `media_type`, see
    /// [`layer::unpack_layer`]) unless its layer is already there, and returns the layer
    /// directory. With `expected_diff_id`, an already unpacked layer is reused without reading
    /// the blob, and a blob whose content hashes differently is refused. The work happens in a
    /// temp dir renamed into place, so concurrent unpackers of one layer all succeed and one
    /// result is kept.
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::Unpack`],
    /// [`StoreError::DiffIdMismatch`], [`StoreError::Io`].
    pub fn unpack_blob(
        &self,
        blob: &Digest,
        media_type: &str,
        expected_diff_id: Option<&Digest>,
    ) -> Result<PathBuf, StoreError> {
        if let Some(diff_id) = expected_diff_id {
            if self.has_layer(diff_id) {
                return Ok(self.layer_dir(diff_id));
            }
        }
        let file = self.open_blob(blob)?;
        let work = self.temp_dir("unpack-")?;
        let root = work.path().join("root");
        fs::create_dir(&root).map_err(io_err("create directory", &root))?;
        let found = layer::unpack_layer(
            BufReader::with_capacity(256 * 1024, file),
            media_type,
            &root,
        )
        .map_err(|source| StoreError::Unpack {
            blob: blob.clone(),
            source,
        })?;
        if let Some(expected) = expected_diff_id {
            if expected != &found {
                return Err(StoreError::DiffIdMismatch {
                    blob: blob.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        self.install_layer(work, &found)
    }

    /// Moves a finished step's upper directory `dir` (already unmounted; its layer has diff_id
    /// `diff_id`) into the store as that layer, and returns the layer directory. Overlay
    /// whiteouts and opaque xattrs in it are already in lowerdir form. When the layer is already
    /// there, `dir` is removed and the existing one returned. `dir` must be on the state
    /// directory's filesystem (see [`Store::temp_dir`]).
    ///
    /// Errors: [`StoreError::Io`] (a different filesystem fails with `EXDEV`).
    pub fn adopt_layer_dir(&self, dir: &Path, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        if self.has_layer(diff_id) {
            fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
            return Ok(self.layer_dir(diff_id));
        }
        let work = self.temp_dir("adopt-")?;
        let root = work.path().join("root");
        fs::rename(dir, &root).map_err(io_err("move into the store", dir))?;
        self.install_layer(work, diff_id)
    }

    /// Publishes `work` (holding `root/`) as `layers/<hex>`. rename(2) onto an existing
    /// non-empty directory fails, which is how a concurrent winner is detected: its copy stays,
    /// ours is removed with `work`.
    fn install_layer(&self, mut work: TempDir, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let target = self.layers_dir().join(diff_id.hex());
        // tempfile makes 0700 directories; lowerdirs are read by whoever the container runs as.
        fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err("set permissions of", work.path()))?;
        match fs::rename(work.path(), &target) {
            Ok(()) => {
                work.disable_cleanup(true);
                sync_dir(&self.layers_dir())?;
                Ok(self.layer_dir(diff_id))
            }
            Err(_) if self.has_layer(diff_id) => Ok(self.layer_dir(diff_id)),
            Err(e) => Err(io_err("rename into place", &target)(e)),
        }
    }

    /// A new empty directory under `<root>/tmp/`, named `<prefix><random>`, removed when dropped.
    /// It is on the same filesystem as the layers, so [`Store::adopt_layer_dir`] can rename out
    /// of it (e.g. a step's upper and work directories).
    ///
    /// Errors: [`StoreError::Io`].
    pub fn temp_dir(&self, prefix: &str) -> Result<TempDir, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(io_err("create a temp directory in", &tmp))
    }

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
        write_atomic(&index_path, &oci::to_bytes(&index))
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

/// A blob being written into the store: a `Write` that hashes while writing to a temp file
/// under `tmp/`. Nothing is visible under `blobs/` until [`BlobWriter::commit`]; dropping it
/// uncommitted removes the temp file.
pub struct BlobWriter {
    inner: DigestWriter<BufWriter<File>>,
    temp: TempPath,
    blobs_dir: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.inner.size()
    }

    /// Finishes the blob: checks it against `expected` when given, fsyncs it, makes it
    /// read-only and renames it atomically to `blobs/sha256/<hex>` (when that blob is already
    /// there, the temp file is dropped instead). Returns its digest and size (bytes).
    ///
    /// Errors: [`StoreError::DigestMismatch`] naming both digests (nothing is stored),
    /// [`StoreError::Io`].
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let BlobWriter {
            inner,
            temp,
            blobs_dir,
        } = self;
        let (buffered, digest, size) = inner.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| io_err("write", &temp)(e.into_error()))?;
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    found: digest,
                });
            }
        }
        let target = blobs_dir.join(digest.hex());
        if target.is_file() {
            return Ok((digest, size));
        }
        file.sync_all().map_err(io_err("sync", &temp))?;
        // Read-only: blobs are immutable, and hardlinked copies in exported layouts share the
        // inode.
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_err("set permissions of", &temp))?;
        drop(file);
        // rename(2) replaces atomically; a concurrent writer of the same digest wrote the same
        // bytes.
        temp.persist(&target)
            .map_err(|e| io_err("rename into place", &target)(e.error))?;
        sync_dir(&blobs_dir)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// fsyncs a directory so that a rename into it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{write_layer, LayerOptions};
    use crate::oci::{
        ImageConfig, ImageManifest, RootFs, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST,
    };

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("state")).unwrap();
        (tmp, store)
    }

    fn tmp_is_empty(store: &Store) -> bool {
        fs::read_dir(store.root().join("tmp")).unwrap().count() == 0
    }

    /// A small upper directory and its layer blob committed to the store.
    fn stored_layer(store: &Store, content: &[u8]) -> layer::LayerBlob {
        let upper = store.temp_dir("upper-").unwrap();
        fs::create_dir(upper.path().join("etc")).unwrap();
        fs::write(upper.path().join("etc/motd"), content).unwrap();
        let mut w = store.blob_writer().unwrap();
        let blob = write_layer(upper.path(), &mut w, &LayerOptions::default()).unwrap();
        let (digest, size) = w.commit(Some(&blob.digest)).unwrap();
        assert_eq!((digest, size), (blob.digest.clone(), blob.size));
        blob
    }

    #[test]
    fn open_creates_the_layout() {
        let (tmp, store) = store();
        for dir in ["blobs/sha256", "layers", "tmp"] {
            assert!(tmp.path().join("state").join(dir).is_dir(), "{dir}");
        }
        // Opening again is fine.
        Store::open(store.root()).unwrap();
    }

    #[test]
    fn blobs_round_trip_and_verify() {
        let (_tmp, store) = store();
        let (digest, size) = store.put_bytes(b"hello").unwrap();
        assert_eq!(digest, Digest::of(b"hello"));
        assert_eq!(size, 5);
        assert!(store.has_blob(&digest));
        assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
        let mode = fs::metadata(store.blob_path(&digest))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        // Writing the same content again keeps one copy and succeeds.
        assert_eq!(store.put_bytes(b"hello").unwrap(), (digest.clone(), 5));
        assert!(tmp_is_empty(&store));

        let absent = Digest::of(b"absent");
        assert!(!store.has_blob(&absent));
        let e = store.read_blob(&absent).unwrap_err();
        assert!(matches!(e, StoreError::MissingBlob { .. }), "{e}");
        assert!(matches!(
            store.open_blob(&absent).unwrap_err(),
            StoreError::MissingBlob { .. }
        ));
    }

    #[test]
    fn commit_refuses_the_wrong_digest_and_leaves_nothing() {
        let (_tmp, store) = store();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"actual").unwrap();
        assert_eq!(w.size(), 6);
        let expected = Digest::of(b"expected");
        let e = w.commit(Some(&expected)).unwrap_err();
        match &e {
            StoreError::DigestMismatch {
                expected: exp,
                found,
            } => {
                assert_eq!(exp, &expected);
                assert_eq!(found, &Digest::of(b"actual"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&expected.to_string()));
        assert_eq!(e.exit_code(), ExitCode::BadInput);
        assert!(!store.has_blob(&Digest::of(b"actual")));
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn corrupt_blobs_are_detected_on_read() {
        let (_tmp, store) = store();
        let (digest, _) = store.put_bytes(b"{}").unwrap();
        let path = store.blob_path(&digest);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"{\"x\":1}").unwrap();
        let e = store.read_blob(&digest).unwrap_err();
        assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn unpack_blob_once_per_diff_id() {
        let (_tmp, store) = store();
        let blob = stored_layer(&store, b"hi\n");
        assert!(!store.has_layer(&blob.diff_id));
        let dir = store
            .unpack_blob(&blob.digest, &blob.media_type, Some(&blob.diff_id))
            .unwrap();
        assert_eq!(dir, store.layer_dir(&blob.diff_id));
        assert!(store.has_layer(&blob.diff_id));
        assert_eq!(fs::read(dir.join("etc/motd")).unwrap(), b"hi\n");
        // Again, without an expected diff_id: unpacked again, the existing copy is kept.
        fs::write(dir.join("marker"), b"").unwrap();
        let again = store
            .unpack_blob(&blob.digest, &blob.media_type, None)
            .unwrap();
        assert_eq!(again, dir);
        assert!(dir.join("marker").exists());
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn unpack_blob_checks_the_diff_id() {
        let (_tmp, store) = store();
        let blob = stored_layer(&store, b"hi\n");
        let wrong = Digest::of(b"wrong");
        let e = store
            .unpack_blob(&blob.digest, &blob.media_type, Some(&wrong))
            .unwrap_err();
        assert!(matches!(e, StoreError::DiffIdMismatch { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::BadInput);
        assert!(!store.has_layer(&wrong));
        assert!(!store.has_layer(&blob.diff_id));
        assert!(tmp_is_empty(&store));

        let e = store
            .unpack_blob(&blob.digest, "application/octet-stream", None)
            .unwrap_err();
        assert!(matches!(e, StoreError::Unpack { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::BadInput);
    }

    #[test]
    fn concurrent_unpackers_all_succeed() {
        let (_tmp, store) = store();
        let blob = stored_layer(&store, &vec![b'x'; 1 << 20]);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| store.unpack_blob(&blob.digest, &blob.media_type, None)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            assert_eq!(r.unwrap(), store.layer_dir(&blob.diff_id));
        }
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            1
        );
        assert!(tmp_is_empty(&store));
    }

    #[test]
    fn adopt_layer_dir_moves_or_drops() {
        let (_tmp, store) = store();
        let diff_id = Digest::of(b"some layer");
        let first = store.temp_dir("upper-").unwrap().keep();
        fs::write(first.join("f"), b"first").unwrap();
        let dir = store.adopt_layer_dir(&first, &diff_id).unwrap();
        assert_eq!(dir, store.layer_dir(&diff_id));
        assert!(!first.exists());
        assert_eq!(fs::read(dir.join("f")).unwrap(), b"first");

        let second = store.temp_dir("upper-").unwrap().keep();
        fs::write(second.join("f"), b"second").unwrap();
        assert_eq!(store.adopt_layer_dir(&second, &diff_id).unwrap(), dir);
        assert!(!second.exists());
        assert_eq!(fs::read(dir.join("f")).unwrap(), b"first");
        assert!(tmp_is_empty(&store));

        let missing = store.root().join("no-such-dir");
        let e = store
            .adopt_layer_dir(&missing, &Digest::of(b"other"))
            .unwrap_err();
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Host);
        assert!(tmp_is_empty(&store));
    }

    /// Assembles config + one layer + manifest in the store; returns the manifest descriptor and
    /// the blobs it needs.
    fn stored_image(store: &Store, content: &[u8]) -> (Descriptor, Vec<Digest>) {
        let layer = stored_layer(store, content);
        let config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                diff_ids: vec![layer.diff_id.clone()],
                ..RootFs::default()
            },
            ..ImageConfig::default()
        };
        let (config_digest, config_size) = store.put_bytes(&oci::to_bytes(&config)).unwrap();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
            layers: vec![layer.descriptor()],
            annotations: None,
        };
        let (digest, size) = store.put_bytes(&oci::to_bytes(&manifest)).unwrap();
        (
            Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, digest, size),
            vec![config_digest, layer.digest],
        )
    }

    fn skopeo_inspect(layout: &Path, reference: &str) -> serde_json::Value {
        let out = std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{reference}", layout.display()))
            .output()
            .expect("skopeo is installed");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn skopeo_reads_the_oci_layout() {
        let (tmp, store) = store();
        let (manifest, blobs) = stored_image(&store, b"one\n");
        let layout = tmp.path().join("layout");
        store
            .write_oci_layout(&layout, &manifest, "v1", &blobs)
            .unwrap();
        assert_eq!(
            fs::read(layout.join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let info = skopeo_inspect(&layout, "v1");
        assert_eq!(info["Digest"], manifest.digest.to_string());
        assert_eq!(info["Architecture"], "amd64");
        assert_eq!(info["Os"], "linux");
        assert_eq!(info["Layers"][0], blobs[1].to_string());
        // Hardlinked, not copied.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(layout.join("blobs/sha256").join(blobs[1].hex()))
                .unwrap()
                .ino(),
            fs::metadata(store.blob_path(&blobs[1])).unwrap().ino()
        );

        // A second ref keeps the first; re-writing a ref replaces its entry.
        let (other, other_blobs) = stored_image(&store, b"two\n");
        store
            .write_oci_layout(&layout, &other, "v2", &other_blobs)
            .unwrap();
        store
            .write_oci_layout(&layout, &other, "v1", &other_blobs)
            .unwrap();
        let index: ImageIndex =
            oci::from_bytes(&fs::read(layout.join("index.json")).unwrap(), "index").unwrap();
        assert_eq!(index.media_type.as_deref(), Some(MEDIA_TYPE_OCI_INDEX));
        assert_eq!(index.manifests.len(), 2);
        assert!(index.manifests.iter().all(|d| d.digest == other.digest));
        assert_eq!(
            skopeo_inspect(&layout, "v1")["Digest"],
            other.digest.to_string()
        );
        assert_eq!(
            skopeo_inspect(&layout, "v2")["Digest"],
            other.digest.to_string()
        );
        assert!(layout
            .join("blobs/sha256")
            .join(manifest.digest.hex())
            .is_file());
    }

    #[test]
    fn layout_export_names_missing_blobs_and_bad_indexes() {
        let (tmp, store) = store();
        let (manifest, blobs) = stored_image(&store, b"x");
        let absent = Digest::of(b"absent");
        let layout = tmp.path().join("layout");
        let e = store
            .write_oci_layout(&layout, &manifest, "v1", std::slice::from_ref(&absent))
            .unwrap_err();
        assert!(e.to_string().contains(&absent.to_string()), "{e}");
        assert!(!layout.join("index.json").exists());

        fs::write(layout.join("index.json"), b"not json").unwrap();
        let e = store
            .write_oci_layout(&layout, &manifest, "v1", &blobs)
            .unwrap_err();
        assert!(matches!(e, StoreError::MalformedIndex { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::BadInput);
    }
}
