//! `polyarch qemu install` and `uninstall`: registering qemu-user handlers in binfmt_misc and
//! removing them, verified by running the probe programs.
//!
//! Registration format and flags: Linux `Documentation/admin-guide/binfmt-misc.rst`
//! (`:name:type:offset:magic:mask:interpreter:flags`; `F` opens the interpreter at registration so
//! that it works inside a chroot, `P` passes the original `argv[0]`, `O` hands the interpreter an
//! open file descriptor). Which emulator to register, and whether it keeps `argv[0]` under `P`,
//! is `interpreter.rs`.
//!
//! Level 1: needs root; writes binfmt_misc control files and may mount binfmt_misc, through
//! explicit paths.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::entry::{read_entries, BinfmtEntry, EntryMatch};
use super::error::EmulationError;
use super::interpreter::{find_interpreter, Interpreter};
use super::probe::{run_probe, Isolation};
use super::status::{binfmt_state, judge, pick_entry, Runs};
use super::support::native_architectures;
use super::table::Handler;

/// Options of [`install`].
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The binfmt_misc directory (normally `/proc/sys/fs/binfmt_misc`); mounted when needed.
    pub binfmt_dir: PathBuf,
    /// Where probe programs are written.
    pub work_dir: PathBuf,
    /// Replace existing registrations that conflict (broken, disabled, without `F`, or simply not
    /// polyarch's own).
    pub force: bool,
}

/// What [`install`] did for one handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The CPU runs this architecture itself; nothing was registered.
    Native,
    /// A working registration was already there and was kept.
    AlreadyInstalled {
        /// The entry.
        entry: BinfmtEntry,
        /// It is not what polyarch would have registered (someone else's); `--force` replaces it.
        foreign: bool,
    },
    /// A registration was made and the probe ran through it.
    Installed {
        /// The new entry as the kernel shows it.
        entry: BinfmtEntry,
        /// Entries removed first (`--force`).
        replaced: Vec<String>,
    },
    /// The architecture does not run here now.
    Failed {
        /// What went wrong, naming the entry, interpreter or probe result.
        reason: String,
        /// An existing registration is in the way: `--force` would replace it.
        needs_force: bool,
        /// Any other fix, when known.
        hint: Option<String>,
    },
}

impl InstallOutcome {
    /// True when the architecture now runs here.
    pub fn ok(&self) -> bool {
        !matches!(self, InstallOutcome::Failed { .. })
    }
}

/// What [`uninstall`] did for one handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallOutcome {
    /// These entries were removed.
    Removed {
        /// Their names.
        names: Vec<String>,
    },
    /// Nothing handled this architecture.
    NotInstalled,
}

fn require_root() -> Result<(), EmulationError> {
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        Ok(())
    } else {
        Err(EmulationError::NotRoot { uid: uid.as_raw() })
    }
}

/// Mounts binfmt_misc at `dir` unless it is mounted there already.
fn ensure_mounted(dir: &Path) -> Result<(), EmulationError> {
    if dir.join("register").exists() {
        return Ok(());
    }
    nix::mount::mount(
        Some("binfmt_misc"),
        dir,
        Some("binfmt_misc"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| EmulationError::Mount {
        dir: dir.to_path_buf(),
        source: e.into(),
    })
}

/// Writes one control string into a binfmt_misc file in a single write(2), as the kernel expects.
fn write_control(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(text.as_bytes())?;
    if n != text.len() {
        return Err(std::io::Error::other(format!(
            "short write ({n} of {} bytes)",
            text.len()
        )));
    }
    Ok(())
}

fn remove_entry(dir: &Path, name: &str) -> Result<(), EmulationError> {
    let path = dir.join(name);
    match write_control(&path, "-1") {
        Ok(()) => Ok(()),
        // Gone already (someone else removed it): the goal is reached.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(EmulationError::Unregister {
            name: name.to_string(),
            path,
            source,
        }),
    }
}

/// The line polyarch registers for `handler` with `interp`.
fn register_line(handler: &Handler, interp: &Interpreter) -> String {
    format!(
        ":qemu-{}:M::{}:{}:{}:{}",
        handler.name,
        handler.magic,
        handler.mask,
        interp.path.display(),
        interp.flags()
    )
}

