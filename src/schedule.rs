//! Where each platform of a build runs: on a build node (over SSH), on this host natively, or on
//! this host under emulation, and what to fall back to when a node drops.
//!
//! Level 0: pure. The caller probes the local host and the nodes and hands the results in as plain
//! data ([`LocalRuns`], [`NodeOffer`]), so `polyarch build --dry-run` shows the same plan a build
//! follows. The order for each platform (issue 6, "Scheduling"): a reachable node that declares
//! it (nodes running it natively first, then the least loaded relative to its concurrency limit,
//! then declaration order), this host natively, this host under emulation. `--node-policy`
//! narrows that: `native-only` drops local emulation, `local-only` drops the nodes.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::exit::{Classify, ExitCode};
use crate::platform::{self, Platform};

/// `--node-policy`: which places a platform may run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Nodes that declare the platform, then this host natively, then this host under emulation.
    #[default]
    PreferNative,
    /// Like `prefer-native` without local emulation: a platform with neither a node nor native
    /// support here fails before anything is built.
    NativeOnly,
    /// This host only; nodes are ignored.
    LocalOnly,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::PreferNative => "prefer-native",
            Policy::NativeOnly => "native-only",
            Policy::LocalOnly => "local-only",
        })
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "prefer-native" => Ok(Policy::PreferNative),
            "native-only" => Ok(Policy::NativeOnly),
            "local-only" => Ok(Policy::LocalOnly),
            other => Err(format!(
                "unknown node policy {other:?} (known: prefer-native, native-only, local-only)"
            )),
        }
    }
}

/// How a machine runs a platform's programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "runs", rename_all = "lowercase")]
pub enum Runs {
    /// Its CPU runs them.
    Native,
    /// A qemu-user binfmt_misc handler runs them.
    Emulated {
        /// The handler's name on that machine (e.g. `qemu-aarch64`).
        handler: String,
    },
}

impl Runs {
    /// `natively` or `emulated through HANDLER`.
    pub fn describe(&self) -> String {
        match self {
            Runs::Native => "natively".into(),
            Runs::Emulated { handler } => format!("emulated through {handler}"),
        }
    }
}

/// How this host can build one target platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRuns {
    /// It runs the platform's programs (natively or emulated).
    Runs(Runs),
    /// The stage has no `RUN` step, so nothing of the platform needs to run: any host builds it.
    NoRunSteps,
    /// It cannot run them; `reason` says why (the emulation check's message).
    Cannot {
        /// Why.
        reason: String,
    },
}

/// A reachable node and the platforms it is used for, each with how it runs there (the result
/// of [`node_offer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOffer {
    /// The node's name.
    pub name: String,
    /// Its address as declared (`ssh://user@host:port`), for the plan.
    pub address: String,
    /// Builds it takes at once (at least 1).
    pub limit: usize,
    /// Whether its platforms were declared (else they are the ones it runs natively).
    pub declared: bool,
    /// The platforms it is used for, in declaration order.
    pub platforms: Vec<(Platform, Runs)>,
}

/// One place a platform can be built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "where", rename_all = "lowercase")]
pub enum Place {
    /// On a node, over SSH.
    Node {
        /// The node's name.
        name: String,
        /// Its address.
        address: String,
        /// How it runs the platform.
        #[serde(flatten)]
        runs: Runs,
    },
    /// On this host.
    Local {
        /// How this host runs it; `None` when the stage runs nothing.
        #[serde(skip_serializing_if = "Option::is_none", flatten)]
        runs: Option<Runs>,
    },
}

impl Place {
    /// `node a (emulated through qemu-aarch64 there)`, `local (natively)`, ...
    pub fn describe(&self) -> String {
        match self {
            Place::Node { name, runs, .. } => format!("node {name} ({} there)", runs.describe()),
            Place::Local { runs: Some(r) } => format!("local ({})", r.describe()),
            Place::Local { runs: None } => "local (no RUN step)".into(),
        }
    }

    /// The node's name, or `None` for this host.
    pub fn node(&self) -> Option<&str> {
        match self {
            Place::Node { name, .. } => Some(name),
            Place::Local { .. } => None,
        }
    }
}

