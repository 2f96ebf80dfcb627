//! What runs here, decided by running: for every platform of the handler table (a row each for
//! `linux/arm/v5`, `v6` and `v7`), its probe program is executed through the kernel (with the
//! platform's qemu CPU model, whose checks then prove it applies: `cpu.rs`) and the outcome is explained with the binfmt_misc
//! entries that match the architecture's ELF header (found by magic and mask, never by name).
//!
//! Level 1: reads the binfmt_misc directory and runs probes; the explaining ([`judge`]) is pure.
//! It reports and changes nothing (registering is `install.rs`).

use std::path::{Path, PathBuf};

use super::cpu::{prove_cpu, CpuProof};
use super::entry::{read_entries, BinfmtEntry};
use super::error::EmulationError;
use super::probe::{run_probe_as, Isolation, ProbeCpu, ProbeResult};
use super::support::native_architectures;
use super::table::{handlers, Handler};
use crate::platform::Platform;

/// Whether an architecture's programs run on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runs {
    /// The CPU runs them itself.
    Native,
    /// A binfmt_misc handler runs them (qemu-user), fit for a chroot: enabled, `F`, `argv[0]` kept.
    Emulated,
    /// They do not run here, or not in a way a build can use.
    No,
}

/// One architecture's state.
#[derive(Debug, Clone)]
pub struct ArchStatus {
    /// The handler table row.
    pub handler: &'static Handler,
    /// The platform, normalised (`linux/arm64`, `linux/arm/v7`, ...).
    pub platform: Platform,
    /// The verdict.
    pub runs: Runs,
    /// The registered entry that handles this architecture, if any (an enabled one with `F`
    /// first, then an enabled one, then any).
    pub entry: Option<BinfmtEntry>,
    /// What happened to the probe.
    pub probe: ProbeResult,
    /// Why it does not run (or what is wrong), for humans; `None` when it runs.
    pub problem: Option<String>,
    /// The platform's qemu CPU model and the checks run with it (emulated platforms with a CPU
    /// model of their own: `linux/arm/v5`, `v6`, `v7`); a model the interpreter does not apply
    /// makes the row [`Runs::No`].
    pub cpu: Option<CpuProof>,
}

/// The whole report of `polyarch qemu status`.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The binfmt_misc directory looked at.
    pub binfmt_dir: PathBuf,
    /// binfmt_misc is mounted there (it has a `register` file).
    pub mounted: bool,
    /// binfmt_misc is enabled as a whole (its `status` file does not read `disabled`).
    pub enabled: bool,
    /// How the probes ran.
    pub isolation: Isolation,
    /// One row per platform of each handler table row ([`Handler::platforms`]), in table order.
    pub archs: Vec<ArchStatus>,
}

/// binfmt_misc's global state: (mounted, enabled).
pub(super) fn binfmt_state(binfmt_dir: &Path) -> (bool, bool) {
    let mounted = binfmt_dir.join("register").exists();
    let enabled = std::fs::read_to_string(binfmt_dir.join("status"))
        .map(|s| s.trim() != "disabled")
        .unwrap_or(mounted);
    (mounted, enabled)
}

/// The entry the kernel most plausibly uses for `handler`'s binaries among `entries`: enabled
/// with `F`, then enabled, then any; first by name among equals.
pub(super) fn pick_entry<'a>(
    handler: &Handler,
    entries: &'a [BinfmtEntry],
) -> Option<&'a BinfmtEntry> {
    let matching: Vec<&BinfmtEntry> = entries.iter().filter(|e| e.runs(handler)).collect();
    matching
        .iter()
        .find(|e| e.enabled && e.fixes_binary())
        .or_else(|| matching.iter().find(|e| e.enabled))
        .or_else(|| matching.first())
        .copied()
}

/// Reports every architecture of the handler table: probes run through the kernel (in a chroot
/// when `isolation` says so) with temporary files under `work_dir`, explained by the entries under
/// `binfmt_dir`. Errors only when entries cannot be read or a probe cannot be written.
pub fn status(
    binfmt_dir: &Path,
    work_dir: &Path,
    isolation: Isolation,
) -> Result<StatusReport, EmulationError> {
    let (mounted, enabled) = binfmt_state(binfmt_dir);
    let entries = if mounted {
        read_entries(binfmt_dir)?
    } else {
        Vec::new()
    };
    let native = native_architectures();
    let mut archs = Vec::new();
    for h in handlers() {
        let is_native = h.architectures.iter().any(|a| native.contains(&a.as_str()));
        for platform in h.platforms() {
            let cpu = ProbeCpu {
                model: platform.qemu_cpu().filter(|_| !is_native),
                check: None,
            };
            let probe = run_probe_as(h, work_dir, isolation, &cpu)?;
            let mut row = judge(
                h,
                is_native,
                &entries,
                probe,
                (binfmt_dir, mounted, enabled),
            );
            row.platform = platform;
            if row.runs == Runs::Emulated {
                row.cpu = prove_cpu(&row.platform, h, work_dir, isolation)?;
                if let Some(problem) = row.cpu.as_ref().and_then(CpuProof::problem) {
                    row.runs = Runs::No;
                    row.problem = Some(problem);
                }
            }
            archs.push(row);
        }
    }
    Ok(StatusReport {
        binfmt_dir: binfmt_dir.to_path_buf(),
        mounted,
        enabled,
        isolation,
        archs,
    })
}

