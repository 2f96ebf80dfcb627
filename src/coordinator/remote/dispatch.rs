//! Running each platform where the plan put it: this host through the shared stage table, or
//! a node over its worker channel (bounded per node, the context packed once), moving a
//! platform once to its next candidate when its node drops mid-build.
//!
//! Level 3 (coordinator). Must not decide placements ([`super::place()`] does) or stitch the
//! index.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{OnceCell, Semaphore};

use super::adopt::adopt;
use super::Nodes;
use crate::coordinator::image::build_platform;
use crate::coordinator::stage::Stages;
use crate::coordinator::{push_target, BuildError, Deps, PlatformImage, Shared};
use crate::executor::Executor;
use crate::node::client;
use crate::node::protocol::{BuildJob, ContextRef};
use crate::node::{bundle, NodeError};
use crate::plan::StageGraph;
use crate::platform::Platform;
use crate::progress::Event;
use crate::registry::Registry;
use crate::schedule::{Place, Placement};

/// Runs platforms where the plan put them: bounded per node, the context packed once, a
/// dropped node's platform moved once.
pub(in crate::coordinator) struct Dispatch<'a> {
    nodes: &'a Nodes,
    dockerfile_text: &'a str,
    dockerfile_name: &'a str,
    limits: HashMap<String, Arc<Semaphore>>,
    bundle: OnceCell<(ContextRef, PathBuf, tempfile::TempDir)>,
}

/// What a platform placed on this host is built with: the build's shared settings and parts,
/// and the stage table the local platforms share.
pub(in crate::coordinator) struct LocalBuild<'a, R, E> {
    /// The build's shared settings.
    pub sh: &'a Shared<'a>,
    /// The registry, executor, store and progress sink.
    pub deps: &'a Deps<R, E>,
    /// The stage builds shared by the platforms built here.
    pub stages: &'a Stages<'a, R, E>,
}

