//! What a plan is asked for and what a stage starts from: the request ([`PlanRequest`]: target
//! and build platforms, `--build-arg` values, `--target`), the image a stage starts from
//! ([`BaseImage`]), the parts of its starting config the plan reads ([`BaseConfig`]), and the
//! defaults BuildKit fills in where a config says nothing.
//!
//! Level 0: plain data, no I/O. Selecting stages and resolving steps happen elsewhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// The PATH BuildKit gives a stage whose base image sets none (`system.DefaultPathEnvUnix`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The default shell for shell-form commands on Linux (BuildKit `defaultShell`).
pub const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// ARGs that may be passed with `--build-arg` without an ARG instruction; they reach RUN steps
/// but never the image history (Dockerfile reference, "Predefined ARGs").
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// The platform the image is built for (`--platform` entry).
    pub target_platform: Platform,
    /// The platform polyarch runs on.
    pub build_platform: Platform,
    /// `--build-arg NAME=VALUE` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage name; `None` builds the last stage.
    pub target_stage: Option<String>,
}

/// The image a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseImage {
    /// `FROM scratch`: an empty root filesystem and an empty config.
    Scratch,
    /// An image reference as written after expansion (`alpine:3.20`, `reg:5000/x@sha256:...`).
    Image(String),
    /// An earlier stage of the same Dockerfile, by index in
    /// [`Dockerfile::stages`](crate::dockerfile::Dockerfile::stages).
    Stage(usize),
}

/// The parts of a stage's starting config the plan depends on (image-spec config.md
/// `config.Env`, `config.WorkingDir`, `config.User`; Docker's `Shell` and `OnBuild`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseConfig {
    /// `KEY=VALUE` entries, in order.
    #[serde(default)]
    pub env: Vec<String>,
    /// The working directory; `/` when absent or empty.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// The user; root when absent or empty.
    #[serde(default)]
    pub user: Option<String>,
    /// The shell for shell-form commands; [`DEFAULT_SHELL`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// ONBUILD triggers to run first, as the config records them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    /// The environment is not known yet (the base image is not pulled): used by
    /// [`check_graph`](super::check_graph), which then reports only errors that no base image could avoid.
    #[serde(skip)]
    pub env_unknown: bool,
}
