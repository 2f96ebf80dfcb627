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
    }
}
