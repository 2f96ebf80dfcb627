//! Parsing: platform specifiers as containerd's `platforms.Parse` reads them
//! (`os[(os.version)]/architecture[/variant]`, an architecture alone, an OS alone), checked
//! against the known names, and `--platform` lists (`local`, `all`, duplicates collapsed).
//!
//! Level 0: pure. Aliases and known names come from `normalize.rs` (it must not keep a list of
//! its own); errors are [`PlatformError`]s naming the string and the reason.

use std::str::FromStr;

use super::normalize::{normalize_os, refusal, with_suggestion, KNOWN_ARCH, KNOWN_OS};
use super::{Platform, PlatformError};

/// containerd's `specifierRe`: `^[A-Za-z0-9_.-]+$`.
fn valid_component(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Characters of an OS option (version or feature) in containerd's `osRe`: `[A-Za-z0-9_.%-]`.
fn valid_os_option(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
}

/// containerd's `osRe`, `^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$`:
/// returns the OS name, the raw version and the raw `+feature` list.
fn split_os(part: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = match part.find('(') {
        Some(i) => (&part[..i], Some(&part[i + 1..])),
        None => (part, None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return None;
    }
    let Some(rest) = rest else {
        return Some((name, "", ""));
    };
    let inner = rest.strip_suffix(')')?;
    let (version, features) = match inner.find('+') {
        Some(i) => (&inner[..i], &inner[i..]),
        None => (inner, ""),
    };
    if !valid_os_option(version) {
        return None;
    }
    if !features.is_empty()
        && !features[1..]
            .split('+')
            .all(|f| !f.is_empty() && valid_os_option(f))
    {
        return None;
    }
    Some((name, version, features))
}

/// containerd `decodeOSOption`: percent-decoding (`url.PathUnescape`) when a `%` is present.
fn decode_os_option(v: &str) -> Result<String, String> {
    if !v.contains('%') {
        return Ok(v.to_string());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| format!("invalid escape {:?} in os version", &v[i..]))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "os version is not UTF-8 after decoding".to_string())
}

/// What a `--platform` list asks for: explicit platforms (de-duplicated) and whether `all` (every
/// platform the base image offers that this host can run) was among them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    /// The explicit platforms in the order given, no two alike after normalisation (`local`
    /// resolved to the host).
    pub platforms: Vec<Platform>,
    /// `all` was given.
    pub all: bool,
}

