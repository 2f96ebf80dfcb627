//! Content hashing of the files a step selects from the build context: the digest of a
//! selection covers each entry's destination name, type, mode, owner, link target and content,
//! never its mtime (touching a file busts nothing).
//!
//! File contents are hashed with BLAKE3 ([`ContentHash`]), on every core for a large file: a
//! cold build of a big context spends its first moments here, before any step can start, and
//! sha256 would run on one core only. The digest of a selection itself stays sha256 (an OCI
//! [`Digest`], small input).
//!
//! Hashing a large context on every build costs time, so file digests are memoised in the
//! state directory by `(device, inode)` together with the size, mtime and ctime they were taken
//! at. Any write to a file changes its ctime, so a changed file is always hashed again. A file
//! whose ctime is within [`RACY_SECS`] of the moment it is hashed is never memoised: timestamps
//! have the kernel's tick as resolution, and a write in the same tick as the hash would
//! otherwise leave a stale digest behind (git's "racy timestamp" rule).
//!
//! Level 1: sync file I/O on the selected files and the memo file. Must not select files
//! (that is `context`'s) or know about steps.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::error::{io_err, CacheError};
use crate::context::{CopyEntry, EntryKind};
use crate::oci::Digest;

/// Files changed less than this many seconds before they are hashed are not memoised.
pub const RACY_SECS: i64 = 2;

/// At most this many file digests are kept in the memo (the ones used last are kept).
const MEMO_LIMIT: usize = 200_000;

/// What a file's memoised digest was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: md.len(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            ctime_ns: i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
        }
    }
}

/// The memo: `(dev, ino)` → the stamp and digest, plus a use counter for trimming.
#[derive(Default)]
struct Memo {
    loaded: bool,
    dirty: bool,
    files: HashMap<(u64, u64), (Stamp, ContentHash, u64)>,
    clock: u64,
}

/// A file's content hash as step cache keys cover it: BLAKE3 (256 bits), written
/// `blake3:<64 lowercase hex>`. Internal to cache keys: never a blob's OCI digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    fn of(hash: &blake3::Hash) -> ContentHash {
        ContentHash(format!("blake3:{}", hash.to_hex()))
    }

    /// From the 64 hex digits; `None` when they are not that.
    fn from_hex(hex: &str) -> Option<ContentHash> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| ContentHash::of(&h))
    }

    /// The 64 lowercase hex digits, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("blake3:").unwrap_or(&self.0)
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes selections of context files, with the memo at `<state>/cache/file-hashes-blake3`.
pub struct ContentHasher {
    path: PathBuf,
    memo: Mutex<Memo>,
}

/// One selected entry as its digest covers it.
#[derive(Serialize)]
struct Selected<'a> {
    dest: &'a str,
    kind: &'static str,
    mode: u32,
    owner: Option<(u32, u32)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentHash>,
    /// A device node's (block, major, minor).
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<(bool, u32, u32)>,
    /// Xattrs (name, value), hex-encoded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<(String, String)>,
}

impl ContentHasher {
    /// A hasher keeping its memo in `memo_file` (read on first use, written by
    /// [`ContentHasher::save`]).
    pub fn new(memo_file: &Path) -> ContentHasher {
        ContentHasher {
            path: memo_file.to_path_buf(),
            memo: Mutex::new(Memo::default()),
        }
    }

