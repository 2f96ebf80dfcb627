//! The handler table: which qemu-user handler runs which architectures, with the magic and mask
//! it registers (data in `qemu/binfmt.toml`, as in Debian's `/usr/lib/binfmt.d/qemu-*.conf`), the
//! registration line of a row, and ELF header samples of its executables.
//!
//! Level 1 by family, but pure here: compiled-in data and decoding, no file or process access
//! (reading entries is `entry.rs`, registering is `install.rs`).

use std::sync::OnceLock;

use serde::Deserialize;

use crate::platform::Platform;

/// The handler table, `qemu/binfmt.toml`, compiled in.
const TABLE_TOML: &str = include_str!("../../qemu/binfmt.toml");

/// One row of the handler table (`qemu/binfmt.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Handler {
    /// qemu's architecture name: handler `qemu-<name>`, binary `qemu-<name>-static`.
    pub name: String,
    /// OCI/GOARCH architectures this handler runs (`arm64`, `arm`, `mips64le`, ...).
    pub architectures: Vec<String>,
    /// Debian's architecture names for it (`ppc64el`, `armel`, `armhf`, ...), accepted as
    /// names by `polyarch qemu` (dpkg-architecture(1)).
    #[serde(default)]
    pub debian: Vec<String>,
    /// The platforms reported for it, one status row each (`linux/arm/v5`, `v6`, `v7` for
    /// `arm`); empty: its first architecture, normalised. Read through [`Handler::platforms`].
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Magic bytes at offset 0, `\xHH`-escaped as in the registration line.
    pub magic: String,
    /// Mask, same length and spelling as `magic`.
    pub mask: String,
    /// Static emulator binary name, found in `/usr/bin` on Debian.
    pub qemu: String,
    /// Interpreter to register: Debian's `argv[0]`-preserving wrapper.
    pub interpreter: String,
    /// Flags to register (`OPF`).
    pub flags: String,
}

/// The file's shape: `[[handler]]` rows.
#[derive(Deserialize)]
struct Table {
    handler: Vec<Handler>,
}

impl Handler {
    /// The decoded magic bytes. The table is checked by a unit test, so a decoding failure here
    /// cannot happen at run time; it yields an empty vector rather than a panic.
    pub fn magic_bytes(&self) -> Vec<u8> {
        unescape(&self.magic).unwrap_or_default()
    }

    /// The decoded mask bytes (see [`Handler::magic_bytes`]).
    pub fn mask_bytes(&self) -> Vec<u8> {
        unescape(&self.mask).unwrap_or_default()
    }

    /// The platforms this handler's status rows stand for, normalised: the `platforms` column,
    /// or else the first architecture (`linux/arm64`, `linux/ppc64le`, ...).
    pub fn platforms(&self) -> Vec<Platform> {
        let parsed: Vec<Platform> = self
            .platforms
            .iter()
            .filter_map(|p| Platform::parse(p).ok())
            .map(|p| p.normalized())
            .collect();
        if !parsed.is_empty() {
            return parsed;
        }
        let arch = self.architectures.first().map(String::as_str).unwrap_or("");
        vec![Platform::new("linux", arch, None).normalized()]
    }

    /// The line to write into `/proc/sys/fs/binfmt_misc/register` for this handler
    /// (`:qemu-<name>:M::<magic>:<mask>:<interpreter>:<flags>`, binfmt-misc.rst).
    pub fn register_line(&self) -> String {
        format!(
            ":qemu-{}:M::{}:{}:{}:{}",
            self.name, self.magic, self.mask, self.interpreter, self.flags
        )
    }

    /// Minimal ELF headers (first 20 bytes) of this architecture's executables: one `ET_EXEC`
    /// and one `ET_DYN` (PIE) sample, built from the table's magic (ELF spec: `e_ident`,
    /// `e_type` at byte 16 in the file's byte order, `e_machine` at 18).
    pub fn elf_samples(&self) -> Vec<Vec<u8>> {
        let magic = self.magic_bytes();
        if magic.len() < 20 {
            return vec![magic];
        }
        let big_endian = magic[5] == 2; // EI_DATA: 1 little, 2 big endian
        [2u8, 3u8]
            .iter()
            .map(|e_type| {
                let mut m = magic.clone();
                if big_endian {
                    m[16] = 0;
                    m[17] = *e_type;
                } else {
                    m[16] = *e_type;
                    m[17] = 0;
                }
                m
            })
            .collect()
    }
}

