//! Build nodes in a build: probe them, place every platform ([`crate::schedule`]), and run each
//! platform where it was placed, moving it once to the next candidate when a node drops.
//!
//! A platform built on a node is pushed by digest by the node itself; the coordinator then reads
//! the manifest back from the registry by that digest (so only what really arrived is used),
//! and the index is stitched from the results with the same code as a local build. A broken
//! attempt contributes nothing: its platform's slot is filled only by the attempt that
//! finished.
//!
//! Level 3 (coordinator). This module holds what the rest of the build sees of the nodes
//! ([`Nodes`], [`BuildPlan`]); its files are the steps: [`mod@place`] (probe and schedule),
//! [`dispatch`] (run each platform where it was placed), [`adopt`] (take a node's result).
//! Nothing here runs a step: local platforms go to [`super::image`].

use std::sync::Arc;

use crate::node::client;
use crate::node::protocol::{ProbeReport, WireCredentials};
use crate::node::{NodeError, NodeSet, NodeSpec, Transport};
use crate::platform::Platform;
use crate::schedule::{Policy, Runs, Schedule};

mod adopt;
mod dispatch;
mod place;
#[cfg(test)]
mod tests;

pub(super) use dispatch::{Dispatch, LocalBuild};
pub(super) use place::{place, planned_text};

/// The nodes a build may use, and how.
#[derive(Clone)]
pub struct Nodes {
    /// The declared nodes.
    pub set: NodeSet,
    /// `--node-policy`.
    pub policy: Policy,
    /// How to reach them; `None` builds everything here.
    pub transport: Option<Arc<dyn Transport>>,
    /// Credentials for the registry of the push target, handed to the nodes in a protocol frame
    /// (and nowhere else). The seam for the credential lookup of the publishing issue.
    pub credentials: Option<WireCredentials>,
    /// `--insecure-registry` hosts, passed on to the nodes.
    pub insecure_registries: Vec<String>,
    /// Retries per registry request, passed on to the nodes.
    pub retries: u32,
}

impl Nodes {
    /// No nodes: every platform is built here (the `prefer-native` order without nodes).
    pub fn none() -> Nodes {
        Nodes {
            set: NodeSet::default(),
            policy: Policy::PreferNative,
            transport: None,
            credentials: None,
            insecure_registries: Vec::new(),
            retries: 4,
        }
    }
}

/// What a node said when probed.
#[derive(Debug, Clone)]
pub enum NodeState {
    /// It answered.
    Ready {
        /// Its polyarch version.
        version: String,
        /// Its host platform.
        host: Platform,
        /// What it runs natively.
        native: Vec<Platform>,
        /// What it runs under emulation, with the handler's name.
        emulated: Vec<(Platform, String)>,
        /// Builds running there now.
        running_builds: usize,
        /// The platforms it is used for in this build and how it runs each.
        used_for: Vec<(Platform, Runs)>,
    },
    /// It could not be reached; the build goes on without it.
    Unreachable {
        /// The error.
        error: String,
    },
    /// It was not probed.
    NotProbed {
        /// Why.
        why: String,
    },
}

/// One declared node and its state.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The declaration.
    pub spec: NodeSpec,
    /// What the probe found.
    pub state: NodeState,
}

/// The plan of a build: where each platform runs and why, and what the nodes said.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// One placement per target platform, in order.
    pub schedule: Schedule,
    /// Every declared node.
    pub nodes: Vec<NodeStatus>,
    /// Things worth knowing (a node skipped, nodes unused without `--push`).
    pub notes: Vec<String>,
}

impl BuildPlan {
    /// True when some platform starts on this host.
    pub fn runs_locally(&self) -> bool {
        self.schedule
            .placements
            .iter()
            .any(|p| p.first().node().is_none())
    }
}

/// Probes `node`: handshake, then its `qemu status` report.
pub async fn probe_node(
    transport: &dyn Transport,
    node: &NodeSpec,
) -> Result<ProbeReport, NodeError> {
    client::connect(transport, node).await?.probe().await
}
