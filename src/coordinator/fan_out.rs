//! The fan-out: one build per target platform, all polled concurrently, each where the plan put
//! it (a node, or this host natively or emulated); the first failure drops the others and each
//! platform still running gets a line saying it was cancelled and why.
//!
//! Level 3. Must not stitch or publish anything: it returns the per-platform images in
//! `--platform` order and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{remote, stage, BuildError, BuildPlan, Nodes, PlatformImage};
use crate::executor::Executor;
use crate::plan::StageGraph;
use crate::platform::Platform;
use crate::progress::{Event, Sink};
use crate::registry::Registry;

/// Builds every target platform where `placed` puts it: one future per platform, all polled
/// concurrently; the first error drops the others (see [`announce_cancelled`]). Returns the
/// images in `targets` order. `text` is the Dockerfile's text and display name (for nodes);
/// `targets` the platforms with their stage selections.
pub(super) async fn fan_out<R: Registry, E: Executor>(
    stages: &stage::Stages<'_, R, E>,
    nodes: &Nodes,
    text: (&str, &str),
    targets: (&[Platform], Vec<StageGraph>),
    placed: &BuildPlan,
) -> Result<Vec<PlatformImage>, BuildError> {
    let (targets, selections) = targets;
    let deps = stages.deps;
    // One future per platform, all polled concurrently, each where the plan put it; the first
    // error drops the others (their sandbox processes are killed on drop, their channels to
    // nodes closed) and is returned.
    let dispatch = remote::Dispatch::new(nodes, text.0, text.1);
    let local = remote::LocalBuild {
        sh: stages.sh,
        deps,
        stages,
    };
    let finished: Vec<AtomicBool> = targets.iter().map(|_| AtomicBool::new(false)).collect();
    let builds = targets
        .iter()
        .zip(selections)
        .zip(&placed.schedule.placements)
        .zip(&finished)
        .map(|(((p, graph), pl), done)| {
            let run = dispatch.run(&local, p, graph, pl);
            async move {
                let r = run.await;
                done.store(true, Ordering::SeqCst);
                r
            }
        });
    futures::future::try_join_all(builds)
        .await
        .inspect_err(|e| {
            announce_cancelled(deps.sink.as_ref(), targets, &finished, e);
        })
}

/// After a failure: one line for each platform whose build was still running and is now
/// cancelled, saying why (the failure's first line). Platforms that had finished say nothing;
/// nothing of any platform is published.
fn announce_cancelled(
    sink: &dyn Sink,
    targets: &[Platform],
    finished: &[AtomicBool],
    e: &BuildError,
) {
    let why = e.to_string();
    let why = why.lines().next().unwrap_or_default().to_string();
    for (p, done) in targets.iter().zip(finished) {
        if !done.load(Ordering::SeqCst) {
            sink.emit(Event::PlatformCancelled {
                platform: p.to_string(),
                reason: why.clone(),
            });
        }
    }
}
