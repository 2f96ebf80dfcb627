//! The output of `COPY` source selection: one [`CopyEntry`] per filesystem object to create in
//! the image root filesystem (name, kind, mode, mtime, owner), and the destination order that
//! puts parents before children and lets a later source override an earlier one.
//!
//! Level 1: reads nothing itself (metadata is handed in). Must not select, walk or hash.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a [`CopyEntry`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file, streamed from `src`.
    File,
    /// A directory (created if missing; an existing directory keeps its metadata).
    Dir,
    /// A symlink with this target, copied as a link (never followed).
    Symlink(String),
}

/// One filesystem object to create in the image root filesystem for a `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyEntry {
    /// Host path of the source inside the context, with every symlink on the way resolved (for
    /// [`EntryKind::Symlink`], the link itself).
    pub src: PathBuf,
    /// Absolute destination path in the root filesystem (`/app/main.go`).
    pub dest: String,
    /// What to create.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time of the source, seconds since the Unix epoch.
    pub mtime: i64,
    /// Owner to give the entry when COPY has no `--chown` (files unpacked from an ADD archive
    /// keep the archive's owners); `None` is `0:0`.
    #[serde(default)]
    pub owner: Option<(u32, u32)>,
}

/// Destination key ordering: by path components, so a directory sorts before its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DestKey(Vec<String>);

impl Ord for DestKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for DestKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Adds `e` to the destination-ordered set, replacing an entry already at its destination.
pub(super) fn insert(out: &mut BTreeMap<DestKey, CopyEntry>, e: CopyEntry) {
    let key = DestKey(
        e.dest
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
    );
    out.insert(key, e);
}

/// The entry creating `dest` from `src` with `kind`, taking the mode (`0o777` for a symlink)
/// and mtime from `md`, the source's `lstat` metadata; no owner.
pub(super) fn entry(src: &Path, dest: &str, kind: EntryKind, md: &std::fs::Metadata) -> CopyEntry {
    let mode = if matches!(kind, EntryKind::Symlink(_)) {
        0o777
    } else {
        md.permissions().mode() & 0o7777
    };
    CopyEntry {
        src: src.to_path_buf(),
        dest: dest.to_string(),
        kind,
        mode,
        mtime: md.mtime(),
        owner: None,
    }
}
