//! Platforms: `os/architecture[/variant]`, parsed and normalised the way containerd's
//! `platforms` package does (containerd `platforms/database.go` `normalizeArch`/`normalizeOS`,
//! `platforms/platforms.go` `Parse`), and matched against the platforms an image index offers.
//!
//! Level 0: pure. Two spellings matter:
//! - the *recorded* form ([`Platform::parse`]): architecture normalised, the variant kept as the
//!   user spelled it in its normalised spelling (`linux/arm64/8` → variant `v8`), which is what
//!   the image config and the index descriptor carry;
//! - the *normalised* form ([`Platform::normalized`]): containerd's identity, where
//!   `linux/arm64/v8`, `linux/arm64` and `linux/aarch64` are one platform with no variant. It is
//!   used for matching, de-duplication and the automatic `TARGET*` build args.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A target platform (image-spec image-index.md "platform").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, GOARCH spelling (`amd64`, `arm64`, `arm`, `ppc64le`, `s390x`, ...).
    pub architecture: String,
    /// Operating system, GOOS spelling (`linux`).
    pub os: String,
    /// `os.version` (Windows only).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// CPU variant (`v7`, `v8`, `v2`, ...), absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {value:?}: {reason}")]
pub struct PlatformError {
    /// The string as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl crate::exit::Classify for PlatformError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::BadInput
    }
    fn hint(&self) -> Option<String> {
        Some("write platforms as os/architecture[/variant], e.g. linux/amd64,linux/arm64/v8".into())
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// containerd `normalizeOS`: lower case, `macos` → `darwin`.
fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".into()
    } else {
        os
    }
}

/// Architecture aliases and the variant they imply, with numeric variants spelled `vN`.
/// Returns the *recorded* form: variants are not dropped here.
fn normalize_arch_recorded(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let mut variant = variant.to_ascii_lowercase();
    if !variant.is_empty() && variant.as_bytes()[0].is_ascii_digit() {
        variant = format!("v{variant}");
    }
    match arch.as_str() {
        "i386" | "i686" | "x86" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "v8.0" => "v8".to_string(),
                "v9.0" => "v9".to_string(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = if variant.is_empty() {
                "v7".into()
            } else {
                variant
            };
            ("arm".into(), v)
        }
        "loongarch64" => ("loong64".into(), variant),
        _ => (arch, variant),
    }
}

impl Platform {
    /// A platform from its parts, normalised into the recorded form.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) =
            normalize_arch_recorded(architecture, variant.unwrap_or_default());
        Platform {
            os: normalize_os(os),
            architecture,
            os_version: None,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Parses `os/arch[/variant]`, `arch` alone (os `linux`) or `os` alone (the host's
    /// architecture), as containerd's `platforms.Parse`. Windows may carry a version as
    /// `windows(10.0.17763)/amd64`. Errors name the offending string.
    pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
        let err = |reason: &str| PlatformError {
            value: spec.to_string(),
            reason: reason.to_string(),
        };
        let s = spec.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(err("too many parts: expected os/architecture[/variant]"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty component"));
        }
        for p in &parts {
            if !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.()".contains(c))
            {
                return Err(err("unexpected character"));
            }
        }
        let (os_part, os_version) = match parts[0].split_once('(') {
            Some((os, rest)) => {
                let v = rest
                    .strip_suffix(')')
                    .ok_or_else(|| err("unclosed `(` in os version"))?;
                (os, Some(v.to_string()))
            }
            None => (parts[0], None),
        };
        let mut p = match parts.len() {
            1 => {
                let one = os_part.to_ascii_lowercase();
                if KNOWN_OS.contains(&normalize_os(&one).as_str()) {
                    let host = Platform::host();
                    Platform {
                        os: normalize_os(&one),
                        ..host
                    }
                } else {
                    let (arch, _) = normalize_arch_recorded(&one, "");
                    if !KNOWN_ARCH.contains(&arch.as_str()) {
                        return Err(err("unknown operating system or architecture"));
                    }
                    Platform::new("linux", &one, None)
                }
            }
            2 => Platform::new(os_part, parts[1], None),
            _ => Platform::new(os_part, parts[1], Some(parts[2])),
        };
        if !KNOWN_OS.contains(&p.os.as_str()) {
            return Err(err(&format!("unknown operating system {:?}", p.os)));
        }
        if !KNOWN_ARCH.contains(&p.architecture.as_str()) {
            return Err(err(&format!("unknown architecture {:?}", p.architecture)));
        }
        p.os_version = os_version;
        Ok(p)
    }

    /// The platform this binary runs on: Linux and the compile-time architecture.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// containerd's normalised identity: `arm64` drops `v8`, `amd64` drops `v1`, so that
    /// spellings of one platform compare equal.
    pub fn normalized(&self) -> Platform {
        let mut p = self.clone();
        let drop = matches!(
            (p.architecture.as_str(), p.variant.as_deref()),
            ("arm64", Some("v8")) | ("amd64", Some("v1"))
        );
        if drop {
            p.variant = None;
        }
        p
    }

    /// True when both are the same platform after normalisation.
    pub fn same_as(&self, other: &Platform) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }

    /// The variant, or `""`.
    pub fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }

