//! Platforms: `os[(os.version)]/architecture[/variant]`, parsed, normalised, formatted and
//! matched exactly the way containerd's `platforms` package does it (github.com/containerd/platforms:
//! `platforms.go` `Parse`/`Normalize`/`FormatAll`, `database.go` `normalizeOS`/`normalizeArch`/
//! `isKnownOS`/`isKnownArch`, `compare.go` `platformVector`/`Only`, `platform_windows_compat.go`).
//!
//! Level 0: pure. Two spellings matter:
//! - the *recorded* form, what [`Platform::parse`] returns (containerd's `Parse`): aliases
//!   resolved (`aarch64` → `arm64`, `armel` → `arm/v6`), numeric variants spelled `vN`, but a
//!   variant the user wrote is kept (`linux/arm64/v8` → variant `v8`) and one that is merely
//!   implied is not (`linux/armhf` → `linux/arm`). This is what the image config and the index
//!   descriptor carry.
//! - the *normalised* form, [`Platform::normalized`] (containerd's `Normalize`): the identity used
//!   for matching, de-duplication and the automatic `TARGET*` build args, where `linux/arm64/v8`,
//!   `linux/arm64` and `linux/aarch64` are one platform without a variant and `linux/arm` is
//!   `linux/arm/v7` (as in BuildKit).
//!
//! Deliberate differences from containerd, each for a builder's sake:
//! - containerd accepts any `os/arch` pair of valid characters; polyarch also requires the OS and
//!   the architecture to be in containerd's own lists of known values, so a typo fails at once.
//! - `os.features` (`linux(+gpu)/amd64`) parse in containerd; polyarch rejects them because it
//!   records no features.
//! - [`best_match`] (base image resolution) never crosses architectures: containerd's `Only` lets
//!   `amd64` use a `386` image and `arm64` an `arm` one, but an image built on such a base would
//!   claim one architecture while holding another's binaries. [`only_match`] is the exact rule.

use serde::{Deserialize, Serialize};

mod format;
mod host;
mod normalize;
mod parse;
mod windows_compat;

pub use parse::Targets;
use windows_compat::{windows_compatible, WindowsVersion};

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

impl Platform {
    /// containerd's `NewMatcher(self).Match(candidate)`: OS, architecture and variant equal after
    /// normalising both; for Windows, the candidate's `os.version` must be one a host of this
    /// version can run (an empty version on either side matches any).
    pub fn matches(&self, candidate: &Platform) -> bool {
        let (m, c) = (self.normalized(), candidate.normalized());
        if m.os != c.os || m.architecture != c.architecture || m.variant != c.variant {
            return false;
        }
        if self.os != "windows" {
            return true;
        }
        let host = WindowsVersion::parse(self.os_version.as_deref().unwrap_or(""));
        match candidate.os_version.as_deref() {
            None | Some("") => true,
            Some(_) if host.is_empty() => true,
            Some(v) => windows_compatible(host, WindowsVersion::parse(v)),
        }
    }

    /// The variant, or `""`.
    pub fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }

    /// The machine name `uname -m` prints for this architecture on Linux (`x86_64`, `aarch64`,
    /// `armv7l`, ...), as a RUN step sees it under emulation. `None` when unknown.
    pub fn machine(&self) -> Option<&'static str> {
        let n = self.normalized();
        Some(match n.architecture.as_str() {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            "arm" => match n.variant_str() {
                "v5" => "armv5tel",
                "v6" => "armv6l",
                "v8" => "armv8l",
                _ => "armv7l",
            },
            "386" => "i686",
            "ppc64le" => "ppc64le",
            "ppc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64le" | "mips64" => "mips64",
            "loong64" => "loongarch64",
            _ => return None,
        })
    }

    /// The qemu-user name of this architecture (`qemu-<name>`, binfmt handler `qemu-<name>`):
    /// `aarch64`, `arm`, `x86_64`, `ppc64le`, ... `None` when qemu has none.
    pub fn qemu_arch(&self) -> Option<&'static str> {
        Some(match self.normalized().architecture.as_str() {
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
}

/// arm64 variants and the (major, newest minor) versions each can run, newest first
/// (containerd `arm64variantToVersion`).
fn arm64_versions(variant: &str) -> Option<&'static [(u32, u32)]> {
    Some(match variant {
        "v8" | "v8.0" => &[(8, 0)],
        "v8.1" => &[(8, 1)],
        "v8.2" => &[(8, 2)],
        "v8.3" => &[(8, 3)],
        "v8.4" => &[(8, 4)],
        "v8.5" => &[(8, 5)],
        "v8.6" => &[(8, 6)],
        "v8.7" => &[(8, 7)],
        "v8.8" => &[(8, 8)],
        "v8.9" => &[(8, 9)],
        "v9" | "v9.0" => &[(9, 0), (8, 5)],
        "v9.1" => &[(9, 1), (8, 6)],
        "v9.2" => &[(9, 2), (8, 7)],
        "v9.3" => &[(9, 3), (8, 8)],
        "v9.4" => &[(9, 4), (8, 9)],
        "v9.5" => &[(9, 5), (8, 9)],
        "v9.6" => &[(9, 6), (8, 9)],
        "v9.7" => &[(9, 7), (8, 9)],
        _ => return None,
    })
}

