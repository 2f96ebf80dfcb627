//! `polyarch worker --stdio`: the node's end of a build node session, started by a coordinator
//! over SSH. Not for people: it speaks the frames of [`crate::node::protocol`] on stdin/stdout
//! (stdout carries nothing else) and logs to stderr, which the coordinator keeps for messages.
//!
//! One session answers one request: a probe (the `polyarch qemu status --json` report, version,
//! running builds) or one platform's build. For a build the context bundle is taken from the
//! store (`contexts/<hex>/`) when it is there, else received, verified against its digest and
//! unpacked there; the build runs with the same code as a local build and pushes by digest with
//! the credentials received in the credentials frame (held in memory only). When the coordinator
//! goes away (stdin closes) the build is cancelled.

use std::os::fd::AsFd;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::*;
use crate::coordinator::build_job;
use crate::emulation::{self, Isolation};
use crate::node::bundle;
use crate::node::client::VERSION;
use crate::node::protocol::{
    self, BuildJob, Frame, FromWorker, ProbeReport, RemoteFailure, RemoteImage, ToWorker,
    WireCredentials, MAGIC, PROTOCOL_VERSION,
};
use crate::oci::Digest;
use crate::registry::Credentials;

/// Flags of `polyarch worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Speak the worker protocol on stdin/stdout (the only mode).
    #[arg(long, required = true)]
    pub stdio: bool,
}

/// Where workers mark themselves busy: one locked file per running build.
fn busy_dir(state: &Path) -> PathBuf {
    state.join("workers")
}

/// A running build's mark: `workers/<pid>`, locked while the build runs, removed after.
struct BusyMark {
    path: PathBuf,
    _file: std::fs::File,
}

impl BusyMark {
    fn take(state: &Path) -> std::io::Result<BusyMark> {
        let dir = busy_dir(state);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(std::process::id().to_string());
        let file = std::fs::File::create(&path)?;
        rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )?;
        Ok(BusyMark { path, _file: file })
    }
}

impl Drop for BusyMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Builds running on this node: marks whose lock is held. Stale marks (a worker that died) are
/// removed.
fn running_builds(state: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(busy_dir(state)) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(f) = std::fs::File::open(e.path()) else {
            continue;
        };
        match rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::NonBlockingLockShared) {
            Err(_) => n += 1,
            Ok(()) => {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    n
}

/// Runs `polyarch worker --stdio`.
pub(super) fn run_worker(global: &GlobalArgs, _args: &WorkerArgs) -> Result<(), Failure> {
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    let rt = runtime()?;
    rt.block_on(serve(state, tokio::io::stdin(), tokio::io::stdout()))
}

fn failure_frame(f: &Failure) -> FromWorker {
    FromWorker::Failed(RemoteFailure {
        message: f.message.clone(),
        causes: f.causes.clone(),
        hint: f.hint.clone(),
        exit_code: f.code.code(),
    })
}

fn protocol_failure(message: String) -> Failure {
    Failure {
        message,
        causes: vec![],
        hint: None,
        code: ExitCode::Host,
    }
}

/// One session: hello, then one request.
async fn serve<R, W>(state: PathBuf, mut input: R, mut output: W) -> Result<(), Failure>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let io = |e: protocol::FrameError| protocol_failure(format!("worker channel: {e}"));
    protocol::send(
        &mut output,
        &FromWorker::Hello {
            magic: MAGIC.into(),
            protocol: PROTOCOL_VERSION,
            version: VERSION.into(),
            host: Platform::host(),
        },
    )
    .await
    .map_err(io)?;
    match protocol::recv::<_, ToWorker>(&mut input)
        .await
        .map_err(io)?
    {
        None => return Ok(()),
        Some(ToWorker::Hello { protocol, version }) if protocol == PROTOCOL_VERSION => {
            tracing::debug!(coordinator = %version, "handshake done");
        }
        Some(ToWorker::Hello { protocol, version }) => {
            let f = protocol_failure(format!(
                "this node's polyarch {VERSION} speaks protocol {PROTOCOL_VERSION}, the \
                 coordinator's {version} speaks {protocol}"
            ));
            let _ = protocol::send(&mut output, &failure_frame(&f)).await;
            return Err(f);
        }
        Some(other) => {
            return Err(protocol_failure(format!(
                "expected the coordinator's hello, got {other:?}"
            )))
        }
    }
    match protocol::recv::<_, ToWorker>(&mut input)
        .await
        .map_err(io)?
    {
        None => Ok(()),
        Some(ToWorker::Probe) => {
            let reply = match probe(&state) {
                Ok(report) => FromWorker::Probe(Box::new(report)),
                Err(f) => failure_frame(&f),
            };
            protocol::send(&mut output, &reply).await.map_err(io)
        }
        Some(ToWorker::Build(job)) => {
            let credentials = match protocol::recv::<_, ToWorker>(&mut input)
                .await
                .map_err(io)?
            {
                Some(ToWorker::Credentials { credentials }) => credentials,
                other => {
                    return Err(protocol_failure(format!(
                        "expected the credentials frame after the job, got {other:?}"
                    )))
                }
            };
            run_job(&state, *job, credentials, input, &mut output).await
        }
        Some(other) => Err(protocol_failure(format!(
            "expected a probe or a build, got {other:?}"
        ))),
    }
}

