//! Finding the emulator to register for a handler, the way Debian lays qemu-user out, and
//! whether it keeps `argv[0]` under the `P` flag: Debian's `<arch>-binfmt-P` wrapper does
//! (Debian's qemu patch "linux-user: handle binfmt-misc P flag as a separate exe name"), and so
//! does qemu 6.0 or newer on Linux 5.12 or newer, which reads the `AT_FLAGS_PRESERVE_ARGV0`
//! auxiliary vector bit (qemu `linux-user/main.c`). Candidates must be static executables: with
//! `F` the kernel loads them inside a build's root.
//!
//! Level 1: reads files and `$PATH`, runs `qemu-<arch>-static --version` by path. It only looks:
//! registering is `install.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::table::Handler;

/// Where Debian installs the `<arch>-binfmt-P` wrappers (symlinks to `qemu-<arch>-static`).
const DEBIAN_WRAPPER_DIR: &str = "/usr/libexec/qemu-binfmt";

/// An emulator found for a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The path to register (not canonicalised: the wrapper's name is what makes it keep
    /// `argv[0]`).
    pub path: PathBuf,
    /// It keeps `argv[0]` when registered with `P`.
    pub preserves_argv0: bool,
}

impl Interpreter {
    /// The flags to register it with: `F` always (chroots), `O`, and `P` when supported.
    pub fn flags(&self) -> &'static str {
        if self.preserves_argv0 {
            "POF"
        } else {
            "OF"
        }
    }
}

/// True when `path` is an ELF executable without a `PT_INTERP` program header (a static program,
/// loadable inside any chroot). ELF gABI: `e_phoff`, `e_phentsize`, `e_phnum`; `PT_INTERP` = 3.
fn is_static_elf(path: &Path) -> std::io::Result<bool> {
    let bytes = std::fs::read(path)?;
    let bad = || std::io::Error::other("truncated ELF header");
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return Ok(false);
    }
    let is64 = bytes[4] == 2;
    let big = bytes[5] == 2;
    let rd = |off: usize, len: usize| -> std::io::Result<u64> {
        let s = bytes.get(off..off + len).ok_or_else(bad)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if big { s[i] } else { s[len - 1 - i] };
            v = (v << 8) | u64::from(b);
        }
        Ok(v)
    };
    let (phoff, phentsize, phnum) = if is64 {
        (rd(32, 8)?, rd(54, 2)?, rd(56, 2)?)
    } else {
        (rd(28, 4)?, rd(42, 2)?, rd(44, 2)?)
    };
    for i in 0..phnum {
        let off = usize::try_from(phoff + i * phentsize).map_err(|_| bad())?;
        if rd(off, 4)? == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `(major, minor)` of the running kernel, from uname(2).
fn kernel_version() -> (u32, u32) {
    let u = rustix::system::uname();
    let release = u.release().to_string_lossy().into_owned();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// qemu's major version from `qemu-<arch>-static --version` (`qemu-aarch64 version 7.2.22 ...`).
fn qemu_major(path: &Path) -> Option<u32> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = &text[text.find("version ")? + "version ".len()..];
    rest.split('.').next()?.trim().parse().ok()
}

/// Finds the emulator to register for `handler`, the way Debian lays qemu out: first the
/// `<arch>-binfmt-P` wrapper (in `$PATH` or `/usr/libexec/qemu-binfmt`), which keeps `argv[0]`
/// under `P`; then `qemu-<arch>-static` in `$PATH`, which keeps it if it is qemu 6.0+ on Linux
/// 5.12+. Candidates must be static executables (with `F` the kernel loads them inside the
/// build's chroot). Errors say what was looked for and where.
pub fn find_interpreter(handler: &Handler) -> Result<Interpreter, String> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from(DEBIAN_WRAPPER_DIR));
    let search = std::env::join_paths(&dirs).unwrap_or(path);
    let cwd = PathBuf::from("/");
    let wrapper = format!("{}-binfmt-P", handler.name);
    let mut notes = Vec::new();
    let mut candidates = Vec::new();
    match which::which_in(&wrapper, Some(&search), &cwd) {
        Ok(p) => candidates.push((p, true)),
        Err(_) => notes.push(format!("no {wrapper} in $PATH or {DEBIAN_WRAPPER_DIR}")),
    }
    match which::which_in(&handler.qemu, Some(&search), &cwd) {
        Ok(p) => {
            let new_enough = qemu_major(&p).is_some_and(|m| m >= 6) && kernel_version() >= (5, 12);
            candidates.push((p, new_enough));
        }
        Err(_) => notes.push(format!("no {} in $PATH", handler.qemu)),
    }
    for (p, preserves_argv0) in candidates {
        match is_static_elf(&p) {
            Ok(true) => {
                return Ok(Interpreter {
                    path: p,
                    preserves_argv0,
                })
            }
            Ok(false) => notes.push(format!(
                "{} is not a static executable, so it would not load inside a build's root",
                p.display()
            )),
            Err(e) => notes.push(format!("cannot read {}: {e}", p.display())),
        }
    }
    Err(notes.join("; "))
}

