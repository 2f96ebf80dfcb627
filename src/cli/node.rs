//! `polyarch node ls|check` and the node flags shared with `polyarch build` (`--node`, `--nodes`,
//! `--ssh-config`).
//!
//! Exit codes: `ls` 0 whenever it could report (unreachable or unusable nodes are listed with
//! why); `check NAME` 0 when the node is usable for what it declares, else 3 when it cannot be
//! reached and 4 when it is reachable but unusable (host key, authentication, missing or
//! incompatible polyarch, a declared platform it cannot run), each naming the node and the fix;
//! 2 for a bad declaration or an unknown name.

use super::*;
use crate::coordinator::probe_node;
use crate::node::protocol::ProbeReport;
use crate::node::spec::{load_nodes_file, parse_node_arg};
use crate::node::ssh::SshTransport;
use crate::node::{NodeError, NodeSet, NodeSpec, Transport};
use crate::schedule::{self, ScheduleError};

/// Where the build nodes are declared. Shared by `polyarch build` and `polyarch node`.
#[derive(Debug, Args, Clone, Default)]
pub struct NodeOpts {
    /// A build node, NAME=ssh://[USER@]HOST[:PORT][?platforms=P1,P2&limit=N&polyarch=PATH]
    /// (platforms: what it builds, default what it runs natively; limit: builds at once,
    /// default 1; polyarch: the program there, default `polyarch` on its PATH). Repeatable.
    #[arg(long = "node", value_name = "NAME=ssh://HOST")]
    pub nodes: Vec<String>,
    /// A TOML file declaring build nodes (see manifests/nodes/nodes.toml).
    #[arg(long = "nodes", value_name = "FILE", env = "POLYARCH_NODES")]
    pub nodes_file: Option<PathBuf>,
    /// `ssh -F FILE` for every node (default: the nodes file's `ssh_config`, else ssh's own
    /// ~/.ssh/config).
    #[arg(long, value_name = "FILE", env = "POLYARCH_SSH_CONFIG")]
    pub ssh_config: Option<PathBuf>,
}

impl NodeOpts {
    /// The declared nodes: the nodes file's first, then each `--node`. Errors (exit 2) name
    /// the value or file.
    pub fn resolve(&self) -> Result<NodeSet, NodeError> {
        let mut set = match &self.nodes_file {
            Some(f) => load_nodes_file(f)?,
            None => NodeSet::default(),
        };
        for n in &self.nodes {
            set.push(parse_node_arg(n)?)?;
        }
        if self.ssh_config.is_some() {
            set.ssh_config = self.ssh_config.clone();
        }
        Ok(set)
    }

    /// The real transport for `set`.
    pub fn transport(set: &NodeSet) -> Result<Arc<dyn Transport>, NodeError> {
        Ok(Arc::new(SshTransport::new(set.ssh_config.clone())?))
    }
}

/// Flags of `polyarch node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: NodeAction,
}

/// `polyarch node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// List the declared nodes: address, reachable, polyarch version, native and emulated
    /// platforms, running builds (each node is probed over SSH, concurrently).
    Ls {
        /// The nodes.
        #[command(flatten)]
        nodes: NodeOpts,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check that one node is usable for what it declares; exit non-zero with why when not.
    Check {
        /// The node's name.
        name: String,
        /// The nodes.
        #[command(flatten)]
        nodes: NodeOpts,
    },
}