    /// The digest of a selection: sha256 of the canonical JSON list of its entries in the
    /// given (destination) order, each with destination, type, mode, owner (`None` is 0:0),
    /// link target (symlinks, hard links), the content digest of files, device numbers and
    /// xattrs.
    ///
    /// Errors: [`CacheError::Io`] when a selected file cannot be read.
    pub fn selection_digest(&self, entries: &[CopyEntry]) -> Result<Digest, CacheError> {
        let mut list = Vec::with_capacity(entries.len());
        for e in entries {
            let mut device = None;
            let (kind, link, content) = match &e.kind {
                EntryKind::File => ("file", None, Some(self.file_digest(&e.src)?)),
                EntryKind::Dir => ("dir", None, None),
                EntryKind::Symlink(t) => ("symlink", Some(t.as_str()), None),
                EntryKind::Hardlink(t) => ("hardlink", Some(t.as_str()), None),
                EntryKind::Fifo => ("fifo", None, None),
                EntryKind::Device {
                    block,
                    major,
                    minor,
                } => {
                    device = Some((*block, *major, *minor));
                    ("device", None, None)
                }
            };
            list.push(Selected {
                dest: &e.dest,
                kind,
                mode: e.mode,
                owner: e.owner,
                link,
                content,
                device,
                xattrs: e
                    .xattrs
                    .iter()
                    .map(|(k, v)| (hex::encode(k), hex::encode(v)))
                    .collect(),
            });
        }
        Ok(Digest::of(
            &serde_json::to_vec(&list).expect("selections always serialise"),
        ))
    }

    /// The BLAKE3 hash of the file at `path`, from the memo when its device, inode, size,
    /// mtime and ctime are those it was hashed at.
    ///
    /// Errors: [`CacheError::Io`].
    pub fn file_digest(&self, path: &Path) -> Result<ContentHash, CacheError> {
        let md = std::fs::metadata(path).map_err(io_err("stat", path))?;
        let id = (md.dev(), md.ino());
        let stamp = Stamp::of(&md);
        {
            let mut memo = self.lock_loaded();
            memo.clock += 1;
            let clock = memo.clock;
            if let Some((s, d, used)) = memo.files.get_mut(&id) {
                if *s == stamp {
                    *used = clock;
                    return Ok(d.clone());
                }
            }
        }
        let digest = hash_file(path)?;
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let mut memo = self.lock_loaded();
        if now_ns - stamp.ctime_ns >= i128::from(RACY_SECS) * 1_000_000_000 {
            let clock = memo.clock;
            memo.files.insert(id, (stamp, digest.clone(), clock));
            memo.dirty = true;
        } else {
            memo.files.remove(&id);
        }
        Ok(digest)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, Memo> {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if !memo.loaded {
            memo.loaded = true;
            // A missing or damaged memo only costs hashing again.
            if let Ok(text) = std::fs::read_to_string(&self.path) {
                memo.files = parse_memo(&text);
            }
        }
        memo
    }

    /// Writes the memo back (atomically) when it changed, keeping the [`MEMO_LIMIT`] digests
    /// used last.
    ///
    /// Errors: [`CacheError::Io`].
    pub fn save(&self) -> Result<(), CacheError> {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        if !memo.dirty {
            return Ok(());
        }
        let mut rows: Vec<_> = memo.files.iter().collect();
        rows.sort_by_key(|(_, (_, _, used))| std::cmp::Reverse(*used));
        rows.truncate(MEMO_LIMIT);
        let mut text = String::with_capacity(rows.len() * 100);
        for ((dev, ino), (s, d, _)) in rows {
            text.push_str(&format!(
                "{dev} {ino} {} {} {} {}\n",
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                d.hex()
            ));
        }
        super::write_atomic(&self.path, text.as_bytes())?;
        memo.dirty = false;
        Ok(())
    }
}

/// Reads memo lines `dev ino size mtime_ns ctime_ns hex`; bad lines are skipped.
fn parse_memo(text: &str) -> HashMap<(u64, u64), (Stamp, ContentHash, u64)> {
    let mut files = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 6 {
            continue;
        }
        let parsed = (|| {
            Some((
                (f[0].parse().ok()?, f[1].parse().ok()?),
                Stamp {
                    size: f[2].parse().ok()?,
                    mtime_ns: f[3].parse().ok()?,
                    ctime_ns: f[4].parse().ok()?,
                },
                ContentHash::from_hex(f[5])?,
            ))
        })();
        if let Some((id, stamp, digest)) = parsed {
            files.insert(id, (stamp, digest, 0));
        }
    }
    files
}