fn numeric_variant(v: &str) -> Option<u32> {
    v.strip_prefix('v').unwrap_or(v).parse().ok()
}

/// containerd `platformVector(Normalize(p))`: the platforms `p` can run, best first.
/// `amd64/vN` runs `v(N-1)` .. `v1`, then `386`; `arm/vN` runs down to `v5`; `arm64/v9.x` runs
/// `v9.x..v9`, then `v8.(x+5)..v8`; any arm64 runs `arm/v8..v5`; other architectures only
/// themselves. An arm64 variant containerd does not know runs nothing.
pub fn platform_vector(p: &Platform) -> Vec<Platform> {
    let p = p.normalized();
    let with = |arch: &str, variant: Option<String>| Platform {
        architecture: arch.into(),
        os: p.os.clone(),
        os_version: p.os_version.clone(),
        variant,
    };
    let mut vector = vec![p.clone()];
    match p.architecture.as_str() {
        "amd64" => {
            if let Some(n) = numeric_variant(p.variant_str()).filter(|n| *n > 1) {
                vector.extend((1..n).rev().map(|k| with("amd64", Some(format!("v{k}")))));
            }
            vector.push(with("386", None));
        }
        "arm" => {
            if let Some(n) = numeric_variant(p.variant_str()).filter(|n| *n > 5) {
                vector.extend((5..n).rev().map(|k| with("arm", Some(format!("v{k}")))));
            }
        }
        "arm64" => {
            let variant = match p.variant_str() {
                "" => "v8",
                v => v,
            };
            vector.clear();
            if let Some(versions) = arm64_versions(variant) {
                for &(major, newest) in versions {
                    for minor in (0..=newest).rev() {
                        let v = if minor == 0 {
                            format!("v{major}")
                        } else {
                            format!("v{major}.{minor}")
                        };
                        vector.push(with("arm64", Some(v)));
                    }
                }
                let arm = if variant.starts_with("v8") || variant.starts_with("v9") {
                    "v8".to_string()
                } else {
                    variant.to_string()
                };
                vector.extend(platform_vector(&with("arm", Some(arm))));
            }
        }
        _ => {}
    }
    vector
}

/// containerd `Only(wanted)` applied to an index: the entry of `available` matching the earliest
/// platform of [`platform_vector`]`(wanted)`, the first in `available` order among equals.
/// Returns its position.
pub fn only_match(wanted: &Platform, available: &[Platform]) -> Option<usize> {
    pick(platform_vector(wanted), available)
}

/// The base image entry to build `wanted` on: [`only_match`] restricted to `wanted`'s own
/// architecture (arm64 with or without `v8`; `arm/v7` takes `v6`/`v5` only when nothing better
/// exists; `amd64/v3` takes `v2`, `v1`). Returns the position in `available`.
pub fn best_match(wanted: &Platform, available: &[Platform]) -> Option<usize> {
    let arch = wanted.normalized().architecture;
    let vector = platform_vector(wanted)
        .into_iter()
        .filter(|p| p.architecture == arch)
        .collect();
    pick(vector, available)
}

