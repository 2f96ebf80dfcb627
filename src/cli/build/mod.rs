//! `polyarch build`: the run, from flags ([`flags`]) resolved into a request ([`resolve`]) to
//! the build, the files it writes and what it prints ([`report`]).
//!
//! Level 4 (edge): picks the runtime, the registry client, the executor, the renderer and the
//! node transport; the build itself is the coordinator's.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::render::Progress;
use super::*;
use crate::coordinator::{BuildOutcome, BuildRequest, Nodes};
use crate::metadata::PushedByDigest;
use crate::node::protocol::WireCredentials;

mod flags;
mod inputs;
mod ledger;
mod meta;
mod outputs;
mod report;
mod resolve;
mod warnings;

pub use flags::BuildArgs;
use report::{build_ref, metadata_json, plan_text, pushed_by_digest};
pub use resolve::resolve_build;

/// What a build prints on stdout once its progress is over.
enum Report {
    /// `--dry-run`: the plan.
    Plan(String),
    /// `--call check`: the warnings.
    Check(Vec<String>),
    /// The result, the `--push-by-digest` record, and whether an output took stdout (`dest=-`:
    /// then nothing else is printed there).
    Built(Box<(BuildOutcome, Option<PushedByDigest>, bool)>),
}

/// Runs `polyarch build`: starts the progress renderer, builds (or, with `--dry-run`, plans),
/// writes the metadata and digest files, ends the progress (its summary, or the failure), then
/// prints the digests on stdout.
pub(super) fn run_build(global: &GlobalArgs, args: &BuildArgs) -> Result<(), Failure> {
    let mode = if args.buildx.quiet {
        super::render::ProgressMode::Quiet
    } else {
        args.progress
    };
    let progress = Progress::start(mode, global.verbose, "Building")?;
    progress.emit(Event::BuildStarted {
        platforms: args.platforms.clone(),
        tags: args.tags.clone(),
    });
    let sink: Arc<dyn Sink> = progress.clone();
    let result = build(global, args, sink);
    let (report, result) = match result {
        // Warnings fail the check: the progress ends with that exit code, not 0.
        Ok(Report::Check(warnings)) => {
            let verdict = check_verdict(&warnings);
            (Some(Report::Check(warnings)), verdict)
        }
        Ok(r) => (Some(r), Ok(())),
        Err(f) => (None, Err(f)),
    };
    let finished = progress.finish(result);
    let mut out = std::io::stdout().lock();
    if let Some(Report::Check(warnings)) = &report {
        print_check(&mut out, warnings);
        return finished;
    }
    finished?;
    match report {
        None | Some(Report::Check(_)) => {}
        Some(Report::Plan(text)) => {
            let _ = write!(out, "{text}");
        }
        Some(Report::Built(built)) if built.2 => {}
        Some(Report::Built(built)) if args.buildx.quiet => {
            let _ = writeln!(out, "{}", image_id(&built.0));
        }
        Some(Report::Built(built)) => print_summary(&built.0, built.1.as_ref()),
    }
    Ok(())
}

