//! Windows version compatibility: which container `os.version`s a Windows host of a given
//! version runs (containerd `platform_windows_compat.go`), for [`Platform::matches`].
//!
//! Level 0: pure. It compares version numbers only; OS, architecture and variant are the
//! matcher's business (`matching.rs`).
//!
//! [`Platform::matches`]: super::Platform::matches

/// A Windows `major.minor.build` version (containerd `windowsOSVersion`); all zero when the text
/// has fewer than three parts or does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct WindowsVersion {
    major: u8,
    minor: u8,
    build: u16,
}

impl WindowsVersion {
    /// containerd `getWindowsOSVersion`.
    pub(super) fn parse(v: &str) -> WindowsVersion {
        let mut it = v.split('.');
        let (Some(a), Some(b), Some(c)) = (it.next(), it.next(), it.next()) else {
            return WindowsVersion::default();
        };
        match (a.parse(), b.parse(), c.parse()) {
            (Ok(major), Ok(minor), Ok(build)) => WindowsVersion {
                major,
                minor,
                build,
            },
            _ => WindowsVersion::default(),
        }
    }

    /// True when all three parts are zero (no version, or one that does not parse).
    pub(super) fn is_empty(&self) -> bool {
        *self == WindowsVersion::default()
    }
}

/// Windows Server 2022 (ltsc2022) and 2025 (ltsc2025) builds: the stable-ABI releases
/// (containerd `compatLTSCReleases`, ascending).
const WINDOWS_LTSC: &[u16] = &[20348, 26100];

/// containerd `checkWindowsHostAndContainerCompat`: same major.minor; before ltsc2022 the build
/// must be equal; from it on, a host runs containers from the latest LTSC before it up to itself.
pub(super) fn windows_compatible(host: WindowsVersion, ctr: WindowsVersion) -> bool {
    if host.major != ctr.major || host.minor != ctr.minor {
        return false;
    }
    if host.build < WINDOWS_LTSC[0] {
        return host.build == ctr.build;
    }
    let supported = WINDOWS_LTSC
        .iter()
        .rev()
        .find(|&&l| host.build > l)
        .copied()
        .unwrap_or(WINDOWS_LTSC[0]);
    supported <= ctr.build && ctr.build <= host.build
}
