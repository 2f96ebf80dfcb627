//! The local entry store: one file per step key under `<state>/cache/steps/`, written
//! atomically (temp file, fsync, rename) with a digest line so that a truncated or corrupt
//! entry (power loss, a full disk) is detected, dropped with a reason and rebuilt, never used.
//!
//! Level 1: synchronous file I/O under the state directory only. Whether an entry's layer is
//! still in the store is checked by [`Entries::get`] through the [`Store`]'s claims. Must not
//! compute keys or decide hits for a build (the coordinator's step cache does).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::entry::{Corrupt, Entry};
use super::error::{io_err, CacheError};
use super::key::CacheKey;
use crate::store::Store;

/// What looking a key up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A usable entry; its file and layer blob are claimed (safe from prune).
    Hit(Entry),
    /// No entry for this key.
    Missing,
    /// An entry that could not be used, removed; the reason is for the user.
    Dropped(String),
}

/// The local step cache entries of a state directory.
#[derive(Debug, Clone)]
pub struct Entries {
    dir: PathBuf,
    store: Store,
}

impl Entries {
    /// The entries under `<store root>/cache/steps/` (created when missing).
    ///
    /// Errors: [`CacheError::Io`].
    pub fn open(store: &Store) -> Result<Entries, CacheError> {
        let dir = steps_dir(store.root());
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        Ok(Entries {
            dir,
            store: store.clone(),
        })
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.0.hex())
    }

    /// Looks `key` up. A hit is an entry whose digest line checks out and whose layer blob is
    /// in the store; both are claimed. An entry that fails either check is removed and
    /// reported as [`Lookup::Dropped`].
    ///
    /// Errors: [`CacheError::Io`] for failures other than a missing file.
    pub fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        let path = self.path(key);
        if !self.store.claim(&path)? {
            return Ok(Lookup::Missing);
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Missing),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let why = match Entry::decode(&bytes, key) {
            Ok(entry) => match &entry.layer {
                Some(l) if !self.store.claim_blob(&l.digest)? => {
                    format!("its layer blob {} is no longer in the store", l.digest)
                }
                _ => return Ok(Lookup::Hit(entry)),
            },
            Err(c @ (Corrupt::Truncated | Corrupt::Digest | Corrupt::Unreadable(_))) => {
                format!("the entry file {} is corrupt: {c}", path.display())
            }
        };
        self.remove(key)?;
        Ok(Lookup::Dropped(why))
    }

    /// Records `entry` (replacing an entry with its key).
    ///
    /// Errors: [`CacheError::Io`].
    pub fn put(&self, entry: &Entry) -> Result<(), CacheError> {
        super::write_atomic(&self.path(&entry.key), &entry.encode())
    }

    /// Removes the entry for `key`, if there is one.
    ///
    /// Errors: [`CacheError::Io`] for failures other than a missing file.
    pub fn remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }
}

/// Where the step cache entries of the state directory `root` are.
pub fn steps_dir(root: &Path) -> PathBuf {
    root.join("cache").join("steps")
}

/// Reads every readable entry file in `dir` (for prune and du): the path and the entry, or
/// `None` for a file that is not a valid entry.
pub fn read_all(dir: &Path) -> Vec<(PathBuf, Option<Entry>)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for item in rd.flatten() {
        let path = item.path();
        let entry = (|| {
            let name = item.file_name().into_string().ok()?;
            let key = CacheKey(format!("sha256:{name}").parse().ok()?);
            Entry::decode(&fs::read(&path).ok()?, &key).ok()
        })();
        out.push((path, entry));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::EntryLayer;
    use crate::oci::Digest;

    #[test]
    fn put_get_and_damaged_entries_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let entries = Entries::open(&store).unwrap();
        let (blob, size) = store.put_bytes(b"layer bytes").unwrap();
        let key = CacheKey(Digest::of(b"k1"));
        assert_eq!(entries.get(&key).unwrap(), Lookup::Missing);
        let e = Entry {
            key: key.clone(),
            created: "2024-01-01T00:00:00Z".into(),
            created_by: "COPY a /a # buildkit".into(),
            layer: Some(EntryLayer {
                media_type: crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
                digest: blob.clone(),
                size,
                diff_id: Digest::of(b"diff"),
            }),
        };
        entries.put(&e).unwrap();
        assert_eq!(entries.get(&key).unwrap(), Lookup::Hit(e.clone()));
        // Truncated (power loss mid-write on a file system without data journaling).
        let path = entries.path(&key);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        match entries.get(&key).unwrap() {
            Lookup::Dropped(why) => assert!(why.contains("corrupt"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(!path.exists(), "a corrupt entry is removed");
        assert_eq!(entries.get(&key).unwrap(), Lookup::Missing);
        // An entry whose layer blob is gone is dropped too.
        entries.put(&e).unwrap();
        let blob_path = store.blob_path(&blob);
        fs::remove_file(&blob_path).unwrap();
        match entries.get(&key).unwrap() {
            Lookup::Dropped(why) => assert!(why.contains("no longer in the store"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Config-only entries need no blob.
        let c = Entry {
            key: CacheKey(Digest::of(b"k2")),
            created: "2024-01-01T00:00:00Z".into(),
            created_by: "ENV A=1".into(),
            layer: None,
        };
        entries.put(&c).unwrap();
        assert_eq!(entries.get(&c.key).unwrap(), Lookup::Hit(c.clone()));
        let all = read_all(&steps_dir(store.root()));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.as_ref(), Some(&c));
    }
}
