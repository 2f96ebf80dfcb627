//! Platforms: `os[(os.version)]/architecture[/variant]`, parsed, normalised, formatted and
//! matched exactly the way containerd's `platforms` package does it (github.com/containerd/platforms:
//! `platforms.go` `Parse`/`Normalize`/`FormatAll`, `database.go` `normalizeOS`/`normalizeArch`/
//! `isKnownOS`/`isKnownArch`, `compare.go` `platformVector`/`Only`, `platform_windows_compat.go`).
//!
//! Level 0: pure. Two spellings matter:
//! - the *recorded* form, what [`Platform::parse`] returns (containerd's `Parse`): aliases
//!   resolved (`aarch64` → `arm64`, `armel` → `arm/v6`), numeric variants spelled `vN`, but a
//!   variant the user wrote is kept (`linux/arm64/v8` → variant `v8`) and one that is merely
//!   implied is not, except for 32-bit ARM: `linux/arm` and `linux/armhf` record `arm/v7`, as
//!   BuildKit and Docker's official images do. This is what the image config and the index
//!   descriptor carry.
//! - the *normalised* form, [`Platform::normalized`] (containerd's `Normalize`): the identity used
//!   for matching, de-duplication and the automatic `TARGET*` build args, where `linux/arm64/v8`,
//!   `linux/arm64` and `linux/aarch64` are one platform without a variant and `linux/arm` is
//!   `linux/arm/v7` (as in BuildKit).
//!
//! Deliberate differences from containerd, each for a builder's sake:
//! - containerd accepts any `os/arch` pair of valid characters; polyarch also requires the OS and
//!   the architecture to be in containerd's own lists of known values, so a typo fails at once.
//! - `linux/arm/v8` (and `arm/8`) is refused with a suggestion (`linux/arm64/v8`, or
//!   `linux/arm/v7` for 32-bit code): no image publishes it and nothing emulates it as such.
//! - `os.features` (`linux(+gpu)/amd64`) parse in containerd; polyarch rejects them because it
//!   records no features.
//! - [`best_match`] (base image resolution) never crosses architectures: containerd's `Only` lets
//!   `amd64` use a `386` image and `arm64` an `arm` one, but an image built on such a base would
//!   claim one architecture while holding another's binaries. [`only_match`] is the exact rule.
//!
//! Where each part lives: `normalize.rs` the name tables (known OS and architecture names, the
//! alias table, spellings refused with a suggestion) and the two forms; `parse.rs` specifiers and
//! `--platform` lists; `format.rs` the text form; `matching.rs` the matcher, variant fallbacks and
//! index selection, with `windows_compat.rs` for Windows `os.version`s; `host.rs` the host's
//! platform; `machine.rs` the `uname -m` and qemu names. This file holds the value, its error and
//! the tests that cross those parts (round trips); it must not grow logic of its own.

use serde::{Deserialize, Serialize};

mod format;
mod host;
mod machine;
mod matching;
mod normalize;
mod parse;
mod windows_compat;

pub use matching::{best_match, only_match, platform_vector};
pub use parse::Targets;

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
    /// The variant, or `""`.
    pub fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
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
        ("linux/arm", "linux/arm/v7", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/6", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/5", "linux/arm/v5", "linux/arm/v5"),
        ("linux/armhf/v7", "linux/arm/v7", "linux/arm/v7"),
        ("linux/armhf/v6", "linux/arm/v7", "linux/arm/v7"),
        ("linux/armel/v7", "linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5", "linux/arm/v5"),
        ("linux/i386/v2", "linux/386", "linux/386"),
        ("linux/x86_64/v3", "linux/amd64/v3", "linux/amd64/v3"),
        ("linux/arm64/v9", "linux/arm64/v9", "linux/arm64/v9"),
        ("linux/mips64", "linux/mips64", "linux/mips64"),
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
        ("arm", "linux/arm/v7", "linux/arm/v7"),
        ("armhf", "linux/arm/v7", "linux/arm/v7"),
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
}