fn pick(vector: Vec<Platform>, available: &[Platform]) -> Option<usize> {
    vector
        .iter()
        .find_map(|m| available.iter().position(|a| m.matches(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn plat(os: &str, arch: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            os_version: None,
            variant: (!variant.is_empty()).then(|| variant.to_string()),
        }
    }

    /// (input, recorded form = parse + format, normalised form).
    const TABLE: &[(&str, &str, &str)] = &[
        ("linux/amd64", "linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64", "linux/amd64"),
        ("Linux/X86_64", "linux/amd64", "linux/amd64"),
        ("LINUX/AMD64", "linux/amd64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64", "linux/amd64"),
        ("linux/amd64/v2", "linux/amd64/v2", "linux/amd64/v2"),
        ("linux/amd64/v3", "linux/amd64/v3", "linux/amd64/v3"),
        ("linux/amd64/V4", "linux/amd64/v4", "linux/amd64/v4"),
        ("linux/arm64", "linux/arm64", "linux/arm64"),
        ("linux/aarch64", "linux/arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/v8.0", "linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64/v8", "linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/v8.2", "linux/arm64/v8.2", "linux/arm64/v8.2"),
        ("linux/arm64/9", "linux/arm64/v9", "linux/arm64/v9"),
        ("linux/arm64/v9.0", "linux/arm64/v9", "linux/arm64/v9"),
        ("linux/arm", "linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/6", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/5", "linux/arm/v5", "linux/arm/v5"),
        ("linux/arm/v8", "linux/arm/v8", "linux/arm/v8"),
        ("linux/armhf/v7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/i386", "linux/386", "linux/386"),
        ("linux/386", "linux/386", "linux/386"),
        ("linux/ppc64le", "linux/ppc64le", "linux/ppc64le"),
        ("linux/s390x", "linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64", "linux/riscv64"),
        ("linux/mips64le", "linux/mips64le", "linux/mips64le"),
        ("linux/loong64", "linux/loong64", "linux/loong64"),
        ("macos/arm64", "darwin/arm64", "darwin/arm64"),
        ("aarch64", "linux/arm64", "linux/arm64"),
        ("Aarch64", "linux/arm64", "linux/arm64"),
        ("x86_64", "linux/amd64", "linux/amd64"),
        ("i386", "linux/386", "linux/386"),
        ("arm", "linux/arm", "linux/arm/v7"),
        ("armhf", "linux/arm", "linux/arm/v7"),
        ("armel", "linux/arm/v6", "linux/arm/v6"),
        ("s390x", "linux/s390x", "linux/s390x"),
        (
            "windows(10.0.17763)/amd64",
            "windows(10.0.17763)/amd64",
            "windows(10.0.17763)/amd64",
        ),
        (
            "windows(10.0.17763%2Bbuild.42)/amd64",
            "windows(10.0.17763%2Bbuild.42)/amd64",
            "windows(10.0.17763%2Bbuild.42)/amd64",
        ),
        (
            "windows(50%25done)/x86_64",
            "windows(50%25done)/amd64",
            "windows(50%25done)/amd64",
        ),
        ("windows()/amd64", "windows/amd64", "windows/amd64"),
    ];

    #[test]
    fn normalisation_table_and_round_trips() {
        for &(input, recorded, normal) in TABLE {
            let got = p(input);
            assert_eq!(got.to_string(), recorded, "recorded form of {input}");
            assert_eq!(
                got.normalized().to_string(),
                normal,
                "normal form of {input}"
            );
            // Round trips: format → parse gives the same value, for both forms; normalising is
            // idempotent; the normal form is the same platform as the input.
            assert_eq!(p(&got.to_string()), got, "round trip of {input}");
            let n = got.normalized();
            assert_eq!(p(&n.to_string()), n, "round trip of normal form of {input}");
            assert_eq!(n.normalized(), n, "normalising {input} twice");
            assert!(got.same_as(&n) && n.same_as(&got), "{input}");
            assert!(got.matches(&n) && n.matches(&got), "{input}");
            // The JSON shape round-trips too.
            let j = serde_json::to_string(&got).unwrap();
            assert_eq!(serde_json::from_str::<Platform>(&j).unwrap(), got, "{j}");
        }
    }

    #[test]
    fn build_arg_parts_come_from_the_normalised_form() {
        for (input, arch, variant) in [
            ("linux/arm64/v8", "arm64", ""),
            ("linux/aarch64", "arm64", ""),
            ("linux/arm", "arm", "v7"),
            ("linux/armhf", "arm", "v7"),
            ("linux/armel", "arm", "v6"),
            ("linux/amd64/v1", "amd64", ""),
            ("linux/amd64/v3", "amd64", "v3"),
        ] {
            let n = p(input).normalized();
            assert_eq!((n.architecture.as_str(), n.variant_str()), (arch, variant));
        }
    }

    #[test]
    fn descriptor_json_shape_keeps_the_spelled_variant() {
        let j = serde_json::to_string(&p("linux/arm64/v8")).unwrap();
        assert_eq!(j, r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#);
        assert_eq!(
            serde_json::to_string(&p("linux/arm64")).unwrap(),
            r#"{"architecture":"arm64","os":"linux"}"#
        );
        assert_eq!(
            serde_json::to_string(&p("linux/arm/v7")).unwrap(),
            r#"{"architecture":"arm","os":"linux","variant":"v7"}"#
        );
    }

    #[test]
    fn vectors_are_containerds() {
        let v = |s: &str| -> Vec<String> {
            platform_vector(&p(s))
                .iter()
                .map(|x| x.to_string())
                .collect()
        };
        assert_eq!(v("linux/amd64"), ["linux/amd64", "linux/386"]);
        assert_eq!(
            v("linux/amd64/v3"),
            [
                "linux/amd64/v3",
                "linux/amd64/v2",
                "linux/amd64/v1",
                "linux/386"
            ]
        );
        assert_eq!(
            v("linux/arm/v7"),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(
            v("linux/arm"),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(v("linux/arm/v5"), ["linux/arm/v5"]);
        let arm64 = [
            "linux/arm64/v8",
            "linux/arm/v8",
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm/v5",
        ];
        assert_eq!(v("linux/arm64"), arm64);
        assert_eq!(v("linux/arm64/v8"), arm64);
        assert_eq!(
            v("linux/arm64/v8.2")[..3],
            ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64/v8"]
        );
        let v9 = v("linux/arm64/v9");
        assert_eq!(
            v9[..7],
            [
                "linux/arm64/v9",
                "linux/arm64/v8.5",
                "linux/arm64/v8.4",
                "linux/arm64/v8.3",
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64/v8"
            ]
        );
        assert_eq!(v9[7], "linux/arm/v8");
        assert!(v("linux/arm64/v10").is_empty());
        assert_eq!(v("linux/s390x"), ["linux/s390x"]);
    }

    #[test]
    fn matching_with_and_without_variants() {
        // An index that records variants (Docker official images) ...
        let with = [
            p("linux/amd64"),
            p("linux/arm/v5"),
            p("linux/arm/v7"),
            p("linux/arm64/v8"),
            p("linux/386"),
            p("linux/ppc64le"),
        ];
        // ... and one that does not.
        let without = [plat("linux", "amd64", ""), plat("linux", "arm64", "")];
        for (wanted, in_with, in_without) in [
            ("linux/arm64", Some(3), Some(1)),
            ("linux/arm64/v8", Some(3), Some(1)),
            ("linux/aarch64", Some(3), Some(1)),
            ("linux/arm64/8", Some(3), Some(1)),
            ("linux/amd64", Some(0), Some(0)),
            ("linux/amd64/v1", Some(0), Some(0)),
            ("linux/amd64/v3", Some(0), Some(0)),
            ("linux/x86_64", Some(0), Some(0)),
            ("linux/arm/v7", Some(2), None),
            ("linux/arm", Some(2), None),
            ("linux/armhf", Some(2), None),
            ("linux/arm/v6", Some(1), None),
            ("linux/armel", Some(1), None),
            ("linux/386", Some(4), None),
            ("linux/s390x", None, None),
            ("linux/arm64/v9", Some(3), Some(1)),
        ] {
            assert_eq!(best_match(&p(wanted), &with), in_with, "{wanted} in with");
            assert_eq!(
                best_match(&p(wanted), &without),
                in_without,
                "{wanted} in without"
            );
        }
        // An arm64/v8 descriptor with a spelled variant matches a plain arm64 entry and back.
        assert!(p("linux/arm64").matches(&plat("linux", "arm64", "v8")));
        assert!(p("linux/arm64/v8").matches(&plat("linux", "aarch64", "")));
        assert!(!p("linux/arm64").matches(&plat("linux", "arm64", "v8.2")));
        assert!(!p("linux/arm/v7").matches(&plat("linux", "arm", "v6")));
        assert!(p("linux/arm/v7").matches(&plat("linux", "arm", "")));
    }

    #[test]
    fn arm_prefers_the_best_older_variant_only_when_nothing_better_exists() {
        let idx = [p("linux/arm/v5"), p("linux/arm/v6"), p("linux/arm/v7")];
        assert_eq!(best_match(&p("linux/arm/v7"), &idx), Some(2));
        assert_eq!(best_match(&p("linux/arm/v6"), &idx), Some(1));
        assert_eq!(best_match(&p("linux/arm/v8"), &idx), Some(2));
        let older = [p("linux/arm/v5"), p("linux/arm/v6")];
        assert_eq!(best_match(&p("linux/arm/v7"), &older), Some(1));
        assert_eq!(best_match(&p("linux/arm/v5"), &[p("linux/arm/v6")]), None);
        // The first entry wins among equals, as the registry lists them.
        let twice = [plat("linux", "arm", "v7"), plat("linux", "arm", "")];
        assert_eq!(best_match(&p("linux/arm"), &twice), Some(0));
    }

    #[test]
    fn amd64_micro_architecture_levels() {
        let idx = [p("linux/amd64/v2"), p("linux/amd64")];
        assert_eq!(best_match(&p("linux/amd64/v4"), &idx), Some(0));
        assert_eq!(best_match(&p("linux/amd64/v3"), &idx), Some(0));
        assert_eq!(best_match(&p("linux/amd64/v2"), &idx), Some(0));
        assert_eq!(best_match(&p("linux/amd64"), &idx), Some(1));
        assert_eq!(best_match(&p("linux/amd64"), &[p("linux/amd64/v2")]), None);
        let v3 = [p("linux/amd64/v3"), p("linux/amd64/v1")];
        assert_eq!(best_match(&p("linux/amd64/v2"), &v3), Some(1));
    }

    #[test]
    fn only_match_crosses_architectures_best_match_does_not() {
        let arm_only = [p("linux/arm/v7")];
        assert_eq!(only_match(&p("linux/arm64"), &arm_only), Some(0));
        assert_eq!(best_match(&p("linux/arm64"), &arm_only), None);
        let i386 = [p("linux/386")];
        assert_eq!(only_match(&p("linux/amd64"), &i386), Some(0));
        assert_eq!(best_match(&p("linux/amd64"), &i386), None);
        // Same architecture first even when the other one comes first in the index.
        let both = [p("linux/386"), p("linux/amd64")];
        assert_eq!(only_match(&p("linux/amd64"), &both), Some(1));
    }

    #[test]
    fn windows_versions_match_as_containerd() {
        let host = |v: &str| p(&format!("windows({v})/amd64"));
        let img = |v: &str| Platform {
            os_version: Some(v.into()),
            ..plat("windows", "amd64", "")
        };
        // Before ltsc2022: the build must be equal (revision ignored).
        assert!(host("10.0.17763").matches(&img("10.0.17763.1234")));
        assert!(!host("10.0.17763").matches(&img("10.0.17134.1")));
        // ltsc2022 hosts run ltsc2022 images; 2025 runs 2022..2025; 11 (22621) runs 2022.
        assert!(host("10.0.20348").matches(&img("10.0.20348.1")));
        assert!(!host("10.0.20348").matches(&img("10.0.17763.1")));
        assert!(host("10.0.26100").matches(&img("10.0.20348.1")));
        assert!(!host("10.0.26100").matches(&img("10.0.26200.1")));
        assert!(host("10.0.22621").matches(&img("10.0.20348.1")));
        assert!(!host("10.0.22621").matches(&img("10.0.26100.1")));
        // Different major.minor never; an empty version on either side always.
        assert!(!host("6.3.20348").matches(&img("10.0.20348.1")));
        assert!(p("windows/amd64").matches(&img("10.0.17763.1")));
        assert!(host("10.0.17763").matches(&plat("windows", "amd64", "")));
        // The version takes part in picking the image.
        let idx = [img("10.0.17763.5"), img("10.0.20348.7")];
        assert_eq!(best_match(&host("10.0.20348"), &idx), Some(1));
        assert_eq!(best_match(&host("10.0.17763"), &idx), Some(0));
    }

    #[test]
    fn machine_and_qemu_names() {
        for (input, machine, qemu) in [
            ("linux/amd64", "x86_64", "x86_64"),
            ("linux/arm64/v8", "aarch64", "aarch64"),
            ("linux/arm", "armv7l", "arm"),
            ("linux/arm/v7", "armv7l", "arm"),
            ("linux/armel", "armv6l", "arm"),
            ("linux/ppc64le", "ppc64le", "ppc64le"),
            ("linux/s390x", "s390x", "s390x"),
            ("linux/386", "i686", "i386"),
            ("linux/mips64le", "mips64", "mips64el"),
            ("linux/loong64", "loongarch64", "loongarch64"),
        ] {
            assert_eq!(p(input).machine(), Some(machine), "{input}");
            assert_eq!(p(input).qemu_arch(), Some(qemu), "{input}");
        }
        assert_eq!(p("linux/wasm").qemu_arch(), None);
    }
}
