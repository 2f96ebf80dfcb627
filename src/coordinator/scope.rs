//! What one step of a stage runs with: the build's shared settings and parts, the stage's
//! layers so far, the cache mounts, and the other stages and images it may read
//! ([`Upstream`]).
//!
//! Level 3 (coordinator), under [`super::step`] and [`super::actions`], which take a
//! [`StepScope`]; [`super::stage`] makes one per step and implements [`Upstream`] on its stage
//! table. Declares and borrows only: no I/O, and no knowledge of how stages are built or
//! shared between platforms.

use std::sync::Arc;

use super::sources::CacheMounts;
use super::{BuildError, BuiltLayer, BuiltStage, Deps, Shared};

/// The other stages and images a step reads (`COPY --from`, `RUN --mount=from=`), for the
/// platform its stage runs as. A step asks; how the answer is built, pulled or shared between
/// platforms is the implementation's business.
pub(super) trait Upstream {
    /// The built stage `index` of the Dockerfile, as the asking stage needs it.
    ///
    /// Errors: whatever building that stage gives.
    async fn stage(&self, index: usize) -> Result<Arc<BuiltStage>, BuildError>;

    /// The image `reference` (config and layers) for the asking stage's platform.
    ///
    /// Errors: whatever resolving and pulling it gives.
    async fn image(&self, reference: &str) -> Result<Arc<BuiltStage>, BuildError>;
}

/// Everything one step of a stage runs with.
pub(super) struct StepScope<'s, R, E, U> {
    /// The build's shared settings (request, Dockerfile, context, `created`).
    pub sh: &'s Shared<'s>,
    /// The registry, executor, store and progress sink.
    pub deps: &'s Deps<R, E>,
    /// The `RUN --mount=type=cache` directories of the state directory.
    pub caches: &'s CacheMounts,
    /// The other stages and images the step may read.
    pub upstream: &'s U,
    /// How progress and errors name the stage's platform (`linux/amd64`, `linux/amd64 build`).
    pub label: &'s str,
    /// The platform the stage runs as.
    pub platform: &'s crate::platform::Platform,
    /// The stage's name (for `--no-cache-filter`).
    pub stage_name: Option<&'s str>,
    /// The stage's layers so far, base first.
    pub layers: &'s [BuiltLayer],
    /// Where a layer this step makes ends up pushed (the stage is part of a pushed image): it
    /// is uploaded there while it is written. `None`: only to the store.
    pub upload_to: Option<&'s crate::registry::Reference>,
}
