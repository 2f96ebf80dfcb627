//! Normalisation: every OS and architecture name polyarch accepts and what each one means, in one
//! place. containerd's `database.go` (`isKnownOS`, `isKnownArch`, `normalizeOS`, `normalizeArch`:
//! the alias table, `aarch64` → `arm64`, `armhf` → `arm/v7`, ...), the names it does not alias but
//! people type (refused with a suggestion), and the two forms built from them: [`Platform::new`]
//! (the recorded form, containerd `Parse`) and [`Platform::normalized`] (containerd `Normalize`).
//!
//! Level 0: pure, no I/O. It must not read platform strings (that is `parse.rs`) nor compare
//! platforms (`matching.rs`); a new alias or architecture name is added here and nowhere else.

use super::Platform;

/// containerd `isKnownOS` (generated from Go's `go/build/syslist.go`).
pub(super) const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// containerd `isKnownArch`.
pub(super) const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// containerd `normalizeOS`: lower case, `macos` → `darwin` (an empty OS, which `parse` never
/// produces, would be the host's).
pub(super) fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    match os.as_str() {
        "macos" => "darwin".into(),
        "" => "linux".into(),
        _ => os,
    }
}

/// containerd `normalizeArch`, case by case.
pub(super) fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

/// Names people type that containerd does not alias (Debian, `uname -m` and qemu spellings), with
/// the platform they mean: only used to suggest a fix in an error.
const SUGGESTIONS: &[(&str, &str)] = &[
    ("ppc64el", "linux/ppc64le"),
    ("mips64el", "linux/mips64le"),
    ("loongarch64", "linux/loong64"),
    ("i686", "linux/386"),
    ("x86", "linux/386"),
    ("armv7l", "linux/arm/v7"),
    ("armv8l", "linux/arm/v7"),
    ("armv6l", "linux/arm/v6"),
    ("armv5tel", "linux/arm/v5"),
    ("arm64v8", "linux/arm64/v8"),
];

/// Why a platform that parses is still refused, with the platforms meant instead: 32-bit ARM has
/// no `v8` in Docker's images (containerd normalises `arm/8` to `arm/v8`, but no official image
/// publishes it and no qemu CPU model or Debian port stands for it: an ARMv8 board runs
/// `linux/arm64/v8`, and its 32-bit mode runs `linux/arm/v7` code).
pub(super) fn refusal(p: &Platform) -> Option<String> {
    let n = p.normalized();
    (n.architecture == "arm" && n.variant_str() == "v8").then(|| {
        "32-bit ARM has no v8 variant (did you mean linux/arm64/v8 for an ARMv8 board, or \
         linux/arm/v7 for 32-bit code that runs on one?)"
            .to_string()
    })
}

/// `reason`, with the platform `word` most likely meant when it is a known misspelling
/// ([`SUGGESTIONS`]).
pub(super) fn with_suggestion(reason: &str, word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    match SUGGESTIONS.iter().find(|(k, _)| *k == lower) {
        Some((_, s)) => format!("{reason} (did you mean {s}?)"),
        None => reason.to_string(),
    }
}

impl Platform {
    /// A platform from its parts, exactly as [`Platform::parse`] would return
    /// `os/architecture[/variant]` (containerd `Parse`, two- and three-part cases, except that
    /// `arm` and `armhf` keep their implied `v7`; no validation).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) = match variant {
            Some(v) => {
                let (a, mut v) = normalize_arch(architecture, v);
                if a == "arm64" && v.is_empty() {
                    v = "v8".into();
                }
                (a, v)
            }
            // containerd's `Parse` drops the implied `v7` of `arm`/`armhf` here; BuildKit records
            // the normalised form, so Docker's `arm32v7` images say `"variant": "v7"` and so does
            // polyarch (issue 16).
            None => normalize_arch(architecture, ""),
        };
        Platform {
            os: normalize_os(os),
            architecture,
            os_version: None,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// containerd's `Normalize`: the identity of the platform. `arm64/v8` and `amd64/v1` lose
    /// their variant, `arm` without one becomes `arm/v7`, aliases are resolved; `os.version` is
    /// kept.
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, self.variant_str());
        Platform {
            os: normalize_os(&self.os),
            architecture,
            os_version: self.os_version.clone(),
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// True when both are the same platform: equal after normalisation, `os.version` included.
    /// (Used to de-duplicate targets; for "can this image serve that platform" see
    /// [`Platform::matches`].)
    pub fn same_as(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_arch_table_is_containerds() {
        // Every case of containerd database.go normalizeArch, plus pass-through.
        let cases = [
            (("i386", ""), ("386", "")),
            (("i386", "v2"), ("386", "")),
            (("I386", ""), ("386", "")),
            (("x86_64", ""), ("amd64", "")),
            (("x86-64", ""), ("amd64", "")),
            (("X86_64", "V1"), ("amd64", "")),
            (("amd64", "v1"), ("amd64", "")),
            (("amd64", "v2"), ("amd64", "v2")),
            (("amd64", "v3"), ("amd64", "v3")),
            (("amd64", "v4"), ("amd64", "v4")),
            (("amd64", "2"), ("amd64", "2")),
            (("aarch64", ""), ("arm64", "")),
            (("AArch64", "V8"), ("arm64", "")),
            (("arm64", "8"), ("arm64", "")),
            (("arm64", "v8"), ("arm64", "")),
            (("arm64", "v8.0"), ("arm64", "")),
            (("arm64", "v8.2"), ("arm64", "v8.2")),
            (("arm64", "9"), ("arm64", "v9")),
            (("arm64", "9.0"), ("arm64", "v9")),
            (("arm64", "v9.0"), ("arm64", "v9")),
            (("arm64", "v9"), ("arm64", "v9")),
            (("armhf", ""), ("arm", "v7")),
            (("armhf", "v6"), ("arm", "v7")),
            (("armel", ""), ("arm", "v6")),
            (("armel", "v7"), ("arm", "v6")),
            (("arm", ""), ("arm", "v7")),
            (("arm", "7"), ("arm", "v7")),
            (("arm", "v7"), ("arm", "v7")),
            (("arm", "5"), ("arm", "v5")),
            (("arm", "6"), ("arm", "v6")),
            (("arm", "8"), ("arm", "v8")),
            (("arm", "v5"), ("arm", "v5")),
            (("arm", "9"), ("arm", "9")),
            (("ppc64le", ""), ("ppc64le", "")),
            (("S390X", ""), ("s390x", "")),
            (("riscv64", "rva22u64"), ("riscv64", "rva22u64")),
            (("loong64", ""), ("loong64", "")),
        ];
        for ((a, v), (na, nv)) in cases {
            assert_eq!(
                normalize_arch(a, v),
                (na.to_string(), nv.to_string()),
                "{a}/{v}"
            );
        }
        assert_eq!(normalize_os("Linux"), "linux");
        assert_eq!(normalize_os("macOS"), "darwin");
        assert_eq!(normalize_os("WINDOWS"), "windows");
    }
}