/// True when `entry` is exactly what polyarch registers for `handler` with `interp` (flags
/// compared as sets: the kernel prints them in its own order).
fn is_ours(entry: &BinfmtEntry, handler: &Handler, interp: &Interpreter) -> bool {
    let set = |f: &str| {
        let mut v: Vec<char> = f.chars().collect();
        v.sort_unstable();
        v
    };
    entry.name == format!("qemu-{}", handler.name)
        && entry.enabled
        && entry.interpreter == interp.path
        && set(&entry.flags) == set(interp.flags())
        && entry.matcher
            == EntryMatch::Magic {
                offset: 0,
                magic: handler.magic_bytes(),
                mask: Some(handler.mask_bytes()),
            }
}

/// Registers (or keeps) a qemu-user handler for each of `handlers` so that its probe runs, then
/// proves it by running the probe in a chroot. Idempotent: a working registration is kept; a
/// conflicting one (disabled, without `F`, broken, `argv[0]` lost, or an entry of the same name for
/// other binaries) is reported and replaced only with `force`, which also replaces working
/// registrations that are not polyarch's own.
///
/// Errors (exit 4) when this process is not root, binfmt_misc cannot be mounted or is disabled,
/// or entries cannot be read or removed; per-architecture failures are
/// [`InstallOutcome::Failed`].
pub fn install(
    handlers: &[&'static Handler],
    opts: &InstallOptions,
) -> Result<Vec<InstallOutcome>, EmulationError> {
    require_root()?;
    let dir = opts.binfmt_dir.as_path();
    ensure_mounted(dir)?;
    let (_, enabled) = binfmt_state(dir);
    if !enabled {
        return Err(EmulationError::GloballyDisabled {
            dir: dir.to_path_buf(),
        });
    }
    let native = native_architectures();
    let mut out = Vec::new();
    for &h in handlers {
        let is_native = h.architectures.iter().any(|a| native.contains(&a.as_str()));
        out.push(install_one(h, is_native, opts)?);
    }
    Ok(out)
}

/// [`install`] for one handler: keeps a working registration, reports a conflicting one unless
/// `opts.force`, else registers polyarch's own ([`register_and_prove`]).
fn install_one(
    h: &'static Handler,
    is_native: bool,
    opts: &InstallOptions,
) -> Result<InstallOutcome, EmulationError> {
    let dir = opts.binfmt_dir.as_path();
    let work = opts.work_dir.as_path();
    let entries = read_entries(dir)?;
    let probe = run_probe(h, work, Isolation::Chroot)?;
    let current = judge(h, is_native, &entries, probe, (dir, true, true));
    if current.runs == Runs::Native {
        return Ok(InstallOutcome::Native);
    }
    let own_name = format!("qemu-{}", h.name);
    // Everything that handles this architecture, and an entry that would block our name.
    let mut in_the_way: Vec<&BinfmtEntry> = entries.iter().filter(|e| e.runs(h)).collect();
    if let Some(clash) = entries.iter().find(|e| e.name == own_name && !e.runs(h)) {
        in_the_way.push(clash);
    }
    let interp = find_interpreter(h);
    if current.runs == Runs::Emulated {
        let entry = pick_entry(h, &entries).cloned();
        let foreign = match (&entry, &interp) {
            (Some(e), Ok(i)) => !is_ours(e, h, i),
            _ => true,
        };
        if !(opts.force && foreign) {
            if let Some(entry) = entry {
                return Ok(InstallOutcome::AlreadyInstalled { entry, foreign });
            }
        }
    } else if !in_the_way.is_empty() && !opts.force {
        let names: Vec<String> = in_the_way.iter().map(|e| format!("{:?}", e.name)).collect();
        // The reason names the entries; `--force` (the CLI's hint) removes them.
        let reason = match &current.problem {
            Some(p) if in_the_way.iter().any(|e| e.runs(h)) => {
                format!("an existing registration does not work: {p}")
            }
            _ => format!(
                "an entry named {own_name:?} exists but handles other binaries ({})",
                names.join(", ")
            ),
        };
        return Ok(InstallOutcome::Failed {
            reason,
            needs_force: true,
            hint: None,
        });
    }
    let interp = match interp {
        Ok(i) => i,
        Err(notes) => {
            return Ok(InstallOutcome::Failed {
                reason: format!("no usable qemu-user emulator for {}: {notes}", h.name),
                needs_force: false,
                hint: Some(
                    "install Debian's qemu-user-static (`apt-get install qemu-user-static`)".into(),
                ),
            })
        }
    };
    register_and_prove(h, &interp, &in_the_way, opts)
}

/// Removes the entries `in_the_way`, registers `h` with `interp`, and proves the registration by
/// running the probe in a chroot; a registration whose probe fails is removed again.
fn register_and_prove(
    h: &Handler,
    interp: &Interpreter,
    in_the_way: &[&BinfmtEntry],
    opts: &InstallOptions,
) -> Result<InstallOutcome, EmulationError> {
    let dir = opts.binfmt_dir.as_path();
    let work = opts.work_dir.as_path();
    let own_name = format!("qemu-{}", h.name);
    let mut replaced = Vec::new();
    for e in in_the_way {
        remove_entry(dir, &e.name)?;
        replaced.push(e.name.clone());
    }
    let line = register_line(h, interp);
    if let Err(e) = write_control(&dir.join("register"), &line) {
        return Ok(InstallOutcome::Failed {
            reason: format!("the kernel refused the registration {line:?}: {e}"),
            needs_force: false,
            hint: None,
        });
    }
    let probe = run_probe(h, work, Isolation::Chroot)?;
    if !probe.ran() {
        remove_entry(dir, &own_name)?;
        return Ok(InstallOutcome::Failed {
            reason: format!(
                "registered {line:?}, but the probe {}; the registration was removed again",
                probe.describe()
            ),
            needs_force: false,
            hint: None,
        });
    }
    let entry = read_entries(dir)?
        .into_iter()
        .find(|e| e.name == own_name)
        .ok_or_else(|| EmulationError::Read {
            path: dir.join(&own_name),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the new entry vanished after registration",
            ),
        })?;
    Ok(InstallOutcome::Installed { entry, replaced })
}