/// The platform a handler row stands for, normalised.
pub(super) fn row_platform(h: &Handler) -> Platform {
    let arch = h.architectures.first().map(String::as_str).unwrap_or("");
    Platform::new("linux", arch, None).normalized()
}

/// Explains one probe outcome with the entries: pure, so every combination is unit-tested.
pub(super) fn judge(
    h: &'static Handler,
    is_native: bool,
    entries: &[BinfmtEntry],
    probe: ProbeResult,
    state: (&Path, bool, bool),
) -> ArchStatus {
    let entry = pick_entry(h, entries).cloned();
    let platform = row_platform(h);
    let (runs, problem) = match &probe {
        ProbeResult::Ran => verdict_when_it_ran(entry.as_ref(), is_native),
        ProbeResult::NoProbe => (Runs::No, Some(probe.describe())),
        ProbeResult::ArgvLost { .. } => (Runs::No, Some(argv_lost_problem(entry.as_ref()))),
        _ => (
            Runs::No,
            Some(why_it_failed(h, is_native, entry.as_ref(), &probe, state)),
        ),
    };
    ArchStatus {
        handler: h,
        platform,
        runs,
        entry,
        probe,
        problem,
        cpu: None,
    }
}

/// The verdict when the probe ran, with the entry that handles the architecture, if any.
fn verdict_when_it_ran(entry: Option<&BinfmtEntry>, is_native: bool) -> (Runs, Option<String>) {
    // A probe that ran outside a chroot (Isolation::Host) proves less: F is judged from the
    // entry, which the first arm below does for both isolations.
    match entry {
        Some(e) if e.enabled && !e.fixes_binary() => (
            Runs::No,
            Some(format!(
                "handler {:?} runs it on the host but lacks the F (fix binary) flag: in a \
                 build the kernel looks for its interpreter {} inside the image, which has no \
                 qemu, so RUN steps cannot start (fix: `polyarch qemu install --force`)",
                e.name,
                e.interpreter.display()
            )),
        ),
        Some(e) if e.enabled => (Runs::Emulated, None),
        _ if is_native => (Runs::Native, None),
        // It ran, but through nothing we can see (an entry that is not an ELF magic match).
        _ => (Runs::Emulated, None),
    }
}

/// The problem when the probe ran but printed something other than its `argv[0]`.
fn argv_lost_problem(entry: Option<&BinfmtEntry>) -> String {
    match entry {
        Some(e) => format!(
            "handler {:?} (interpreter {}, flags {:?}) does not preserve argv[0]: \
             multi-call programs such as busybox would break",
            e.name,
            e.interpreter.display(),
            e.flags
        ),
        None => "argv[0] is not preserved".to_string(),
    }
}