/// The build itself, its progress going to `sink`.
fn build(global: &GlobalArgs, args: &BuildArgs, sink: Arc<dyn Sink>) -> Result<Report, Failure> {
    // `-` (context or Dockerfile) is read now; what it became lives until the build is over.
    let staged = inputs::stage_stdin(args, std::io::stdin().lock())?;
    let req = resolve::resolve_at(args, &staged.context, staged.file.as_ref())?;
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Store::open(&state)?;
    let destination = req
        .push_by_digest
        .as_ref()
        .or(req.tags.first().filter(|_| req.push))
        .map(|r| r.registry.clone());
    let mut options = args.registry.resolve(destination.as_deref())?;
    // A build reads each base index once, however many platforms use it.
    options.remember_tags = true;
    // Upload sessions go into this process's journal: if it is killed, the next build
    // abandons them.
    options.upload_journal = Some(store.upload_journal());
    let registry = OciRegistry::new(options.clone())?;
    let set = args.nodes.resolve()?;
    let transport = if set.nodes.is_empty() {
        None
    } else {
        Some(NodeOpts::transport(&set)?)
    };
    let executor = SandboxExecutor::current_exe()?.with_snapshotter(args.snapshotter);
    // The ledger notes what was pushed, for the line an interruption prints.
    let ledger = Arc::new(ledger::Ledger::new(sink));
    let sink: Arc<dyn Sink> = ledger.clone();
    registry.report_retries_to(sink.clone());
    let deps = Deps {
        registry,
        executor,
        store,
        sink,
    };
    let rt = runtime()?;
    let credentials = match (&destination, transport.is_some()) {
        (Some(dest), true) => node_credentials(&rt, &options, dest)?,
        _ => None,
    };
    let nodes = Nodes {
        set,
        policy: args.node_policy.into(),
        transport,
        credentials,
        insecure_registries: options.insecure.clone(),
        retries: options.retries,
    };
    if args.buildx.check || args.buildx.call == "check" {
        return Ok(Report::Check(rt.block_on(coordinator::lint(&req, &deps))?));
    }
    if args.dry_run {
        let plan = rt.block_on(coordinator::plan(&req, &deps, &nodes))?;
        return Ok(Report::Plan(plan_text(&plan)));
    }
    // SIGINT/SIGTERM cancel the build: dropping its future kills every sandbox helper
    // (kill_on_drop; their steps die with them) and removes the step directories; the line
    // says what was pushed by then (the index goes last, so a tag moved only at the very end).
    let outcome = rt.block_on(async {
        tokio::select! {
            r = coordinator::build_with(&req, &deps, &nodes) => r.map_err(Failure::from),
            (sig, code) = interrupted() => {
                let platforms: Vec<String> = req.platforms.iter().map(|p| p.to_string()).collect();
                let tags: Vec<String> = req.tags.iter().filter(|_| req.push).map(|t| t.to_string()).collect();
                let pushes = req.push || req.push_by_digest.is_some();
                Err(Failure {
                    message: format!(
                        "interrupted by {sig}: the build was cancelled; {}",
                        ledger.summary(&platforms, &tags, pushes)
                    ),
                    causes: vec![],
                    hint: None,
                    code,
                })
            }
        }
    });
    report_requests(&deps.registry, deps.sink.as_ref());
    let outcome = outcome?;
    let build_ref = build_ref();
    let by_digest = req
        .push_by_digest
        .as_ref()
        .map(|repo| pushed_by_digest(&outcome, repo, &build_ref));
    write_result_files(args, &req, (&outcome, &build_ref), by_digest.as_ref())?;
    let stdout_taken = req.outputs.iter().any(coordinator::Output::to_stdout);
    Ok(Report::Built(Box::new((outcome, by_digest, stdout_taken))))
}

/// Credentials for the registry `dest` pushed to, handed to build nodes over their SSH channel
/// only: the explicit ones (--creds), else the same lookup the registry client makes.
fn node_credentials(
    rt: &tokio::runtime::Runtime,
    options: &RegistryOptions,
    dest: &str,
) -> Result<Option<WireCredentials>, Failure> {
    let credentials = match options.auth.get(dest) {
        Some(c) => Some(c.clone()),
        None => rt
            .block_on(options.credential_sources.lookup(dest))
            .map_err(|source| crate::registry::RegistryError::Credentials {
                registry: dest.to_string(),
                source: Box::new(source),
            })?,
    };
    Ok(credentials.map(|c| WireCredentials {
        username: c.username,
        password: c.password,
    }))
}

