//! Errors of emulation: reading binfmt_misc, deciding how a platform runs, changing
//! registrations. [`EmulationError`] is what the functions return; [`NoHandlerReason`] says why a
//! platform cannot run here, and the hint (`polyarch qemu install ...`) is derived from it, apart
//! from the message (exit code 4, [`ExitCode::Host`]).
//!
//! Level 1 by family, but this file only describes: no I/O, no decisions.

use std::path::PathBuf;

use crate::exit::{Classify, ExitCode};
use crate::platform::Platform;

/// Errors from reading binfmt_misc state or deciding how to run a platform.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    /// No usable handler runs this platform here.
    #[error("cannot run {platform} binaries on this host: {reason}")]
    NoHandler {
        /// The platform asked for (boxed to keep the error small).
        platform: Box<Platform>,
        /// Why not (not registered, disabled, missing `F`, binfmt_misc not mounted).
        reason: NoHandlerReason,
        /// The registration line for this architecture from our table, when it has one.
        register_line: Option<String>,
    },
    /// An entry or directory under the binfmt_misc mount could not be read.
    #[error("cannot read binfmt_misc entry {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A probe program could not be written to run it.
    #[error("cannot prepare a probe program at {path}")]
    ProbeSetup {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Changing binfmt_misc registrations needs root.
    #[error("changing binfmt_misc registrations needs root (effective uid is {uid})")]
    NotRoot {
        /// The effective uid of this process.
        uid: u32,
    },
    /// binfmt_misc is not mounted and mounting it failed.
    #[error("cannot mount binfmt_misc at {dir}")]
    Mount {
        /// The mount point.
        dir: PathBuf,
        /// The error from mount(2).
        #[source]
        source: std::io::Error,
    },
    /// binfmt_misc as a whole is switched off, so nothing registered in it runs.
    #[error("binfmt_misc is disabled as a whole ({dir}/status reads `disabled`)")]
    GloballyDisabled {
        /// The binfmt_misc directory.
        dir: PathBuf,
    },
    /// Removing a registration failed.
    #[error("cannot remove binfmt_misc entry {name:?} (writing -1 to {path})")]
    Unregister {
        /// The entry's name.
        name: String,
        /// The entry file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A binfmt_misc entry file has content the parser does not understand.
    #[error("malformed binfmt_misc entry {name:?}, line {line}: {reason}")]
    Parse {
        /// The entry's name (file name under the binfmt_misc directory).
        name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Why a platform has no usable handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoHandlerReason {
    /// polyarch knows no qemu handler for this architecture (or the OS is not Linux).
    #[error("no qemu-user emulation is known for this platform")]
    UnknownArchitecture,
    /// The binfmt_misc directory has no `register` file: the filesystem is not mounted.
    #[error("binfmt_misc is not mounted at {dir}")]
    NotMounted {
        /// The directory looked at.
        dir: PathBuf,
    },
    /// binfmt_misc as a whole is switched off (`status` reads `disabled`).
    #[error("binfmt_misc is disabled as a whole ({dir}/status)")]
    GloballyDisabled {
        /// The binfmt_misc directory.
        dir: PathBuf,
    },
    /// No registered entry matches the architecture's ELF header.
    #[error("no binfmt_misc handler is registered for {qemu_arch}")]
    NotRegistered {
        /// qemu's name of the architecture (`aarch64`).
        qemu_arch: String,
    },
    /// A matching entry exists but is disabled.
    #[error("binfmt_misc handler {name:?} matches but is disabled")]
    Disabled {
        /// The entry's name.
        name: String,
    },
    /// The CPU should run this architecture itself, but the probe program does not run (e.g. a
    /// kernel without 32-bit support).
    #[error("this host should run it natively, but the probe {detail}")]
    NativeFails {
        /// What happened to the probe.
        detail: String,
    },
    /// A matching, enabled entry with `F` is there, but the probe program does not run through it
    /// (the interpreter is broken or is not an emulator for this architecture).
    #[error(
        "binfmt_misc handler {name:?} (interpreter {interpreter}) is broken: the probe {detail}"
    )]
    Broken {
        /// The entry's name.
        name: String,
        /// Its interpreter.
        interpreter: PathBuf,
        /// What happened to the probe.
        detail: String,
    },
    /// The handler runs programs but loses their `argv[0]` (no `P` flag or an interpreter that
    /// ignores it): multi-call programs such as busybox then break.
    #[error(
        "binfmt_misc handler {name:?} (flags {flags:?}) does not preserve argv[0]: multi-call \
         programs such as busybox would break"
    )]
    ArgvNotPreserved {
        /// The entry's name.
        name: String,
        /// Its flags as registered.
        flags: String,
    },
    /// A matching, enabled entry lacks the `F` flag: the kernel opens its interpreter only when
    /// a program starts, by path, in the starting process's root, which in a build is the image
    /// (kernel `Documentation/admin-guide/binfmt-misc.rst`, "F - fix binary"). The image has no
    /// qemu, so no RUN step of this platform could start.
    #[error(
        "binfmt_misc handler {name:?} (flags {flags:?}) lacks the F (fix binary) flag: the kernel          would look for its interpreter {} inside the build's root filesystem, which has no          qemu, so RUN steps for this platform cannot start",
        interpreter.display()
    )]
    MissingFixBinary {
        /// The entry's name.
        name: String,
        /// Its flags as registered.
        flags: String,
        /// Its interpreter, as registered (a host path).
        interpreter: PathBuf,
    },
}

impl Classify for EmulationError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Host
    }

    fn hint(&self) -> Option<String> {
        match self {
            EmulationError::NoHandler {
                platform, reason, ..
            } => {
                let arch = &platform.normalized().architecture;
                let install = format!("run as root: `polyarch qemu install {arch}`");
                let force = format!(
                    "run as root: `polyarch qemu install --force {arch}` (replaces the existing \
                     registration; `polyarch qemu status` shows it)"
                );
                let fix = format!(
                    "run as root: `polyarch qemu install --force {arch}`, which registers the \
                     handler again with F, so the kernel opens the interpreter once, on the host, \
                     and builds need no qemu inside the image (or add F to your own registration: \
                     write -1 to its entry and register it again with flags F)"
                );
                match reason {
                    NoHandlerReason::UnknownArchitecture => None,
                    NoHandlerReason::NotMounted { .. }
                    | NoHandlerReason::NotRegistered { .. }
                    | NoHandlerReason::NativeFails { .. } => Some(install),
                    NoHandlerReason::GloballyDisabled { dir } => Some(format!(
                        "enable it as root: `echo 1 > {}/status`",
                        dir.display()
                    )),
                    NoHandlerReason::MissingFixBinary { .. } => Some(fix),
                    NoHandlerReason::Disabled { .. }
                    | NoHandlerReason::Broken { .. }
                    | NoHandlerReason::ArgvNotPreserved { .. } => Some(force),
                }
            }
            EmulationError::NotRoot { .. } => {
                Some("run it as root (sudo polyarch qemu ...)".into())
            }
            EmulationError::Mount { dir, .. } => Some(format!(
                "binfmt_misc needs CONFIG_BINFMT_MISC and the right to mount it (root, or the \
                 owner of a user namespace on Linux 6.7+); check `mount -t binfmt_misc binfmt_misc \
                 {}`",
                dir.display()
            )),
            _ => None,
        }
    }
}
