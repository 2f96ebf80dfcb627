//! Emulation: can this host run a platform's binaries, natively or through a qemu-user
//! binfmt_misc handler, and managing those handlers.
//!
//! Level 1 (sync file reads, explicit paths, subprocesses by path and argv). Parts, lowest first:
//! - `error.rs`: [`EmulationError`] and [`NoHandlerReason`], with the hints derived from them;
//! - `table.rs`: the handler table [`handlers`], data in `qemu/binfmt.toml` (magic and mask as in
//!   Debian's `/usr/lib/binfmt.d/qemu-*.conf`);
//! - `entry.rs`: the kernel's entry files (`/proc/sys/fs/binfmt_misc/<name>`, format: Linux
//!   `Documentation/admin-guide/binfmt-misc.rst` and `fs/binfmt_misc.c` `bm_entry_read`), parsed
//!   by [`BinfmtEntry::parse`] and read by [`read_entries`];
//! - `probe_program.rs`: probe programs built from the machine code in `qemu/probes.toml`
//!   ([`probe_elf`]), and `probe.rs`: running one through the kernel ([`run_probe`]);
//! - `cpu.rs`: [`prove_cpu`], the CPU checks that prove a platform's qemu CPU model applies;
//! - `support.rs`: [`classify`], which decides [`Support`] for one platform by comparing every
//!   registered entry's magic/mask against that architecture's ELF header, never trusting entry
//!   names, and [`verify`], which then proves it by running the platform's probe program;
//! - `status.rs`: [`status()`], every architecture of the table, probed and explained;
//! - `interpreter.rs`: [`find_interpreter`], the emulator to register for a handler;
//! - `install.rs`: [`install()`] and [`uninstall`], registering and removing handlers.
//!
//! This file only declares the parts and re-exports their public items; each part imports what
//! it needs from the parts below it.
//!
//! A handler is only usable for a chroot if it is enabled and has the `F` (fix binary) flag: the
//! kernel then opens the interpreter at registration time, so it need not exist inside the image
//! root filesystem. It must also keep `argv[0]` (`P`), or multi-call programs such as busybox
//! break.

mod cpu;
mod entry;
mod error;
mod install;
mod interpreter;
mod probe;
mod probe_program;
mod status;
mod support;
mod table;

pub use cpu::{prove_cpu, CheckOutcome, CpuProof};
pub use entry::{read_entries, BinfmtEntry, EntryMatch};
pub use error::{EmulationError, NoHandlerReason};
pub use install::{install, uninstall, InstallOptions, InstallOutcome, UninstallOutcome};
pub use interpreter::{find_interpreter, own_instance_qemu, Interpreter};
pub use probe::{run_probe, run_probe_as, Isolation, ProbeCpu, ProbeResult, PROBE_TIMEOUT};
pub use probe_program::{cpu_checks, probe_elf, probe_elf_after, probe_marker, CpuCheck};
pub use status::{status, ArchStatus, Runs, StatusReport};
pub use support::{classify, native_architectures, verify, Support};
pub use table::{handler_for, handlers, unescape, Handler};
