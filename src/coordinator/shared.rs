//! The build's side of shared step caches: `--cache-from` entries read before any stage is
//! built (a cache that cannot be read is a warning: the steps run instead), and `--cache-to`
//! entries of the stages built here written after every platform succeeded and before any tag
//! moves (a failed export fails the build unless `ignore-error=true`).
//!
//! Level 3 (coordinator), under [`super::build_with`]. Picks entries and reports; the artifact
//! and the merging are [`crate::shared_cache`]'s.

use super::stage::Stages;
use super::*;
use crate::plan::StageKey;
use crate::shared_cache::{self, ExportEntry, ExportMode};

/// The entries of every `--cache-from` cache, in order (the first cache listing a key wins).
pub(super) async fn import_all<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
) -> Vec<StepRecord> {
    let mut out = Vec::new();
    for source in &req.cache.import {
        let cache = source.location.to_string();
        match shared_cache::import(&deps.registry, &deps.store, source).await {
            Ok(Some(entries)) => {
                deps.sink.emit(Event::CacheImported {
                    cache,
                    entries: entries.len(),
                });
                out.extend(entries.into_iter().map(|e| StepRecord {
                    entry: e.entry,
                    origin: Some(e.origin),
                }));
            }
            Ok(None) => deps.sink.emit(Event::Warning {
                message: format!("--cache-from {cache}: no cache there yet"),
            }),
            Err(e) => deps.sink.emit(Event::Warning {
                message: format!("--cache-from {cache}: not used: {e}"),
            }),
        }
    }
    out
}

/// Exports the entries `--cache-to` asks for: of the target stages (`mode=min`) or of every
/// stage built here (`mode=max`). Platforms built on nodes have no entries here.
///
/// Errors: [`BuildError::SharedCache`] for a failed export without `ignore-error=true`.
pub(super) async fn export_all<'a, R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    stages: &Stages<'a, R, E>,
    targets: &[StageKey],
) -> Result<(), BuildError> {
    for target in &req.cache.export {
        let built = match target.mode {
            ExportMode::Min => targets
                .iter()
                .filter_map(|k| stages.built(k))
                .collect::<Vec<_>>(),
            ExportMode::Max => stages.all_built(),
        };
        let mut entries: Vec<ExportEntry> = Vec::new();
        for stage in &built {
            for r in &stage.steps {
                if !entries.iter().any(|e| e.entry.key == r.entry.key) {
                    entries.push(ExportEntry {
                        entry: r.entry.clone(),
                        origin: r.origin.clone(),
                    });
                }
            }
        }
        let cache = target.location.to_string();
        match shared_cache::export(&deps.registry, &deps.store, target, &entries).await {
            Ok(done) => deps.sink.emit(Event::CacheExported {
                cache,
                added: done.added,
                total: done.total,
                rounds: done.rounds,
            }),
            Err(e) if target.ignore_error => deps.sink.emit(Event::Warning {
                message: format!("--cache-to {cache} failed (ignore-error=true): {e}"),
            }),
            Err(e) => return Err(BuildError::SharedCache(Box::new(e))),
        }
    }
    Ok(())
}
