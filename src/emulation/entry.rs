//! binfmt_misc entries: the kernel's entry files (`/proc/sys/fs/binfmt_misc/<name>`) read and
//! parsed into [`BinfmtEntry`] (format: Linux `Documentation/admin-guide/binfmt-misc.rst` and
//! `fs/binfmt_misc.c` `bm_entry_read`), whether an entry would take a given ELF header or a
//! handler's executables, and the line that registers it again.
//!
//! Level 1: sync reads of one directory by explicit path. It only reads: registering and removing
//! entries is `install.rs`, deciding how a platform runs is `support.rs`.

use std::path::{Path, PathBuf};

use super::error::EmulationError;
use super::table::Handler;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::table::handlers;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/emulation")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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
}