/// The problem when the probe could not start, failed or hung, from binfmt_misc's state
/// (`dir`, mounted, enabled) and the entry that handles the architecture, if any.
fn why_it_failed(
    h: &Handler,
    is_native: bool,
    entry: Option<&BinfmtEntry>,
    probe: &ProbeResult,
    (dir, mounted, enabled): (&Path, bool, bool),
) -> String {
    match entry {
        _ if !mounted => format!("binfmt_misc is not mounted at {}", dir.display()),
        _ if !enabled => format!(
            "binfmt_misc is disabled as a whole ({}/status)",
            dir.display()
        ),
        None if is_native => format!(
            "this CPU should run it natively, but the probe {}",
            probe.describe()
        ),
        None => format!(
            "no binfmt_misc handler is registered for {} ({})",
            h.name,
            probe.describe()
        ),
        Some(e) if !e.enabled => format!("handler {:?} is registered but disabled", e.name),
        Some(e) if !e.fixes_binary() => format!(
            "handler {:?} lacks the F (fix binary) flag, so its interpreter {} is looked for \
             inside the build's root filesystem, where it is not, and RUN steps cannot start \
             ({}; fix: `polyarch qemu install --force`)",
            e.name,
            e.interpreter.display(),
            probe.describe()
        ),
        Some(e) => format!(
            "handler {:?} (interpreter {}, flags {:?}) is broken: the probe {}",
            e.name,
            e.interpreter.display(),
            e.flags,
            probe.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> &'static Handler {
        handlers().iter().find(|h| h.name == name).unwrap()
    }

    fn entry(text: &str, name: &str) -> BinfmtEntry {
        BinfmtEntry::parse(name, text).unwrap()
    }

    const AARCH64_POF: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n\
        flags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn enoexec() -> ProbeResult {
        ProbeResult::ExecFailed {
            errno: Some(8),
            message: "Exec format error (os error 8)".into(),
        }
    }

    /// A mounted, enabled binfmt_misc.
    fn d() -> (&'static Path, bool, bool) {
        (Path::new("/proc/sys/fs/binfmt_misc"), true, true)
    }

    #[test]
    fn a_working_handler_is_emulated_whatever_its_name() {
        let e = [entry(AARCH64_POF, "somebody-elses-name")];
        let s = judge(row("aarch64"), false, &e, ProbeResult::Ran, d());
        assert_eq!(s.runs, Runs::Emulated);
        assert_eq!(s.entry.unwrap().name, "somebody-elses-name");
        assert_eq!(s.platform.to_string(), "linux/arm64");
        assert!(s.problem.is_none());
    }

    #[test]
    fn native_without_entries() {
        let s = judge(row("x86_64"), true, &[], ProbeResult::Ran, d());
        assert_eq!(s.runs, Runs::Native);
        let s = judge(row("i386"), true, &[], enoexec(), d());
        assert_eq!(s.runs, Runs::No);
        assert!(s.problem.unwrap().contains("natively"));
    }

    #[test]
    fn unregistered_disabled_no_f_broken_and_argv_lost_are_told_apart() {
        let s = judge(row("riscv64"), false, &[], enoexec(), d());
        assert_eq!(s.runs, Runs::No);
        assert!(s.problem.unwrap().contains("no binfmt_misc handler"));

        let disabled = AARCH64_POF.replacen("enabled", "disabled", 1);
        let s = judge(
            row("aarch64"),
            false,
            &[entry(&disabled, "qemu-aarch64")],
            enoexec(),
            d(),
        );
        assert!(s.problem.unwrap().contains("disabled"), "disabled");

        let no_f = AARCH64_POF.replace("flags: POF", "flags: P");
        let enoent = ProbeResult::ExecFailed {
            errno: Some(2),
            message: "No such file or directory (os error 2)".into(),
        };
        let s = judge(
            row("aarch64"),
            false,
            &[entry(&no_f, "qemu-aarch64")],
            enoent,
            d(),
        );
        assert_eq!(s.runs, Runs::No);
        assert!(s.problem.unwrap().contains("lacks the F (fix binary) flag"));
        // Without a chroot the probe runs, but the missing F is still reported.
        let s = judge(
            row("aarch64"),
            false,
            &[entry(&no_f, "qemu-aarch64")],
            ProbeResult::Ran,
            d(),
        );
        assert_eq!(s.runs, Runs::No);
        assert!(s.problem.unwrap().contains("lacks the F (fix binary) flag"));

        let broken = ProbeResult::Failed {
            status: "exit status 1".into(),
            stderr: String::new(),
        };
        let false_interp =
            AARCH64_POF.replace("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "/bin/false");
        let s = judge(
            row("aarch64"),
            false,
            &[entry(&false_interp, "qemu-aarch64")],
            broken,
            d(),
        );
        let p = s.problem.unwrap();
        assert!(p.contains("broken") && p.contains("/bin/false"), "{p}");

        let s = judge(
            row("aarch64"),
            false,
            &[entry(&AARCH64_POF.replace("POF", "OF"), "qemu-aarch64")],
            ProbeResult::ArgvLost {
                printed: "/probe".into(),
            },
            d(),
        );
        assert_eq!(s.runs, Runs::No);
        assert!(s.problem.unwrap().contains("argv[0]"));
    }

    #[test]
    fn unmounted_and_globally_disabled() {
        let dir = Path::new("/x");
        let s = judge(row("s390x"), false, &[], enoexec(), (dir, false, false));
        assert!(s.problem.unwrap().contains("not mounted"));
        let s = judge(row("s390x"), false, &[], enoexec(), (dir, true, false));
        assert!(s.problem.unwrap().contains("disabled as a whole"));
    }

    #[test]
    fn pick_prefers_enabled_with_f() {
        let disabled = entry(&AARCH64_POF.replacen("enabled", "disabled", 1), "a");
        let no_f = entry(&AARCH64_POF.replace("POF", "PO"), "b");
        let good = entry(AARCH64_POF, "c");
        let all = [disabled, no_f, good];
        assert_eq!(pick_entry(row("aarch64"), &all).unwrap().name, "c");
        assert_eq!(pick_entry(row("aarch64"), &all[..2]).unwrap().name, "b");
        assert_eq!(pick_entry(row("aarch64"), &all[..1]).unwrap().name, "a");
        assert!(pick_entry(row("arm"), &all).is_none());
    }
}
