//! The outcome of phase 1: every stage one target platform needs ([`StageGraph`]), each a
//! [`Selection`] (which stage, its base, the platform it runs as, its dependencies) carrying the
//! [`StageKey`] that lets target platforms share one build of a stage.
//!
//! Level 0: plain data, no I/O. Selecting is `select.rs`'s job, making keys `stage_key.rs`'s.

use std::collections::BTreeMap;

use serde::Serialize;

use super::request::{BaseImage, PlanRequest};
use crate::platform::Platform;

/// Identifies one stage build: equal keys mean equal inputs and so an equal result. Shown as
/// `stage-index/platform/hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct StageKey(pub String);

impl std::fmt::Display for StageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One needed stage for one target platform: which stage, which base, which platform, and its
/// dependencies. The outcome of phase 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the stage in [`Dockerfile::stages`](crate::dockerfile::Dockerfile::stages).
    pub stage_index: usize,
    /// The stage's name, if it has one.
    pub stage_name: Option<String>,
    /// The image to start from.
    pub base: BaseImage,
    /// The platform the stage runs as: `FROM --platform` when given, else the target.
    pub platform: Platform,
    /// Equal for selections (of any target platform) that build the same thing.
    pub key: StageKey,
    /// Earlier stages this one uses (base, `COPY --from`, mount `from`), by index, ascending.
    pub deps: Vec<usize>,
    /// Images this stage reads files from (`COPY --from=image`, mount `from=image`).
    pub images: Vec<String>,
    /// Non-fatal findings: unused build args, parser warnings (on the target's selection).
    pub warnings: Vec<String>,
    /// The request the stage was selected with.
    pub(super) request: PlanRequest,
    /// Global scope: automatic platform ARGs, then global ARGs (value `None` when unset).
    pub(super) meta: Vec<(String, Option<String>)>,
    /// Keys of the stages in `deps`, for [`Selection::dep_key`].
    pub(super) dep_keys: BTreeMap<usize, StageKey>,
}

/// Every stage one target platform needs, dependencies first, the target last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// The selections, in ascending stage order (a stage only uses earlier stages).
    pub stages: Vec<Selection>,
    /// Non-fatal findings: unused build args, parser warnings.
    pub warnings: Vec<String>,
}

impl StageGraph {
    /// The target stage's selection.
    pub fn target(&self) -> &Selection {
        self.stages
            .last()
            .unwrap_or_else(|| unreachable!("a graph always has its target"))
    }

    /// The platform the image claims (its config and index entry). With `--platform` given
    /// (`implicit` false) the requested target, whatever platform the target stage ran as;
    /// without it (BuildKit's `implicitTarget`) the target stage's own platform, so a target
    /// stage `FROM --platform=linux/arm64 ...` built with no `--platform` is an arm64 image
    /// (buildkit `dockerfile2llb/convert.go`, `if !platformOpt.implicitTarget`).
    pub fn claimed_platform(&self, requested: &Platform, implicit: bool) -> Platform {
        if implicit {
            self.target().platform.clone()
        } else {
            requested.clone()
        }
    }

    /// The selection of stage `index`, when the target needs it.
    pub fn get(&self, index: usize) -> Option<&Selection> {
        self.stages.iter().find(|s| s.stage_index == index)
    }
}

impl Selection {
    /// The key of dependency stage `index` as selected with this selection's inputs.
    pub fn dep_key(&self, index: usize) -> Option<&StageKey> {
        self.dep_keys.get(&index)
    }
}
