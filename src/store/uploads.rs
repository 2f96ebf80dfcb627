//! The upload journal: the registry upload sessions a process opens (`POST
//! /v2/<name>/blobs/uploads/`) are recorded in its session directory (`open <registry> <url>`)
//! and closed when the upload is committed (`done <url>`). A process killed mid-upload leaves
//! sessions open at the registry; when the next process removes its leftovers, the journal is
//! kept under `<root>/abandoned-uploads/`, and the next build, which talks to registries,
//! takes it ([`Store::take_abandoned_uploads`]) and abandons those sessions (`DELETE`).
//!
//! Level 1: appends to and reads small files; the registry client writes through
//! [`record_open`] and [`record_done`], best effort (a journal that cannot be written only
//! means a session the registry will purge itself later).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Store;

/// The journal's file name in a session directory.
pub const JOURNAL: &str = "uploads";

/// Where dead sessions' journals wait for a build to abandon their sessions.
const ABANDONED: &str = "abandoned-uploads";

/// An upload session a killed process left open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonedUpload {
    /// The registry (`host[:port]`, as in a reference).
    pub registry: String,
    /// The session's URL (the first `Location` the registry gave).
    pub location: String,
}

fn append(journal: &Path, line: &str) {
    let r = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = r {
        tracing::debug!("cannot write the upload journal {}: {e}", journal.display());
    }
}

/// Records that an upload session was opened at `registry` with the URL `location`.
pub fn record_open(journal: &Path, registry: &str, location: &str) {
    append(journal, &format!("open {registry} {location}"));
}

/// Records that the session `location` was committed or abandoned.
pub fn record_done(journal: &Path, location: &str) {
    append(journal, &format!("done {location}"));
}

/// The sessions a journal opened and did not close.
pub(super) fn open_sessions(journal: &Path) -> Vec<AbandonedUpload> {
    let text = fs::read_to_string(journal).unwrap_or_default();
    let mut open: Vec<AbandonedUpload> = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ' ');
        match (f.next(), f.next(), f.next()) {
            (Some("open"), Some(registry), Some(location)) => open.push(AbandonedUpload {
                registry: registry.to_string(),
                location: location.to_string(),
            }),
            (Some("done"), Some(location), None) => open.retain(|u| u.location != location),
            _ => {}
        }
    }
    open
}

/// Keeps the journal of the dead session `dir` (under the state directory `root`) when it
/// left sessions open, before the directory is removed.
pub(super) fn keep_abandoned(root: &Path, dir: &Path) {
    let journal = dir.join(JOURNAL);
    if open_sessions(&journal).is_empty() {
        return;
    }
    let keep = root.join(ABANDONED);
    let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
    if fs::create_dir_all(&keep).is_ok() {
        let _ = fs::rename(&journal, keep.join(name));
    }
}

impl Store {
    /// This process's upload journal, for the registry client.
    pub fn upload_journal(&self) -> PathBuf {
        self.session.dir.join(JOURNAL)
    }

    /// Takes the journals of killed processes (each file is moved into this session first, so
    /// two processes never take the same one) and returns the sessions they left open.
    pub fn take_abandoned_uploads(&self) -> Vec<AbandonedUpload> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.root.join(ABANDONED)) else {
            return out;
        };
        for (i, item) in rd.flatten().enumerate() {
            let mine = self.session.dir.join(format!("abandoned-{i}"));
            if fs::rename(item.path(), &mine).is_ok() {
                out.extend(open_sessions(&mine));
                let _ = fs::remove_file(&mine);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sessions_are_those_not_done() {
        let tmp = tempfile::tempdir().unwrap();
        let j = tmp.path().join(JOURNAL);
        record_open(&j, "r:5000", "http://r:5000/v2/a/blobs/uploads/1");
        record_open(&j, "r:5000", "http://r:5000/v2/a/blobs/uploads/2");
        record_done(&j, "http://r:5000/v2/a/blobs/uploads/1");
        let open = open_sessions(&j);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].location, "http://r:5000/v2/a/blobs/uploads/2");
        // A dead session's journal is kept and taken once.
        let store = Store::open(&tmp.path().join("state")).unwrap();
        let dead = tmp.path().join("state/procs/1-dead");
        fs::create_dir_all(&dead).unwrap();
        fs::copy(&j, dead.join(JOURNAL)).unwrap();
        keep_abandoned(store.root(), &dead);
        assert_eq!(store.take_abandoned_uploads(), open);
        assert!(store.take_abandoned_uploads().is_empty());
    }
}