/// Writes `--metadata-file` (the `--push-by-digest` record, else buildx's keys) and
/// `--digest-file` (what was pushed, as REPO@sha256:...), each atomically.
fn write_result_files(
    args: &BuildArgs,
    req: &BuildRequest,
    (outcome, build_ref): (&BuildOutcome, &str),
    by_digest: Option<&PushedByDigest>,
) -> Result<(), Failure> {
    let write = |path: &Path, body: &[u8], what: &str| {
        write_file_atomic(path, body).map_err(|e| Failure {
            message: format!("cannot write {what} {}: {e}", path.display()),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })
    };
    if let Some(path) = &args.metadata_file {
        let value = match by_digest {
            Some(p) => serde_json::to_value(p).unwrap_or_default(),
            None => metadata_json(outcome, req, build_ref),
        };
        let body = serde_json::to_vec_pretty(&value).unwrap_or_default();
        write(path, &body, "metadata file")?;
    }
    if let Some(path) = &args.digest_file {
        let line = match (by_digest, req.tags.first()) {
            (Some(p), _) => p.reference.clone(),
            (None, Some(tag)) => format!("{}@{}", tag.repo_string(), outcome.result.digest),
            (None, None) => String::new(),
        };
        write(path, format!("{line}\n").as_bytes(), "digest file")?;
    }
    if let Some(path) = &args.buildx.iidfile {
        write(path, image_id(outcome).as_bytes(), "image id file")?;
    }
    Ok(())
}

/// The image id buildx prints with `-q` and writes to `--iidfile` (its
/// `containerimage.config.digest` when there is one, else `containerimage.digest`): the config
/// digest for one platform, else the index digest.
fn image_id(outcome: &BuildOutcome) -> String {
    match outcome.images.as_slice() {
        [one] => one.config.to_string(),
        _ => outcome.index.digest.to_string(),
    }
}

/// Prints the result of `--call check` as buildx does: each warning, then the count.
fn print_check(out: &mut impl Write, warnings: &[String]) {
    if warnings.is_empty() {
        let _ = writeln!(out, "Check complete, no warnings found.");
        return;
    }
    for w in warnings {
        let _ = writeln!(out, "WARNING: {w}");
    }
    let n = warnings.len();
    let _ = writeln!(
        out,
        "Check complete, {n} warning{} found!",
        if n == 1 { " has been" } else { "s have been" }
    );
}

/// The outcome of `--call check`: a failure with exit 1 when there are warnings (BuildKit's
/// lint result status).
fn check_verdict(warnings: &[String]) -> Result<(), Failure> {
    if warnings.is_empty() {
        return Ok(());
    }
    Err(Failure {
        message: format!("check: {} warning(s) found", warnings.len()),
        causes: vec![],
        hint: None,
        code: ExitCode::StepFailed,
    })
}

/// Prints the index digest, where it was pushed, and each platform's manifest digest.
fn print_summary(outcome: &BuildOutcome, by_digest: Option<&PushedByDigest>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "index {}", outcome.index.digest);
    if let Some(p) = by_digest {
        let _ = writeln!(out, "  pushed {}", p.reference);
    }
    for t in &outcome.pushed_tags {
        let _ = writeln!(out, "  pushed to {t}");
    }
    if !outcome.pushed_tags.is_empty() && outcome.result.digest != outcome.index.digest {
        // One platform: the tags name its manifest, as buildx pushes it.
        let _ = writeln!(out, "  tags name manifest {}", outcome.result.digest);
    }
    for i in &outcome.images {
        let _ = writeln!(
            out,
            "  {:<16} {}  ({} steps run, {} cached)",
            i.platform.to_string(),
            i.manifest.digest,
            i.steps_run,
            i.steps_cached
        );
    }
}

/// Resolves when the process receives SIGINT or SIGTERM, with the signal's name and the exit
/// code it gives (130, 143). Pending forever when the handlers cannot be installed (the default
/// disposition then still ends the process).
async fn interrupted() -> (&'static str, ExitCode) {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => ("SIGINT", ExitCode::Interrupted),
            _ = term.recv() => ("SIGTERM", ExitCode::Terminated),
        },
        _ => std::future::pending().await,
    }
}