/// The handler table from `qemu/binfmt.toml`, in file order.
pub fn handlers() -> &'static [Handler] {
    static TABLE: OnceLock<Vec<Handler>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The file is compiled in and parsed by a unit test (`table_parses_and_decodes`), so a
        // failure here is a build defect, not a run-time condition.
        toml::from_str::<Table>(TABLE_TOML)
            .map(|t| t.handler)
            .unwrap_or_default()
    })
}

/// The table row that runs `platform`'s architecture, if any.
pub fn handler_for(platform: &Platform) -> Option<&'static Handler> {
    if platform.os != "linux" {
        return None;
    }
    handlers()
        .iter()
        .find(|h| h.architectures.contains(&platform.architecture))
}

/// Decodes a binfmt_misc magic/mask string: `\xHH` escapes and literal characters
/// (binfmt-misc.rst: "hex-encoded ... `\x0a`"; `\\` is a backslash).
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            match bytes.get(i + 1) {
                Some(b'x') => {
                    let hex = s
                        .get(i + 2..i + 4)
                        .ok_or_else(|| format!("short \\x escape at byte {i}"))?;
                    let b = u8::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad \\x escape {hex:?} at byte {i}"))?;
                    out.push(b);
                    i += 4;
                }
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                _ => return Err(format!("bad escape at byte {i}")),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn table_parses_and_decodes() {
        let t: Table = toml::from_str(TABLE_TOML).expect("qemu/binfmt.toml parses");
        let names: Vec<&str> = t.handler.iter().map(|h| h.name.as_str()).collect();
        for want in [
            "aarch64",
            "arm",
            "i386",
            "ppc64le",
            "s390x",
            "riscv64",
            "mips64el",
            "mips64",
            "loongarch64",
            "x86_64",
        ] {
            assert!(names.contains(&want), "{want} missing from table");
        }
        for h in &t.handler {
            let magic = unescape(&h.magic).unwrap();
            let mask = unescape(&h.mask).unwrap();
            assert_eq!(magic.len(), 20, "{}", h.name);
            assert_eq!(mask.len(), magic.len(), "{}", h.name);
            assert_eq!(&magic[..4], b"\x7fELF", "{}", h.name);
            assert!(h.flags.contains('F') && h.flags.contains('P'), "{}", h.name);
            // Every table row maps back from a platform through Platform::qemu_arch.
            for a in &h.architectures {
                let p = Platform::new("linux", a, None);
                assert_eq!(p.qemu_arch(), Some(h.name.as_str()), "{a}");
            }
        }
        assert_eq!(handlers().len(), t.handler.len());
        // Every status row's platform parses and is run by its own row (issue 16: a row each
        // for arm/v5, v6 and v7, and the ten platforms of Docker's official images are there).
        let mut rows = Vec::new();
        for h in handlers() {
            assert_eq!(h.platforms.len().max(1), h.platforms().len(), "{}", h.name);
            for p in h.platforms() {
                assert_eq!(handler_for(&p).map(|x| &x.name), Some(&h.name), "{p}");
                rows.push(p.to_string());
            }
        }
        for want in [
            "linux/amd64",
            "linux/arm/v5",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm64",
            "linux/386",
            "linux/mips64le",
            "linux/ppc64le",
            "linux/riscv64",
            "linux/s390x",
            "linux/loong64",
            "linux/mips64",
        ] {
            assert!(rows.contains(&want.to_string()), "{want} in {rows:?}");
        }
    }

    #[test]
    fn table_matches_debians_installed_lines() {
        // Debian's qemu-user-static ships these; when installed, the table must agree byte for
        // byte with them (the table cites them as its source).
        let dir = Path::new("/usr/lib/binfmt.d");
        for h in handlers() {
            let Ok(text) = std::fs::read_to_string(dir.join(format!("qemu-{}.conf", h.name)))
            else {
                continue;
            };
            let line = text
                .lines()
                .find(|l| l.starts_with(':'))
                .expect("registration line");
            let parts: Vec<&str> = line.split(':').collect();
            assert_eq!(unescape(parts[4]).unwrap(), h.magic_bytes(), "{}", h.name);
            assert_eq!(unescape(parts[5]).unwrap(), h.mask_bytes(), "{}", h.name);
            assert_eq!(parts[6], h.interpreter, "{}", h.name);
        }
    }

    #[test]
    fn unescape_mixes_literals_and_hex() {
        assert_eq!(unescape(r"\x7fELF\x02").unwrap(), b"\x7fELF\x02");
        assert_eq!(unescape(r"a\\b").unwrap(), b"a\\b");
        assert!(unescape(r"\x7").is_err());
        assert!(unescape(r"\q").is_err());
    }
}
