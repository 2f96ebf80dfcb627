//! The build context: the directory whose files `COPY` can read, filtered by `.dockerignore`.
//!
//! Level 1 (sync file I/O through explicit paths). Two parts:
//! - [`Ignore`]: `.dockerignore` reading and matching with the semantics of moby's
//!   `patternmatcher` (`ignorefile.ReadAll`, `New`, `MatchesOrParentMatches`) and BuildKit's
//!   `fsutil` walker (when an excluded directory is still walked because an exception could match
//!   inside it);
//! - [`BuildContext::resolve_copy`]: Docker's `COPY` source rules turned into a flat, sorted list
//!   of [`CopyEntry`] values that the executor creates inside the image root filesystem.
//!
//! Paths inside the context are handled as `/`-separated UTF-8 strings relative to the context
//! root, as Docker does; symlinks are resolved by hand so that nothing outside the context is
//! ever read.
//!
//! The files, from the bottom up: `error` (what can go wrong), `path` (Go path cleaning),
//! `glob` (Go `filepath.Match`), `pattern` and `ignore` (`.dockerignore` selection), `entry`
//! (what a `COPY` creates, in destination order), `open` (the context root and its ignore
//! file), `resolve` (symlinks that must stay inside the context), `wildcard` and `walk`
//! (wildcard sources, directory contents), `copy` (the `COPY` source rules, tying them
//! together). Selection ends with the [`CopyEntry`] list: reading or hashing the selected
//! files is left to whoever takes that list.

mod copy;
mod entry;
mod error;
mod glob;
mod ignore;
mod open;
mod path;
mod pattern;
mod resolve;
mod walk;
mod wildcard;

pub use entry::{CopyEntry, EntryKind};
pub use error::ContextError;
pub use ignore::Ignore;
pub use open::BuildContext;
pub use path::clean_path;

#[cfg(test)]
mod tests;
