//! Entries a layer must carry as their source had them although the directory on disk could
//! not hold them: a device node or fifo the filesystem refused (a placeholder regular file
//! stands in for it), xattrs it refused (`user.*` on a symlink, a filesystem without xattrs).
//! Issue 18: "where the host cannot represent an entry, the layer still carries it exactly and
//! the build says so once".
//!
//! Level 1, plain data shared by the extraction (which finds such entries), the sandbox's COPY
//! (which finds them too and reports them) and the layer writer (which puts them back). Must
//! not read or write files.

use serde::{Deserialize, Serialize};

/// A device node or fifo, as a tar entry stores it (POSIX ustar typeflag `3`, `4`, `6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialNode {
    /// A character device with its major and minor numbers.
    Char {
        /// Major device number.
        major: u32,
        /// Minor device number.
        minor: u32,
    },
    /// A block device with its major and minor numbers.
    Block {
        /// Major device number.
        major: u32,
        /// Minor device number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

impl std::fmt::Display for SpecialNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecialNode::Char { major, minor } => write!(f, "character device {major}:{minor}"),
            SpecialNode::Block { major, minor } => write!(f, "block device {major}:{minor}"),
            SpecialNode::Fifo => f.write_str("fifo"),
        }
    }
}

/// One entry the directory on disk holds differently from what the layer must say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEntry {
    /// The entry's path relative to the layer root, without a leading `/` (`dev/null`).
    pub path: String,
    /// What the entry really is when a placeholder (an empty regular file with the entry's
    /// owner, mode and mtime) stands in for it on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<SpecialNode>,
    /// Xattrs (name, value) the entry has but the disk copy lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Why the host could not hold it (the refused operation and its error).
    pub reason: String,
}

impl ExactEntry {
    /// A short description for messages: `/dev/null (character device 1:3: mknod: Operation
    /// not permitted)`.
    pub fn describe(&self) -> String {
        let what = match (&self.node, self.xattrs.is_empty()) {
            (Some(n), _) => n.to_string(),
            (None, false) => {
                let names: Vec<String> = self
                    .xattrs
                    .iter()
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect();
                format!("xattr {}", names.join(", "))
            }
            (None, true) => "entry".to_string(),
        };
        format!("/{} ({what}: {})", self.path, self.reason)
    }
}

/// One line saying that `entries` could not be represented on this host, naming the first few;
/// `None` when there are none. Callers print it once per step (or layer), never per entry.
pub fn summary(entries: &[ExactEntry]) -> Option<String> {
    const SHOWN: usize = 3;
    entries.first()?;
    let mut names: Vec<String> = entries
        .iter()
        .take(SHOWN)
        .map(ExactEntry::describe)
        .collect();
    if entries.len() > SHOWN {
        names.push(format!("and {} more", entries.len() - SHOWN));
    }
    Some(format!(
        "{} {} cannot be represented on this host's filesystem: the layer keeps {} exactly, \
         later steps see a placeholder or miss the xattr: {}",
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        if entries.len() == 1 { "it" } else { "them" },
        names.join("; ")
    ))
}
