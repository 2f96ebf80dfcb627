//! RUN: its flags (`--mount`, kept as written for the planner to parse; `--network`,
//! `--security`) and the command in shell or exec form with its heredocs.
//!
//! Level 0 (pure). Must not parse mount specs or run anything.

use super::cx::Cx;
use super::flags::FlagSpec;
use crate::dockerfile::{DockerfileError, InstructionKind};

impl Cx<'_> {
    /// `RUN [--mount=...] [--network=...] [--security=...] command`, shell or exec form,
    /// heredocs attached; `--device` is refused.
    pub(super) fn run(&self) -> Result<InstructionKind, DockerfileError> {
        let mut flags = self.flags(&[
            ("mount", FlagSpec::Strings),
            ("network", FlagSpec::String),
            ("security", FlagSpec::String),
            (
                "device",
                FlagSpec::Unsupported("CDI devices are a BuildKit labs feature"),
            ),
        ])?;
        let command = self.maybe_json()?;
        Ok(InstructionKind::Run {
            command,
            heredocs: self.node.heredocs.clone(),
            mounts: flags.strings("mount"),
            network: flags.string("network"),
            security: flags.string("security"),
        })
    }
}
