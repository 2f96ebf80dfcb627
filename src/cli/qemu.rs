//! `polyarch qemu status|install|uninstall`: what runs here, decided by running probe programs,
//! and managing the qemu-user binfmt_misc handlers that make foreign platforms run.
//!
//! Exit codes: `status` 0 whenever it could report; `install` 0 only if every requested
//! platform now runs, else 4 naming what failed and why; `uninstall` 0 when every handler of the
//! requested architectures is gone; 2 for an architecture polyarch does not know; 4 when not root
//! or binfmt_misc cannot be mounted.

use super::*;
use crate::emulation::{
    self, ArchStatus, Handler, InstallOptions, InstallOutcome, Isolation, ProbeResult, Runs,
    StatusReport, UninstallOutcome,
};

/// The binfmt_misc mount point.
pub(super) const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Flags of `polyarch qemu`.
#[derive(Debug, Args)]
pub struct QemuArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: QemuAction,
}

/// `polyarch qemu` subcommands.
#[derive(Debug, Subcommand)]
pub enum QemuAction {
    /// For each known platform: whether it runs here natively, through which registered handler
    /// (name, interpreter, flags, enabled), or not at all, decided by running a probe program.
    Status {
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Register qemu-user handlers (with F, and P where the emulator supports it), then verify
    /// each by running its probe. Idempotent. Exit 0 only if every requested platform runs.
    Install {
        /// Architectures (qemu or OCI names: aarch64, arm64, armhf, ppc64le, ...), platforms
        /// (linux/arm/v7) or `all` (every non-native one; the default).
        #[arg(value_name = "ARCH|PLATFORM|all")]
        targets: Vec<String>,
        /// Replace existing registrations that conflict (broken, disabled, without F) or that
        /// are not polyarch's own.
        #[arg(long)]
        force: bool,
    },
    /// Remove the binfmt_misc handlers of these architectures (matched by the binaries they
    /// handle, whatever their names).
    Uninstall {
        /// Architectures, platforms, or `all`.
        #[arg(value_name = "ARCH|PLATFORM|all", required = true)]
        targets: Vec<String>,
    },
}

/// Resolves command-line names to handler table rows, in order, without duplicates. `all` is
/// every row (or every non-native row when `skip_native`). A name is tried as a qemu name
/// (`aarch64`, `mips64el`) or a Debian architecture name (`ppc64el`, `armel`), then as a platform or architecture (`arm64`, `linux/arm/v7`,
/// `armhf`, `loong64`). Errors (exit 2) name the unknown value and list the known names.
pub fn resolve_handlers(
    targets: &[String],
    skip_native: bool,
) -> Result<Vec<&'static Handler>, UsageError> {
    let table = emulation::handlers();
    let native = emulation::native_architectures();
    let is_native = |h: &Handler| h.architectures.iter().any(|a| native.contains(&a.as_str()));
    let mut out: Vec<&'static Handler> = Vec::new();
    let mut push = |h: &'static Handler| {
        if !out.iter().any(|o| o.name == h.name) {
            out.push(h);
        }
    };
    for t in targets.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if t.is_empty() {
            continue;
        }
        if t == "all" {
            for h in table {
                if !(skip_native && is_native(h)) {
                    push(h);
                }
            }
            continue;
        }
        if let Some(h) = table
            .iter()
            .find(|h| h.name == t || h.debian.iter().any(|d| d == t))
        {
            push(h);
            continue;
        }
        let known = || {
            table
                .iter()
                .map(|h| format!("{} ({})", h.name, h.architectures.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let p =
            Platform::parse(t).map_err(|e| usage("ARCH", format!("{e}; known: {}", known())))?;
        match emulation::handler_for(&p) {
            Some(h) => push(h),
            None => {
                return Err(usage(
                    "ARCH",
                    format!("no qemu-user handler is known for {p}; known: {}", known()),
                ))
            }
        }
    }
    Ok(out)
}

/// Runs `polyarch qemu ...`.
pub(super) fn run_qemu(global: &GlobalArgs, args: &QemuArgs) -> Result<(), Failure> {
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    // Probe programs go to temporary directories under the store's `tmp/` (created on first use,
    // after the root check for install).
    let work = state.join("tmp");
    let binfmt_dir = PathBuf::from(BINFMT_DIR);
    match &args.action {
        QemuAction::Status { json } => {
            let report = emulation::status(&binfmt_dir, &work, Isolation::for_this_process())?;
            let mut out = std::io::stdout().lock();
            if *json {
                let body = serde_json::to_string_pretty(&status_json(&report)).unwrap_or_default();
                let _ = writeln!(out, "{body}");
            } else {
                let _ = write!(out, "{}", status_text(&report));
            }
            Ok(())
        }
        QemuAction::Install { targets, force } => {
            let targets = if targets.is_empty() {
                vec!["all".to_string()]
            } else {
                targets.clone()
            };
            let handlers = resolve_handlers(&targets, true)?;
            let outcomes = emulation::install(
                &handlers,
                &InstallOptions {
                    binfmt_dir,
                    work_dir: work.clone(),
                    force: *force,
                },
            )?;
            report_install(&handlers, &outcomes, &work)
        }
        QemuAction::Uninstall { targets } => {
            let handlers = resolve_handlers(targets, false)?;
            let outcomes = emulation::uninstall(&handlers, &binfmt_dir)?;
            let mut out = std::io::stdout().lock();
            for (h, o) in handlers.iter().zip(&outcomes) {
                let platform = row_platform(h);
                let line = match o {
                    UninstallOutcome::Removed { names } => {
                        format!(
                            "{:<16} removed    {}",
                            platform.to_string(),
                            names.join(", ")
                        )
                    }
                    UninstallOutcome::NotInstalled => {
                        format!("{:<16} not installed", platform.to_string())
                    }
                };
                let _ = writeln!(out, "{line}");
            }
            Ok(())
        }
    }
}

/// Prints a line per platform of each handler installed (or kept, or failed), with its CPU
/// model proven by running its checks under the new registration (see [`emulation::prove_cpu`]);
/// fails ([`ExitCode::Host`]) naming each platform that does not run here, with the hints
/// gathered, `--force` first.
fn report_install(
    handlers: &[&Handler],
    outcomes: &[InstallOutcome],
    work: &Path,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let mut failed = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut to_force = Vec::new();
    let mut rows = 0;
    for (h, o) in handlers.iter().zip(outcomes) {
        for platform in h.platforms() {
            rows += 1;
            let mut line = install_line(&platform, o);
            if matches!(
                o,
                InstallOutcome::Installed { .. } | InstallOutcome::AlreadyInstalled { .. }
            ) {
                if let Some(proof) = emulation::prove_cpu(&platform, h, work, Isolation::Chroot)? {
                    match proof.problem() {
                        None => line.push_str(&format!(", cpu {} (proven)", proof.model)),
                        Some(p) => {
                            line.push_str(&format!(", cpu {} NOT applied", proof.model));
                            failed.push(format!("{platform}: {p}"));
                        }
                    }
                }
            }
            let _ = writeln!(out, "{line}");
            if let InstallOutcome::Failed {
                reason,
                needs_force,
                hint,
            } = o
            {
                failed.push(format!("{platform}: {reason}"));
                if *needs_force && !to_force.contains(&platform.architecture) {
                    to_force.push(platform.architecture.clone());
                }
                if let Some(h) = hint {
                    if !hints.contains(h) {
                        hints.push(h.clone());
                    }
                }
            }
        }
    }
    if !to_force.is_empty() {
        hints.insert(
            0,
            format!(
                "`polyarch qemu install --force {}` replaces the registrations in the way",
                to_force.join(" ")
            ),
        );
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "{} of {} requested platforms do not run here",
            failed.len(),
            rows
        ),
        causes: failed,
        hint: (!hints.is_empty()).then(|| hints.join("; ")),
        code: ExitCode::Host,
    })
}

