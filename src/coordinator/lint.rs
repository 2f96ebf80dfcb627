//! `polyarch build --call check` (buildx's `--check`): the Dockerfile checks of a build without
//! the build. Everything [`super::prepare`] checks before any layer is pulled (parsing, every
//! target platform's stages, expansion, `--from` and mount sources, entitlements), and the
//! warnings planning gives (unused build args, secret-looking ARG/ENV names, parser warnings).
//!
//! Level 3 (coordinator). Pulls no layer, runs and pushes nothing.

use super::*;

/// The build's warnings, in the order planning found them (each once).
///
/// Errors: whatever [`super::prepare`] finds (bad input, exit 2).
pub async fn lint<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Result<Vec<String>, BuildError> {
    Ok(prepare(req, deps).await?.warnings)
}