/// The qemu-user binary a step's own binfmt_misc instance runs `handler`'s programs with
/// (`crate::executor::OwnHandler`): `qemu-<arch>-static` from `$PATH`, canonicalised, static,
/// and qemu 6.0 or newer, which keeps `argv[0]` under `P` by `AT_FLAGS` whatever name it runs
/// under (in the step it is not Debian's `-binfmt-P` name). `None` when there is no such binary:
/// then the step's CPU model goes through `QEMU_CPU`. Looked up once per handler and process
/// (it reads the whole binary and runs `--version`).
pub fn own_instance_qemu(handler: &Handler) -> Option<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static FOUND: OnceLock<Mutex<HashMap<String, Option<PathBuf>>>> = OnceLock::new();
    let mut found = FOUND
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    found
        .entry(handler.name.clone())
        .or_insert_with(|| {
            let path = which::which(&handler.qemu).ok()?.canonicalize().ok()?;
            let usable =
                is_static_elf(&path).unwrap_or(false) && qemu_major(&path).is_some_and(|m| m >= 6);
            usable.then_some(path)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::probe_program::probe_elf;
    use crate::emulation::table::handlers;

    fn row(name: &str) -> &'static Handler {
        handlers().iter().find(|h| h.name == name).unwrap()
    }

    #[test]
    fn finds_debians_wrapper_first_and_it_is_static() {
        let Ok(i) = find_interpreter(row("aarch64")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-user-static missing under CI"
            );
            return;
        };
        if Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() {
            // The wrapper's own path, not the qemu binary it links to.
            assert_eq!(
                i.path,
                PathBuf::from("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
            );
            assert!(i.preserves_argv0);
            assert_eq!(i.flags(), "POF");
            // A step's own instance binds the qemu binary itself, by its canonical path.
            let own = own_instance_qemu(row("aarch64")).expect("qemu-aarch64-static 6.0+");
            assert_eq!(own, i.path.canonicalize().unwrap());
        }
        assert!(is_static_elf(&i.path).unwrap());
    }

    #[test]
    fn dynamic_and_non_elf_files_are_not_static() {
        // The test binary itself is dynamically linked (PT_INTERP); a text file is no ELF.
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("t");
        std::fs::write(&txt, "#!/bin/sh\n").unwrap();
        assert!(!is_static_elf(&txt).unwrap());
        // Every probe is a static ELF by construction.
        for h in handlers() {
            let f = dir.path().join(&h.name);
            std::fs::write(&f, probe_elf(h).unwrap()).unwrap();
            assert!(is_static_elf(&f).unwrap(), "{}", h.name);
        }
    }

    #[test]
    fn kernel_and_qemu_versions_parse() {
        let (major, _) = kernel_version();
        assert!(major >= 3, "{major}");
        if let Ok(q) = which::which("qemu-aarch64-static") {
            assert!(qemu_major(&q).is_some_and(|m| m >= 2));
        }
    }
}
