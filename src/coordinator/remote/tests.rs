//! The dispatch with in-memory parts: scripted node workers on a [`FakeTransport`], the
//! fake registry, the recording executor. A stage without `RUN` steps, so this host can
//! build every platform and nothing needs root.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::*;
use crate::coordinator::stage::Stages;
use crate::coordinator::*;
use crate::executor::RecordingExecutor;
use crate::node::fake::{Behaviour, FakeTransport};
use crate::node::protocol::{
    self, Frame, FromWorker, ProbeReport, RemoteImage, ToWorker, PROTOCOL_VERSION,
};
use crate::node::spec::parse_node_arg;
use crate::progress::RecordingSink;
use crate::registry::fake::FakeRegistry;
use crate::schedule::Placement;

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
        entitlements: Vec::new(),
        meta: Default::default(),
        outputs: Vec::new(),
        source_date_epoch: Some(0),
        compression: crate::layer::Compression::default(),
        binfmt_dir: dir.path().join("no-binfmt"),
        smoke_test: None,
        cache: Default::default(),
        buildx: Default::default(),
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
        steps_run: 1,
        steps_cached: 0,
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
                stage: "stage-0".into(),
                cached: false,
                cache_miss: None,
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
        cache: crate::coordinator::StepCache::open(&w.deps.store, &w.req.cache, Vec::new())
            .unwrap(),
        early: crate::coordinator::upload::EarlyUploads::default(),
    };
    let d = Dispatch::new(&nodes, &text, "Dockerfile");
    let stages = Stages::new(&sh, &w.deps);
    let e = d
        .run(
            &LocalBuild {
                sh: &sh,
                deps: &w.deps,
                stages: &stages,
            },
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

/// Issue 13: with several -t, a failure after some tags moved lists exactly which did (this
/// file's `world` makes a local build with a fake registry).
#[tokio::test]
async fn a_failed_tag_push_lists_the_tags_that_moved_and_those_that_did_not() {
    let mut w = world(&["linux/amd64"]);
    w.req.tags = ["1", "2", "3"]
        .iter()
        .map(|t| Reference::parse(&format!("{REPO}:{t}")).unwrap())
        .collect();
    w.deps.registry.break_tag("2");
    let err = build_with(&w.req, &w.deps, &Nodes::none())
        .await
        .unwrap_err();
    let BuildError::TagsPartlyMoved(p) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(p.moved, [format!("{REPO}:1")]);
    assert_eq!(p.not_moved, [format!("{REPO}:2"), format!("{REPO}:3")]);
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("moved tags {REPO}:1 but not {REPO}:2, {REPO}:3")),
        "{shown}"
    );
    assert_eq!(err.exit_code(), crate::exit::ExitCode::Registry);
    // The moved tag holds the complete index; the others hold nothing.
    let repo = Reference::parse(REPO).unwrap();
    assert!(w.deps.registry.manifest(&repo, "1").is_some());
    assert!(w.deps.registry.manifest(&repo, "3").is_none());
}
