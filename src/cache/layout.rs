//! A shared step cache as an OCI image layout directory (`--cache-to type=local,dest=DIR`,
//! `--cache-from type=local,src=DIR`): the artifact of [`super::artifact`] under the
//! reference name `cache` in `index.json`, its blobs under `blobs/sha256/`.
//!
//! Writers merge: under an exclusive `flock(2)` on the directory itself, the entries there are
//! read, ours added (an entry already there wins), the new config and manifest written, the
//! index replaced atomically, and blobs nothing refers to any more removed. Readers hold the
//! lock shared, so they never see a half-written cache.
//!
//! Level 1: synchronous file I/O under the layout directory (and reading blobs from wherever
//! the caller says they are). Must not talk to a registry or pick which entries to export.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use super::artifact::{check_manifest, CacheConfig, MEDIA_TYPE_CACHE_CONFIG};
use super::entry::Entry;
use super::error::{io_err, CacheError};
use super::write_atomic;
use crate::oci::{
    self, Descriptor, Digest, ImageIndex, ImageManifest, ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

/// The reference name the cache has in the layout's `index.json`.
pub const REF_NAME: &str = "cache";

/// The directory locked (shared or exclusive) for as long as this lives.
struct DirLock {
    _file: File,
}

fn lock(dir: &Path, exclusive: bool) -> Result<DirLock, CacheError> {
    let f = File::open(dir).map_err(io_err("open", dir))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&f, op).map_err(|e| io_err("lock", dir)(e.into()))?;
    Ok(DirLock { _file: f })
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest.hex())
}

/// Reads and checks a blob of the layout (small documents only).
fn read_blob(dir: &Path, d: &Descriptor) -> Result<Vec<u8>, CacheError> {
    let path = blob_path(dir, &d.digest);
    let bytes = fs::read(&path).map_err(io_err("read", &path))?;
    let found = Digest::of(&bytes);
    if found != d.digest {
        return Err(CacheError::Malformed {
            what: format!("cache layout {}", dir.display()),
            reason: format!("blob {} holds content {found}", d.digest),
        });
    }
    Ok(bytes)
}

/// The cache in the layout `dir` without locking; `None` when there is none yet.
fn read_unlocked(dir: &Path) -> Result<Option<CacheConfig>, CacheError> {
    let what = format!("cache layout {}", dir.display());
    let index_path = dir.join("index.json");
    let bytes = match fs::read(&index_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", &index_path)(e)),
    };
    let malformed = |reason: String| CacheError::Malformed {
        what: what.clone(),
        reason,
    };
    let index: ImageIndex =
        oci::from_bytes(&bytes, "index.json").map_err(|e| malformed(e.to_string()))?;
    let Some(top) = index.manifests.iter().find(|d| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .is_some_and(|n| n == REF_NAME)
    }) else {
        return Ok(None);
    };
    let manifest: ImageManifest = oci::from_bytes(&read_blob(dir, top)?, "cache manifest")
        .map_err(|e| malformed(e.to_string()))?;
    let config = CacheConfig::parse(&read_blob(dir, &manifest.config)?, &what)?;
    check_manifest(&manifest, &config, &what)?;
    Ok(Some(config))
}

/// Reads the cache in the layout `dir` (holding its lock shared); `None` when the directory or
/// the cache in it does not exist.
///
/// Errors: [`CacheError::Malformed`] for a layout that is not a step cache,
/// [`CacheError::Io`].
pub fn read(dir: &Path) -> Result<Option<CacheConfig>, CacheError> {
    if !dir.join("index.json").is_file() {
        return Ok(None);
    }
    let _held = lock(dir, false)?;
    read_unlocked(dir)
}

/// Puts `bytes` into the layout as a blob; returns its descriptor (of `media_type`).
fn put_blob(dir: &Path, bytes: &[u8], media_type: &str) -> Result<Descriptor, CacheError> {
    let digest = Digest::of(bytes);
    let path = blob_path(dir, &digest);
    if !path.is_file() {
        write_atomic(&path, bytes)?;
    }
    Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
}

