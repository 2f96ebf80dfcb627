//! Probe programs: a minimal static ELF executable per handler, built from the machine code in
//! `qemu/probes.toml`. Each writes its own `argv[0]` (20 bytes, [`probe_marker`] when the handler
//! preserves it) to stdout and exits 0.
//!
//! Level 1 by family, but pure here: compiled-in data turned into bytes. It must not run
//! anything; running a probe through the kernel is `probe.rs`.

use std::sync::OnceLock;

use serde::Deserialize;

use super::table::Handler;

/// The probe table, `qemu/probes.toml`, compiled in.
const PROBES_TOML: &str = include_str!("../../qemu/probes.toml");

/// Where the single PT_LOAD segment is mapped (above every architecture's `mmap_min_addr`).
const LOAD_ADDRESS: u64 = 0x40_0000;
/// Segment alignment: the largest page size of the architectures in the table (64 KiB).
const SEGMENT_ALIGN: u64 = 0x1_0000;

/// `qemu/probes.toml`: the marker and one program per handler.
#[derive(Debug, Deserialize)]
struct ProbeFile {
    marker: String,
    probe: Vec<ProbeDef>,
    #[serde(default)]
    cpu_check: Vec<CpuCheck>,
}

/// One CPU-model check (`[[cpu_check]]` in `qemu/probes.toml`): the handler's probe with one
/// instruction in front that only some CPU models have. Under a model in `runs_on` the probe
/// must run as usual; under any other it must die of `SIGILL`, as on a board without it.
#[derive(Debug, Clone, Deserialize)]
pub struct CpuCheck {
    /// The handler (binfmt.toml name) whose probe it extends.
    pub handler: String,
    /// The instruction, in assembly (documentation; shown in reports).
    pub asm: String,
    /// The instruction word, in the ELF's byte order when written.
    pub word: u32,
    /// The qemu CPU models (`-cpu`, `QEMU_CPU`) that have it.
    pub runs_on: Vec<String>,
}

/// One probe program: its handler, the ELF `e_flags` and the instructions.
#[derive(Debug, Deserialize)]
struct ProbeDef {
    handler: String,
    e_flags: u32,
    insn: Vec<Insn>,
}

/// One instruction: a 32-bit word in the target's byte order, or hex bytes.
#[derive(Debug, Deserialize)]
struct Insn {
    #[allow(dead_code)] // documentation in the data file; shown by tests on failure
    asm: String,
    word: Option<u32>,
    bytes: Option<String>,
}

/// The parsed probe table.
fn probe_file() -> &'static ProbeFile {
    static FILE: OnceLock<ProbeFile> = OnceLock::new();
    FILE.get_or_init(|| {
        // Compiled in and parsed by a unit test (`every_handler_has_a_probe`): a failure here is a
        // build defect; an empty table then makes every probe report "no probe".
        toml::from_str(PROBES_TOML).unwrap_or(ProbeFile {
            marker: String::new(),
            probe: Vec::new(),
            cpu_check: Vec::new(),
        })
    })
}

/// The `argv[0]` every probe is started with and prints back when the handler preserves it.
pub fn probe_marker() -> &'static str {
    &probe_file().marker
}

/// The probe executable for `handler`: an ELF header (class, byte order and `e_machine` taken
/// from the handler's magic), one `PT_LOAD` program header mapping the whole file read+execute at
/// 0x400000, then the code (ELF gABI "ELF Header", "Program Header"). `None` when
/// `qemu/probes.toml` has no program for this handler or its data is malformed.
pub fn probe_elf(handler: &Handler) -> Option<Vec<u8>> {
    probe_elf_after(handler, None)
}

/// The probe's code: `check`'s instruction (if any), then the probe's own, in the target's byte
/// order. `None` when an instruction is malformed.
fn machine_code(def: &ProbeDef, check: Option<&CpuCheck>, big: bool) -> Option<Vec<u8>> {
    let word = |w: u32| {
        if big {
            w.to_be_bytes()
        } else {
            w.to_le_bytes()
        }
    };
    let mut code = Vec::new();
    if let Some(c) = check {
        code.extend(word(c.word));
    }
    for i in &def.insn {
        match (i.word, &i.bytes) {
            (Some(w), None) => code.extend(word(w)),
            (None, Some(b)) => {
                for h in b.split_whitespace() {
                    code.push(u8::from_str_radix(h, 16).ok()?);
                }
            }
            _ => return None,
        }
    }
    Some(code)
}

