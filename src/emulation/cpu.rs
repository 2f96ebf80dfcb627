//! CPU models of emulated platforms: the proof that a platform's probe runs under the qemu CPU
//! model its steps get ([`crate::platform::Platform::qemu_cpu`], `arm926` for `linux/arm/v5`),
//! by running the handler's CPU checks (`[[cpu_check]]` in `qemu/probes.toml`) with that model:
//! an instruction the model lacks must trap (`SIGILL`) and one it has must run.
//!
//! Level 1: runs probe processes through `probe.rs`; it judges their outcomes and changes
//! nothing (no registration, no file outside the probe's temporary directory).

use std::path::Path;

use super::error::EmulationError;
use super::probe::{run_probe_as, Isolation, ProbeCpu, ProbeResult};
use super::probe_program::cpu_checks;
use super::table::Handler;
use crate::platform::Platform;

/// One CPU check run under a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The instruction in front of the probe (assembly).
    pub asm: String,
    /// The model has the instruction, so the probe must run; otherwise it must die of SIGILL.
    pub must_run: bool,
    /// What happened.
    pub result: ProbeResult,
}

impl CheckOutcome {
    /// The outcome is the one a board with this CPU gives.
    pub fn as_expected(&self) -> bool {
        if self.must_run {
            self.result.ran()
        } else {
            matches!(&self.result, ProbeResult::Failed { status, .. } if status == "signal 4")
        }
    }
}

/// The CPU model of one platform, and the checks that prove the interpreter applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuProof {
    /// The qemu CPU model (`arm926`, `arm1176`, `cortex-a8`).
    pub model: &'static str,
    /// Every CPU check of the handler, run under `model`.
    pub checks: Vec<CheckOutcome>,
}

impl CpuProof {
    /// Every check came out as on a board with this CPU.
    pub fn proven(&self) -> bool {
        self.checks.iter().all(CheckOutcome::as_expected)
    }

    /// What went wrong, for humans; `None` when proven.
    pub fn problem(&self) -> Option<String> {
        let bad: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.as_expected())
            .map(|c| {
                format!(
                    "`{}` {} (expected it to {})",
                    c.asm.split('@').next().unwrap_or("").trim(),
                    c.result.describe(),
                    if c.must_run {
                        "run"
                    } else {
                        "trap with SIGILL"
                    }
                )
            })
            .collect();
        (!bad.is_empty()).then(|| {
            format!(
                "the interpreter does not apply CPU model {}: {}",
                self.model,
                bad.join("; ")
            )
        })
    }
}

/// Runs `handler`'s CPU checks with `platform`'s CPU model (isolated as `isolation` says, files
/// under `work_dir`). `None` when the platform has no CPU model of its own or the handler no
/// checks. Errors only when a probe cannot be written.
pub fn prove_cpu(
    platform: &Platform,
    handler: &Handler,
    work_dir: &Path,
    isolation: Isolation,
) -> Result<Option<CpuProof>, EmulationError> {
    let Some(model) = platform.qemu_cpu() else {
        return Ok(None);
    };
    let checks = cpu_checks(handler);
    if checks.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for c in checks {
        let cpu = ProbeCpu {
            model: Some(model),
            check: Some(c),
        };
        out.push(CheckOutcome {
            asm: c.asm.clone(),
            must_run: c.runs_on.iter().any(|r| r == model),
            result: run_probe_as(handler, work_dir, isolation, &cpu)?,
        });
    }
    Ok(Some(CpuProof { model, checks: out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_and_problem_text() {
        let trap = ProbeResult::Failed {
            status: "signal 4".into(),
            stderr: String::new(),
        };
        let proof = CpuProof {
            model: "arm926",
            checks: vec![
                CheckOutcome {
                    asm: "movw r0, #0 @ v7".into(),
                    must_run: false,
                    result: trap.clone(),
                },
                CheckOutcome {
                    asm: "rev r0, r0 @ v6".into(),
                    must_run: false,
                    result: ProbeResult::Ran,
                },
            ],
        };
        assert!(proof.checks[0].as_expected() && !proof.checks[1].as_expected());
        assert!(!proof.proven());
        let p = proof.problem().unwrap();
        assert!(
            p.contains("CPU model arm926") && p.contains("`rev r0, r0`"),
            "{p}"
        );
        assert!(p.contains("trap with SIGILL"), "{p}");
        let ok = CheckOutcome {
            asm: "x".into(),
            must_run: true,
            result: ProbeResult::Ran,
        };
        assert!(ok.as_expected());
    }
}
