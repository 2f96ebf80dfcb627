//! Shared step caches: `--cache-to` exports a build's step cache entries (and their layer
//! blobs) to a registry or an OCI image layout directory, `--cache-from` imports them, so
//! that CI jobs on other machines find their steps cached.
//!
//! Level 3 (orchestration): talks to the registry port and the cache's files. Must not run
//! steps or build images.

mod spec;

pub use spec::{
    parse_source, parse_target, CacheLocation, CacheSource, CacheTarget, ExportMode, SpecError,
};
