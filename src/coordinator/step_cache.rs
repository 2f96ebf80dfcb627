//! The step cache as one build uses it: the settings (`--no-cache`, `--no-cache-filter`,
//! `--pull`), the local entries and content hasher of the state directory, and the entries
//! imported from `--cache-from` caches; looking a key up and recording what a step made.
//!
//! Level 3 (coordinator), beside [`super::step`], which looks a step's key up here before it
//! runs and records its entry after. Must not run steps, gather key inputs or talk to a
//! registry (imports are read before the build, in [`super::shared`]).

use std::collections::HashMap;

use super::materialise::Origin;
use super::*;
use crate::cache::{CacheKey, ContentHasher, Entries, Entry, Lookup};

/// How a build uses the step cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptions {
    /// `--no-cache`: run every step. What they make is still recorded, so the next build
    /// finds it.
    pub no_cache: bool,
    /// `--no-cache-filter STAGE[,STAGE]`: run every step of these stages (by name).
    pub no_cache_filter: Vec<String>,
    /// `--pull`: take the base image's manifest and config from the registry, never from the
    /// store (the tag is resolved in every build anyway; only its digest is in the keys).
    pub pull: bool,
    /// `--cache-from`: shared caches to import entries from, in order of preference.
    pub import: Vec<crate::shared_cache::CacheSource>,
    /// `--cache-to`: shared caches to export this build's entries to.
    pub export: Vec<crate::shared_cache::CacheTarget>,
}

/// A step's entry with where its layer blob can be fetched from when it is not in the store
/// (entries imported from a shared cache); what `--cache-to` exports.
#[derive(Debug, Clone)]
pub(super) struct StepRecord {
    /// The entry.
    pub entry: Entry,
    /// The blob's origin; `None`: in the store.
    pub origin: Option<Origin>,
}

/// What looking a step's key up found.
pub(super) enum Found {
    /// The step's result, from the local entries or an imported cache.
    Hit(Box<StepRecord>),
    /// Nothing usable: run the step. The reason is for progress when it is not just "no
    /// entry"; `warn` when the user should hear of it even if the step before ran too.
    Miss {
        /// Why.
        reason: String,
        /// A dropped (corrupt, incomplete) entry: always said, as a warning too.
        warn: bool,
    },
}

/// The step cache of one build.
pub(super) struct StepCache {
    options: CacheOptions,
    entries: Entries,
    /// Digests of selected context files (memoised in the state directory).
    pub hasher: Arc<ContentHasher>,
    imported: HashMap<CacheKey, StepRecord>,
}

impl StepCache {
    /// The step cache of the state directory `store`, with `imported` entries from shared
    /// caches (the first cache listing a key wins).
    ///
    /// Errors: [`BuildError::Cache`] when the entries directory cannot be made.
    pub(super) fn open(
        store: &Store,
        options: &CacheOptions,
        imported: Vec<StepRecord>,
    ) -> Result<StepCache, BuildError> {
        let entries = Entries::open(store).map_err(BuildError::Cache)?;
        let mut map = HashMap::new();
        for r in imported {
            map.entry(r.entry.key.clone()).or_insert(r);
        }
        Ok(StepCache {
            options: options.clone(),
            entries,
            hasher: Arc::new(ContentHasher::new(&crate::cache::memo_path(store.root()))),
            imported: map,
        })
    }

    /// Whether steps of the stage named `stage` must run whatever the cache holds, and why.
    pub(super) fn disabled_for(&self, stage: Option<&str>) -> Option<String> {
        if self.options.no_cache {
            return Some("--no-cache".into());
        }
        let name = stage?;
        self.options
            .no_cache_filter
            .iter()
            .any(|f| f == name)
            .then(|| format!("--no-cache-filter {name}"))
    }

    /// Looks `key` up: the local entries first, then the imported ones.
    ///
    /// Errors: [`BuildError::Cache`] when the entries cannot be read.
    pub(super) fn lookup(&self, key: &CacheKey) -> Result<Found, BuildError> {
        match self.entries.get(key).map_err(BuildError::Cache)? {
            Lookup::Hit(entry) => Ok(Found::Hit(Box::new(StepRecord {
                entry,
                origin: None,
            }))),
            Lookup::Dropped(why) => match self.imported.get(key) {
                Some(r) => Ok(Found::Hit(Box::new(r.clone()))),
                None => Ok(Found::Miss {
                    reason: format!("cache entry dropped: {why}"),
                    warn: true,
                }),
            },
            Lookup::Missing => match self.imported.get(key) {
                Some(r) => Ok(Found::Hit(Box::new(r.clone()))),
                None => Ok(Found::Miss {
                    reason: "no entry for this key".into(),
                    warn: false,
                }),
            },
        }
    }

    /// Records what a step made. A failure is only worth a warning: the build goes on.
    pub(super) fn record(&self, entry: &Entry) -> Result<(), crate::cache::CacheError> {
        self.entries.put(entry)
    }

    /// Writes the file digest memo back. Failing costs only hashing next time.
    pub(super) fn save(&self) {
        if let Err(e) = self.hasher.save() {
            tracing::warn!("cannot save the file digest memo: {e}");
        }
    }

    /// The options the build was given.
    pub(super) fn options(&self) -> &CacheOptions {
        &self.options
    }
}