fn platforms_text(ps: &[Platform]) -> String {
    if ps.is_empty() {
        "-".into()
    } else {
        ps.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What `check` finds out about a node: its probe, and the platforms it is used for.
fn usable(
    spec: &NodeSpec,
    report: &ProbeReport,
) -> Result<Vec<(Platform, schedule::Runs)>, ScheduleError> {
    let (native, emulated) = report.capabilities();
    schedule::node_offer(
        &spec.name,
        &spec.address(),
        spec.limit,
        spec.platforms.as_deref(),
        &native,
        &emulated,
    )
    .map(|o| o.platforms)
}

fn ls_json(spec: &NodeSpec, probe: &Result<ProbeReport, NodeError>) -> serde_json::Value {
    let declared = spec
        .platforms
        .as_ref()
        .map(|ps| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    let mut v = serde_json::json!({
        "name": spec.name,
        "address": spec.address(),
        "declared": declared,
        "limit": spec.limit,
        "polyarch": spec.program(),
    });
    match probe {
        Ok(r) => {
            let (native, emulated) = r.capabilities();
            v["reachable"] = true.into();
            v["version"] = r.version.clone().into();
            v["host"] = r.host.to_string().into();
            v["native"] = native
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .into();
            v["emulated"] = emulated
                .iter()
                .map(|(p, h)| serde_json::json!({"platform": p.to_string(), "handler": h}))
                .collect::<Vec<_>>()
                .into();
            v["running_builds"] = r.running_builds.into();
            v["problem"] = usable(spec, r).err().map(|e| e.to_string()).into();
        }
        Err(e) => {
            v["reachable"] =
                (!e.is_unreachable() && !matches!(e, NodeError::NoSshClient { .. })).into();
            v["problem"] = e.to_string().into();
            v["hint"] = e.hint().into();
        }
    }
    v
}

/// Runs `polyarch node ...`.
pub(super) fn run_node(_global: &GlobalArgs, args: &NodeArgs) -> Result<(), Failure> {
    match &args.action {
        NodeAction::Ls { nodes, json } => run_ls(nodes, *json),
        NodeAction::Check { name, nodes } => run_check(name, nodes),
    }
}

/// `polyarch node ls`: probes every declared node, concurrently, and lists them (a table, or
/// JSON with `--json`), then the problems found with their hints.
fn run_ls(nodes: &NodeOpts, json: bool) -> Result<(), Failure> {
    let set = nodes.resolve()?;
    if set.nodes.is_empty() {
        return Err(usage(
            "--node",
            "no nodes declared: give --node NAME=ssh://HOST or --nodes FILE",
        )
        .into());
    }
    let transport = NodeOpts::transport(&set)?;
    let rt = runtime()?;
    let probes = rt.block_on(futures::future::join_all(
        set.nodes.iter().map(|n| probe_node(transport.as_ref(), n)),
    ));
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = set
            .nodes
            .iter()
            .zip(&probes)
            .map(|(s, p)| ls_json(s, p))
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<12} {:<32} {:<9} {:<9} {:<6} {:<24} EMULATED",
        "NAME", "ADDRESS", "REACHABLE", "VERSION", "BUILDS", "NATIVE"
    );
    let mut problems = Vec::new();
    for (spec, probe) in set.nodes.iter().zip(&probes) {
        let _ = writeln!(out, "{}", ls_row(spec, probe));
        let problem = match probe {
            Ok(r) => usable(spec, r).err().map(|e| (e.to_string(), e.hint())),
            Err(e) => Some((e.to_string(), e.hint())),
        };
        problems.extend(problem);
    }
    if !problems.is_empty() {
        let _ = writeln!(out);
        for (p, hint) in problems {
            let _ = writeln!(out, "{p}");
            if let Some(h) = hint {
                let _ = writeln!(out, "  hint: {h}");
            }
        }
    }
    Ok(())
}

/// One node's row of the `ls` table.
fn ls_row(spec: &NodeSpec, probe: &Result<ProbeReport, NodeError>) -> String {
    match probe {
        Ok(r) => {
            let (native, emulated) = r.capabilities();
            let emulated: Vec<Platform> = emulated.into_iter().map(|(p, _)| p).collect();
            format!(
                "{:<12} {:<32} {:<9} {:<9} {:<6} {:<24} {}",
                spec.name,
                spec.address(),
                "yes",
                r.version,
                r.running_builds,
                platforms_text(&native),
                platforms_text(&emulated)
            )
        }
        Err(e) => {
            let reachable = if e.is_unreachable() { "no" } else { "yes" };
            format!(
                "{:<12} {:<32} {:<9} {:<9} {:<6} {:<24} -",
                spec.name,
                spec.address(),
                reachable,
                "-",
                "-",
                "-"
            )
        }
    }
}

/// `polyarch node check NAME`: probes the node and says what it is used for, or fails with
/// why it cannot be.
fn run_check(name: &str, nodes: &NodeOpts) -> Result<(), Failure> {
    let set = nodes.resolve()?;
    let spec = set.get(name)?.clone();
    let transport = NodeOpts::transport(&set)?;
    let rt = runtime()?;
    let report = rt.block_on(probe_node(transport.as_ref(), &spec))?;
    let used = usable(&spec, &report)?;
    let (native, emulated) = report.capabilities();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "node {} ({}): usable", spec.name, spec.address());
    let _ = writeln!(
        out,
        "  polyarch {} on {}, {} build(s) running, limit {}",
        report.version, report.host, report.running_builds, spec.limit
    );
    let _ = writeln!(out, "  native:   {}", platforms_text(&native));
    let _ = writeln!(
        out,
        "  emulated: {}",
        if emulated.is_empty() {
            "-".into()
        } else {
            emulated
                .iter()
                .map(|(p, h)| format!("{p} ({h})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  used for: {}",
        used.iter()
            .map(|(p, r)| format!("{p} ({})", r.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
