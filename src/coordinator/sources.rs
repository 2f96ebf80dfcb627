//! What COPY/ADD and RUN read besides the build context: heredoc files, ADD URLs (verified
//! against `--checksum`), local archives that ADD unpacks, secrets, and `type=cache` mount
//! directories kept in the state directory between builds.
//!
//! Sync file work here runs on blocking threads; the HTTP download is async.
//!
//! Level 3 (coordinator), under [`super::actions`]: gathers one step's inputs. Must not run the
//! step, know other stages or platforms, or talk to a registry.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::context::{BuildContext, ContextError, CopyEntry, EntryKind, Ignore};
use crate::exit::{Classify, ExitCode};
use crate::plan::{CacheSharing, InlineFile};

/// Why preparing a step's inputs failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Downloading an ADD URL failed.
    #[error("cannot fetch {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong (connection, HTTP status).
        reason: String,
    },
    /// An ADD URL's content does not have the digest `--checksum` names.
    #[error("digest mismatch for {url}: {found} (expected: {expected})")]
    Checksum {
        /// The URL.
        url: String,
        /// `--checksum`.
        expected: String,
        /// The digest of what was received.
        found: String,
    },
    /// A local archive could not be unpacked.
    #[error("cannot unpack {path}: {reason}")]
    Unpack {
        /// The archive.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// A context path or pattern is wrong.
    #[error(transparent)]
    Context(Box<ContextError>),
    /// A secret the step requires was not given with `--secret`.
    #[error(
        "secret {id:?} is required but was not given (pass --secret id={id},src=FILE or env=VAR)"
    )]
    MissingSecret {
        /// The secret's id.
        id: String,
    },
    /// A required `RUN --mount=type=ssh` whose agent id was not given with `--ssh`.
    #[error("ssh agent {id:?} is required but was not given (pass --ssh {id}=SOCKET, or --ssh default for $SSH_AUTH_SOCK)")]
    MissingSsh {
        /// The agent's id.
        id: String,
    },
}

impl From<ContextError> for SourceError {
    fn from(e: ContextError) -> Self {
        SourceError::Context(Box::new(e))
    }
}

impl Classify for SourceError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SourceError::Fetch { .. } => ExitCode::Registry,
            SourceError::Io { .. } => ExitCode::Host,
            SourceError::Context(e) => e.exit_code(),
            SourceError::Checksum { .. }
            | SourceError::Unpack { .. }
            | SourceError::MissingSecret { .. }
            | SourceError::MissingSsh { .. } => ExitCode::BadInput,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SourceError::Checksum { .. } => Some(
                "the file at the URL changed, or --checksum is wrong: check it and update the digest"
                    .into(),
            ),
            SourceError::Context(e) => e.hint(),
            _ => None,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SourceError + 'a {
    move |source| SourceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The destination of one file copied into `dest`: under it when `dest` names a directory
/// (trailing `/`, or `dir_forced`), else `dest` itself.
pub(super) fn file_dest(dest: &str, name: &str, dir_forced: bool) -> String {
    if dest.ends_with('/') || dir_forced {
        format!("{}/{name}", dest.trim_end_matches('/'))
    } else {
        dest.to_string()
    }
}

/// Writes heredoc sources as files (mode 0644, mtime `mtime`) under `dir` and returns their
/// entries for `dest` (BuildKit: `llb.Mkfile(name, 0644, data)` copied to the destination).
pub(super) fn inline_entries(
    files: &[InlineFile],
    dir: &Path,
    dest: &str,
    dir_forced: bool,
    mtime: i64,
) -> Result<Vec<CopyEntry>, SourceError> {
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let path = dir.join(format!("inline-{i}"));
        std::fs::write(&path, f.content.as_bytes()).map_err(io("write", &path))?;
        out.push(CopyEntry {
            src: path,
            dest: file_dest(dest, &f.name, dir_forced),
            kind: EntryKind::File,
            mode: 0o644,
            mtime,
            owner: None,
            xattrs: Vec::new(),
        });
    }
    Ok(out)
}

/// The file name BuildKit gives a URL's download: the last path component, `__unnamed__` when
/// there is none.
pub(super) fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
        .unwrap_or("");
    let base = path.rsplit('/').next().unwrap_or("");
    if base.is_empty() || base == "." {
        "__unnamed__".into()
    } else {
        base.to_string()
    }
}

