//! Build nodes in a build: probe them, place every platform ([`crate::schedule`]), and run each
//! platform where it was placed, moving it once to the next candidate when a node drops.
//!
//! A platform built on a node is pushed by digest by the node itself; the coordinator then reads
//! the manifest back from the registry by that digest (so only what really arrived is used),
//! and the index is stitched from the results with the same code as a local build. A broken
//! attempt contributes nothing: its platform's slot is filled only by the attempt that
//! finished.

use std::collections::HashMap;

use tokio::sync::{OnceCell, Semaphore};

use super::*;
use crate::node::client;
use crate::node::protocol::{BuildJob, ContextRef, RemoteImage, WireCredentials};
use crate::node::{bundle, NodeError, NodeSet, NodeSpec, Transport};
use crate::schedule::{self, LocalRuns, NodeOffer, Place, Placement, Policy, Runs, Schedule};

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
) -> Result<crate::node::protocol::ProbeReport, NodeError> {
    client::connect(transport, node).await?.probe().await
}

/// Decides where each target runs: how this host runs it (probe programs, as a local build
/// checks), what each node runs (probed over SSH, concurrently), then [`schedule::schedule`].
///
/// Errors: a platform nothing may build (this host's emulation error as a local build gives
/// it, or [`ScheduleError::NoRunner`] under `native-only`, exit 4); a node that is reachable
/// but unusable (host key, authentication, missing binary, version, a declared platform it
/// cannot run; exit 4). Unreachable nodes are left out with a note.
///
/// [`ScheduleError::NoRunner`]: crate::schedule::ScheduleError::NoRunner
pub(super) async fn place<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    nodes: &Nodes,
    targets: &[Platform],
    needs_run: bool,
) -> Result<BuildPlan, BuildError> {
    let mut local = Vec::new();
    let mut local_errors = Vec::new();
    if needs_run {
        let work = deps
            .store
            .temp_dir("probe")
            .map_err(|source| BuildError::Store {
                platform: "probe".into(),
                source,
            })?;
        for p in targets {
            match emulation::verify(p, &req.binfmt_dir, work.path()) {
                Ok(Support::Native) => {
                    local.push(LocalRuns::Runs(Runs::Native));
                    local_errors.push(None);
                }
                Ok(Support::Emulated { handler, .. }) => {
                    local.push(LocalRuns::Runs(Runs::Emulated { handler }));
                    local_errors.push(None);
                }
                Err(e) => {
                    local.push(LocalRuns::Cannot {
                        reason: e.to_string(),
                    });
                    local_errors.push(Some(e));
                }
            }
        }
    } else {
        local = vec![LocalRuns::NoRunSteps; targets.len()];
        local_errors.resize_with(targets.len(), || None);
    }

    let mut notes = Vec::new();
    let mut statuses = Vec::new();
    let mut offers: Vec<NodeOffer> = Vec::new();
    let not_probed = |why: &str| -> Vec<NodeStatus> {
        nodes
            .set
            .nodes
            .iter()
            .map(|n| NodeStatus {
                spec: n.clone(),
                state: NodeState::NotProbed { why: why.into() },
            })
            .collect()
    };
    match (&nodes.transport, nodes.set.nodes.is_empty()) {
        (_, true) => {}
        (None, false) => statuses = not_probed("no transport"),
        (Some(_), false) if nodes.policy == Policy::LocalOnly => {
            let why = "--node-policy local-only: nodes are not used";
            notes.push(why.to_string());
            statuses = not_probed(why);
        }
        (Some(_), false) if !req.push => {
            let why = "nodes push their images to the registry themselves, so without --push \
                       every platform is built here";
            notes.push(why.to_string());
            statuses = not_probed(why);
        }
        (Some(transport), false) => {
            let probes = futures::future::join_all(
                nodes
                    .set
                    .nodes
                    .iter()
                    .map(|n| probe_node(transport.as_ref(), n)),
            )
            .await;
            for (spec, probe) in nodes.set.nodes.iter().zip(probes) {
                match probe {
                    Ok(report) => {
                        let (native, emulated) = report.capabilities();
                        let offer = schedule::node_offer(
                            &spec.name,
                            &spec.address(),
                            spec.limit,
                            spec.platforms.as_deref(),
                            &native,
                            &emulated,
                        )?;
                        statuses.push(NodeStatus {
                            spec: spec.clone(),
                            state: NodeState::Ready {
                                version: report.version.clone(),
                                host: report.host.clone(),
                                native,
                                emulated,
                                running_builds: report.running_builds,
                                used_for: offer.platforms.clone(),
                            },
                        });
                        offers.push(offer);
                    }
                    Err(e) if e.is_unreachable() => {
                        notes.push(format!("node {} is left out: {e}", spec.name));
                        statuses.push(NodeStatus {
                            spec: spec.clone(),
                            state: NodeState::Unreachable {
                                error: e.to_string(),
                            },
                        });
                    }
                    Err(e) => return Err(BuildError::Node(e)),
                }
            }
        }
    }

    // A platform this host cannot run and no node offers: the emulation check's own error (it
    // names the fix), as a build without nodes gives it. Under native-only the schedule lists
    // every such platform instead.
    if nodes.policy != Policy::NativeOnly {
        for (p, err) in targets.iter().zip(local_errors.iter_mut()) {
            let offered = nodes.policy != Policy::LocalOnly
                && offers.iter().any(|o| {
                    let ps: Vec<Platform> = o.platforms.iter().map(|(q, _)| q.clone()).collect();
                    platform::best_match(p, &ps).is_some()
                });
            if let (Some(e), false) = (err.take(), offered) {
                return Err(BuildError::Emulation(e));
            }
        }
    }
    let schedule = schedule::schedule(targets, &local, &offers, nodes.policy)?;
    Ok(BuildPlan {
        schedule,
        nodes: statuses,
        notes,
    })
}

