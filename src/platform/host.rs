//! The host's platform: what this binary runs on, from the architecture it was compiled for.
//!
//! Level 0: pure (compile-time constants only). It says what the CPU is, not what it can run:
//! that is decided by running probes (`crate::emulation`).

use super::Platform;

impl Platform {
    /// The platform this binary runs on: Linux and the compile-time architecture (containerd
    /// `DefaultSpec`; an arm host is taken as v7, containerd's unnamed default).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            other => other,
        };
        Platform::new("linux", arch, None)
    }
}
