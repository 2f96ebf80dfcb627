//! Matching: can an image built for one platform serve another, and which entry of an index to
//! take (containerd `compare.go`: the matcher, `platformVector`, `Only`). Variant fallbacks live
//! here: `arm/v7` runs v6 and v5, `amd64/v3` runs v2 and v1, arm64 `v9.x` runs `v8.(x+5)`.
//!
//! Level 0: pure. It compares normalised platforms ([`Platform::normalized`]) and must not keep
//! aliases of its own; Windows `os.version` rules are in `windows_compat.rs`.

use super::windows_compat::{windows_compatible, WindowsVersion};
use super::Platform;

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

/// The number of a `vN` (or bare `N`) variant.
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

/// The position in `available` of the first entry matching the earliest platform of `vector`.
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
        assert_eq!(best_match(&plat("linux", "arm", "v8"), &idx), Some(2));
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
}
