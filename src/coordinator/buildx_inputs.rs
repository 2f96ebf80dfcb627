//! What `docker buildx build` flags give a build beyond the Dockerfile and the context:
//! named build contexts, SSH agents, the settings and default network of every `RUN`, and
//! whether the target
//! platform was implicit ([`BuildxInputs`]).
//!
//! Level 3 (coordinator): plain data the command line fills in; read by the stage, step and
//! step-key code. No I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::NamedContext;
use crate::executor::RunSettings;

/// buildx's inputs of a build (README "buildx flags"); the default is a build without them.
#[derive(Debug, Clone, Default)]
pub struct BuildxInputs {
    /// `--add-host`, `--shm-size`, `--ulimit`: what every `RUN` gets.
    pub run_settings: RunSettings,
    /// `--build-context NAME=SOURCE`: what `FROM`/`--from`/`from=` NAME (or stage NAME) means.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--ssh ID=SOCKET`: SSH agent sockets by id, for `RUN --mount=type=ssh`. Bound into the
    /// steps that ask, never stored; only whether an id was given is in the step keys.
    pub ssh: BTreeMap<String, PathBuf>,
    /// No `--platform` was given (buildx then asks for none: BuildKit's implicit target): the
    /// image claims the platform its target stage ran as ([`crate::plan::StageGraph::claimed_platform`]).
    pub implicit_platform: bool,
    /// `--network`: what `RUN` steps without `--network` (or with `--network=default`) get, as
    /// BuildKit's build-wide network mode; `None` is polyarch's default (a private namespace
    /// with pasta).
    pub default_network: Option<crate::plan::Network>,
}

impl BuildxInputs {
    /// True when nothing here changes the build (build nodes get none of it).
    pub fn is_empty(&self) -> bool {
        self.run_settings.is_default()
            && self.named_contexts.is_empty()
            && self.ssh.is_empty()
            && self.default_network.is_none()
    }
}
