//! Entitlements: what a build grants its steps beyond the sandbox's defaults, spelled as buildx
//! spells them (`--allow network.host`, `--allow security.insecure`), and the checks that a
//! Dockerfile asks for nothing more: `RUN --network=host` needs `network.host`,
//! `RUN --security=insecure` needs `security.insecure`.
//!
//! Level 0: pure. Reads the parsed Dockerfile and the selected stages; errors name
//! `file:line:column` and the flag to add. Must not know how the sandbox grants them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::graph::StageGraph;
use super::step::Security;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, InstructionKind, Word};

/// One entitlement (buildx `--allow`; BuildKit `entitlements.Entitlement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host` may use the host's network namespace.
    #[serde(rename = "network.host")]
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure` runs with every capability, no seccomp
    /// filter and no masked kernel paths.
    #[serde(rename = "security.insecure")]
    SecurityInsecure,
}

impl Entitlement {
    /// Every entitlement, for messages.
    pub const ALL: [Entitlement; 2] = [Entitlement::NetworkHost, Entitlement::SecurityInsecure];

    /// The name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Entitlement {
    type Err = String;

    /// Parses `network.host` or `security.insecure`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entitlement::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                format!("unknown entitlement {s:?}: use network.host or security.insecure")
            })
    }
}

/// Parses `RUN --security=` (not expanded, as in BuildKit): `sandbox` (the default) or
/// `insecure`.
///
/// Errors: any other value, at its place.
pub(super) fn parse_security(df: &Dockerfile, word: &Word) -> Result<Security, DockerfileError> {
    match word.text.as_str() {
        "sandbox" => Ok(Security::Sandbox),
        "insecure" => Ok(Security::Insecure),
        other => Err(df.error_at(
            word.span,
            word.text.chars().count(),
            ErrorKind::InvalidValue {
                what: "--security".into(),
                value: other.to_string(),
                reason: "use sandbox or insecure".into(),
            },
        )),
    }
}

/// Checks that no `RUN` of the selected stages asks for an entitlement `allowed` lacks:
/// `--network=host` needs [`Entitlement::NetworkHost`], `--security=insecure`
/// [`Entitlement::SecurityInsecure`] (BuildKit refuses them the same way without `--allow`).
///
/// Errors: [`ErrorKind::NotEntitled`] at the flag's value, naming the entitlement.
pub fn check_entitlements(
    df: &Dockerfile,
    graph: &StageGraph,
    allowed: &[Entitlement],
) -> Result<(), DockerfileError> {
    for sel in &graph.stages {
        for ins in &df.stages[sel.stage_index].instructions {
            if let InstructionKind::Run {
                network, security, ..
            } = &ins.kind
            {
                check_flag(df, network.as_ref(), "network", "host", allowed)?;
                check_flag(df, security.as_ref(), "security", "insecure", allowed)?;
            }
        }
    }
    Ok(())
}

/// The entitlement `--flag=value` needs, if any.
fn needed(flag: &str, value: &str) -> Option<Entitlement> {
    match (flag, value) {
        ("network", "host") => Some(Entitlement::NetworkHost),
        ("security", "insecure") => Some(Entitlement::SecurityInsecure),
        _ => None,
    }
}

fn check_flag(
    df: &Dockerfile,
    word: Option<&Word>,
    flag: &str,
    value: &str,
    allowed: &[Entitlement],
) -> Result<(), DockerfileError> {
    let Some(word) = word.filter(|w| w.text == value) else {
        return Ok(());
    };
    match needed(flag, value) {
        Some(e) if !allowed.contains(&e) => Err(df.error_at(
            word.span,
            word.text.chars().count(),
            ErrorKind::NotEntitled {
                instruction: "RUN".into(),
                flag: format!("--{flag}={value}"),
                entitlement: e.name().into(),
            },
        )),
        _ => Ok(()),
    }
}