/// sha256 of a file's bytes, streamed.
fn hash_file(path: &Path) -> Result<ContentHash, CacheError> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; HASH_READ];
    loop {
        let n = read_full(&mut f, &mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        // Large reads are hashed on every core (BLAKE3's tree allows it); small ones need not.
        if n >= 1 << 17 {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
    }
    Ok(ContentHash::of(&hasher.finalize()))
}

/// Bytes read from a file at a time for hashing.
const HASH_READ: usize = 8 << 20;

/// Fills `buf` from `r` as far as it goes; the count read (less than `buf.len()` only at the
/// end).
fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(src: &Path, dest: &str, kind: EntryKind, mode: u32) -> CopyEntry {
        CopyEntry {
            src: src.to_path_buf(),
            dest: dest.into(),
            kind,
            mode,
            mtime: 0,
            owner: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn selection_digest_covers_content_mode_owner_name_and_link_but_not_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "one").unwrap();
        let h = ContentHasher::new(&dir.path().join("memo"));
        let base = vec![
            entry(dir.path(), "/d", EntryKind::Dir, 0o755),
            entry(&f, "/d/f", EntryKind::File, 0o644),
            entry(&f, "/d/l", EntryKind::Symlink("f".into()), 0o777),
        ];
        let d0 = h.selection_digest(&base).unwrap();
        let mut m = base.clone();
        m[1].mtime = 12345;
        assert_eq!(h.selection_digest(&m).unwrap(), d0, "mtime is not covered");
        type Change = Box<dyn Fn(&mut Vec<CopyEntry>)>;
        let changes: Vec<Change> = vec![
            Box::new(|v| v[1].mode = 0o755),
            Box::new(|v| v[1].owner = Some((1, 1))),
            Box::new(|v| v[1].dest = "/d/g".into()),
            Box::new(|v| v[2].kind = EntryKind::Symlink("g".into())),
            Box::new(|v| v[0].mode = 0o700),
            Box::new(|v| {
                v.pop();
            }),
        ];
        for c in &changes {
            let mut v = base.clone();
            c(&mut v);
            assert_ne!(h.selection_digest(&v).unwrap(), d0);
        }
        // Content: a rewrite is seen (the file is racy-new, so it is never memoised).
        std::fs::write(&f, "two").unwrap();
        assert_ne!(h.selection_digest(&base).unwrap(), d0);
    }

    #[test]
    fn the_memo_is_used_for_old_files_and_rewritten_files_are_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "one").unwrap();
        let memo_file = dir.path().join("memo");
        // Make the file look old: set its ctime back is impossible, so wait out the racy
        // window instead.
        std::thread::sleep(std::time::Duration::from_millis(
            (RACY_SECS as u64) * 1000 + 100,
        ));
        let h = ContentHasher::new(&memo_file);
        let d1 = h.file_digest(&f).unwrap();
        assert_eq!(d1, ContentHash::of(&blake3::hash(b"one")));
        assert_eq!(
            d1.to_string(),
            format!("blake3:{}", blake3::hash(b"one").to_hex())
        );
        h.save().unwrap();
        let text = std::fs::read_to_string(&memo_file).unwrap();
        assert!(text.contains(d1.hex()), "{text}");
        // A fresh hasher answers from the memo: prove it by planting a wrong digest.
        let wrong = ContentHash::of(&blake3::hash(b"planted"));
        std::fs::write(&memo_file, text.replace(d1.hex(), wrong.hex())).unwrap();
        let h2 = ContentHasher::new(&memo_file);
        assert_eq!(h2.file_digest(&f).unwrap(), wrong, "memo used");
        // A write (same size) changes the ctime: hashed again.
        std::fs::write(&f, "two").unwrap();
        assert_eq!(
            h2.file_digest(&f).unwrap(),
            ContentHash::of(&blake3::hash(b"two"))
        );
    }

    #[test]
    fn a_large_file_hashes_as_one_stream_does() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        // Three reads: two whole ones hashed on every core, then a short tail.
        let data: Vec<u8> = (0..(2 * HASH_READ + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&f, &data).unwrap();
        assert_eq!(
            hash_file(&f).unwrap(),
            ContentHash::of(&blake3::hash(&data))
        );
    }
}