/// Parses an HTTP date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) into Unix
/// seconds.
pub(super) fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Downloads `url` into `dir/name` (mode 0600, mtime from `Last-Modified` or 0, as BuildKit's
/// HTTP source does), verifying `checksum` (`sha256:<hex>`) when given. Returns the entry for
/// `dest`.
pub(super) async fn fetch_url(
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
    dest: &str,
    dir_forced: bool,
) -> Result<CopyEntry, SourceError> {
    let fail = |reason: String| SourceError::Fetch {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP status {}", resp.status())));
    }
    let mtime = resp
        .headers()
        .get(http::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .unwrap_or(0);
    let name = url_file_name(url);
    let path = dir.join("download");
    let mut file = File::create(&path).map_err(io("create", &path))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io("write", &path))?;
    }
    drop(file);
    let found = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(expected) = checksum {
        if expected != found {
            return Err(SourceError::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                found,
            });
        }
    }
    Ok(CopyEntry {
        src: path,
        dest: file_dest(dest, &name, dir_forced),
        kind: EntryKind::File,
        mode: 0o600,
        mtime,
        owner: None,
        xattrs: Vec::new(),
    })
}

/// True when `block` (the first 512 bytes of an uncompressed stream) is a tar header: the
/// `ustar` magic, or a valid v7 header checksum (POSIX.1 tar: the sum of the header's bytes
/// with the checksum field counted as spaces).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum) && block[0] != 0
}

/// Reads up to 512 bytes.
fn first_block(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let got = r.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    head.truncate(n);
    Ok(head)
}

/// The layer media type of a local archive ADD unpacks (BuildKit `AttemptUnpack`): a tar,
/// plain or compressed with gzip or zstd, recognised by content. `None` when ADD should copy it
/// as a plain file (anything else, including bzip2 and xz, which are not unpacked).
pub(super) fn archive_media_type(path: &Path) -> Result<Option<&'static str>, SourceError> {
    let open = || File::open(path).map_err(io("open", path));
    let raw = first_block(open()?).map_err(io("read", path))?;
    let (media_type, block) = if raw.starts_with(&[0x1f, 0x8b]) {
        let dec = flate2::read::MultiGzDecoder::new(open()?);
        (crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP, first_block(dec))
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        match zstd::stream::read::Decoder::new(open()?) {
            Ok(dec) => (crate::oci::MEDIA_TYPE_OCI_LAYER_ZSTD, first_block(dec)),
            Err(_) => return Ok(None),
        }
    } else {
        (crate::oci::MEDIA_TYPE_OCI_LAYER_TAR, Ok(raw))
    };
    // A corrupt compressed stream is copied as it is, as BuildKit does with what it cannot
    // decompress.
    Ok(match block {
        Ok(b) if is_tar_header(&b) => Some(media_type),
        _ => None,
    })
}

/// Unpacks the archive `src` into `work` (confined: names and links cannot leave it) and
/// returns the entries that recreate its contents under the directory `dest`, owners kept.
pub(super) fn unpack_entries(
    src: &Path,
    media_type: &str,
    work: &Path,
    dest: &str,
) -> Result<Vec<CopyEntry>, SourceError> {
    let out = work.join("unpacked");
    std::fs::create_dir_all(&out).map_err(io("create", &out))?;
    let unpacked = unpack_into(src, media_type, &out)?;
    entries_of_unpacked(&out, dest, unpacked.inexact)
}