/// Where one platform runs: the first candidate, then the one a dropped node falls back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The target platform.
    pub platform: Platform,
    /// Every place it may run, best first; never empty.
    pub candidates: Vec<Place>,
    /// Why the first candidate was chosen, for the plan.
    pub why: String,
}

impl Placement {
    /// Where it runs first.
    pub fn first(&self) -> &Place {
        &self.candidates[0]
    }

    /// Where it goes when the first candidate is a node that drops mid-build (retried once).
    pub fn fallback(&self) -> Option<&Place> {
        self.candidates.get(1)
    }
}

/// The plan for every target platform, in `--platform` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The policy it was made with.
    pub policy: Policy,
    /// One per target platform, in order.
    pub placements: Vec<Placement>,
}

/// Why no plan could be made. Exit 4 (the machines at hand cannot do it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Platforms that nothing allowed by the policy can build.
    #[error(
        "--node-policy {policy}: no node and no native support here for {}",
        platforms.iter().map(|(p, why)| format!("{p} ({why})")).collect::<Vec<_>>().join(", ")
    )]
    NoRunner {
        /// The policy in force.
        policy: Policy,
        /// Each platform with why nothing runs it.
        platforms: Vec<(String, String)>,
    },
    /// A node declares a platform that it cannot run at all, neither natively nor emulated.
    #[error(
        "node {node} declares {platform}, but it cannot run it (natively: {}; emulated: {})",
        list_or_none(native),
        list_or_none(emulated)
    )]
    DeclaredUnsupported {
        /// The node's name.
        node: String,
        /// The declared platform.
        platform: String,
        /// What the node runs natively.
        native: Vec<String>,
        /// What it runs under emulation.
        emulated: Vec<String>,
    },
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Classify for ScheduleError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Host
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ScheduleError::NoRunner { .. } => "declare a node for these platforms (--node \
                 NAME=ssh://HOST?platforms=P), or allow local emulation with --node-policy \
                 prefer-native"
                .into(),
            ScheduleError::DeclaredUnsupported { node, platform, .. } => format!(
                "on node {node}, register an emulator (`polyarch qemu install {platform}` as \
                 root), or drop {platform} from its declared platforms"
            ),
        })
    }
}

/// The platforms a reachable node is used for, each with how it runs there.
///
/// `declared` are the platforms given in its declaration; `None` means "what it runs natively"
/// (its `native` list). `native` and `emulated` come from the node's own probe (`polyarch qemu
/// status --json` there; `emulated` pairs a platform with its handler's name). A declared platform
/// is matched as containerd would run it (`linux/arm/v6` runs where `linux/arm/v7` does). Errors
/// with [`ScheduleError::DeclaredUnsupported`] naming the node when a declared platform runs
/// neither way there.
pub fn node_offer(
    name: &str,
    address: &str,
    limit: usize,
    declared: Option<&[Platform]>,
    native: &[Platform],
    emulated: &[(Platform, String)],
) -> Result<NodeOffer, ScheduleError> {
    let emulated_platforms: Vec<Platform> = emulated.iter().map(|(p, _)| p.clone()).collect();
    let mut platforms = Vec::new();
    match declared {
        None => {
            for p in native {
                platforms.push((p.clone(), Runs::Native));
            }
        }
        Some(list) => {
            for p in list {
                let runs = if platform::best_match(p, native).is_some() {
                    Runs::Native
                } else if let Some(i) = platform::best_match(p, &emulated_platforms) {
                    Runs::Emulated {
                        handler: emulated[i].1.clone(),
                    }
                } else {
                    return Err(ScheduleError::DeclaredUnsupported {
                        node: name.to_string(),
                        platform: p.to_string(),
                        native: native.iter().map(|p| p.to_string()).collect(),
                        emulated: emulated_platforms.iter().map(|p| p.to_string()).collect(),
                    });
                };
                platforms.push((p.clone(), runs));
            }
        }
    }
    Ok(NodeOffer {
        name: name.to_string(),
        address: address.to_string(),
        limit: limit.max(1),
        declared: declared.is_some(),
        platforms,
    })
}

