//! Blobs: content named by its sha256 under `blobs/sha256/`, read back verified, written
//! through a [`BlobWriter`] that hashes while writing and publishes with a rename.
//!
//! Level 1: synchronous file I/O under the store's root only; no tokio, no network.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use super::error::{io_err, StoreError};
use super::{sync_dir, Store};
use crate::oci::{Digest, DigestWriter};

impl Store {
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

    /// Starts writing a blob: a [`BlobWriter`] on a temp file in the session directory.
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
            inner: Sink::Hashed(DigestWriter::new(BufWriter::with_capacity(
                256 * 1024,
                file,
            ))),
            temp,
            blobs_dir: self.blobs_dir(),
            gc_lock: self.gc_lock_path(),
        })
    }

    /// [`Store::blob_writer`] for a producer that hashes the very bytes it writes (the layer
    /// writer's own digest of its compressed stream): the writer only counts, and
    /// [`BlobWriter::commit`] names the blob by the digest it is given, which it then needs.
    /// Saves hashing a layer twice (a 1 GiB layer's blob is some 0.4 s of sha256).
    ///
    /// Errors: as [`Store::blob_writer`].
    pub fn blob_writer_hashed_by_caller(&self) -> Result<BlobWriter, StoreError> {
        let mut w = self.blob_writer()?;
        if let Sink::Hashed(d) = w.inner {
            let (buffered, _, _) = d.finish();
            w.inner = Sink::Counted(buffered, 0);
        }
        Ok(w)
    }

    /// Claims the blob `digest` ([`Store::claim`]): `Ok(true)` when it is in the store, and now
    /// safe from `polyarch prune` for this process's life.
    ///
    /// Errors: [`StoreError::Io`] when the use lock cannot be taken.
    pub fn claim_blob(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.claim(&self.blob_path(digest))
    }

    /// Moves the finished file `path` (in this store's session directory, e.g. a download into
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
        if self.claim(&dest)? {
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
}

/// A blob being written into the store: a `Write` that hashes (or, for a caller that hashes
/// itself, counts) while writing to a temp file
/// in the session directory. Nothing is visible under `blobs/` until [`BlobWriter::commit`];
/// dropping it uncommitted removes the temp file.
pub struct BlobWriter {
    inner: Sink,
    temp: TempPath,
    blobs_dir: PathBuf,
    gc_lock: PathBuf,
}

/// Where a [`BlobWriter`]'s bytes go: hashed on the way, or only counted (the caller hashes).
enum Sink {
    Hashed(DigestWriter<BufWriter<File>>),
    Counted(BufWriter<File>, u64),
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        match &self.inner {
            Sink::Hashed(d) => d.size(),
            Sink::Counted(_, n) => *n,
        }
    }

    /// The temp file opened again for reading, and its path: what was written and flushed can
    /// be read from it, also after [`BlobWriter::commit`] renamed it (an upload that follows
    /// the writer).
    ///
    /// Errors: the open's.
    pub fn reader(&self) -> io::Result<(File, PathBuf)> {
        Ok((File::open(&self.temp)?, self.temp.to_path_buf()))
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
            gc_lock,
        } = self;
        let (buffered, digest, size) = match (inner, expected) {
            (Sink::Hashed(d), _) => d.finish(),
            (Sink::Counted(w, n), Some(expected)) => (w, expected.clone(), n),
            (Sink::Counted(..), None) => {
                return Err(io_err("commit", &temp)(io::Error::other(
                    "a blob written without hashing needs the digest its writer computed",
                )))
            }
        };
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
        {
            // Already there: claim it (its last use is now) and keep that copy.
            let _held = super::lock::lock(&gc_lock, false)?;
            if super::lock::touch(&target) {
                return Ok((digest, size));
            }
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
        match &mut self.inner {
            Sink::Hashed(d) => d.write(buf),
            Sink::Counted(w, size) => {
                let n = w.write(buf)?;
                *size += n as u64;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Sink::Hashed(d) => d.flush(),
            Sink::Counted(w, _) => w.flush(),
        }
    }
}
