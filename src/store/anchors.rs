//! Anchor directories: a bottom lower layer of empty directories that makes overlayfs merge the
//! directories in which an unpacked layer holds whiteouts.
//!
//! overlayfs reads a directory that only one layer of a stack has straight from that layer
//! (fs/overlayfs/readdir.c: such a directory is "real", not merged), so a whiteout in it, one
//! for a path no lower layer has (image-spec layer.md allows it), is listed by `readdir` though
//! it cannot be opened: `ls` shows `c?????????`. Placing the same directory, empty, in a layer
//! below makes it a merged directory, whose listing leaves whiteouts out; its metadata still
//! comes from the top-most layer that has it, so nothing else changes.
//!
//! Level 1: synchronous file I/O under the store's root only.
//!
//! ```text
//! <root>/layers/<hex>/whiteout-dirs   the directories of that layer holding whiteouts, one a line
//! <root>/anchors/<hex>/root           an anchor: those directories, empty, for one set of layers
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::{io_err, StoreError};
use super::Store;

/// Name of the file next to an unpacked layer's `root` listing its whiteout directories.
pub(super) const WHITEOUT_DIRS: &str = "whiteout-dirs";

/// Writes the list of `dirs` (relative, `""` for the root) into `layer_work/whiteout-dirs`,
/// when there are any.
pub(super) fn record(layer_work: &Path, dirs: &[String]) -> Result<(), StoreError> {
    if dirs.is_empty() {
        return Ok(());
    }
    let path = layer_work.join(WHITEOUT_DIRS);
    let mut text = String::new();
    for d in dirs {
        // One a line; a name with a newline cannot be listed, and only costs a stray listing.
        if !d.contains('\n') {
            text.push_str(d);
            text.push('\n');
        }
    }
    fs::write(&path, text).map_err(io_err("write", &path))
}

impl Store {
    /// The lower directories to mount for the layer directories `dirs` (top-most first, as
    /// overlayfs takes them): `dirs` themselves, and when one of them has whiteouts recorded
    /// (see the module docs), an anchor directory last, holding every directory that holds a
    /// whiteout, empty. Anchors are made once per set of directories and kept.
    ///
    /// Making an anchor is best effort: on failure the layers are returned alone (a warning
    /// is logged), which only leaves such whiteouts listed.
    pub fn lowerdirs(&self, dirs: Vec<PathBuf>) -> Vec<PathBuf> {
        let mut wanted = BTreeSet::new();
        for d in &dirs {
            let list = d.parent().map(|p| p.join(WHITEOUT_DIRS));
            if let Some(text) = list.and_then(|l| fs::read_to_string(l).ok()) {
                wanted.extend(text.lines().map(str::to_string));
            }
        }
        if wanted.is_empty() {
            return dirs;
        }
        match self.anchor(&wanted) {
            Ok(anchor) => {
                let mut out = dirs;
                out.push(anchor);
                out
            }
            Err(e) => {
                tracing::warn!("cannot make the anchor layer for whiteout directories: {e}");
                dirs
            }
        }
    }

    /// The anchor directory holding `wanted` (relative paths) as empty directories, made when
    /// missing (in a temp dir, renamed into place).
    fn anchor(&self, wanted: &BTreeSet<String>) -> Result<PathBuf, StoreError> {
        let mut h = Sha256::new();
        for w in wanted {
            h.update(w.as_bytes());
            h.update(b"\n");
        }
        let dir = self.root().join("anchors").join(hex::encode(h.finalize()));
        let root = dir.join("root");
        if root.is_dir() {
            return Ok(root);
        }
        let work = self.temp_dir("anchor-")?;
        for w in wanted {
            // Only plain relative names: nothing may leave the anchor.
            let safe = w
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .all(|c| c != "..");
            if safe {
                let p = work.path().join("root").join(w.trim_start_matches('/'));
                fs::create_dir_all(&p).map_err(io_err("create directory", &p))?;
            }
        }
        let top = work.path().join("root");
        fs::create_dir_all(&top).map_err(io_err("create directory", &top))?;
        let parent = self.root().join("anchors");
        fs::create_dir_all(&parent).map_err(io_err("create directory", &parent))?;
        let kept = work.keep();
        match fs::rename(&kept, &dir) {
            Ok(()) => Ok(root),
            // Another process made it first: theirs is the same.
            Err(_) if root.is_dir() => {
                let _ = fs::remove_dir_all(&kept);
                Ok(root)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&kept);
                Err(io_err("rename into place", &dir)(e))
            }
        }
    }
}