/// Places every target platform (`targets[i]` with `local[i]`, how this host builds it) on the
/// nodes in `nodes` and this host, following `policy` (see the module docs for the order).
///
/// Nodes are balanced: among equally good nodes, the one with the fewest platforms placed on it
/// relative to its limit wins, then the first declared. Errors with [`ScheduleError::NoRunner`]
/// listing every platform that nothing allowed by the policy can build.
///
/// Panics when `local` and `targets` differ in length (a caller bug).
pub fn schedule(
    targets: &[Platform],
    local: &[LocalRuns],
    nodes: &[NodeOffer],
    policy: Policy,
) -> Result<Schedule, ScheduleError> {
    assert_eq!(targets.len(), local.len(), "one LocalRuns per target");
    let mut load = vec![0usize; nodes.len()];
    let mut placements = Vec::new();
    let mut missing = Vec::new();
    for (target, here) in targets.iter().zip(local) {
        let on_nodes = if policy != Policy::LocalOnly {
            node_candidates(target, nodes, &load)
        } else {
            Vec::new()
        };
        let mut candidates: Vec<Place> = on_nodes
            .iter()
            .map(|(_, i, runs)| Place::Node {
                name: nodes[*i].name.clone(),
                address: nodes[*i].address.clone(),
                runs: runs.clone(),
            })
            .collect();
        candidates.extend(local_place(here, policy));
        let Some(first) = candidates.first() else {
            let why = match here {
                LocalRuns::Cannot { reason } => format!("no node declares it; here: {reason}"),
                _ => "no node declares it and this host runs it only under emulation".into(),
            };
            missing.push((target.to_string(), why));
            continue;
        };
        if let Some((_, i, _)) = on_nodes.first() {
            load[*i] += 1;
        }
        let why = why_first(first, nodes, policy);
        placements.push(Placement {
            platform: target.clone(),
            candidates,
            why,
        });
    }
    if !missing.is_empty() {
        return Err(ScheduleError::NoRunner {
            policy,
            platforms: missing,
        });
    }
    Ok(Schedule { policy, placements })
}

/// The nodes that offer `target`, as (class, node index, how it runs there), best first:
/// class 0 runs it natively, 1 emulated; within a class the least loaded relative to its
/// limit (`load[i]` platforms placed on node `i` so far), then the first declared.
fn node_candidates(
    target: &Platform,
    nodes: &[NodeOffer],
    load: &[usize],
) -> Vec<(usize, usize, Runs)> {
    let mut on_nodes: Vec<(usize, usize, Runs)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let offered: Vec<Platform> = n.platforms.iter().map(|(p, _)| p.clone()).collect();
        if let Some(j) = platform::best_match(target, &offered) {
            let runs = n.platforms[j].1.clone();
            let class = usize::from(runs != Runs::Native);
            on_nodes.push((class, i, runs));
        }
    }
    // Least loaded first within a class: compare load/limit by cross-multiplying.
    on_nodes.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (load[a.1] * nodes[b.1].limit).cmp(&(load[b.1] * nodes[a.1].limit)))
            .then_with(|| a.1.cmp(&b.1))
    });
    on_nodes
}

/// This host as a candidate, when `policy` lets it build the platform the way it can.
fn local_place(here: &LocalRuns, policy: Policy) -> Option<Place> {
    match here {
        LocalRuns::NoRunSteps => Some(Place::Local { runs: None }),
        LocalRuns::Runs(Runs::Native) => Some(Place::Local {
            runs: Some(Runs::Native),
        }),
        LocalRuns::Runs(r @ Runs::Emulated { .. }) if policy != Policy::NativeOnly => {
            Some(Place::Local {
                runs: Some(r.clone()),
            })
        }
        _ => None,
    }
}