/// Unpacks the archive `src` (of layer media type `media_type`) into the existing directory
/// `out`, confined to it.
pub(super) fn unpack_into(
    src: &Path,
    media_type: &str,
    out: &Path,
) -> Result<crate::layer::Unpacked, SourceError> {
    let file = File::open(src).map_err(io("open", src))?;
    crate::layer::unpack_layer_exact(
        std::io::BufReader::with_capacity(256 * 1024, file),
        media_type,
        out,
    )
    .map_err(|e| SourceError::Unpack {
        path: src.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The entries that recreate the unpacked archive `out` under the directory `dest`, owners
/// kept, with what the host could not hold (`inexact`) given back to them.
pub(super) fn entries_of_unpacked(
    out: &Path,
    dest: &str,
    inexact: Vec<crate::layer::ExactEntry>,
) -> Result<Vec<CopyEntry>, SourceError> {
    let tree = BuildContext::rootfs(out)?;
    let dir = format!("{}/", dest.trim_end_matches('/'));
    let mut entries = tree.resolve_copy(&[".".to_string()], &dir)?;
    for e in &mut entries {
        if let Ok(md) = std::fs::symlink_metadata(&e.src) {
            e.owner = Some((md.uid(), md.gid()));
        }
    }
    restore_inexact(&mut entries, out, inexact);
    // The destination directory itself: created when missing, like a copied directory.
    if !dest.trim_end_matches('/').is_empty()
        && !entries.iter().any(|e| e.dest == dir.trim_end_matches('/'))
    {
        entries.insert(
            0,
            CopyEntry {
                src: out.to_path_buf(),
                dest: dir.trim_end_matches('/').to_string(),
                kind: EntryKind::Dir,
                mode: std::fs::metadata(out)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o755),
                mtime: std::fs::metadata(out).map(|m| m.mtime()).unwrap_or(0),
                owner: None,
                xattrs: Vec::new(),
            },
        );
    }
    Ok(entries)
}

/// Gives back to the entries of an unpacked archive (rooted at `out`) what the host could not
/// hold when unpacking it: the device node or fifo a placeholder stands for, the xattrs it
/// refused. The sandbox then tries again and reports what it cannot hold either, so the layer
/// keeps them exactly.
fn restore_inexact(entries: &mut [CopyEntry], out: &Path, inexact: Vec<crate::layer::ExactEntry>) {
    use crate::layer::SpecialNode;
    for x in inexact {
        let src = out.join(&x.path);
        let Some(e) = entries.iter_mut().find(|e| e.src == src) else {
            // The archive's root directory: ADD keeps the destination's own metadata.
            tracing::debug!(path = %x.path, "archive entry not copied");
            continue;
        };
        match x.node {
            Some(SpecialNode::Char { major, minor }) => {
                e.kind = EntryKind::Device {
                    block: false,
                    major,
                    minor,
                }
            }
            Some(SpecialNode::Block { major, minor }) => {
                e.kind = EntryKind::Device {
                    block: true,
                    major,
                    minor,
                }
            }
            Some(SpecialNode::Fifo) => e.kind = EntryKind::Fifo,
            None => {}
        }
        for (k, v) in x.xattrs {
            e.xattrs.retain(|(name, _)| *name != k);
            e.xattrs.push((k, v));
        }
        e.xattrs.sort();
    }
}

/// Resolves an ADD/COPY from the context, unpacking local archives for ADD: each source that is
/// itself an archive file is unpacked into `dest` as a directory; everything else is copied.
pub(super) fn context_entries(
    ctx: &BuildContext,
    sources: &[String],
    dest: &str,
    excludes: &Ignore,
    unpack: bool,
    work: &Path,
) -> Result<Vec<CopyEntry>, SourceError> {
    if !unpack {
        return Ok(ctx.resolve_copy_with(sources, dest, excludes)?);
    }
    let dir_forced = sources.len() > 1;
    let mut plain: Vec<String> = Vec::new();
    let mut entries: Vec<CopyEntry> = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        // Which files does this source name directly (wildcards expanded)?
        let probe = ctx.resolve_copy_with(std::slice::from_ref(s), "/probe/", excludes)?;
        let named: Vec<&CopyEntry> = probe
            .iter()
            .filter(|e| {
                e.kind == EntryKind::File
                    && e.dest
                        .strip_prefix("/probe/")
                        .is_some_and(|n| !n.contains('/'))
            })
            .collect();
        let mut unpacked_all = !named.is_empty() && named.len() == probe.len();
        let mut these = Vec::new();
        for e in &named {
            match archive_media_type(&e.src)? {
                Some(mt) => {
                    let w = work.join(format!("archive-{i}-{}", these.len()));
                    std::fs::create_dir_all(&w).map_err(io("create", &w))?;
                    these.extend(unpack_entries(&e.src, mt, &w, dest)?);
                }
                None => unpacked_all = false,
            }
        }
        if unpacked_all {
            entries.extend(these);
        } else {
            plain.push(s.clone());
        }
    }
    if !plain.is_empty() {
        let d = if dir_forced && !dest.ends_with('/') {
            format!("{dest}/")
        } else {
            dest.to_string()
        };
        entries.extend(ctx.resolve_copy_with(&plain, &d, excludes)?);
    }
    Ok(entries)
}

/// `type=cache` mount directories under `<state>/cache-mounts`, kept between builds and keyed
/// by id as BuildKit keys them. Concurrent users are coordinated with `flock(2)` on a lock file
/// per directory, so the rules hold between the platforms of one build and between polyarch
/// processes: `shared` users hold a shared lock, `locked` users an exclusive one (they wait),
/// `private` users take the first directory of the id nobody holds, or a new one.
#[derive(Debug, Clone)]
pub(super) struct CacheMounts {
    root: PathBuf,
}

/// A cache directory in use: the lock is released when this is dropped.
pub(super) struct CacheLease {
    /// The directory to mount.
    pub path: PathBuf,
    _lock: File,
}

impl CacheMounts {
    /// Cache mounts kept under `state_root/cache-mounts`.
    pub(super) fn new(state_root: &Path) -> CacheMounts {
        CacheMounts {
            root: state_root.join("cache-mounts"),
        }
    }

    fn id_dir(&self, id: &str) -> PathBuf {
        // The id is user text: a digest keeps it a safe single path component.
        let h = hex::encode(Sha256::digest(id.as_bytes()));
        self.root.join(&h[..32])
    }

    /// Creates `dir/data` with the mode and owner the mount asks for, when it does not exist.
    fn ensure(dir: &Path, mode: u32, uid: u32, gid: u32) -> Result<PathBuf, SourceError> {
        let data = dir.join("data");
        if !data.is_dir() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            let tmp = tempfile::Builder::new()
                .prefix(".new-")
                .tempdir_in(dir)
                .map_err(io("create", dir))?
                .keep();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io("chmod", &tmp))?;
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(io("chown", &tmp))?;
            if std::fs::rename(&tmp, &data).is_err() {
                // Someone else made it first: theirs stays.
                let _ = std::fs::remove_dir(&tmp);
            }
        }
        Ok(data)
    }

    fn lock_file(dir: &Path) -> Result<File, SourceError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let p = dir.join("lock");
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io("open", &p))
    }

    /// Takes the cache directory for `id` under the `sharing` rule, blocking (on this thread)
    /// while a `locked` mount has to wait.
    pub(super) fn acquire(
        &self,
        id: &str,
        sharing: CacheSharing,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<CacheLease, SourceError> {
        use rustix::fs::{flock, FlockOperation};
        let dir = self.id_dir(id);
        // Its last use is now (`polyarch prune` takes least recently used mounts first, and
        // never one whose lock is held).
        crate::store::touch(&dir);
        let lock_err = |p: &Path| {
            let p = p.to_path_buf();
            move |e: rustix::io::Errno| SourceError::Io {
                action: "lock",
                path: p,
                source: e.into(),
            }
        };
        match sharing {
            CacheSharing::Shared | CacheSharing::Locked => {
                let lock = Self::lock_file(&dir)?;
                let op = if sharing == CacheSharing::Shared {
                    FlockOperation::LockShared
                } else {
                    FlockOperation::LockExclusive
                };
                flock(&lock, op).map_err(lock_err(&dir))?;
                let path = Self::ensure(&dir, mode, uid, gid)?;
                Ok(CacheLease { path, _lock: lock })
            }
            CacheSharing::Private => {
                // The main directory first, then numbered private ones.
                for n in 0usize.. {
                    let d = if n == 0 {
                        dir.clone()
                    } else {
                        dir.join(format!("private-{n}"))
                    };
                    let lock = Self::lock_file(&d)?;
                    match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
                        Ok(()) => {
                            let path = Self::ensure(&d, mode, uid, gid)?;
                            return Ok(CacheLease { path, _lock: lock });
                        }
                        Err(rustix::io::Errno::WOULDBLOCK) => continue,
                        Err(e) => return Err(lock_err(&d)(e)),
                    }
                }
                unreachable!("the loop returns")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names_and_dates() {
        assert_eq!(url_file_name("http://h/a/b.tar.gz?x=1"), "b.tar.gz");
        assert_eq!(url_file_name("http://h/"), "__unnamed__");
        assert_eq!(url_file_name("http://h"), "__unnamed__");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn file_destinations() {
        assert_eq!(file_dest("/a/", "x", false), "/a/x");
        assert_eq!(file_dest("/a", "x", false), "/a");
        assert_eq!(file_dest("/a", "x", true), "/a/x");
    }

    #[test]
    fn cache_sharing_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let c = CacheMounts::new(tmp.path());
        let a = c
            .acquire("/root/.cache", CacheSharing::Shared, 0o755, 0, 0)
            .unwrap();
        let b = c
            .acquire("/root/.cache", CacheSharing::Shared, 0o755, 0, 0)
            .unwrap();
        assert_eq!(a.path, b.path, "shared users see one directory");
        std::fs::write(a.path.join("kept"), "x").unwrap();
        drop((a, b));
        // Private: the main directory when free, a new one while it is held.
        let p1 = c
            .acquire("/root/.cache", CacheSharing::Private, 0o755, 0, 0)
            .unwrap();
        assert!(p1.path.join("kept").exists(), "contents persist");
        let p2 = c
            .acquire("/root/.cache", CacheSharing::Private, 0o755, 0, 0)
            .unwrap();
        assert_ne!(p1.path, p2.path);
        assert!(!p2.path.join("kept").exists());
        drop(p2);
        // Locked: a second locked user waits until the first releases.
        let l1 = c.acquire("k", CacheSharing::Locked, 0o700, 0, 0).unwrap();
        let mode = std::fs::metadata(&l1.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        let root = tmp.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let c2 = CacheMounts::new(&root);
            let _l2 = c2.acquire("k", CacheSharing::Locked, 0o700, 0, 0).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second locked user must wait"
        );
        drop(l1);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        drop(p1);
    }
}
