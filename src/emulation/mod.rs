//! Emulation: can this host run a platform's binaries, natively or through a qemu-user
//! binfmt_misc handler, and managing those handlers.
//!
//! Level 1 (sync file reads, explicit paths, subprocesses by path and argv). Parts:
//! - the handler table [`handlers`], data in `qemu/binfmt.toml` (magic and mask as in Debian's
//!   `/usr/lib/binfmt.d/qemu-*.conf`);
//! - a parser for the kernel's entry files [`BinfmtEntry::parse`] (`/proc/sys/fs/binfmt_misc/<name>`,
//!   format: Linux `Documentation/admin-guide/binfmt-misc.rst` and `fs/binfmt_misc.c`
//!   `bm_entry_read`);
//! - [`classify`], which decides [`Support`] for one platform by comparing every registered entry's
//!   magic/mask against that architecture's ELF header, never trusting entry names, and
//!   [`verify`], which then proves it by running the platform's probe program;
//! - probe programs (`probe.rs`, machine code in `qemu/probes.toml`): [`run_probe`];
//! - [`status`] (`status.rs`): every architecture of the table, probed and explained;
//! - [`install`] and [`uninstall`] (`install.rs`): registering and removing handlers.
//!
//! A handler is only usable for a chroot if it is enabled and has the `F` (fix binary) flag: the
//! kernel then opens the interpreter at registration time, so it need not exist inside the image
//! root filesystem. It must also keep `argv[0]` (`P`), or multi-call programs such as busybox
//! break.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::platform::Platform;

mod error;
mod install;
mod probe;
mod status;
mod table;

pub use error::{EmulationError, NoHandlerReason};
pub use install::{
    find_interpreter, install, uninstall, InstallOptions, InstallOutcome, Interpreter,
    UninstallOutcome,
};
pub use probe::{probe_elf, probe_marker, run_probe, Isolation, ProbeResult, PROBE_TIMEOUT};
pub use status::{status, ArchStatus, Runs, StatusReport};
pub use table::{handler_for, handlers, unescape, Handler};

/// How an entry recognises binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryMatch {
    /// Magic bytes at an offset, with an optional mask (`M` entries).
    Magic {
        /// Byte offset into the file.
        offset: u64,
        /// The magic bytes.
        magic: Vec<u8>,
        /// The mask ANDed with file and magic before comparing; `None` means all ones.
        mask: Option<Vec<u8>>,
    },
    /// A file name extension (`E` entries), without the dot.
    Extension(String),
}

/// A registered binfmt_misc entry as the kernel shows it in `/proc/sys/fs/binfmt_misc/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinfmtEntry {
    /// The entry's name (its file name).
    pub name: String,
    /// `enabled` or `disabled` (first line).
    pub enabled: bool,
    /// The interpreter path as registered.
    pub interpreter: PathBuf,
    /// The flag letters (`POF`, `F`, `` ``).
    pub flags: String,
    /// What the entry matches.
    pub matcher: EntryMatch,
}

