//! What the state directory holds, item by item: each blob, unpacked layer, step cache entry,
//! cache mount, node context bundle and leftover, with its size, last-use time (mtime, see
//! `store`'s claims) and whether a step cache entry refers to it.
//!
//! Level 1: reads the state directory; changes nothing.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::cache::entries::{read_all, steps_dir};

/// The kinds of things in a state directory, in the order `du` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Blobs (`blobs/sha256/`): layers, configs, manifests.
    Blobs,
    /// Unpacked layers (`layers/`), the lower directories steps run on.
    Layers,
    /// Step cache entries (`cache/steps/`) and the file digest memo.
    StepCache,
    /// `RUN --mount=type=cache` directories (`cache-mounts/`).
    CacheMounts,
    /// Build contexts a build node received (`contexts/`).
    Contexts,
    /// Work in progress of polyarch processes (`procs/`, and the `tmp/` of older versions).
    InProgress,
}

impl Kind {
    /// Every kind, in listing order.
    pub const ALL: [Kind; 6] = [
        Kind::Blobs,
        Kind::Layers,
        Kind::StepCache,
        Kind::CacheMounts,
        Kind::Contexts,
        Kind::InProgress,
    ];

    /// Its name in `du` (`blobs`, `step-cache`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Blobs => "blobs",
            Kind::Layers => "layers",
            Kind::StepCache => "step-cache",
            Kind::CacheMounts => "cache-mounts",
            Kind::Contexts => "contexts",
            Kind::InProgress => "in-progress",
        }
    }
}

/// One thing in the state directory.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its kind.
    pub kind: Kind,
    /// The file or directory.
    pub path: PathBuf,
    /// Bytes it takes (files' lengths; hard links counted once per item).
    pub size: u64,
    /// When it was last used (its mtime).
    pub last_used: SystemTime,
    /// A step cache entry names it (a layer blob, or the unpacked layer of one).
    pub referenced: bool,
}

/// Bytes under `path` (a file, or a tree walked without following links), each inode once.
pub fn tree_size(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        } else if seen.insert((md.dev(), md.ino())) {
            total += md.len();
        }
    }
    total
}

fn mtime(path: &Path) -> SystemTime {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The entries of a directory (none when it does not exist).
fn children(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn item(kind: Kind, path: PathBuf, referenced: bool) -> Item {
    Item {
        kind,
        size: tree_size(&path),
        last_used: mtime(&path),
        path,
        referenced,
    }
}

/// Every item of the state directory `root`, except the live sessions' directories under
/// `procs/` (their work in progress is not this scan's business) when `live` names them.
pub fn scan(root: &Path, live: &[PathBuf]) -> Vec<Item> {
    // What the step cache refers to: layer blobs and their unpacked layers.
    let mut blobs = HashSet::new();
    let mut diff_ids = HashSet::new();
    for (_, e) in read_all(&steps_dir(root)) {
        if let Some(l) = e.and_then(|e| e.layer) {
            blobs.insert(l.digest.hex().to_string());
            diff_ids.insert(l.diff_id.hex().to_string());
        }
    }
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for p in children(&root.join("blobs").join("sha256")) {
        let r = blobs.contains(&name(&p));
        out.push(item(Kind::Blobs, p, r));
    }
    for p in children(&root.join("layers")) {
        let r = diff_ids.contains(&name(&p));
        out.push(item(Kind::Layers, p, r));
    }
    for p in children(&steps_dir(root)) {
        out.push(item(Kind::StepCache, p, false));
    }
    let memo = crate::cache::memo_path(root);
    if memo.is_file() {
        out.push(item(Kind::StepCache, memo, false));
    }
    for p in children(&root.join("cache-mounts")) {
        out.push(item(Kind::CacheMounts, p, false));
    }
    for p in children(&root.join("contexts")) {
        out.push(item(Kind::Contexts, p, false));
    }
    for p in children(&root.join("procs")) {
        if !live.contains(&p) {
            out.push(item(Kind::InProgress, p, false));
        }
    }
    for p in children(&root.join("tmp")) {
        out.push(item(Kind::InProgress, p, false));
    }
    out
}