/// The CPU-model checks of `handler` (`[[cpu_check]]` rows), in file order.
pub fn cpu_checks(handler: &Handler) -> Vec<&'static CpuCheck> {
    probe_file()
        .cpu_check
        .iter()
        .filter(|c| c.handler == handler.name)
        .collect()
}

/// [`probe_elf`] with `check`'s instruction executed first (`None`: the plain probe).
pub fn probe_elf_after(handler: &Handler, check: Option<&CpuCheck>) -> Option<Vec<u8>> {
    let def = probe_file()
        .probe
        .iter()
        .find(|p| p.handler == handler.name)?;
    let magic = handler.magic_bytes();
    if magic.len() < 20 {
        return None;
    }
    let is64 = magic[4] == 2; // EI_CLASS: 1 ELFCLASS32, 2 ELFCLASS64
    let big = magic[5] == 2; // EI_DATA: 1 little, 2 big endian
    let machine = if big {
        u16::from_be_bytes([magic[18], magic[19]])
    } else {
        u16::from_le_bytes([magic[18], magic[19]])
    };
    let code = machine_code(def, check, big)?;
    let mut w = ElfWriter {
        out: Vec::new(),
        big,
    };
    let (ehsize, phentsize) = if is64 { (64u16, 56u16) } else { (52, 32) };
    let total = u64::from(ehsize) + u64::from(phentsize) + code.len() as u64;
    let entry = LOAD_ADDRESS + u64::from(ehsize) + u64::from(phentsize);
    // e_ident: magic, class, data, EI_VERSION 1, EI_OSABI 0 (System V), padding.
    w.out.extend_from_slice(b"\x7fELF");
    w.out.extend_from_slice(&[magic[4], magic[5], 1, 0]);
    w.out.extend_from_slice(&[0; 8]);
    w.u16(2); // e_type ET_EXEC
    w.u16(machine);
    w.u32(1); // e_version
    w.addr(is64, entry);
    w.addr(is64, u64::from(ehsize)); // e_phoff: right after the header
    w.addr(is64, 0); // e_shoff: no sections
    w.u32(def.e_flags);
    w.u16(ehsize);
    w.u16(phentsize);
    w.u16(1); // e_phnum
    w.u16(if is64 { 64 } else { 40 }); // e_shentsize
    w.u16(0); // e_shnum
    w.u16(0); // e_shstrndx
    const PT_LOAD: u32 = 1;
    const PF_R_X: u32 = 4 | 1;
    if is64 {
        w.u32(PT_LOAD);
        w.u32(PF_R_X);
        w.u64(0); // p_offset
        w.u64(LOAD_ADDRESS); // p_vaddr
        w.u64(LOAD_ADDRESS); // p_paddr
        w.u64(total); // p_filesz
        w.u64(total); // p_memsz
        w.u64(SEGMENT_ALIGN);
    } else {
        w.u32(PT_LOAD);
        w.u32(0); // p_offset
        w.u32(LOAD_ADDRESS as u32);
        w.u32(LOAD_ADDRESS as u32);
        w.u32(total as u32);
        w.u32(total as u32);
        w.u32(PF_R_X);
        w.u32(SEGMENT_ALIGN as u32);
    }
    w.out.extend_from_slice(&code);
    Some(w.out)
}

/// Appends ELF fields in the file's byte order.
struct ElfWriter {
    out: Vec<u8>,
    big: bool,
}