/// The answer to a probe: the same report `polyarch qemu status --json` prints here.
fn probe(state: &Path) -> Result<ProbeReport, Failure> {
    let report = emulation::status(
        Path::new(qemu::BINFMT_DIR),
        &state.join("tmp"),
        Isolation::for_this_process(),
    )?;
    Ok(ProbeReport {
        version: VERSION.into(),
        host: Platform::host(),
        qemu: qemu::status_json(&report),
        running_builds: running_builds(state),
    })
}

/// Makes sure the bundle `job.context` is unpacked under `contexts/<hex>/`: says so if it is,
/// else asks for it, receives it (verifying size and digest) and unpacks it atomically.
async fn obtain_context<R, W>(
    store: &Store,
    job: &BuildJob,
    input: &mut R,
    output: &mut W,
) -> Result<PathBuf, Failure>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let io = |e: protocol::FrameError| protocol_failure(format!("worker channel: {e}"));
    let contexts = store.root().join("contexts");
    let dir = contexts.join(job.context.digest.hex());
    // Claimed (its last use now), so that `polyarch prune` keeps it while this job runs.
    if store.claim(&dir)? && dir.join(bundle::ROOT_ENTRY).is_dir() {
        protocol::send(output, &FromWorker::HaveContext)
            .await
            .map_err(io)?;
        return Ok(dir);
    }
    protocol::send(output, &FromWorker::NeedContext)
        .await
        .map_err(io)?;
    let tmp = store.temp_dir("context")?;
    let file = tmp.path().join("bundle");
    receive_bundle(job, input, &file).await?;
    unpack_bundle(job, &file, &contexts, &dir).await?;
    Ok(dir)
}

/// Receives the context bundle's chunks into `file`; fails when it is larger than announced,
/// ends early, or arrives with another digest or size than `job.context`.
async fn receive_bundle<R>(job: &BuildJob, input: &mut R, file: &Path) -> Result<(), Failure>
where
    R: AsyncRead + Unpin + Send,
{
    let io = |e: protocol::FrameError| protocol_failure(format!("worker channel: {e}"));
    let mut f = tokio::fs::File::create(file)
        .await
        .map_err(|e| protocol_failure(format!("cannot create {}: {e}", file.display())))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        match protocol::read_frame(input).await.map_err(io)? {
            Some(Frame::Chunk(b)) => {
                hasher.update(&b);
                size += b.len() as u64;
                if size > job.context.size {
                    return Err(protocol_failure(format!(
                        "the context bundle is larger than announced ({} bytes)",
                        job.context.size
                    )));
                }
                tokio::io::AsyncWriteExt::write_all(&mut f, &b)
                    .await
                    .map_err(|e| protocol_failure(format!("writing {}: {e}", file.display())))?;
            }
            Some(Frame::End) => break,
            Some(Frame::Json(_)) | None => {
                return Err(protocol_failure(
                    "the context bundle ended early".to_string(),
                ))
            }
        }
    }
    tokio::io::AsyncWriteExt::flush(&mut f)
        .await
        .map_err(|e| protocol_failure(format!("writing {}: {e}", file.display())))?;
    drop(f);
    let got = Digest::from_hasher(hasher);
    if got != job.context.digest || size != job.context.size {
        return Err(protocol_failure(format!(
            "the context bundle arrived as {got} ({size} bytes), not {} ({} bytes)",
            job.context.digest, job.context.size
        )));
    }
    Ok(())
}

