//! The names a platform goes by outside OCI: the machine name the kernel reports (`uname -m`)
//! and qemu-user's name of the architecture (its `qemu-<name>` binary and binfmt_misc handler).
//! Both read the normalised form, so every alias gives the same answer.
//!
//! Level 0: pure. It names things only; whether a handler exists or runs is `crate::emulation`'s
//! business. Accepted spellings and aliases belong in `normalize.rs`, not here.

use super::Platform;

impl Platform {
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

    /// The qemu-user CPU model a step of this platform runs with (`QEMU_CPU`, `qemu-arm -cpu`):
    /// the oldest CPU that has what the platform promises, so an instruction its boards lack
    /// traps under emulation as it would on the board. `arm/v5` → `arm926` (ARMv5TEJ, Debian's
    /// `armel` baseline), `arm/v6` → `arm1176` (ARMv6KZ, the Raspberry Pi 1), `arm/v7` →
    /// `cortex-a8` (ARMv7-A with VFPv3 and NEON, no integer divide: Debian's `armhf` baseline).
    /// `None`: qemu's default model (the other architectures have one ISA level per platform
    /// here). qemu reports these as `uname -m` `armv5tel`, `armv6l`, `armv7l` (linux-user
    /// `cpu_to_uname_machine`).
    pub fn qemu_cpu(&self) -> Option<&'static str> {
        let n = self.normalized();
        match (n.architecture.as_str(), n.variant_str()) {
            ("arm", "v5") => Some("arm926"),
            ("arm", "v6") => Some("arm1176"),
            ("arm", "v7") => Some("cortex-a8"),
            _ => None,
        }
    }

    /// True for the 32-bit platforms a 64-bit kernel runs with the `PER_LINUX32` personality,
    /// so `uname -m` names the 32-bit machine (`i686`, `armv7l`) as the board would
    /// (personality(2)): `386` and `arm`.
    pub fn linux32(&self) -> bool {
        matches!(self.normalized().architecture.as_str(), "386" | "arm")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
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
        for (input, cpu, machine) in [
            ("linux/arm/v5", Some("arm926"), "armv5tel"),
            ("linux/arm/v6", Some("arm1176"), "armv6l"),
            ("linux/armel", Some("arm1176"), "armv6l"),
            ("linux/arm/v7", Some("cortex-a8"), "armv7l"),
            ("linux/armhf", Some("cortex-a8"), "armv7l"),
            ("linux/arm64/v8", None, "aarch64"),
            ("linux/riscv64", None, "riscv64"),
        ] {
            assert_eq!(p(input).qemu_cpu(), cpu, "{input}");
            assert_eq!(p(input).machine(), Some(machine), "{input}");
        }
        assert!(p("linux/386").linux32() && p("linux/arm/v5").linux32());
        assert!(!p("linux/amd64").linux32() && !p("linux/arm64").linux32());
    }
}
