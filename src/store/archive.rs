//! Archives of what the store holds, written as tar streams: an OCI image layout as an OCI
//! archive (`oci-archive:`, a tar of the layout, as skopeo and buildx's `type=oci,tar=true`
//! write it), and one image as a Docker archive (`docker save`'s format: `manifest.json` and
//! the blobs, which `docker load` and `podman load` read).
//!
//! Level 1: synchronous file I/O. Reads the store or a directory it is given and writes to the
//! stream it is given; never writes anywhere else. Entries are sorted, owned by 0:0, with one
//! fixed mtime, so the same content gives the same bytes.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use tar::{EntryType, Header};

use super::error::{io_err, StoreError};
use super::Store;
use crate::oci::Digest;

/// One image of a Docker archive: its config blob, its layer blobs (base first) and the names
/// it is loaded under (`REPO:TAG`, `RepoTags` in `manifest.json`; may be empty).
#[derive(Debug, Clone)]
pub struct DockerArchiveImage {
    /// The config blob.
    pub config: Digest,
    /// The layer blobs, base first, as the manifest lists them (compressed as they are:
    /// `docker load` and containers/image decompress them).
    pub layers: Vec<Digest>,
    /// `RepoTags`: full names with a tag.
    pub repo_tags: Vec<String>,
}

/// The `manifest.json` entry of a Docker archive (moby `image/tarexport`: `Config`,
/// `RepoTags`, `Layers`; paths inside the archive).
#[derive(serde::Serialize)]
struct DockerManifestEntry<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: &'a [String],
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl Store {
    /// Writes `image` as a Docker archive to `out`: the directories `blobs/` and
    /// `blobs/sha256/`, each blob once under `blobs/sha256/<hex>` (the layout Docker 25's
    /// `docker save` uses), then `manifest.json`. Entries have mtime `mtime` (seconds).
    ///
    /// Errors: [`StoreError::MissingBlob`], [`StoreError::Io`] (`path` is `dest` for a failed
    /// write).
    pub fn write_docker_archive(
        &self,
        image: &DockerArchiveImage,
        out: impl Write,
        (dest, mtime): (&Path, u64),
    ) -> Result<(), StoreError> {
        let mut tar = TarOut { out, dest, mtime };
        tar.dir("blobs/")?;
        tar.dir("blobs/sha256/")?;
        let mut blobs: Vec<&Digest> = image.layers.iter().chain([&image.config]).collect();
        blobs.sort();
        blobs.dedup();
        for d in blobs {
            let path = self.blob_path(d);
            let mut f = self.open_blob(d)?;
            let size = f.metadata().map_err(io_err("stat", &path))?.len();
            tar.file(&blob_name(d), size, &mut f)?;
        }
        let manifest = [DockerManifestEntry {
            config: blob_name(&image.config),
            repo_tags: &image.repo_tags,
            layers: image.layers.iter().map(blob_name).collect(),
        }];
        let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
        tar.file("manifest.json", bytes.len() as u64, &mut bytes.as_slice())?;
        tar.finish()
    }
}

/// Writes the tree `dir` (directories and regular files only, as an OCI image layout holds) as
/// a tar stream to `out`, names relative to `dir`, siblings sorted by name, directories 0755,
/// files 0644, all with mtime `mtime`.
///
/// Errors: [`StoreError::Io`] for a file that cannot be read or another kind of entry (`path`
/// names it), or a failed write (`path` is `dest`).
pub fn tar_tree(
    dir: &Path,
    out: impl Write,
    (dest, mtime): (&Path, u64),
) -> Result<(), StoreError> {
    let mut tar = TarOut { out, dest, mtime };
    walk(dir, "", &mut tar)?;
    tar.finish()
}

fn walk<W: Write>(dir: &Path, prefix: &str, tar: &mut TarOut<'_, W>) -> Result<(), StoreError> {
    let mut names: Vec<String> = Vec::new();
    for item in fs::read_dir(dir).map_err(io_err("read", dir))? {
        let item = item.map_err(io_err("read", dir))?;
        names.push(item.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        let rel = format!("{prefix}{name}");
        if meta.is_dir() {
            tar.dir(&format!("{rel}/"))?;
            walk(&path, &format!("{rel}/"), tar)?;
        } else if meta.is_file() {
            let mut f = fs::File::open(&path).map_err(io_err("open", &path))?;
            tar.file(&rel, meta.len(), &mut f)?;
        } else {
            return Err(io_err("archive", &path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a directory nor a regular file",
            )));
        }
    }
    Ok(())
}

/// A tar stream being written: ustar headers, owner 0:0, one mtime.
struct TarOut<'a, W> {
    out: W,
    dest: &'a Path,
    mtime: u64,
}

impl<W: Write> TarOut<'_, W> {
    fn header(&self, name: &str, kind: EntryType, mode: u32, size: u64) -> io::Result<Header> {
        let mut h = Header::new_ustar();
        h.set_path(name)?;
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h.set_cksum();
        Ok(h)
    }

    fn dir(&mut self, name: &str) -> Result<(), StoreError> {
        let h = self
            .header(name, EntryType::Directory, 0o755, 0)
            .and_then(|h| self.out.write_all(h.as_bytes()));
        h.map_err(io_err("write", self.dest))
    }

    /// Writes a regular file entry of `size` bytes read from `from` (exactly that many).
    fn file(&mut self, name: &str, size: u64, from: &mut impl io::Read) -> Result<(), StoreError> {
        let dest = self.dest;
        let h = self
            .header(name, EntryType::Regular, 0o644, size)
            .map_err(io_err("write", dest))?;
        self.out
            .write_all(h.as_bytes())
            .map_err(io_err("write", dest))?;
        let copied = io::copy(&mut io::Read::take(from, size), &mut self.out)
            .map_err(io_err("write", dest))?;
        if copied != size {
            return Err(io_err("write", dest)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name} changed size while archived"),
            )));
        }
        let pad = (512 - (size % 512) as usize) % 512;
        self.out
            .write_all(&[0u8; 512][..pad])
            .map_err(io_err("write", dest))
    }

    fn finish(mut self) -> Result<(), StoreError> {
        let dest = self.dest;
        self.out
            .write_all(&[0u8; 1024])
            .and_then(|()| self.out.flush())
            .map_err(io_err("write", dest))
    }
}