impl<'a> Dispatch<'a> {
    /// A dispatch over `nodes` for the Dockerfile `dockerfile_text`, named `dockerfile_name`
    /// in the jobs sent to them.
    pub(in crate::coordinator) fn new(
        nodes: &'a Nodes,
        dockerfile_text: &'a str,
        dockerfile_name: &'a str,
    ) -> Dispatch<'a> {
        let limits = nodes
            .set
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Arc::new(Semaphore::new(n.limit.max(1)))))
            .collect();
        Dispatch {
            nodes,
            dockerfile_text,
            dockerfile_name,
            limits,
            bundle: OnceCell::new(),
        }
    }

    /// Builds `platform` at its first candidate; when that is a node that drops mid-build, logs
    /// it and builds once more at the next candidate.
    pub(in crate::coordinator) async fn run<R: Registry, E: Executor>(
        &self,
        local: &LocalBuild<'_, R, E>,
        platform: &Platform,
        graph: StageGraph,
        placement: &Placement,
    ) -> Result<PlatformImage, BuildError> {
        let first = placement.first();
        match self.run_on(local, platform, &graph, first).await {
            Err(BuildError::Node(e)) if e.is_lost() => {
                let Some(next) = placement.fallback() else {
                    return Err(BuildError::Node(e));
                };
                let e = *e;
                tracing::info!(platform = %platform, from = %first.describe(), to = %next.describe(), "{e}");
                let reason = match &e {
                    NodeError::Lost { detail, .. } => detail.clone(),
                    other => other.to_string(),
                };
                local.deps.sink.emit(Event::PlatformMoved {
                    platform: platform.to_string(),
                    from: first.describe(),
                    to: next.describe(),
                    reason,
                });
                self.run_on(local, platform, &graph, next).await
            }
            other => other,
        }
    }

    /// Builds `platform` at `place`: here, or on a node.
    async fn run_on<R: Registry, E: Executor>(
        &self,
        local: &LocalBuild<'_, R, E>,
        platform: &Platform,
        graph: &StageGraph,
        place: &Place,
    ) -> Result<PlatformImage, BuildError> {
        let LocalBuild { sh, deps, stages } = *local;
        match place {
            Place::Local { .. } => build_platform(sh, deps, stages, platform, graph.clone()).await,
            Place::Node { name, .. } => self.run_remote(sh, deps, platform, name).await,
        }
    }

    /// Packs the context once per build, in the store's temporary space.
    async fn bundle<R: Registry, E: Executor>(
        &self,
        sh: &Shared<'_>,
        deps: &Deps<R, E>,
    ) -> Result<&(ContextRef, PathBuf, tempfile::TempDir), BuildError> {
        self.bundle
            .get_or_try_init(|| async {
                let dir = deps
                    .store
                    .temp_dir("bundle")
                    .map_err(|source| BuildError::Store {
                        platform: "context".into(),
                        source,
                    })?;
                let path = dir.path().join("context.tar.zst");
                let (context, p2) = (sh.context.clone(), path.clone());
                let r = tokio::task::spawn_blocking(move || bundle::pack(&context, &p2))
                    .await
                    .map_err(|e| BuildError::Internal(e.to_string()))??;
                tracing::info!(digest = %r.digest, size = r.size, "packed the build context for the nodes");
                Ok::<_, BuildError>((r, path, dir))
            })
            .await
    }

    async fn run_remote<R: Registry, E: Executor>(
        &self,
        sh: &Shared<'_>,
        deps: &Deps<R, E>,
        platform: &Platform,
        name: &str,
    ) -> Result<PlatformImage, BuildError> {
        let pname = platform.to_string();
        // The job carries neither (a node would build something else): refused, not dropped.
        if !sh.req.buildx.is_empty() {
            return Err(BuildError::Usage(format!(
                "{pname} was placed on node {name}, but --build-context, --ssh, --network, --add-host, \
                 --shm-size and --ulimit are not sent to build nodes: build with \
                 --node-policy local-only"
            )));
        }
        let spec = self.nodes.set.get(name)?;
        let transport =
            self.nodes.transport.as_ref().ok_or_else(|| {
                BuildError::Internal(format!("node {name} placed without transport"))
            })?;
        let target = push_target(sh.req).ok_or_else(|| {
            BuildError::Internal(format!("{pname} placed on node {name} without --push"))
        })?;
        let (context, bundle_path, _) = self.bundle(sh, deps).await?;
        let job = BuildJob {
            platform: platform.clone(),
            dockerfile: self.dockerfile_text.to_string(),
            dockerfile_name: self.dockerfile_name.to_string(),
            build_args: sh.req.build_args.clone(),
            entitlements: sh.req.entitlements.clone(),
            target: sh.req.target.clone(),
            source_date_epoch: sh.req.source_date_epoch,
            created: sh.created.clone(),
            push_to: target.repo_string(),
            insecure_registries: self.nodes.insecure_registries.clone(),
            retries: self.nodes.retries,
            compression: sh.req.compression,
            context: context.clone(),
            smoke_test: sh.req.smoke_test.clone(),
            no_cache: sh.req.cache.no_cache,
            no_cache_filter: sh.req.cache.no_cache_filter.clone(),
            pull: sh.req.cache.pull,
        };
        let _permit = match self.limits.get(name) {
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| BuildError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        // Between the probe and now the node may have gone: that is a drop too.
        let conn = client::connect(transport.as_ref(), spec)
            .await
            .map_err(|e| match e {
                NodeError::Unreachable { .. }
                | NodeError::Ssh { .. }
                | NodeError::Protocol { .. } => NodeError::Lost {
                    node: name.to_string(),
                    platform: pname.clone(),
                    detail: e.to_string(),
                },
                other => other,
            })?;
        let image = conn
            .build(
                &job,
                self.nodes.credentials.as_ref(),
                bundle_path,
                deps.sink.as_ref(),
            )
            .await?;
        adopt(sh, deps, platform, target, name, image).await
    }
}
