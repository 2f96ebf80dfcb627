//! Support: how this host runs a platform's binaries ([`Support`]: natively or through a
//! binfmt_misc handler), decided by [`classify`] from the registered entries' magic and mask
//! against the architecture's ELF headers (never by entry names), and proven by [`verify`], which
//! runs the platform's probe program.
//!
//! Level 1: sync reads under an explicit binfmt_misc directory and one probe process. It decides
//! for one platform at a time and changes nothing (registering is `install.rs`; the report over
//! every architecture is `status.rs`).

use std::path::{Path, PathBuf};

use super::cpu::prove_cpu;
use super::entry::{read_entries, BinfmtEntry};
use super::error::{EmulationError, NoHandlerReason};
use super::probe::{run_probe_as, Isolation, ProbeCpu, ProbeResult};
use super::table::{handler_for, Handler};
use crate::platform::Platform;

/// How this host runs a platform's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The CPU runs them directly (an amd64 host runs amd64 and 386).
    Native,
    /// A binfmt_misc handler runs them through an interpreter (qemu-user).
    Emulated {
        /// The binfmt_misc entry's name.
        handler: String,
        /// The interpreter it runs.
        interpreter: PathBuf,
        /// Its flags (contains `F`).
        flags: String,
    },
}

/// Architectures the host CPU runs without emulation.
pub fn native_architectures() -> Vec<&'static str> {
    match Platform::host().architecture.as_str() {
        "amd64" => vec!["amd64", "386"],
        "arm64" => vec!["arm64"],
        "ppc64le" => vec!["ppc64le"],
        "s390x" => vec!["s390x"],
        "riscv64" => vec!["riscv64"],
        "loong64" => vec!["loong64"],
        "386" => vec!["386"],
        _ => vec![],
    }
}

/// Decides how `platform` runs here. `binfmt_dir` is normally `/proc/sys/fs/binfmt_misc`.
///
/// Native architectures need no handler. Otherwise every entry under `binfmt_dir` is compared
/// against the ELF headers of the platform's architecture (from the table, not the entry names):
/// an enabled entry with the `F` flag wins (first by name); a matching entry that is disabled or
/// lacks `F` is reported as such in [`EmulationError::NoHandler`].
pub fn classify(platform: &Platform, binfmt_dir: &Path) -> Result<Support, EmulationError> {
    if platform.os == "linux" && native_architectures().contains(&platform.architecture.as_str()) {
        return Ok(Support::Native);
    }
    let handler = handler_for(platform);
    let no = |reason| EmulationError::NoHandler {
        platform: Box::new(platform.clone()),
        reason,
        register_line: handler.map(Handler::register_line),
    };
    let Some(handler) = handler else {
        return Err(no(NoHandlerReason::UnknownArchitecture));
    };
    if !binfmt_dir.join("register").exists() {
        return Err(no(NoHandlerReason::NotMounted {
            dir: binfmt_dir.to_path_buf(),
        }));
    }
    let status = binfmt_dir.join("status");
    if let Ok(s) = std::fs::read_to_string(&status) {
        if s.trim() == "disabled" {
            return Err(no(NoHandlerReason::GloballyDisabled {
                dir: binfmt_dir.to_path_buf(),
            }));
        }
    }
    let samples = handler.elf_samples();
    let matching: Vec<BinfmtEntry> = read_entries(binfmt_dir)?
        .into_iter()
        .filter(|e| samples.iter().all(|s| e.matches_header(s)))
        .collect();
    if let Some(e) = matching.iter().find(|e| e.enabled && e.fixes_binary()) {
        return Ok(Support::Emulated {
            handler: e.name.clone(),
            interpreter: e.interpreter.clone(),
            flags: e.flags.clone(),
        });
    }
    if let Some(e) = matching.iter().find(|e| e.enabled) {
        return Err(no(NoHandlerReason::MissingFixBinary {
            name: e.name.clone(),
            flags: e.flags.clone(),
            interpreter: e.interpreter.clone(),
        }));
    }
    if let Some(e) = matching.first() {
        return Err(no(NoHandlerReason::Disabled {
            name: e.name.clone(),
        }));
    }
    Err(no(NoHandlerReason::NotRegistered {
        qemu_arch: handler.name.clone(),
    }))
}