impl BinfmtEntry {
    /// Parses an entry file's text. The kernel (`fs/binfmt_misc.c` `entry_status`) writes
    /// `enabled|disabled`, `interpreter <path>`, `flags: <letters>`, then either
    /// `offset <n>` + `magic <hex>` [+ `mask <hex>`] or `extension .<ext>`.
    pub fn parse(name: &str, text: &str) -> Result<BinfmtEntry, EmulationError> {
        let err = |line: usize, reason: String| EmulationError::Parse {
            name: name.to_string(),
            line,
            reason,
        };
        let mut enabled = None;
        let mut interpreter = None;
        let mut flags = None;
        let mut offset = 0u64;
        let mut magic = None;
        let mut mask = None;
        let mut extension = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.split_once(' ') {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            match key {
                "enabled" => enabled = Some(true),
                "disabled" => enabled = Some(false),
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "flags:" | "flags" => flags = Some(value.to_string()),
                "offset" => {
                    offset = value
                        .parse()
                        .map_err(|_| err(n, format!("bad offset {value:?}")))?
                }
                "magic" => magic = Some(hex::decode(value).map_err(|e| err(n, e.to_string()))?),
                "mask" => mask = Some(hex::decode(value).map_err(|e| err(n, e.to_string()))?),
                "extension" => extension = Some(value.trim_start_matches('.').to_string()),
                other => return Err(err(n, format!("unknown key {other:?}"))),
            }
        }
        let matcher = match (magic, extension) {
            (Some(magic), _) => {
                if let Some(m) = &mask {
                    if m.len() != magic.len() {
                        return Err(err(0, "mask and magic differ in length".into()));
                    }
                }
                EntryMatch::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            (None, Some(ext)) => EntryMatch::Extension(ext),
            (None, None) => return Err(err(0, "neither magic nor extension".into())),
        };
        Ok(BinfmtEntry {
            name: name.to_string(),
            enabled: enabled.ok_or_else(|| err(1, "missing enabled/disabled line".into()))?,
            interpreter: interpreter.ok_or_else(|| err(0, "missing interpreter line".into()))?,
            flags: flags.unwrap_or_default(),
            matcher,
        })
    }

    /// True when the kernel would pick this entry for a file starting with `header`
    /// (`fs/binfmt_misc.c` `check_file`: masked bytes at `offset` equal the masked magic).
    pub fn matches_header(&self, header: &[u8]) -> bool {
        let EntryMatch::Magic {
            offset,
            magic,
            mask,
        } = &self.matcher
        else {
            return false;
        };
        let Ok(off) = usize::try_from(*offset) else {
            return false;
        };
        let Some(window) = header.get(off..off + magic.len()) else {
            return false;
        };
        window.iter().zip(magic).enumerate().all(|(i, (h, m))| {
            let k = mask.as_ref().map_or(0xff, |mask| mask[i]);
            h & k == m & k
        })
    }

    /// True when the `F` (fix binary) flag is set.
    pub fn fixes_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// True when the `P` (preserve `argv[0]`) flag is set.
    pub fn preserves_argv0(&self) -> bool {
        self.flags.contains('P')
    }

    /// True when the kernel would pick this entry for every ELF header sample of `handler`
    /// (executables and position-independent executables of its architecture).
    pub fn runs(&self, handler: &Handler) -> bool {
        let samples = handler.elf_samples();
        !samples.is_empty() && samples.iter().all(|s| self.matches_header(s))
    }

    /// The line that registers this entry again, exactly as it is (binfmt-misc.rst
    /// `:name:type:offset:magic:mask:interpreter:flags`, every magic and mask byte `\xHH`
    /// escaped). Used to restore an entry that was replaced.
    pub fn register_line(&self) -> String {
        let esc = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
        let interp = self.interpreter.display();
        match &self.matcher {
            EntryMatch::Magic {
                offset,
                magic,
                mask,
            } => format!(
                ":{}:M:{offset}:{}:{}:{interp}:{}",
                self.name,
                esc(magic),
                mask.as_deref().map(esc).unwrap_or_default(),
                self.flags
            ),
            EntryMatch::Extension(ext) => {
                format!(":{}:E::{ext}::{interp}:{}", self.name, self.flags)
            }
        }
    }
}

/// Reads every entry under a binfmt_misc directory (all files but `register` and `status`),
/// sorted by name.
pub fn read_entries(binfmt_dir: &Path) -> Result<Vec<BinfmtEntry>, EmulationError> {
    let read_err = |path: &Path, source| EmulationError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for item in std::fs::read_dir(binfmt_dir).map_err(|e| read_err(binfmt_dir, e))? {
        let item = item.map_err(|e| read_err(binfmt_dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name != "register" && name != "status" {
            names.push(name);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = binfmt_dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push(BinfmtEntry::parse(&name, &text)?),
            // Removed between listing and reading (`echo -1 > entry`): not an entry any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(&path, e)),
        }
    }
    Ok(out)
}

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

/// [`classify`], then proof by running: the platform's probe program (see [`run_probe`]) is
/// executed through the kernel, in an empty chroot when this process is root, so a handler whose
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
    let result = run_probe(handler, work_dir, Isolation::for_this_process())?;
    match (result, &support) {
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
    fn parses_enabled_entry() {
        let e = BinfmtEntry::parse("qemu-aarch64", &fixture("qemu-aarch64")).unwrap();
        assert!(e.enabled);
        assert_eq!(
            e.interpreter,
            PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(e.flags, "POF");
        assert!(e.fixes_binary());
        let EntryMatch::Magic {
            offset,
            magic,
            mask,
        } = &e.matcher
        else {
            panic!("magic entry expected")
        };
        assert_eq!(*offset, 0);
        assert_eq!(magic.len(), 20);
        assert_eq!(mask.as_ref().map(Vec::len), Some(20));
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
    fn parses_disabled_entry_without_f_and_extension_entries() {
        let e = BinfmtEntry::parse("arm", &fixture("arm-disabled-no-f")).unwrap();
        assert!(!e.enabled);
        assert_eq!(e.flags, "");
        assert!(!e.fixes_binary());
        let e = BinfmtEntry::parse("python3.11", &fixture("python3.11")).unwrap();
        assert!(e.enabled);
        assert!(matches!(e.matcher, EntryMatch::Magic { mask: None, .. }));
        let e = BinfmtEntry::parse("wine", &fixture("extension-exe")).unwrap();
        assert_eq!(e.matcher, EntryMatch::Extension("exe".into()));
        assert!(BinfmtEntry::parse("x", "enabled\ninterpreter /x\nbogus 1\n").is_err());
        assert!(BinfmtEntry::parse("x", "enabled\ninterpreter /x\nflags: F\n").is_err());
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
    fn every_table_row_matches_its_own_register_line() {
        // Registering a row's line yields an entry whose magic/mask matches that row's samples
        // and no other row's (the kernel would otherwise send one arch's binaries to another).
        for h in handlers() {
            let entry = BinfmtEntry {
                name: format!("qemu-{}", h.name),
                enabled: true,
                interpreter: h.interpreter.clone().into(),
                flags: h.flags.clone(),
                matcher: EntryMatch::Magic {
                    offset: 0,
                    magic: h.magic_bytes(),
                    mask: Some(h.mask_bytes()),
                },
            };
            for other in handlers() {
                let all = other.elf_samples().iter().all(|s| entry.matches_header(s));
                assert_eq!(all, other.name == h.name, "{} vs {}", h.name, other.name);
            }
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
