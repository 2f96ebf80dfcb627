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

use super::stage::Stages;
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
        (Some(_), false) if push_target(req).is_none() => {
            let why = "nodes push their images to the registry themselves, so without --push \
                       or --push-by-digest every platform is built here";
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
                    Err(e) => return Err(e.into()),
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
        stages: &Stages<'_, R, E>,
        platform: &Platform,
        graph: StageGraph,
        placement: &Placement,
    ) -> Result<PlatformImage, BuildError> {
        let first = placement.first();
        match self.run_on(sh, deps, stages, platform, &graph, first).await {
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
                deps.sink.emit(Event::PlatformMoved {
                    platform: platform.to_string(),
                    from: first.describe(),
                    to: next.describe(),
                    reason,
                });
                self.run_on(sh, deps, stages, platform, &graph, next).await
            }
            other => other,
        }
    }

    async fn run_on<R: Registry, E: Executor>(
        &self,
        sh: &Shared<'_>,
        deps: &Deps<R, E>,
        stages: &Stages<'_, R, E>,
        platform: &Platform,
        graph: &StageGraph,
        place: &Place,
    ) -> Result<PlatformImage, BuildError> {
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

#[cfg(test)]
mod tests {
    //! The dispatch with in-memory parts: scripted node workers on a [`FakeTransport`], the
    //! fake registry, the recording executor. A stage without `RUN` steps, so this host can
    //! build every platform and nothing needs root.

    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::executor::RecordingExecutor;
    use crate::node::fake::{Behaviour, FakeTransport};
    use crate::node::protocol::{self, Frame, FromWorker, ProbeReport, ToWorker, PROTOCOL_VERSION};
    use crate::node::spec::parse_node_arg;
    use crate::progress::RecordingSink;
    use crate::registry::fake::FakeRegistry;

    const REPO: &str = "registry.example/team/app";

    struct World {
        _dir: tempfile::TempDir,
        req: BuildRequest,
        deps: Deps<FakeRegistry, RecordingExecutor>,
        sink: Arc<RecordingSink>,
    }

    fn world(platforms: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a.txt /a.txt\n").unwrap();
        std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
        let sink = Arc::new(RecordingSink::default());
        let req = BuildRequest {
            context_dir: ctx.clone(),
            dockerfile: ctx.join("Dockerfile"),
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            all_platforms: false,
            build_platform: Platform::host(),
            build_args: BTreeMap::new(),
            target: None,
            tags: vec![Reference::parse(&format!("{REPO}:1")).unwrap()],
            push: true,
            push_by_digest: None,
            secrets: BTreeMap::new(),
            outputs: Vec::new(),
            source_date_epoch: Some(0),
            binfmt_dir: dir.path().join("no-binfmt"),
        };
        let deps = Deps {
            registry: FakeRegistry::new(),
            executor: RecordingExecutor::new(),
            store: Store::open(&dir.path().join("state")).unwrap(),
            sink: sink.clone(),
        };
        World {
            _dir: dir,
            req,
            deps,
            sink,
        }
    }

    /// An image "a node pushed" for `p`: its config and manifest put in the fake registry.
    fn pushed_by_node(reg: &FakeRegistry, p: &str) -> RemoteImage {
        let repo = Reference::parse(REPO).unwrap();
        let platform = Platform::parse(p).unwrap();
        let config = oci::to_bytes(&ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            created: Some(format!("built on a node for {p}")),
            ..ImageConfig::default()
        });
        let config = reg.insert_blob(&repo, &config);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config.digest.clone(), config.size),
            layers: Vec::new(),
            annotations: None,
        };
        let bytes = oci::to_bytes(&manifest);
        let digest = reg.insert_manifest(&repo, None, &bytes, MEDIA_TYPE_OCI_MANIFEST);
        let mut d = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, digest, bytes.len() as u64);
        d.platform = Some(platform);
        RemoteImage {
            manifest: d,
            config: config.digest,
        }
    }

    #[derive(Default)]
    struct Seen {
        active: AtomicUsize,
        peak: AtomicUsize,
        messages: Mutex<Vec<ToWorker>>,
        bundles: Mutex<Vec<(Digest, Digest)>>,
    }

    /// A node worker that runs `platforms` natively, answers builds with `images` after a short
    /// while, and drops the channel mid-build for the platforms in `drops`.
    fn worker(
        platforms: &[&str],
        images: HashMap<String, RemoteImage>,
        drops: HashSet<String>,
        seen: Arc<Seen>,
    ) -> Behaviour {
        let rows: Vec<serde_json::Value> = platforms
            .iter()
            .map(|p| serde_json::json!({"platform": p, "runs": "native"}))
            .collect();
        Arc::new(move |mut io| {
            let (rows, images, drops, seen) =
                (rows.clone(), images.clone(), drops.clone(), seen.clone());
            Box::pin(async move {
                io.handshake(PROTOCOL_VERSION).await;
                let Some(request) = io.recv().await else {
                    return 0;
                };
                seen.messages.lock().unwrap().push(request.clone());
                let job = match request {
                    ToWorker::Probe => {
                        io.send(&FromWorker::Probe(Box::new(ProbeReport {
                            version: "fake".into(),
                            host: Platform::parse("linux/riscv64").unwrap(),
                            qemu: serde_json::json!({ "platforms": rows }),
                            running_builds: 0,
                        })))
                        .await;
                        return 0;
                    }
                    ToWorker::Build(job) => job,
                    _ => return 2,
                };
                if let Some(creds) = io.recv().await {
                    seen.messages.lock().unwrap().push(creds);
                }
                io.send(&FromWorker::NeedContext).await;
                let mut hasher = Sha256::new();
                while let Ok(Some(Frame::Chunk(b))) = protocol::read_frame(&mut io.stdin).await {
                    hasher.update(&b);
                }
                seen.bundles
                    .lock()
                    .unwrap()
                    .push((job.context.digest.clone(), Digest::from_hasher(hasher)));
                let now = seen.active.fetch_add(1, Ordering::SeqCst) + 1;
                seen.peak.fetch_max(now, Ordering::SeqCst);
                let p = job.platform.to_string();
                io.send(&FromWorker::Event(Event::StepStarted {
                    platform: p.clone(),
                    step: 1,
                    total: 1,
                    location: "Dockerfile:2".into(),
                    text: "COPY a.txt /a.txt".into(),
                }))
                .await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                seen.active.fetch_sub(1, Ordering::SeqCst);
                if drops.contains(&p) {
                    return 255;
                }
                io.send(&FromWorker::Done(images[&p].clone())).await;
                0
            })
        })
    }

    fn nodes(transport: Arc<FakeTransport>, declared: &[&str]) -> Nodes {
        let mut set = NodeSet::default();
        for d in declared {
            set.push(parse_node_arg(d).unwrap()).unwrap();
        }
        Nodes {
            set,
            policy: Policy::PreferNative,
            transport: Some(transport),
            credentials: Some(WireCredentials {
                username: "ci".into(),
                password: "s3cret-for-the-node".into(),
            }),
            insecure_registries: Vec::new(),
            retries: 0,
        }
    }

    const TWO: [&str; 2] = ["linux/amd64", "linux/arm64"];

    #[tokio::test]
    async fn a_node_takes_its_platforms_within_its_limit_and_the_index_lists_what_it_pushed() {
        for (limit, peak) in [(1, 1), (2, 2)] {
            let w = world(&TWO);
            let images: HashMap<String, RemoteImage> = TWO
                .iter()
                .map(|p| (p.to_string(), pushed_by_node(&w.deps.registry, p)))
                .collect();
            let seen = Arc::new(Seen::default());
            let t = Arc::new(FakeTransport::new());
            t.set_worker(
                "n",
                worker(&TWO, images.clone(), HashSet::new(), seen.clone()),
            );
            let nodes = nodes(
                t.clone(),
                &[&format!(
                    "n=ssh://n?platforms=linux/amd64,linux/arm64&limit={limit}"
                )],
            );
            let out = build_with(&w.req, &w.deps, &nodes).await.unwrap();
            assert_eq!(seen.peak.load(Ordering::SeqCst), peak, "limit {limit}");
            for (img, p) in out.images.iter().zip(TWO) {
                assert_eq!(img.node.as_deref(), Some("n"));
                assert_eq!(img.manifest, images[p].manifest);
            }
            let children: Vec<&Digest> = out
                .index
                .index
                .manifests
                .iter()
                .map(|d| &d.digest)
                .collect();
            assert_eq!(
                children,
                [
                    &images[TWO[0]].manifest.digest,
                    &images[TWO[1]].manifest.digest
                ]
            );
            // One probe and one build per platform; the credentials only in their own frame.
            assert_eq!(t.calls().len(), 3);
            let messages = seen.messages.lock().unwrap().clone();
            let jobs: Vec<String> = messages
                .iter()
                .filter(|m| matches!(m, ToWorker::Build(_)))
                .map(|m| serde_json::to_string(m).unwrap())
                .collect();
            assert_eq!(jobs.len(), 2);
            assert!(jobs.iter().all(|j| !j.contains("s3cret")), "{jobs:?}");
            assert!(jobs
                .iter()
                .all(|j| j.contains(&format!("\"push_to\":\"{REPO}\""))));
            let creds = messages
                .iter()
                .filter(|m| {
                    matches!(m, ToWorker::Credentials { credentials: Some(c) } if c.password == "s3cret-for-the-node")
                })
                .count();
            assert_eq!(creds, 2);
            // The bundle arrived whole, as announced.
            for (announced, got) in seen.bundles.lock().unwrap().iter() {
                assert_eq!(announced, got);
            }
            // The node's progress reached this side's sink.
            assert!(w.sink.events().iter().any(
                |e| matches!(e, Event::StepStarted { platform, .. } if platform == "linux/arm64")
            ));
        }
    }

    #[tokio::test]
    async fn a_dropped_node_moves_its_platform_once_and_nothing_of_it_is_used() {
        let w = world(&TWO);
        let images: HashMap<String, RemoteImage> = TWO
            .iter()
            .map(|p| (p.to_string(), pushed_by_node(&w.deps.registry, p)))
            .collect();
        let seen = Arc::new(Seen::default());
        let t = Arc::new(FakeTransport::new());
        let drops: HashSet<String> = ["linux/arm64".to_string()].into();
        t.set_worker("n", worker(&TWO, images.clone(), drops, seen.clone()));
        let nodes = nodes(t, &["n=ssh://n?platforms=linux/amd64,linux/arm64&limit=2"]);
        let out = build_with(&w.req, &w.deps, &nodes).await.unwrap();
        assert_eq!(out.images[0].node.as_deref(), Some("n"));
        assert_eq!(out.images[1].node, None, "built here after the drop");
        assert_ne!(
            out.images[1].manifest.digest,
            images["linux/arm64"].manifest.digest
        );
        let moved: Vec<Event> = w
            .sink
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::PlatformMoved { .. }))
            .collect();
        assert_eq!(moved.len(), 1, "{moved:?}");
        let Event::PlatformMoved {
            platform, from, to, ..
        } = &moved[0]
        else {
            unreachable!()
        };
        assert_eq!(platform, "linux/arm64");
        assert_eq!(from, "node n (natively there)");
        assert_eq!(to, "local (no RUN step)");
        // The index names the manifest built here, which the registry has.
        let repo = Reference::parse(REPO).unwrap();
        let arm = &out.index.index.manifests[1];
        assert_eq!(arm.digest, out.images[1].manifest.digest);
        assert!(w
            .deps
            .registry
            .manifest(&repo, &arm.digest.to_string())
            .is_some());
    }

    #[tokio::test]
    async fn a_drop_with_no_candidate_left_fails_and_names_the_node() {
        let w = world(&["linux/arm64"]);
        let images: HashMap<String, RemoteImage> = [(
            "linux/arm64".to_string(),
            pushed_by_node(&w.deps.registry, "linux/arm64"),
        )]
        .into();
        let seen = Arc::new(Seen::default());
        let t = Arc::new(FakeTransport::new());
        t.set_worker(
            "n",
            worker(
                &["linux/arm64"],
                images,
                ["linux/arm64".to_string()].into(),
                seen,
            ),
        );
        let nodes = nodes(t, &["n=ssh://n?platforms=linux/arm64"]);
        let placed = place(&w.req, &w.deps, &nodes, &w.req.platforms, false)
            .await
            .unwrap();
        // The node as the only candidate (as when this host cannot build the platform).
        let only_node = Placement {
            candidates: vec![placed.schedule.placements[0].candidates[0].clone()],
            ..placed.schedule.placements[0].clone()
        };
        let text = std::fs::read_to_string(&w.req.dockerfile).unwrap();
        let df = dockerfile::parse(&text, "Dockerfile").unwrap();
        let context = BuildContext::open(&w.req.context_dir, &w.req.dockerfile).unwrap();
        let graph = plan::select_graph(
            &df,
            &PlanRequest {
                target_platform: w.req.platforms[0].clone(),
                build_platform: Platform::host(),
                build_args: BTreeMap::new(),
                target_stage: None,
            },
        )
        .unwrap();
        let sh = Shared {
            req: &w.req,
            dockerfile: &df,
            context: &context,
            created: oci::rfc3339(0),
        };
        let d = Dispatch::new(&nodes, &text, "Dockerfile");
        let stages = Stages::new(&sh, &w.deps);
        let e = d
            .run(
                &sh,
                &w.deps,
                &stages,
                &w.req.platforms[0],
                graph,
                &only_node,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, BuildError::Node(n) if matches!(&**n, NodeError::Lost { node, platform, .. } if node == "n" && platform == "linux/arm64")),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("node n dropped while building linux/arm64"),
            "{e}"
        );
        assert_eq!(e.exit_code(), ExitCode::Registry);
    }
}