/// Unpacks the received bundle `file` next to its place `dir` in `contexts`, then moves it
/// there; another worker's copy already in place is as good.
async fn unpack_bundle(
    job: &BuildJob,
    file: &Path,
    contexts: &Path,
    dir: &Path,
) -> Result<(), Failure> {
    std::fs::create_dir_all(contexts)
        .map_err(|e| protocol_failure(format!("cannot create {}: {e}", contexts.display())))?;
    let unpacked = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(contexts)
        .map_err(|e| {
            protocol_failure(format!(
                "cannot create a directory in {}: {e}",
                contexts.display()
            ))
        })?;
    let (b, d, u) = (
        file.to_path_buf(),
        job.context.digest.clone(),
        unpacked.path().to_path_buf(),
    );
    tokio::task::spawn_blocking(move || bundle::unpack(&b, &d, &u))
        .await
        .map_err(|e| protocol_failure(e.to_string()))??;
    // Another worker may have unpacked the same bundle meanwhile: either copy is fine.
    let kept = unpacked.keep();
    if std::fs::rename(&kept, dir).is_err() {
        let _ = std::fs::remove_dir_all(&kept);
        if !dir.join(bundle::ROOT_ENTRY).is_dir() {
            return Err(protocol_failure(format!(
                "cannot move the unpacked context to {}",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Forwards progress events into the channel the session writes out.
struct ChannelSink(mpsc::UnboundedSender<Event>);

impl Sink for ChannelSink {
    fn emit(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

async fn run_job<R, W>(
    state: &Path,
    job: BuildJob,
    credentials: Option<WireCredentials>,
    mut input: R,
    output: &mut W,
) -> Result<(), Failure>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let io = |e: protocol::FrameError| protocol_failure(format!("worker channel: {e}"));
    let store = Store::open(state)?;
    let _busy = BusyMark::take(state)
        .map_err(|e| protocol_failure(format!("cannot mark the build as running: {e}")))?;
    let dir = match obtain_context(&store, &job, &mut input, output).await {
        Ok(d) => d,
        Err(f) => {
            let _ = protocol::send(output, &failure_frame(&f)).await;
            return Err(f);
        }
    };
    let result = build_here(&store, &job, credentials, &dir, input, output).await;
    match result {
        Ok(Some(reply)) => protocol::send(output, &reply).await.map_err(io),
        Ok(None) => Err(protocol_failure(
            "the coordinator went away; the build was cancelled".into(),
        )),
        Err(f) => {
            let _ = protocol::send(output, &failure_frame(&f)).await;
            Err(f)
        }
    }
}

/// Runs the build, streaming its events; `Ok(None)` when the coordinator hung up (the build is
/// dropped, which kills its sandbox).
async fn build_here<R, W>(
    store: &Store,
    job: &BuildJob,
    credentials: Option<WireCredentials>,
    context_dir: &Path,
    mut input: R,
    output: &mut W,
) -> Result<Option<FromWorker>, Failure>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let io = |e: protocol::FrameError| protocol_failure(format!("worker channel: {e}"));
    // The Dockerfile and the coordinator's ignore rules side by side, so the context opens
    // with exactly those rules (`Dockerfile.dockerignore` wins over the context's own).
    let jobdir = store.temp_dir("job")?;
    let dockerfile = jobdir.path().join("Dockerfile");
    std::fs::write(&dockerfile, &job.dockerfile)
        .map_err(|e| protocol_failure(format!("cannot write {}: {e}", dockerfile.display())))?;
    let ignore = context_dir.join(bundle::IGNORE_ENTRY);
    if ignore.is_file() {
        let to = jobdir.path().join("Dockerfile.dockerignore");
        std::fs::copy(&ignore, &to)
            .map_err(|e| protocol_failure(format!("cannot write {}: {e}", to.display())))?;
    }
    let push_to: Reference = job
        .push_to
        .parse()
        .map_err(|e: crate::registry::RegistryError| protocol_failure(e.to_string()))?;
    let mut auth = BTreeMap::new();
    if let Some(c) = credentials {
        auth.insert(
            push_to.registry.clone(),
            Credentials {
                username: c.username,
                password: c.password,
            },
        );
    }
    let registry = OciRegistry::new(RegistryOptions {
        insecure: job.insecure_registries.clone(),
        retries: job.retries,
        auth,
        upload_journal: Some(store.upload_journal()),
        ..RegistryOptions::default()
    })?;
    let executor = SandboxExecutor::current_exe()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let deps = Deps {
        registry,
        executor,
        store: store.clone(),
        sink: Arc::new(ChannelSink(tx)),
    };
    // The coordinator sends nothing more; its stdin closing means it is gone.
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        while let Ok(Some(_)) = protocol::read_frame(&mut input).await {}
        let _ = gone_tx.send(());
    });
    let root = context_dir.join(bundle::ROOT_ENTRY);
    let build = build_job(job, &root, &dockerfile, &deps);
    tokio::pin!(build);
    loop {
        tokio::select! {
            biased;
            _ = &mut gone_rx => return Ok(None),
            Some(event) = rx.recv() => {
                protocol::send(output, &FromWorker::Event(event)).await.map_err(io)?;
            }
            result = &mut build => {
                while let Ok(event) = rx.try_recv() {
                    protocol::send(output, &FromWorker::Event(event)).await.map_err(io)?;
                }
                return match result {
                    Ok(image) => Ok(Some(FromWorker::Done(RemoteImage {
                        manifest: image.manifest,
                        config: image.config,
                        steps_run: image.steps_run,
                        steps_cached: image.steps_cached,
                    }))),
                    Err(e) => Ok(Some(failure_frame(&Failure::from(e)))),
                };
            }
        }
    }
}
