//! Formatting: a platform as text, containerd's `FormatAll`:
//! `os[(os.version)]/architecture[/variant]`, the `os.version` percent-encoded (`encodeOSOption`)
//! so that `parse` reads it back.
//!
//! Level 0: pure. It writes what it is given (recorded or normalised form) and must not
//! normalise: the caller picks the form.

use std::fmt;

use super::Platform;

/// containerd `encodeOSOption`: `%`, `+`, `(`, `)` and `/` percent-encoded.
fn encode_os_option(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// containerd `FormatAll`: `os[(version)]/architecture[/variant]` with the version encoded.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.os)?;
        if let Some(v) = self.os_version.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "({})", encode_os_option(v))?;
        }
        write!(f, "/{}", self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
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
    fn windows_os_version_fields() {
        let w = p("windows(10.0.17763%2Bbuild.42)/amd64");
        assert_eq!(w.os_version.as_deref(), Some("10.0.17763+build.42"));
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"architecture": "amd64", "os": "windows",
                               "os.version": "10.0.17763+build.42"})
        );
        let odd = Platform {
            os_version: Some("1.0(beta)/a".into()),
            ..plat("windows", "amd64", "")
        };
        assert_eq!(odd.to_string(), "windows(1.0%28beta%29%2Fa)/amd64");
        assert_eq!(p(&odd.to_string()), odd);
        assert!(Platform::parse("windows(10%zz)/amd64").is_err());
    }
}