/// [`classify`], then proof by running: the platform's probe program (see
/// [`super::run_probe`]), with the platform's qemu CPU model when emulated, is executed through
/// the kernel, and the CPU model is proven by its checks (`cpu.rs`), in an empty chroot when this process is root, so a handler whose
/// interpreter is broken or loses `argv[0]` is caught before a build starts. `work_dir` receives
/// the probe's temporary directory.
pub fn verify(
    platform: &Platform,
    binfmt_dir: &Path,
    work_dir: &Path,
) -> Result<Support, EmulationError> {
    let support = classify(platform, binfmt_dir)?;
    let Some(handler) = handler_for(platform) else {
        return Ok(support);
    };
    let no = |reason| EmulationError::NoHandler {
        platform: Box::new(platform.clone()),
        reason,
        register_line: Some(handler.register_line()),
    };
    let isolation = Isolation::for_this_process();
    let emulated = matches!(support, Support::Emulated { .. });
    let cpu = ProbeCpu {
        model: platform.qemu_cpu().filter(|_| emulated),
        check: None,
    };
    let result = run_probe_as(handler, work_dir, isolation, &cpu)?;
    match (result, &support) {
        (
            ProbeResult::Ran,
            Support::Emulated {
                handler: name,
                interpreter,
                ..
            },
        ) => {
            // The platform's CPU model must be the one its steps run with (issue 16).
            match prove_cpu(platform, handler, work_dir, isolation)?.and_then(|p| p.problem()) {
                None => Ok(support),
                Some(detail) => Err(no(NoHandlerReason::Broken {
                    name: name.clone(),
                    interpreter: interpreter.clone(),
                    detail,
                })),
            }
        }
        (ProbeResult::Ran | ProbeResult::NoProbe, _) => Ok(support),
        (r, Support::Native) => Err(no(NoHandlerReason::NativeFails {
            detail: r.describe(),
        })),
        (ProbeResult::ArgvLost { .. }, Support::Emulated { handler, flags, .. }) => {
            Err(no(NoHandlerReason::ArgvNotPreserved {
                name: handler.clone(),
                flags: flags.clone(),
            }))
        }
        (
            r,
            Support::Emulated {
                handler,
                interpreter,
                ..
            },
        ) => Err(no(NoHandlerReason::Broken {
            name: handler.clone(),
            interpreter: interpreter.clone(),
            detail: r.describe(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::table::{handlers, unescape};
    use crate::exit::{Classify, ExitCode};

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/emulation")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn plat(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    /// A fake binfmt_misc directory with the given entries (name, text).
    fn binfmt_dir(entries: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        for (name, text) in entries {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn parses_entries_the_kernel_wrote_disabled_or_without_f() {
        // Captured from Linux 6.18 (a private binfmt_misc): an enabled s390x entry without F,
        // and a riscv64 entry with POF that was then disabled (`echo 0 > entry`).
        let no_f = BinfmtEntry::parse("qemu-s390x", &fixture("qemu-s390x-enabled-no-f")).unwrap();
        assert!(no_f.enabled && !no_f.fixes_binary() && no_f.preserves_argv0());
        assert_eq!(no_f.flags, "PO");
        let s390x = handlers().iter().find(|h| h.name == "s390x").unwrap();
        assert!(no_f.runs(s390x));
        assert!(!no_f.runs(handlers().iter().find(|h| h.name == "ppc64le").unwrap()));
        let disabled =
            BinfmtEntry::parse("qemu-riscv64", &fixture("qemu-riscv64-disabled")).unwrap();
        assert!(!disabled.enabled && disabled.fixes_binary());
        // The register line an entry reproduces registers the same bytes as Debian's line.
        let riscv = handlers().iter().find(|h| h.name == "riscv64").unwrap();
        let line = disabled.register_line();
        let parts: Vec<&str> = line.split(':').collect();
        assert_eq!(unescape(parts[4]).unwrap(), riscv.magic_bytes());
        assert_eq!(unescape(parts[5]).unwrap(), riscv.mask_bytes());
        assert_eq!(parts[7], "POF");

        let dir = binfmt_dir(&[
            ("qemu-s390x", fixture("qemu-s390x-enabled-no-f")),
            ("qemu-riscv64", fixture("qemu-riscv64-disabled")),
        ]);
        let err = classify(&plat("linux/s390x"), dir.path()).unwrap_err();
        assert!(matches!(
            err,
            EmulationError::NoHandler {
                reason: NoHandlerReason::MissingFixBinary { .. },
                ..
            }
        ));
        let err = classify(&plat("linux/riscv64"), dir.path()).unwrap_err();
        assert!(matches!(
            err,
            EmulationError::NoHandler {
                reason: NoHandlerReason::Disabled { .. },
                ..
            }
        ));
        assert!(err
            .hint()
            .unwrap()
            .contains("`polyarch qemu install --force riscv64`"));
    }

    #[test]
    fn native_platforms_need_no_handler() {
        let empty = tempfile::tempdir().unwrap();
        if Platform::host().architecture == "amd64" {
            for p in ["linux/amd64", "linux/386", "linux/amd64/v2"] {
                assert_eq!(classify(&plat(p), empty.path()).unwrap(), Support::Native);
            }
        }
    }

    #[test]
    fn emulated_when_magic_matches_whatever_the_name() {
        let dir = binfmt_dir(&[("whatever-name", fixture("qemu-aarch64"))]);
        let got = classify(&plat("linux/arm64"), dir.path()).unwrap();
        assert_eq!(
            got,
            Support::Emulated {
                handler: "whatever-name".into(),
                interpreter: "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".into(),
                flags: "POF".into(),
            }
        );
        // The aarch64 entry does not run arm or s390x.
        for p in ["linux/arm/v7", "linux/s390x"] {
            let err = classify(&plat(p), dir.path()).unwrap_err();
            assert!(
                matches!(
                    err,
                    EmulationError::NoHandler {
                        reason: NoHandlerReason::NotRegistered { .. },
                        ..
                    }
                ),
                "{p}: {err:?}"
            );
        }
    }

    #[test]
    fn disabled_and_missing_f_are_reported() {
        let dir = binfmt_dir(&[("qemu-arm", fixture("arm-disabled-no-f"))]);
        let err = classify(&plat("linux/arm/v7"), dir.path()).unwrap_err();
        let EmulationError::NoHandler { reason, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            *reason,
            NoHandlerReason::Disabled {
                name: "qemu-arm".into()
            }
        );
        assert!(err
            .hint()
            .unwrap()
            .contains("`polyarch qemu install --force arm`"));

        let enabled_no_f = fixture("arm-disabled-no-f").replacen("disabled", "enabled", 1);
        let dir = binfmt_dir(&[("qemu-arm", enabled_no_f)]);
        let err = classify(&plat("linux/arm/v6"), dir.path()).unwrap_err();
        let EmulationError::NoHandler { reason, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(
            matches!(reason, NoHandlerReason::MissingFixBinary { name, .. } if name == "qemu-arm")
        );
        assert_eq!(err.exit_code(), ExitCode::Host);
        // What it means for the build, and the fix (issue 18).
        let text = err.to_string();
        assert!(
            text.contains("inside the build's root filesystem"),
            "{text}"
        );
        assert!(
            text.contains("RUN steps for this platform cannot start"),
            "{text}"
        );
        assert!(err
            .hint()
            .unwrap()
            .contains("registers the handler again with F"));
        assert!(err
            .hint()
            .unwrap()
            .contains("`polyarch qemu install --force arm`"));
    }

    #[test]
    fn an_enabled_f_entry_wins_over_a_disabled_one() {
        let dir = binfmt_dir(&[
            ("a-arm", fixture("arm-disabled-no-f")),
            ("b-arm", fixture("qemu-arm")),
        ]);
        let got = classify(&plat("linux/arm/v7"), dir.path()).unwrap();
        assert!(matches!(got, Support::Emulated { handler, .. } if handler == "b-arm"));
    }

    #[test]
    fn not_registered_hint_names_the_install_command() {
        let dir = binfmt_dir(&[]);
        let err = classify(&plat("linux/s390x"), dir.path()).unwrap_err();
        let hint = err.hint().unwrap();
        assert!(hint.contains("`polyarch qemu install s390x`"), "{hint}");
        assert!(err.to_string().contains("linux/s390x"));
        // The platform's own architecture name, whatever the spelling asked for.
        let err = classify(&plat("linux/aarch64"), dir.path()).unwrap_err();
        assert!(err
            .hint()
            .unwrap()
            .contains("`polyarch qemu install arm64`"));
        let EmulationError::NoHandler { register_line, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(register_line
            .as_deref()
            .unwrap()
            .starts_with(":qemu-aarch64:M::"));
    }

    #[test]
    fn unmounted_and_globally_disabled() {
        let empty = tempfile::tempdir().unwrap();
        let err = classify(&plat("linux/arm64"), empty.path()).unwrap_err();
        assert!(matches!(
            err,
            EmulationError::NoHandler {
                reason: NoHandlerReason::NotMounted { .. },
                ..
            }
        ));
        assert!(err
            .hint()
            .unwrap()
            .contains("`polyarch qemu install arm64`"));
        let dir = binfmt_dir(&[("qemu-aarch64", fixture("qemu-aarch64"))]);
        std::fs::write(dir.path().join("status"), "disabled\n").unwrap();
        let err = classify(&plat("linux/arm64"), dir.path()).unwrap_err();
        assert!(matches!(
            err,
            EmulationError::NoHandler {
                reason: NoHandlerReason::GloballyDisabled { .. },
                ..
            }
        ));
    }

    #[test]
    fn unknown_architectures_and_oses() {
        let dir = binfmt_dir(&[]);
        for p in ["linux/wasm", "windows/arm64"] {
            let err = classify(&plat(p), dir.path()).unwrap_err();
            assert!(matches!(
                err,
                EmulationError::NoHandler {
                    reason: NoHandlerReason::UnknownArchitecture,
                    ..
                }
            ));
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn real_binfmt_misc_if_registered() {
        // The host's own state: only checks consistency, since registration is a machine setup.
        let dir = Path::new("/proc/sys/fs/binfmt_misc");
        if dir.join("qemu-aarch64").exists() {
            match classify(&plat("linux/arm64"), dir) {
                Ok(Support::Emulated { flags, .. }) => assert!(flags.contains('F')),
                Ok(Support::Native) => {}
                Err(e) => assert!(matches!(e, EmulationError::NoHandler { .. }), "{e:?}"),
            }
        }
    }
}