/// Links or copies the file `src` into the layout as the blob `digest`.
fn link_blob(dir: &Path, digest: &Digest, src: &Path) -> Result<(), CacheError> {
    let target = blob_path(dir, digest);
    if target.is_file() {
        return Ok(());
    }
    if fs::hard_link(src, &target).is_ok() {
        return Ok(());
    }
    let bytes = fs::read(src).map_err(io_err("read", src))?;
    write_atomic(&target, &bytes)
}

/// Merges `ours` into the cache in the layout `dir` (created when missing): entries already
/// there win; each added entry's layer blob is taken from `blob(digest)` (a file path).
/// Returns how many entries were added. Blobs nothing refers to afterwards are removed.
///
/// Errors: [`CacheError::Malformed`] when `dir` holds something that is not a step cache,
/// [`CacheError::Io`] (a layer blob `blob` cannot give included).
pub fn write(
    dir: &Path,
    ours: &[Entry],
    blob: impl Fn(&Digest) -> Option<PathBuf>,
) -> Result<usize, CacheError> {
    let blobs_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir).map_err(io_err("create directory", &blobs_dir))?;
    let _held = lock(dir, true)?;
    let existing = read_unlocked(dir)?.unwrap_or_default();
    let (merged, added) = existing.merge(ours);
    if added == 0 && dir.join("oci-layout").is_file() {
        return Ok(0);
    }
    for e in ours.iter().filter(|e| !existing.has(&e.key)) {
        if let Some(l) = &e.layer {
            let src = blob(&l.digest).ok_or_else(|| CacheError::Io {
                action: "find the layer blob",
                path: PathBuf::from(l.digest.to_string()),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
            link_blob(dir, &l.digest, &src)?;
        }
    }
    let config = put_blob(dir, &merged.to_bytes(), MEDIA_TYPE_CACHE_CONFIG)?;
    let manifest = put_blob(
        dir,
        &oci::to_bytes(&merged.manifest(config)),
        MEDIA_TYPE_OCI_MANIFEST,
    )?;
    let mut top = manifest;
    top.annotations = Some([(ANNOTATION_REF_NAME.to_string(), REF_NAME.to_string())].into());
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
        manifests: vec![top],
        annotations: None,
    };
    write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_atomic(&dir.join("index.json"), &oci::to_bytes(&index))?;
    crate::store::collect_garbage(dir)?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::EntryLayer;
    use crate::cache::key::CacheKey;

    fn entry(k: &str, blob: &Path) -> Entry {
        let bytes = fs::read(blob).unwrap();
        Entry {
            key: CacheKey(Digest::of(k.as_bytes())),
            created: "2024-01-01T00:00:00Z".into(),
            created_by: format!("RUN {k}"),
            layer: Some(EntryLayer {
                media_type: oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
                diff_id: Digest::of(b"d"),
            }),
        }
    }

    #[test]
    fn concurrent_writers_merge_and_nothing_is_left_unreferenced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        assert_eq!(read(&dir).unwrap(), None);
        let mut files = Vec::new();
        for i in 0..8 {
            let f = tmp.path().join(format!("blob{i}"));
            fs::write(&f, format!("layer {i}")).unwrap();
            files.push(f);
        }
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (dir, f) = (dir.clone(), files[i].clone());
                std::thread::spawn(move || {
                    let e = entry(&format!("k{i}"), &f);
                    write(&dir, &[e], |_| Some(f.clone())).unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 1);
        }
        let c = read(&dir).unwrap().unwrap();
        assert_eq!(c.entries.len(), 8, "every writer's entry is there");
        // blobs: 8 layers, one config, one manifest; earlier configs and manifests are gone.
        assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 10);
        // Writing what is there already changes nothing.
        let again = entry("k0", &files[0]);
        assert_eq!(write(&dir, &[again], |_| None).unwrap(), 0);
        // umoci, an independent reader, accepts the layout.
        let out = std::process::Command::new("umoci")
            .args(["ls", "--layout"])
            .arg(&dir)
            .output()
            .expect("umoci (scripts/test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), REF_NAME);
    }
}