/// Removes every binfmt_misc entry that handles each of `handlers`' architectures (matched by
/// magic and mask, whatever its name) and any entry named `qemu-<name>`. Errors (exit 4) when
/// not root or an entry cannot be removed; an unmounted binfmt_misc has nothing to remove.
pub fn uninstall(
    handlers: &[&'static Handler],
    binfmt_dir: &Path,
) -> Result<Vec<UninstallOutcome>, EmulationError> {
    require_root()?;
    let (mounted, _) = binfmt_state(binfmt_dir);
    let mut out = Vec::new();
    for &h in handlers {
        if !mounted {
            out.push(UninstallOutcome::NotInstalled);
            continue;
        }
        let own_name = format!("qemu-{}", h.name);
        let names: Vec<String> = read_entries(binfmt_dir)?
            .into_iter()
            .filter(|e| e.runs(h) || e.name == own_name)
            .map(|e| e.name)
            .collect();
        if names.is_empty() {
            out.push(UninstallOutcome::NotInstalled);
            continue;
        }
        for n in &names {
            remove_entry(binfmt_dir, n)?;
        }
        out.push(UninstallOutcome::Removed { names });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::table::handlers;
    use crate::exit::{Classify, ExitCode};

    fn row(name: &str) -> &'static Handler {
        handlers().iter().find(|h| h.name == name).unwrap()
    }

    #[test]
    fn registration_lines_and_identity() {
        let h = row("riscv64");
        let i = Interpreter {
            path: "/usr/libexec/qemu-binfmt/riscv64-binfmt-P".into(),
            preserves_argv0: true,
        };
        let line = register_line(h, &i);
        assert!(line.starts_with(":qemu-riscv64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01"));
        assert!(line.ends_with(":/usr/libexec/qemu-binfmt/riscv64-binfmt-P:POF"));
        // What the kernel shows after registering that line is "ours", in any flag order.
        let shown = BinfmtEntry::parse(
            "qemu-riscv64",
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: POF\n\
             offset 0\nmagic 7f454c460201010000000000000000000200f300\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        assert!(is_ours(&shown, h, &i));
        let mut other = shown.clone();
        other.flags = "F".into();
        assert!(!is_ours(&other, h, &i));
        let mut other = shown.clone();
        other.name = "riscv".into();
        assert!(!is_ours(&other, h, &i));
        // An entry's own register line reproduces it (used to restore replaced entries).
        let again = shown.register_line();
        assert_eq!(
            again,
            ":qemu-riscv64:M:0:\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\
             \\x00\\x00\\x00\\x02\\x00\\xf3\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\
             \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
             /usr/libexec/qemu-binfmt/riscv64-binfmt-P:POF"
        );
        assert_eq!(
            Interpreter {
                path: "/usr/bin/qemu-riscv64-static".into(),
                preserves_argv0: false
            }
            .flags(),
            "OF"
        );
    }

    #[test]
    fn not_root_is_an_error_with_exit_4() {
        if rustix::process::geteuid().is_root() {
            return;
        }
        let err = uninstall(&[row("riscv64")], Path::new("/proc/sys/fs/binfmt_misc")).unwrap_err();
        assert!(matches!(err, EmulationError::NotRoot { .. }));
        assert_eq!(err.exit_code(), ExitCode::Host);
    }
}
