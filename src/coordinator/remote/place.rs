//! Placing a build's platforms: how this host runs each (probe programs), what each node runs
//! (probed over SSH, concurrently), then [`schedule::schedule`] decides.
//!
//! Level 3 (coordinator). Probes and decides only: builds nothing, pushes nothing, and never
//! talks to a node beyond its probe.

use super::{probe_node, BuildPlan, NodeState, NodeStatus, Nodes};
use crate::coordinator::{push_target, BuildError, BuildRequest, Deps};
use crate::emulation::{self, EmulationError, Support};
use crate::executor::Executor;
use crate::platform::{self, Platform};
use crate::registry::Registry;
use crate::schedule::{self, LocalRuns, NodeOffer, Place, Placement, Policy, Runs};

/// Decides where each target runs: how this host runs it (probe programs, as a local build
/// checks), what each node runs (probed over SSH, concurrently), then [`schedule::schedule`].
///
/// Errors: a platform nothing may build (this host's emulation error as a local build gives
/// it, or [`ScheduleError::NoRunner`] under `native-only`, exit 4); a node that is reachable
/// but unusable (host key, authentication, missing binary, version, a declared platform it
/// cannot run; exit 4). Unreachable nodes are left out with a note.
///
/// [`ScheduleError::NoRunner`]: crate::schedule::ScheduleError::NoRunner
pub(in crate::coordinator) async fn place<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    nodes: &Nodes,
    targets: &[Platform],
    needs_run: bool,
) -> Result<BuildPlan, BuildError> {
    let (local, mut local_errors) = probe_here(req, deps, targets, needs_run)?;
    let NodeProbes {
        statuses,
        offers,
        notes,
    } = probe_nodes(req, nodes).await?;

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

/// How this host runs each target (`targets[i]` → slot `i`): a probe program per platform
/// when the build runs commands, else "no RUN step" for all. A platform it cannot run keeps
/// its emulation error beside, for [`place`] to return when no node takes it.
fn probe_here<R, E>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    targets: &[Platform],
    needs_run: bool,
) -> Result<(Vec<LocalRuns>, Vec<Option<EmulationError>>), BuildError> {
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
                    // The CPU model the steps get (verify proved it), shown by --dry-run.
                    let handler = match p.qemu_cpu() {
                        Some(cpu) => format!("{handler}, cpu {cpu}"),
                        None => handler,
                    };
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
    Ok((local, local_errors))
}

/// What probing the nodes found: every declared node's state, what the usable ones offer,
/// and notes for the user.
struct NodeProbes {
    statuses: Vec<NodeStatus>,
    offers: Vec<NodeOffer>,
    notes: Vec<String>,
}

/// Probes the declared nodes, concurrently, unless the build does not use them (no
/// transport, `local-only`, or nothing pushed, since nodes push their images themselves).
async fn probe_nodes(req: &BuildRequest, nodes: &Nodes) -> Result<NodeProbes, BuildError> {
    let mut found = NodeProbes {
        statuses: Vec::new(),
        offers: Vec::new(),
        notes: Vec::new(),
    };
    match (&nodes.transport, nodes.set.nodes.is_empty()) {
        (_, true) => {}
        (None, false) => found.statuses = not_probed(nodes, "no transport"),
        (Some(_), false) if nodes.policy == Policy::LocalOnly => {
            let why = "--node-policy local-only: nodes are not used";
            found.notes.push(why.to_string());
            found.statuses = not_probed(nodes, why);
        }
        (Some(_), false) if push_target(req).is_none() => {
            let why = "nodes push their images to the registry themselves, so without --push \
                       or --push-by-digest every platform is built here";
            found.notes.push(why.to_string());
            found.statuses = not_probed(nodes, why);
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
                        found.statuses.push(NodeStatus {
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
                        found.offers.push(offer);
                    }
                    Err(e) if e.is_unreachable() => {
                        found
                            .notes
                            .push(format!("node {} is left out: {e}", spec.name));
                        found.statuses.push(NodeStatus {
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
    Ok(found)
}

/// Every declared node, not probed because of `why`.
fn not_probed(nodes: &Nodes, why: &str) -> Vec<NodeStatus> {
    nodes
        .set
        .nodes
        .iter()
        .map(|n| NodeStatus {
            spec: n.clone(),
            state: NodeState::NotProbed { why: why.into() },
        })
        .collect()
}

/// `PlatformPlanned`'s text for a placement.
pub(in crate::coordinator) fn planned_text(pl: &Placement) -> String {
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
