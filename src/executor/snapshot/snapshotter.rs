//! [`Snapshotter`]: the choice of how a step's changes are captured (`auto`, `overlay`, `copy`),
//! as `--snapshotter`, `POLYARCH_SNAPSHOTTER`, the spec and the helper's report spell it.
//!
//! Level 0 inside the executor: a plain value with its names; no I/O. The spec and the outcome
//! name it, so it must not depend on the snapshot machinery above it.

use serde::{Deserialize, Serialize};

/// How a step's filesystem changes are captured (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    /// overlayfs where the kernel allows it, else copy and compare.
    #[default]
    Auto,
    /// overlayfs only; a failed mount fails the step.
    Overlay,
    /// Copy the lower layers, run, then walk and compare.
    Copy,
}

impl Snapshotter {
    /// Every snapshotter, in the order `--snapshotter` lists them.
    pub const ALL: [Snapshotter; 3] = [Snapshotter::Auto, Snapshotter::Overlay, Snapshotter::Copy];

    /// The name used on the command line, in `POLYARCH_SNAPSHOTTER` and in the helper's report.
    pub fn as_str(self) -> &'static str {
        match self {
            Snapshotter::Auto => "auto",
            Snapshotter::Overlay => "overlay",
            Snapshotter::Copy => "copy",
        }
    }
}

impl std::fmt::Display for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Snapshotter {
    type Err = String;

    /// Parses `auto`, `overlay` or `copy`; the error lists them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Snapshotter::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown snapshotter {s:?} (known: auto, overlay, copy)"))
    }
}
