//! The node's side of a remote build: one platform of a coordinator's build, run with the same
//! code as a local build of that platform ([`build_platform`]) on the context the coordinator
//! sent, pushed by digest to the coordinator's repository.
//!
//! Level 3 (coordinator). Builds only: the worker protocol and its channel are the command
//! line's (`polyarch worker`), never touched here.

use super::*;
use crate::executor::require_root;
use crate::node::protocol::BuildJob;

/// Builds `job` here and pushes the image by digest to `job.push_to`.
///
/// `context_root` is the unpacked context bundle; `dockerfile` a file holding `job.dockerfile`
/// next to which `Dockerfile.dockerignore` carries the coordinator's ignore rules (so the context
/// is opened with exactly those). The platform is checked as a local build checks it (a probe
/// program, root for `RUN`). Errors are [`BuildError`]s as a local build gives them.
pub async fn build_job<R: Registry, E: Executor>(
    job: &BuildJob,
    context_root: &Path,
    dockerfile: &Path,
    deps: &Deps<R, E>,
) -> Result<PlatformImage, BuildError> {
    let pname = job.platform.to_string();
    let df = dockerfile::parse(&job.dockerfile, &job.dockerfile_name)?;
    let context = BuildContext::open(context_root, dockerfile)
        .map_err(|e| BuildError::OpenContext(Box::new(e)))?;
    let push_to: Reference = job.push_to.parse().map_err(|source| BuildError::Registry {
        platform: pname.clone(),
        source,
    })?;
    let req = BuildRequest {
        context_dir: context_root.to_path_buf(),
        dockerfile: dockerfile.to_path_buf(),
        platforms: vec![job.platform.clone()],
        all_platforms: false,
        build_platform: Platform::host(),
        build_args: job.build_args.clone(),
        target: job.target.clone(),
        tags: vec![push_to],
        push: true,
        push_by_digest: None,
        // Secrets stay on the coordinator's host: `RUN --mount=type=secret` steps fail on a node.
        secrets: BTreeMap::new(),
        outputs: Vec::new(),
        source_date_epoch: job.source_date_epoch,
        compression: job.compression,
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        smoke_test: job.smoke_test.clone(),
        // The node's own step cache, used as `--no-cache` and `--no-cache-filter` say;
        // shared caches (`--cache-from`/`--cache-to`) are the coordinator's.
        cache: CacheOptions {
            no_cache: job.no_cache,
            no_cache_filter: job.no_cache_filter.clone(),
            pull: job.pull,
            ..CacheOptions::default()
        },
        entitlements: job.entitlements.clone(),
        meta: Default::default(),
        buildx: Default::default(),
    };
    let graph = plan::select_graph(
        &df,
        &PlanRequest {
            target_platform: job.platform.clone(),
            build_platform: req.build_platform.clone(),
            build_args: req.build_args.clone(),
            target_stage: req.target.clone(),
        },
    )?;
    plan::check_graph(&df, &graph)?;
    plan::check_entitlements(&df, &graph, &req.entitlements)?;
    check_host(job, &req, &df, &graph, deps)?;
    let shared = Shared {
        req: &req,
        dockerfile: &df,
        context: &context,
        created: job.created.clone(),
        cache: StepCache::open(&deps.store, &req.cache, Vec::new())?,
        early: super::upload::EarlyUploads::default(),
    };
    let stages = super::stage::Stages::new(&shared, deps);
    let built = build_platform(&shared, deps, &stages, &job.platform, graph).await;
    shared.cache.save();
    built
}

/// Whether this node can run what the job runs (its RUN steps and the smoke test): a working
/// binfmt handler where the target platform's programs run, and root.
fn check_host<R, E>(
    job: &BuildJob,
    req: &BuildRequest,
    df: &Dockerfile,
    graph: &plan::StageGraph,
    deps: &Deps<R, E>,
) -> Result<(), BuildError> {
    // A smoke test runs the platform's programs, as a RUN step would.
    let smoke = req.smoke_test.is_some();
    if smoke
        || graph
            .stages
            .iter()
            .any(|s| super::stage_has_run(df, s.stage_index))
    {
        let work = deps
            .store
            .temp_dir("probe")
            .map_err(|source| BuildError::Store {
                platform: job.platform.to_string(),
                source,
            })?;
        if smoke || super::graph_runs_as_target(df, graph, &req.build_platform) {
            emulation::verify(&job.platform, &req.binfmt_dir, work.path())?;
        }
        require_root().map_err(|source| BuildError::Exec {
            platform: job.platform.to_string(),
            step: 0,
            location: job.dockerfile_name.clone(),
            source,
        })?;
    }
    Ok(())
}