impl Platform {
    /// Parses a platform specifier as containerd's `platforms.Parse` does:
    /// `os[(version)]/architecture[/variant]`, `architecture` alone (the OS is Linux) or an OS
    /// alone (the host's architecture). `windows(10.0.17763)/amd64` carries an `os.version`
    /// (percent-encoded where it holds `%+()/`). Then polyarch's check: the OS and architecture
    /// must be known. Errors name the string and the reason.
    pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
        let err = |reason: String| PlatformError {
            value: spec.to_string(),
            reason,
        };
        if spec.contains('*') {
            return Err(err("wildcards are not supported".into()));
        }
        let parts: Vec<&str> = spec.splitn(4, '/').collect();
        let Some((os_name, raw_version, features)) = split_os(parts[0]) else {
            return Err(err(format!(
                "{:?} is not an OS component: expected os or os(version)",
                parts[0]
            )));
        };
        if !features.is_empty() {
            return Err(err(format!(
                "os features ({features}) are not supported: polyarch records none"
            )));
        }
        let os_version = decode_os_option(raw_version).map_err(err)?;
        for part in &parts[1..] {
            if !valid_component(part) {
                return Err(err(format!(
                    "{part:?} is not a valid component (letters, digits, `_`, `.`, `-`)"
                )));
            }
        }
        let os = normalize_os(os_name);
        let mut p = match parts.len() {
            1 if KNOWN_OS.contains(&os.as_str()) => Platform {
                os,
                ..Platform::host()
            },
            1 => {
                let q = Platform::new("linux", parts[0], None);
                if !KNOWN_ARCH.contains(&q.architecture.as_str()) {
                    return Err(err(with_suggestion(
                        "unknown operating system or architecture",
                        parts[0],
                    )));
                }
                q
            }
            2 => Platform::new(&os, parts[1], None),
            3 => Platform::new(&os, parts[1], Some(parts[2])),
            _ => {
                return Err(err(
                    "too many parts: expected os/architecture[/variant]".into()
                ))
            }
        };
        if !KNOWN_OS.contains(&p.os.as_str()) {
            return Err(err(format!("unknown operating system {:?}", p.os)));
        }
        if !KNOWN_ARCH.contains(&p.architecture.as_str()) {
            return Err(err(with_suggestion(
                &format!("unknown architecture {:?}", p.architecture),
                &p.architecture,
            )));
        }
        if let Some(reason) = refusal(&p) {
            return Err(err(reason));
        }
        p.os_version = (!os_version.is_empty()).then_some(os_version);
        Ok(p)
    }

    /// Parses a comma-separated, repeatable list (the `--platform` flag): `local` is the host,
    /// `all` sets [`Targets::all`]; duplicates after normalisation collapse to the first
    /// spelling, in order.
    pub fn parse_targets<'a>(
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Targets, PlatformError> {
        let mut out = Targets::default();
        for spec in specs {
            for one in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let p = match one {
                    "local" => Platform::host(),
                    "all" => {
                        out.all = true;
                        continue;
                    }
                    _ => Platform::parse(one)?,
                };
                if !out.platforms.iter().any(|q| q.same_as(&p)) {
                    out.platforms.push(p);
                }
            }
        }
        Ok(out)
    }

    /// [`Platform::parse_targets`] without `all`, which is an error here because it needs a base
    /// image to mean something.
    pub fn parse_list<'a>(
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Platform>, PlatformError> {
        let specs: Vec<&str> = specs.into_iter().collect();
        let t = Platform::parse_targets(specs.iter().copied())?;
        if t.all {
            return Err(PlatformError {
                value: specs.join(","),
                reason: "`all` means the base image's platforms and is not allowed here".into(),
            });
        }
        Ok(t.platforms)
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn os_alone_means_the_host_architecture() {
        let host = Platform::host();
        let l = p("linux");
        assert_eq!(
            (l.os.as_str(), &l.architecture),
            ("linux", &host.architecture)
        );
        let w = p("windows(10.0.20348)");
        assert_eq!(w.os, "windows");
        assert_eq!(w.os_version.as_deref(), Some("10.0.20348"));
        assert_eq!(w.architecture, host.architecture);
        assert_eq!(p("macOS").os, "darwin");
    }

    #[test]
    fn rejects_bad_platforms() {
        for bad in [
            "",
            "/linux/arm",
            "linux/arm/",
            "linux /arm",
            "linux/&arm",
            "linux/arm/foo/bar",
            "linux/*",
            "*",
            "linux/",
            "linux/sparc99",
            "plan10/amd64",
            "a b",
            "notanarch",
            "linux(+gpu)/amd64",
            "windows(10.0.17763+win32k)/amd64",
            "windows(10.0/amd64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = Platform::parse("linux/ppc64el").unwrap_err();
        assert!(e.reason.contains("did you mean linux/ppc64le"), "{e}");
        for v8 in ["linux/arm/v8", "linux/arm/8", "linux/ARM/V8"] {
            let e = Platform::parse(v8).unwrap_err();
            assert!(e.reason.contains("linux/arm64/v8"), "{e}");
            assert!(e.reason.contains("linux/arm/v7"), "{e}");
        }
        let e = Platform::parse("linux/armv8l").unwrap_err();
        assert!(e.reason.contains("did you mean linux/arm/v7"), "{e}");
        let e = Platform::parse("loongarch64").unwrap_err();
        assert!(e.reason.contains("linux/loong64"), "{e}");
    }

    #[test]
    fn targets_collapse_duplicates_after_normalisation() {
        let l = Platform::parse_list([
            "linux/arm64/v8,linux/amd64",
            "linux/aarch64",
            "linux/arm64",
            "linux/amd64/v1, linux/x86_64",
            "linux/armhf,linux/arm/v7,linux/arm,linux/arm/7",
        ])
        .unwrap();
        let s: Vec<String> = l.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["linux/arm64/v8", "linux/amd64", "linux/arm/v7"]);

        let t = Platform::parse_targets(["local,all", "linux/s390x", "local"]).unwrap();
        assert!(t.all);
        assert_eq!(t.platforms, vec![Platform::host(), p("linux/s390x")]);
        assert!(Platform::parse_list(["all"]).is_err());
        assert!(Platform::parse_list(["linux/amd64,bogus/x"]).is_err());
    }
}