impl ElfWriter {
    fn u16(&mut self, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn u32(&mut self, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn u64(&mut self, v: u64) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }
    fn addr(&mut self, is64: bool, v: u64) {
        if is64 {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;
    use crate::emulation::entry::{BinfmtEntry, EntryMatch};
    use crate::emulation::table::handlers;

    #[test]
    fn every_handler_has_a_probe_that_its_own_entry_matches() {
        let file: ProbeFile = toml::from_str(PROBES_TOML).expect("qemu/probes.toml parses");
        assert_eq!(file.marker.len(), 20, "the probes write exactly 20 bytes");
        for h in handlers() {
            let elf = probe_elf(h).unwrap_or_else(|| panic!("no probe for {}", h.name));
            // The kernel would pick this handler's entry for the probe, and no other row's.
            for other in handlers() {
                let entry = BinfmtEntry {
                    name: other.name.clone(),
                    enabled: true,
                    interpreter: other.interpreter.clone().into(),
                    flags: other.flags.clone(),
                    matcher: EntryMatch::Magic {
                        offset: 0,
                        magic: other.magic_bytes(),
                        mask: Some(other.mask_bytes()),
                    },
                };
                assert_eq!(
                    entry.matches_header(&elf),
                    other.name == h.name,
                    "{} probe vs {} entry",
                    h.name,
                    other.name
                );
            }
            assert!(elf.len() < 200, "{}: {} bytes", h.name, elf.len());
        }
        for def in &file.probe {
            assert!(
                handlers().iter().any(|h| h.name == def.handler),
                "probe for unknown handler {}",
                def.handler
            );
            for i in &def.insn {
                assert!(
                    i.word.is_some() != i.bytes.is_some(),
                    "{}: {:?} needs exactly one of word/bytes",
                    def.handler,
                    i.asm
                );
            }
        }
    }

    /// Runs every probe directly under Debian's `qemu-<name>-static` (no binfmt_misc involved):
    /// `-0` sets the guest's argv[0], so each must print the marker and exit 0. This is what
    /// proves the hand-assembled code in `qemu/probes.toml`.
    #[test]
    fn every_probe_runs_under_its_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let mut ran = 0;
        for h in handlers() {
            let Ok(qemu) = which::which(&h.qemu) else {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{} missing under CI (install qemu-user-static)",
                    h.qemu
                );
                continue;
            };
            let file = dir.path().join(format!("probe-{}", h.name));
            std::fs::write(&file, probe_elf(h).unwrap()).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = Command::new(&qemu)
                .args(["-0", probe_marker()])
                .arg(&file)
                .env_clear()
                .env("POLYARCH_PROBE_PAD", "x".repeat(64))
                .output()
                .unwrap();
            assert_eq!(
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned()
                ),
                (Some(0), probe_marker().to_string()),
                "{} under {}: stderr {}",
                h.name,
                qemu.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
        if std::env::var_os("CI").is_some() {
            assert_eq!(ran, handlers().len());
        }
    }

    /// Every CPU check under Debian's qemu directly with each CPU model of its platforms: it runs
    /// on the models in `runs_on` and dies of SIGILL (signal 4) on the others; so the arm/v5 and
    /// arm/v6 models really refuse an ARMv7 instruction, and the checks prove a CPU model.
    #[test]
    fn cpu_checks_trap_on_older_models() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let arm = handlers().iter().find(|h| h.name == "arm").unwrap();
        let checks = cpu_checks(arm);
        assert!(checks.len() >= 2, "arm has CPU checks");
        let Ok(qemu) = which::which(&arm.qemu) else {
            assert!(std::env::var_os("CI").is_none(), "{} missing", arm.qemu);
            return;
        };
        for (i, c) in checks.iter().enumerate() {
            let file = dir.path().join(format!("check-{i}"));
            std::fs::write(&file, probe_elf_after(arm, Some(c)).unwrap()).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
            for cpu in ["arm926", "arm1176", "cortex-a8"] {
                let out = Command::new(&qemu)
                    .args(["-cpu", cpu, "-0", probe_marker()])
                    .arg(&file)
                    .env_clear()
                    .env("POLYARCH_PROBE_PAD", "x".repeat(64))
                    .output()
                    .unwrap();
                if c.runs_on.iter().any(|r| r == cpu) {
                    assert_eq!(out.status.code(), Some(0), "{} on {cpu}", c.asm);
                } else {
                    assert_eq!(out.status.signal(), Some(4), "{} on {cpu}", c.asm);
                }
            }
        }
    }
}
