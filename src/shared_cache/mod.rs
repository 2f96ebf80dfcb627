//! Shared step caches: `--cache-to` exports a build's step cache entries (and their layer
//! blobs) to a registry or an OCI image layout directory, `--cache-from` imports them, so that
//! CI jobs on other machines find their steps cached. The artifact's format is
//! [`crate::cache::artifact`]'s.
//!
//! Writers that export to one cache merge their entries instead of overwriting each other
//! (what buildx does: docker/buildx#1044, moby/buildkit#2822): a registry cache is a
//! read-modify-write of the tag, read back and merged again when another job's push replaced
//! ours (`registry.rs`); a local one is merged under a lock on its directory (`local.rs`).
//!
//! Level 3 (orchestration): talks to the registry port, the store and the cache's files. Must
//! not run steps or build images.

mod local;
mod registry;
mod spec;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use spec::{
    parse_source, parse_target, CacheLocation, CacheSource, CacheTarget, ExportMode, SpecError,
};

use crate::cache::{CacheError, Entry};
use crate::exit::{Classify, ExitCode};
use crate::registry::{Reference, Registry, RegistryError};
use crate::store::{Store, StoreError};

/// Where a layer blob can be fetched from when the store lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOrigin {
    /// A repository of a registry (a base image's, or a registry cache's).
    Registry(Reference),
    /// An OCI image layout directory (a `type=local` cache).
    Layout(PathBuf),
}

impl BlobOrigin {
    /// The repository, for a registry origin.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            BlobOrigin::Registry(r) => Some(r),
            BlobOrigin::Layout(_) => None,
        }
    }

    /// The blob file, for a layout origin.
    pub fn layout_blob(&self, digest: &crate::oci::Digest) -> Option<PathBuf> {
        match self {
            BlobOrigin::Layout(dir) => Some(dir.join("blobs").join("sha256").join(digest.hex())),
            BlobOrigin::Registry(_) => None,
        }
    }
}

/// A step cache entry to export, with where its layer blob is: `None` in the store.
#[derive(Debug, Clone)]
pub struct ExportEntry {
    /// The entry.
    pub entry: Entry,
    /// Its layer blob's origin when the store does not hold it.
    pub origin: Option<BlobOrigin>,
}

/// An entry read from a shared cache, its layer blob still there.
#[derive(Debug, Clone)]
pub struct ImportedEntry {
    /// The entry.
    pub entry: Entry,
    /// Where its layer blob is.
    pub origin: BlobOrigin,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Entries added to the cache (0: it had them all).
    pub added: usize,
    /// Entries the cache holds now.
    pub total: usize,
    /// Read-modify-write rounds it took (more than 1: another writer got in between).
    pub rounds: usize,
}

/// Why importing or exporting a shared cache failed.
#[derive(Debug, thiserror::Error)]
pub enum SharedCacheError {
    /// The registry failed (after retries).
    #[error("cache {target}: {source}")]
    Registry {
        /// The cache.
        target: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// The cache's files (a layout, the artifact) failed or are not a step cache.
    #[error("cache {target}: {source}")]
    Cache {
        /// The cache.
        target: String,
        /// The cause.
        #[source]
        source: CacheError,
    },
    /// The local store failed.
    #[error("cache {target}: {source}")]
    Store {
        /// The cache.
        target: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Other writers kept replacing the tag: our entries were still missing after every round.
    #[error(
        "cache {target}: other jobs kept replacing the cache; our entries were missing after \
         {rounds} rounds of read, merge, push and read back"
    )]
    Contended {
        /// The cache.
        target: String,
        /// Rounds tried.
        rounds: usize,
    },
}

impl Classify for SharedCacheError {
    fn exit_code(&self) -> ExitCode {
        match self {
            SharedCacheError::Registry { source, .. } => source.exit_code(),
            SharedCacheError::Cache { source, .. } => source.exit_code(),
            SharedCacheError::Store { source, .. } => source.exit_code(),
            SharedCacheError::Contended { .. } => ExitCode::Registry,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SharedCacheError::Registry { source, .. } => source.hint(),
            SharedCacheError::Contended { .. } => Some(
                "run the job again (exit 3), or add ignore-error=true to --cache-to so that \
                 a failed export does not fail the build"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Reads the entries of the shared cache `source`. `Ok(None)` when it does not exist yet.
///
/// Errors: [`SharedCacheError`] (a registry failure, a cache that is not a step cache).
pub async fn import<R: Registry>(
    registry: &R,
    store: &Store,
    source: &CacheSource,
) -> Result<Option<Vec<ImportedEntry>>, SharedCacheError> {
    match &source.location {
        CacheLocation::Registry(r) => registry::import(registry, store, r).await,
        CacheLocation::Local(dir) => local::import(dir),
    }
}

/// Merges `entries` into the shared cache `target` (created when missing): entries there
/// win, ours are added with their layer blobs.
///
/// Errors: [`SharedCacheError`].
pub async fn export<R: Registry>(
    registry: &R,
    store: &Store,
    target: &CacheTarget,
    entries: &[ExportEntry],
) -> Result<Exported, SharedCacheError> {
    match &target.location {
        CacheLocation::Registry(r) => registry::export(registry, store, r, entries).await,
        CacheLocation::Local(dir) => local::export(registry, store, dir, entries).await,
    }
}