fn row_platform(h: &Handler) -> Platform {
    let arch = h.architectures.first().map(String::as_str).unwrap_or("");
    Platform::new("linux", arch, None).normalized()
}

fn install_line(platform: &Platform, o: &InstallOutcome) -> String {
    let p = platform.to_string();
    match o {
        InstallOutcome::Native => format!("{p:<16} native"),
        InstallOutcome::AlreadyInstalled { entry, foreign } => format!(
            "{p:<16} kept       {} -> {} (flags {}){}",
            entry.name,
            entry.interpreter.display(),
            entry.flags,
            if *foreign {
                " [not polyarch's; --force replaces it]"
            } else {
                ""
            }
        ),
        InstallOutcome::Installed { entry, replaced } => format!(
            "{p:<16} installed  {} -> {} (flags {}){}",
            entry.name,
            entry.interpreter.display(),
            entry.flags,
            if replaced.is_empty() {
                String::new()
            } else {
                format!(", replacing {}", replaced.join(", "))
            }
        ),
        InstallOutcome::Failed { reason, .. } => format!("{p:<16} FAILED     {reason}"),
    }
}

fn runs_word(r: Runs) -> &'static str {
    match r {
        Runs::Native => "native",
        Runs::Emulated => "emulated",
        Runs::No => "no",
    }
}

