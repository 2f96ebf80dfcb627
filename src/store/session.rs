//! The process's own directory in the state directory, `procs/<pid>-<random>/`, held by an
//! exclusive `flock(2)` on its `lock` file for as long as the process uses the store. Every
//! temporary file and directory of the process (step directories, downloads, unpacking work)
//! lives under it.
//!
//! A build that is killed (SIGKILL, power loss) cannot clean up; its directory stays with a
//! lock nobody holds. The next polyarch process that opens the store takes each such lock and
//! removes what it guards ([`clean_leftovers`]); a directory whose lock is held belongs to a live
//! process and is never touched. Overlay mounts of a step live in its helper's own mount
//! namespace and vanish with it (the helper dies with polyarch: `PR_SET_PDEATHSIG`).
//!
//! Level 1: synchronous file I/O under `<root>/procs/` only.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{flock, FlockOperation};

use super::error::{io_err, StoreError};

/// Prefix of a session directory being set up: not yet locked, never removed while young.
const NEW_PREFIX: &str = ".new-";

/// How long a half-made session directory (a process killed between `mkdir` and locking) is
/// left alone before it counts as a leftover.
const NEW_GRACE_SECS: u64 = 60;

/// This process's directory under `procs/`, locked for its life and removed when dropped.
#[derive(Debug)]
pub(super) struct Session {
    /// `<root>/procs/<pid>-<random>`.
    pub(super) dir: PathBuf,
    /// Held with an exclusive flock until drop; its mtime is the session's start.
    _lock: File,
}

impl Session {
    /// Makes and locks a new session directory under `procs`. The directory is made and
    /// locked under a `.new-` name, then renamed into place, so no other process ever sees it
    /// unlocked.
    ///
    /// Errors: [`StoreError::Io`].
    pub(super) fn start(procs: &Path) -> Result<Session, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix(NEW_PREFIX)
            .tempdir_in(procs)
            .map_err(io_err("create a session directory in", procs))?;
        let lock_path = tmp.path().join("lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        flock(&lock, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
            action: "lock",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let name = format!(
            "{}-{}",
            std::process::id(),
            tmp.path()
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(NEW_PREFIX))
                .unwrap_or("x")
        );
        let dir = procs.join(name);
        let tmp = tmp.keep();
        fs::rename(&tmp, &dir).map_err(io_err("rename into place", &dir))?;
        Ok(Session { dir, _lock: lock })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Temp dirs under it are already gone when their owners dropped them; whatever is
        // left (a blob writer abandoned on an error path) goes with the directory.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What [`clean_leftovers`] and [`live_sessions`] see of another process's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// Its directory.
    pub dir: PathBuf,
    /// When it started (its lock file's mtime, on the file system's clock).
    pub started: SystemTime,
}

/// Whether the session directory `dir` belongs to a live process: its lock is held. When it
/// is free, returns the lock file (held now by this process) so the caller can remove the
/// directory before anybody else looks.
fn try_take(dir: &Path) -> Result<Option<File>, ()> {
    let Ok(lock) = File::open(dir.join("lock")) else {
        return Err(());
    };
    match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(lock)),
        Err(_) => Ok(None),
    }
}

/// Removes the session directories under `procs` whose lock nobody holds (leftovers of killed
/// processes), and half-made ones older than a minute; a removed session's journal of upload
/// sessions left open is kept under `root` first. Returns the directories removed.
/// Directories of live processes are never touched; failures to remove are logged and skipped.
pub fn clean_leftovers(root: &Path, procs: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(procs) else {
        return removed;
    };
    for item in rd.flatten() {
        let dir = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(NEW_PREFIX) {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > NEW_GRACE_SECS);
            if !old {
                continue;
            }
        } else {
            match try_take(&dir) {
                Ok(Some(_held)) => {}
                Ok(None) => continue,
                // No lock file: a session directory killed right after the rename is locked
                // still (flock survives rename), so this is debris.
                Err(()) => {}
            }
        }
        super::uploads::keep_abandoned(root, &dir);
        match fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) => tracing::warn!("cannot remove leftover {}: {e}", dir.display()),
        }
    }
    removed
}

/// The sessions under `procs` that belong to live processes, other than `own`.
pub fn live_sessions(procs: &Path, own: &Path) -> Vec<LiveSession> {
    let mut live = Vec::new();
    let Ok(rd) = fs::read_dir(procs) else {
        return live;
    };
    for item in rd.flatten() {
        let dir = item.path();
        if dir == own || item.file_name().to_string_lossy().starts_with(NEW_PREFIX) {
            continue;
        }
        if let Ok(None) = try_take(&dir) {
            let started = fs::metadata(dir.join("lock"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            live.push(LiveSession { dir, started });
        }
    }
    live
}