/// Why a platform goes to `first`, its first candidate.
fn why_first(first: &Place, nodes: &[NodeOffer], policy: Policy) -> String {
    match first {
        Place::Node { name, runs, .. } => {
            let declared = if nodes.iter().any(|n| &n.name == name && n.declared) {
                "declares it"
            } else {
                "declares no platforms"
            };
            match runs {
                Runs::Native => format!("node {name} {declared} and runs it natively"),
                Runs::Emulated { handler } => format!(
                    "node {name} {declared}; it runs it only under emulation there \
                     ({handler}), used as declared"
                ),
            }
        }
        Place::Local { runs } => {
            let lead = match policy {
                Policy::LocalOnly => "--node-policy local-only".to_string(),
                _ => "no node declares it".to_string(),
            };
            match runs {
                Some(Runs::Native) => format!("{lead}; this host runs it natively"),
                Some(Runs::Emulated { handler }) => {
                    format!("{lead}; this host runs it under emulation ({handler})")
                }
                None => format!("{lead}; the stage has no RUN step, so nothing needs to run"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn emu(h: &str) -> Runs {
        Runs::Emulated { handler: h.into() }
    }

    fn node(name: &str, limit: usize, platforms: &[(&str, Runs)]) -> NodeOffer {
        NodeOffer {
            name: name.into(),
            address: format!("ssh://{name}"),
            limit,
            declared: true,
            platforms: platforms.iter().map(|(s, r)| (p(s), r.clone())).collect(),
        }
    }

    fn where_(s: &Schedule) -> Vec<Vec<String>> {
        s.placements
            .iter()
            .map(|pl| pl.candidates.iter().map(Place::describe).collect())
            .collect()
    }

    #[test]
    fn nodes_first_native_before_emulated_then_local() {
        let targets = [p("linux/amd64"), p("linux/arm64/v8"), p("linux/s390x")];
        let local = [
            LocalRuns::Runs(Runs::Native),
            LocalRuns::Runs(emu("qemu-aarch64")),
            LocalRuns::Runs(emu("qemu-s390x")),
        ];
        let nodes = [
            node("emu", 1, &[("linux/arm64", emu("qemu-aarch64"))]),
            node("arm", 1, &[("linux/arm64", Runs::Native)]),
        ];
        let s = schedule(&targets, &local, &nodes, Policy::PreferNative).unwrap();
        assert_eq!(
            where_(&s),
            [
                vec!["local (natively)"],
                vec![
                    "node arm (natively there)",
                    "node emu (emulated through qemu-aarch64 there)",
                    "local (emulated through qemu-aarch64)"
                ],
                vec!["local (emulated through qemu-s390x)"],
            ]
        );
        assert_eq!(
            s.placements[1].why,
            "node arm declares it and runs it natively"
        );
        assert_eq!(
            s.placements[2].why,
            "no node declares it; this host runs it under emulation (qemu-s390x)"
        );
        assert_eq!(
            s.placements[1].fallback().map(Place::describe).as_deref(),
            Some("node emu (emulated through qemu-aarch64 there)")
        );
    }

    #[test]
    fn emulated_node_is_used_as_declared_and_the_plan_says_so() {
        let s = schedule(
            &[p("linux/arm64")],
            &[LocalRuns::Runs(emu("qemu-aarch64"))],
            &[node("a", 1, &[("linux/arm64", emu("qemu-aarch64"))])],
            Policy::PreferNative,
        )
        .unwrap();
        assert_eq!(s.placements[0].first().node(), Some("a"));
        assert!(
            s.placements[0]
                .why
                .contains("only under emulation there (qemu-aarch64)"),
            "{}",
            s.placements[0].why
        );
    }

    #[test]
    fn native_only_refuses_local_emulation_listing_every_platform() {
        let targets = [p("linux/amd64"), p("linux/arm64"), p("linux/ppc64le")];
        let local = [
            LocalRuns::Runs(Runs::Native),
            LocalRuns::Runs(emu("qemu-aarch64")),
            LocalRuns::Cannot {
                reason: "no binfmt_misc handler".into(),
            },
        ];
        let e = schedule(&targets, &local, &[], Policy::NativeOnly).unwrap_err();
        match &e {
            ScheduleError::NoRunner { platforms, policy } => {
                assert_eq!(*policy, Policy::NativeOnly);
                let names: Vec<&str> = platforms.iter().map(|(p, _)| p.as_str()).collect();
                assert_eq!(names, ["linux/arm64", "linux/ppc64le"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.exit_code(), ExitCode::Host);
        assert!(e.to_string().contains("linux/arm64"), "{e}");
        // With a node declaring arm64 (even emulated there) only ppc64le is missing.
        let nodes = [node("a", 1, &[("linux/arm64", emu("qemu-aarch64"))])];
        let e = schedule(&targets, &local, &nodes, Policy::NativeOnly).unwrap_err();
        assert!(
            matches!(&e, ScheduleError::NoRunner { platforms, .. } if platforms.len() == 1 && platforms[0].0 == "linux/ppc64le"),
            "{e:?}"
        );
        // And the native-only plan never falls back to local emulation.
        let s = schedule(&targets[..2], &local[..2], &nodes, Policy::NativeOnly).unwrap();
        assert_eq!(s.placements[1].candidates.len(), 1);
    }

    #[test]
    fn local_only_ignores_nodes() {
        let s = schedule(
            &[p("linux/arm64")],
            &[LocalRuns::Runs(emu("qemu-aarch64"))],
            &[node("a", 1, &[("linux/arm64", Runs::Native)])],
            Policy::LocalOnly,
        )
        .unwrap();
        assert_eq!(where_(&s), [vec!["local (emulated through qemu-aarch64)"]]);
        assert!(s.placements[0].why.starts_with("--node-policy local-only"));
    }

    #[test]
    fn equally_good_nodes_share_the_work_by_limit() {
        let targets = [
            p("linux/amd64"),
            p("linux/arm64"),
            p("linux/arm/v7"),
            p("linux/386"),
        ];
        let local = vec![LocalRuns::NoRunSteps; 4];
        let all = [
            ("linux/amd64", Runs::Native),
            ("linux/arm64", Runs::Native),
            ("linux/arm/v7", Runs::Native),
            ("linux/386", Runs::Native),
        ];
        let nodes = [node("small", 1, &all), node("big", 3, &all)];
        let s = schedule(&targets, &local, &nodes, Policy::PreferNative).unwrap();
        let firsts: Vec<&str> = s
            .placements
            .iter()
            .map(|pl| pl.first().node().unwrap())
            .collect();
        // 0/1 vs 0/3: small (declared first); then 1/1 vs 0/3: big; 1/1 vs 1/3: big; 1/1 vs 2/3: big.
        assert_eq!(firsts, ["small", "big", "big", "big"]);
        // A stage without RUN steps can always fall back here.
        assert_eq!(
            s.placements[0].fallback(),
            Some(&Place::Node {
                name: "big".into(),
                address: "ssh://big".into(),
                runs: Runs::Native
            })
        );
        assert_eq!(
            s.placements[0].candidates.last(),
            Some(&Place::Local { runs: None })
        );
    }

    #[test]
    fn declared_platforms_are_checked_against_what_the_node_runs() {
        let native = [p("linux/amd64"), p("linux/386")];
        let emulated = [(p("linux/arm64"), "qemu-aarch64".to_string())];
        let o = node_offer(
            "a",
            "ssh://a",
            0,
            Some(&[p("linux/arm64/v8"), p("linux/amd64")]),
            &native,
            &emulated,
        )
        .unwrap();
        assert_eq!(o.limit, 1);
        assert_eq!(
            o.platforms,
            [
                (p("linux/arm64/v8"), emu("qemu-aarch64")),
                (p("linux/amd64"), Runs::Native)
            ]
        );
        // No declaration: what it runs natively.
        let o = node_offer("a", "ssh://a", 2, None, &native, &emulated).unwrap();
        assert_eq!(
            o.platforms,
            [
                (p("linux/amd64"), Runs::Native),
                (p("linux/386"), Runs::Native)
            ]
        );
        // A declared platform it cannot run at all names the node.
        let e = node_offer(
            "b",
            "ssh://b",
            1,
            Some(&[p("linux/s390x")]),
            &native,
            &emulated,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "node b declares linux/s390x, but it cannot run it (natively: linux/amd64, \
             linux/386; emulated: linux/arm64)"
        );
        assert!(e
            .hint()
            .unwrap()
            .contains("polyarch qemu install linux/s390x"));
    }

    #[test]
    fn policy_parses_and_prints() {
        for s in ["prefer-native", "native-only", "local-only"] {
            assert_eq!(s.parse::<Policy>().unwrap().to_string(), s);
        }
        assert!("fastest".parse::<Policy>().is_err());
    }
}
