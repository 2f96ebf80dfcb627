//! The output of `COPY` source selection: one [`CopyEntry`] per filesystem object to create in
//! the image root filesystem (name, kind, mode, mtime, owner), the destination order that puts
//! parents before children and lets a later source override an earlier one, and the hard links
//! between the selected files.
//!
//! Level 1: reads only metadata (`lstat` of the selected files, for hard links). Must not
//! select, walk or hash.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ContextError;

/// What a [`CopyEntry`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file, streamed from `src`.
    File,
    /// A directory (created if missing; an existing directory keeps its metadata).
    Dir,
    /// A symlink with this target, copied as a link (never followed).
    Symlink(String),
    /// A character (`block: false`) or block device node with its major and minor numbers
    /// (POSIX tar `devmajor`/`devminor`).
    Device {
        /// A block device rather than a character device.
        block: bool,
        /// The major device number.
        major: u32,
        /// The minor device number.
        minor: u32,
    },
    /// A named pipe (FIFO).
    Fifo,
    /// Another name of a file that an earlier entry of the same copy creates: a hard link to
    /// that entry's destination (absolute), as BuildKit's copy and a tar hard link keep it.
    Hardlink(String),
}

impl EntryKind {
    /// The kind of a non-directory from its `lstat` metadata: `None` for a socket, which a tar
    /// cannot hold (containerd and BuildKit leave sockets out of layers too), and for a
    /// directory or symlink, which the caller handles with what they need.
    pub fn special(md: &std::fs::Metadata) -> Option<EntryKind> {
        let ft = md.file_type();
        let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        if ft.is_file() {
            Some(EntryKind::File)
        } else if ft.is_char_device() || ft.is_block_device() {
            Some(EntryKind::Device {
                block: ft.is_block_device(),
                major,
                minor,
            })
        } else if ft.is_fifo() {
            Some(EntryKind::Fifo)
        } else {
            None
        }
    }
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
    /// Extended attributes (name, value) to give the entry, sorted by name: the source's, never
    /// `trusted.*` ([`crate::layer::file_xattrs`]); for an ADD archive, also those the host
    /// could not hold when unpacking it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
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

/// Turns the later names of a multiply-linked file into [`EntryKind::Hardlink`] entries to the
/// first one (in `entries` order, which is destination order): one inode in the layer, as in
/// the source. Files whose metadata cannot be read are left as they are (the copy reports
/// them).
pub(super) fn link_hardlinks(entries: &mut [CopyEntry]) {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for e in entries.iter_mut() {
        if e.kind != EntryKind::File {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(&e.src) else {
            continue;
        };
        if md.nlink() < 2 || !md.is_file() {
            continue;
        }
        match first.get(&(md.dev(), md.ino())) {
            Some(dest) => e.kind = EntryKind::Hardlink(dest.clone()),
            None => {
                first.insert((md.dev(), md.ino()), e.dest.clone());
            }
        }
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

/// The entry creating `dest` from `src` with `kind`, taking the mode (`0o777` for a symlink),
/// mtime and xattrs from `src`, whose `lstat` metadata is `md`; no owner.
///
/// Errors: [`ContextError::Read`] when the xattrs cannot be read.
pub(super) fn entry(
    src: &Path,
    dest: &str,
    kind: EntryKind,
    md: &std::fs::Metadata,
) -> Result<CopyEntry, ContextError> {
    let mode = if matches!(kind, EntryKind::Symlink(_)) {
        0o777
    } else {
        md.permissions().mode() & 0o7777
    };
    let xattrs = crate::layer::file_xattrs(src).map_err(|source| ContextError::Read {
        path: src.to_path_buf(),
        source,
    })?;
    Ok(CopyEntry {
        src: src.to_path_buf(),
        dest: dest.to_string(),
        kind,
        mode,
        mtime: md.mtime(),
        owner: None,
        xattrs,
    })
}