/// `PlatformPlanned`'s text for a placement.
pub(super) fn planned_text(pl: &Placement) -> String {
    match pl.first() {
        Place::Local { runs: Some(r) } => r.describe(),
        Place::Local { runs: None } => "here (no RUN step)".into(),
        Place::Node {
            name,
            address,
            runs,
        } => format!("on node {name} ({address}), {} there", runs.describe()),
    }
}

/// Runs platforms where the plan put them: bounded per node, the context packed once, a
/// dropped node's platform moved once.
pub(super) struct Dispatch<'a> {
    nodes: &'a Nodes,
    dockerfile_text: &'a str,
    dockerfile_name: &'a str,
    limits: HashMap<String, Arc<Semaphore>>,
    bundle: OnceCell<(ContextRef, PathBuf, tempfile::TempDir)>,
}

impl<'a> Dispatch<'a> {
    pub(super) fn new(
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
    pub(super) async fn run<R: Registry, E: Executor>(
        &self,
        sh: &Shared<'_>,
        deps: &Deps<R, E>,
        platform: &Platform,
        selection: Selection,
        placement: &Placement,
    ) -> Result<PlatformImage, BuildError> {
        let first = placement.first();
        match self.run_on(sh, deps, platform, &selection, first).await {
            Err(BuildError::Node(e)) if e.is_lost() => {
                let Some(next) = placement.fallback() else {
                    return Err(BuildError::Node(e));
                };
                tracing::warn!(platform = %platform, from = %first.describe(), to = %next.describe(), "{e}");
                deps.sink.emit(Event::PlatformMoved {
                    platform: platform.to_string(),
                    from: first.describe(),
                    to: next.describe(),
                    reason: e.to_string(),
                });
                self.run_on(sh, deps, platform, &selection, next).await
            }
            other => other,
        }
    }

    async fn run_on<R: Registry, E: Executor>(
        &self,
        sh: &Shared<'_>,
        deps: &Deps<R, E>,
        platform: &Platform,
        selection: &Selection,
        place: &Place,
    ) -> Result<PlatformImage, BuildError> {
        match place {
            Place::Local { .. } => build_platform(sh, deps, platform, selection.clone()).await,
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
            target: sh.req.target.clone(),
            source_date_epoch: sh.req.source_date_epoch,
            created: sh.created.clone(),
            push_to: target.repo_string(),
            insecure_registries: self.nodes.insecure_registries.clone(),
            retries: self.nodes.retries,
            context: context.clone(),
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

/// Reads a node's result back from the registry by digest (only what really arrived is used),
/// checks it, and fetches its blobs into the store when a local output needs them.
async fn adopt<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    target: &Reference,
    node: &str,
    image: RemoteImage,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let reg_err = |source| BuildError::Registry {
        platform: pname.clone(),
        source,
    };
    let oci_err = |source| BuildError::Oci {
        platform: pname.clone(),
        source,
    };
    let raw = deps
        .registry
        .get_manifest(&target.with_digest(&image.manifest.digest))
        .await
        .map_err(reg_err)?;
    if raw.media_type != MEDIA_TYPE_OCI_MANIFEST || raw.bytes.len() as u64 != image.manifest.size {
        return Err(BuildError::UnsupportedManifest {
            reference: format!(
                "{}@{} (pushed by node {node})",
                target.repo_string(),
                raw.digest
            ),
            media_type: format!("{} ({} bytes)", raw.media_type, raw.bytes.len()),
        });
    }
    let manifest: ImageManifest =
        oci::from_bytes(&raw.bytes, &target.repo_string()).map_err(oci_err)?;
    manifest
        .config
        .digest
        .verify(
            &image.config,
            format!("config of the image node {node} pushed"),
        )
        .map_err(oci_err)?;
    deps.store
        .put_bytes(&raw.bytes)
        .map_err(|source| BuildError::Store {
            platform: pname.clone(),
            source,
        })?;
    let mut blobs = vec![manifest.config.digest.clone()];
    blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
    if !sh.req.outputs.is_empty() {
        for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
            base::fetch_into_store(deps, target, desc)
                .await
                .map_err(|e| match e {
                    base::FetchError::Registry(source) => reg_err(source),
                    base::FetchError::Store(source) => BuildError::Store {
                        platform: pname.clone(),
                        source,
                    },
                })?;
        }
    }
    let mut descriptor = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, raw.digest, image.manifest.size);
    descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: image.config,
        blobs,
        node: Some(node.to_string()),
    })
}