    /// The machine name `uname -m` prints for this architecture on Linux (`x86_64`, `aarch64`,
    /// `armv7l`, ...), as a RUN step sees it under emulation. `None` when unknown.
    pub fn machine(&self) -> Option<&'static str> {
        Some(match self.architecture.as_str() {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "arm" => match self.variant_str() {
                "v5" => "armv5tel",
                "v6" => "armv6l",
                _ => "armv7l",
            },
            "386" => "i686",
            "ppc64le" => "ppc64le",
            "ppc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64le" => "mips64",
            "mips64" => "mips64",
            "loong64" => "loongarch64",
            _ => return None,
        })
    }

    /// The qemu-user name of this architecture (`qemu-<name>`, binfmt handler `qemu-<name>`):
    /// `aarch64`, `arm`, `x86_64`, `ppc64le`, ... `None` when qemu has none.
    pub fn qemu_arch(&self) -> Option<&'static str> {
        Some(match self.architecture.as_str() {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "arm" => "arm",
            "386" => "i386",
            "ppc64le" => "ppc64le",
            "ppc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64le" => "mips64el",
            "mips64" => "mips64",
            "loong64" => "loongarch64",
            _ => return None,
        })
    }

    /// Parses a comma-separated list (the `--platform` flag), keeping order and collapsing
    /// duplicates after normalisation (the first spelling wins).
    pub fn parse_list<'a>(
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Platform>, PlatformError> {
        let mut out: Vec<Platform> = Vec::new();
        for spec in specs {
            for one in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let p = if one == "local" {
                    Platform::host()
                } else {
                    Platform::parse(one)?
                };
                if !out.iter().any(|q| q.same_as(&p)) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.os)?;
        if let Some(v) = &self.os_version {
            write!(f, "({v})")?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// The variants a wanted platform can run, best first (containerd's `Only` matcher: arm v8 runs
/// v8..v5, arm v7 runs v7..v5, amd64 v3 runs v3, v2 and v1).
fn compatible_variants(p: &Platform) -> Vec<String> {
    let v = p.normalized().variant.unwrap_or_default();
    let ladder = |prefix: &str, top: u32, bottom: u32, empty_bottom: bool| -> Vec<String> {
        (bottom..=top)
            .rev()
            .map(|n| {
                if empty_bottom && n == bottom {
                    String::new()
                } else {
                    format!("{prefix}{n}")
                }
            })
            .collect()
    };
    match p.architecture.as_str() {
        "arm" => match v.as_str() {
            "v8" => ladder("v", 8, 5, false),
            "v7" => ladder("v", 7, 5, false),
            "v6" => ladder("v", 6, 5, false),
            other => vec![other.to_string()],
        },
        "amd64" => match v.as_str() {
            "v4" => ladder("v", 4, 1, true),
            "v3" => ladder("v", 3, 1, true),
            "v2" => ladder("v", 2, 1, true),
            other => vec![other.to_string()],
        },
        _ => vec![v],
    }
}

/// Picks the best entry of `available` for `wanted`: an exact match after normalisation first,
/// then the closest older variant the wanted one can run. Among equals, the first in order wins
/// (as registries list them). Returns the index into `available`.
pub fn best_match(wanted: &Platform, available: &[Platform]) -> Option<usize> {
    let w = wanted.normalized();
    for v in compatible_variants(wanted) {
        let found = available.iter().position(|a| {
            let a = a.normalized();
            a.os == w.os && a.architecture == w.architecture && a.variant.unwrap_or_default() == v
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn normalisation_table() {
        let cases = [
            ("linux/amd64", "linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64/v8", "linux/arm64"),
            ("linux/arm64", "linux/arm64", "linux/arm64"),
            ("linux/armhf", "linux/arm/v7", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7", "linux/arm/v7"),
            ("linux/arm/v5", "linux/arm/v5", "linux/arm/v5"),
            ("linux/i386", "linux/386", "linux/386"),
            ("LINUX/AMD64", "linux/amd64", "linux/amd64"),
            ("linux/ppc64le", "linux/ppc64le", "linux/ppc64le"),
            ("linux/s390x", "linux/s390x", "linux/s390x"),
            ("linux/riscv64", "linux/riscv64", "linux/riscv64"),
            ("aarch64", "linux/arm64", "linux/arm64"),
            (
                "windows(10.0.17763)/amd64",
                "windows(10.0.17763)/amd64",
                "windows(10.0.17763)/amd64",
            ),
        ];
        for (input, recorded, normal) in cases {
            let got = p(input);
            assert_eq!(got.to_string(), recorded, "recorded form of {input}");
            assert_eq!(
                got.normalized().to_string(),
                normal,
                "normal form of {input}"
            );
            assert_eq!(p(&got.to_string()), got, "round trip of {input}");
        }
    }

    #[test]
    fn rejects_bad_platforms() {
        for bad in [
            "",
            "linux/",
            "linux/amd64/v8/x",
            "linux/sparc99",
            "plan10/amd64",
            "a b",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_collapses_duplicates_after_normalisation() {
        let l =
            Platform::parse_list(["linux/arm64/v8,linux/amd64", "linux/aarch64", "linux/arm64"])
                .unwrap();
        let s: Vec<String> = l.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["linux/arm64/v8", "linux/amd64"]);
    }

    #[test]
    fn matching_follows_containerd() {
        let idx = [p("linux/amd64"), p("linux/arm64/v8"), p("linux/arm/v6")];
        assert_eq!(best_match(&p("linux/arm64"), &idx), Some(1));
        assert_eq!(best_match(&p("linux/aarch64"), &idx), Some(1));
        assert_eq!(best_match(&p("linux/arm/v7"), &idx), Some(2));
        assert_eq!(best_match(&p("linux/arm/v5"), &idx), None);
        assert_eq!(best_match(&p("linux/amd64/v3"), &idx), Some(0));
        assert_eq!(best_match(&p("linux/s390x"), &idx), None);
        let idx2 = [p("linux/arm/v5"), p("linux/arm/v7"), p("linux/arm/v6")];
        assert_eq!(best_match(&p("linux/arm/v7"), &idx2), Some(1));
        assert_eq!(best_match(&p("linux/arm/v6"), &idx2), Some(2));
        let plain = [p("linux/arm64")];
        assert_eq!(best_match(&p("linux/arm64/v8"), &plain), Some(0));
    }

    #[test]
    fn descriptor_json_shape() {
        let j = serde_json::to_string(&p("linux/arm64/v8")).unwrap();
        assert_eq!(j, r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#);
        assert_eq!(
            serde_json::to_string(&p("linux/amd64")).unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
    }
}