/// The CPU column: the model and whether its checks proved it, `-` for qemu's default model.
fn cpu_word(a: &ArchStatus) -> String {
    match (&a.cpu, a.platform.qemu_cpu()) {
        (Some(c), _) if c.proven() => format!("{} (proven)", c.model),
        (Some(c), _) => format!("{} (NOT applied)", c.model),
        (None, Some(m)) if a.runs == Runs::Emulated => format!("{m} (no check)"),
        (None, Some(m)) if a.runs == Runs::No => format!("{m} (not checked)"),
        _ => "-".into(),
    }
}

/// The human-readable report: one line per platform, then the problems.
fn status_text(r: &StatusReport) -> String {
    let mut s = format!(
        "binfmt_misc: {} ({}{}); probes run {}\n",
        r.binfmt_dir.display(),
        if r.mounted { "mounted" } else { "not mounted" },
        if r.mounted && !r.enabled {
            ", disabled"
        } else {
            ""
        },
        match r.isolation {
            Isolation::Chroot => "in an empty chroot",
            Isolation::Host => "on the host (not root: F is judged from the entries)",
        }
    );
    s.push_str(&format!(
        "{:<16} {:<9} {:<24} {:<44} {:<5} {}\n",
        "PLATFORM", "RUNS", "HANDLER", "INTERPRETER", "FLAGS", "CPU"
    ));
    for a in &r.archs {
        let (name, interp, flags) = match &a.entry {
            Some(e) => (
                format!("{}{}", e.name, if e.enabled { "" } else { " (disabled)" }),
                e.interpreter.display().to_string(),
                e.flags.clone(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        s.push_str(&format!(
            "{:<16} {:<9} {:<24} {:<44} {:<5} {}\n",
            a.platform.to_string(),
            runs_word(a.runs),
            name,
            interp,
            flags,
            cpu_word(a)
        ));
    }
    let problems: Vec<&ArchStatus> = r.archs.iter().filter(|a| a.problem.is_some()).collect();
    if !problems.is_empty() {
        s.push('\n');
        for a in problems {
            s.push_str(&format!(
                "{}: {}\n",
                a.platform,
                a.problem.as_deref().unwrap_or_default()
            ));
        }
        s.push_str("fix: polyarch qemu install [--force] ARCH (as root)\n");
    }
    s
}

/// The JSON report of `polyarch qemu status --json`.
pub(super) fn status_json(r: &StatusReport) -> serde_json::Value {
    let platforms: Vec<serde_json::Value> = r
        .archs
        .iter()
        .map(|a| {
            let errno = match &a.probe {
                ProbeResult::ExecFailed { errno, .. } => *errno,
                _ => None,
            };
            serde_json::json!({
                "platform": a.platform.to_string(),
                "architecture": a.platform.architecture,
                "qemu": a.handler.name,
                "runs": a.runs,
                "runnable": a.runs != Runs::No,
                "handler": a.entry.as_ref().map(|e| serde_json::json!({
                    "name": e.name,
                    "interpreter": e.interpreter.display().to_string(),
                    "flags": e.flags,
                    "enabled": e.enabled,
                })),
                "probe": {
                    "result": a.probe.kind(),
                    "detail": a.probe.describe(),
                    "errno": errno,
                },
                "problem": a.problem,
                "cpu": a.platform.qemu_cpu().filter(|_| a.runs != Runs::Native).map(|m| serde_json::json!({
                    "model": m,
                    "proven": a.cpu.as_ref().is_some_and(emulation::CpuProof::proven),
                    "checks": a.cpu.as_ref().map(|c| c.checks.iter().map(|k| serde_json::json!({
                        "instruction": k.asm,
                        "must_run": k.must_run,
                        "result": k.result.kind(),
                        "detail": k.result.describe(),
                        "as_expected": k.as_expected(),
                    })).collect::<Vec<_>>()),
                })),
            })
        })
        .collect();
    serde_json::json!({
        "binfmt_misc": {
            "dir": r.binfmt_dir.display().to_string(),
            "mounted": r.mounted,
            "enabled": r.enabled,
        },
        "host": Platform::host().to_string(),
        "probes": r.isolation,
        "platforms": platforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(targets: &[&str], skip_native: bool) -> Result<Vec<String>, UsageError> {
        let t: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
        resolve_handlers(&t, skip_native).map(|v| v.iter().map(|h| h.name.clone()).collect())
    }

    #[test]
    fn targets_resolve_by_qemu_name_architecture_or_platform() {
        assert_eq!(
            names(&["arm64", "arm", "ppc64le", "s390x", "riscv64"], true).unwrap(),
            ["aarch64", "arm", "ppc64le", "s390x", "riscv64"]
        );
        assert_eq!(
            names(
                &[
                    "aarch64",
                    "linux/arm64/v8",
                    "linux/aarch64",
                    "armhf,linux/arm/v7"
                ],
                true
            )
            .unwrap(),
            ["aarch64", "arm"]
        );
        assert_eq!(
            names(&["mips64el", "mips64le", "loong64", "loongarch64"], true).unwrap(),
            ["mips64el", "loongarch64"]
        );
        // Debian's architecture names are names too (issue 16: `ppc64el` was refused while
        // `mips64el` and `armhf` were accepted).
        assert_eq!(
            names(&["ppc64el", "armel", "armhf", "arm64", "s390x"], true).unwrap(),
            ["ppc64le", "arm", "aarch64", "s390x"]
        );
        let all = names(&["all"], true).unwrap();
        if Platform::host().architecture == "amd64" {
            assert!(!all.contains(&"x86_64".to_string()) && !all.contains(&"i386".to_string()));
        }
        assert!(all.contains(&"riscv64".to_string()));
        assert_eq!(
            names(&["all"], false).unwrap().len(),
            emulation::handlers().len()
        );
        for bad in ["sparc64", "linux/wasm", "windows/arm64", "nonsense"] {
            let e = names(&[bad], true).unwrap_err();
            assert_eq!(e.exit_code(), ExitCode::BadInput, "{bad}");
            assert!(e.message.contains("aarch64 (arm64)"), "{bad}: {e}");
        }
    }

    #[test]
    fn status_rendering() {
        let h = emulation::handlers()
            .iter()
            .find(|h| h.name == "riscv64")
            .unwrap();
        let report = StatusReport {
            binfmt_dir: BINFMT_DIR.into(),
            mounted: true,
            enabled: true,
            isolation: Isolation::Chroot,
            archs: vec![ArchStatus {
                handler: h,
                platform: row_platform(h),
                cpu: None,
                runs: Runs::No,
                entry: None,
                probe: ProbeResult::ExecFailed {
                    errno: Some(8),
                    message: "Exec format error (os error 8)".into(),
                },
                problem: Some("no binfmt_misc handler is registered for riscv64".into()),
            }],
        };
        let j = status_json(&report);
        assert_eq!(j["platforms"][0]["platform"], "linux/riscv64");
        assert_eq!(j["platforms"][0]["runs"], "no");
        assert_eq!(j["platforms"][0]["runnable"], false);
        assert_eq!(j["platforms"][0]["probe"]["errno"], 8);
        assert_eq!(j["platforms"][0]["handler"], serde_json::Value::Null);
        assert_eq!(j["probes"], "chroot");
        let t = status_text(&report);
        assert!(t.contains("linux/riscv64    no"), "{t}");
        assert!(t.contains("fix: polyarch qemu install"), "{t}");
    }
}
