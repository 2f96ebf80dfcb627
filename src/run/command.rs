//! What runs in an image: its config's entrypoint, command, environment, working directory
//! and user turned into a [`RunSpec`], as `docker run` does (the entrypoint, then the
//! arguments given or else the image's `CMD`).
//!
//! Level 3 (under `run/`), pure but for [`set_platform`]'s lookup of the qemu binary a step's
//! own binfmt_misc instance uses (once per process and architecture; the host's native
//! architectures are a constant).
//! Shared with the build's `--smoke-test` and `RUN` steps ([`set_platform`]).

use crate::executor::{NetworkMode, OwnHandler, QemuCpu, RunSpec};
use crate::oci::ImageConfig;

/// The command `config`'s image runs with `args` (empty: its `CMD`), after its `ENTRYPOINT`
/// unless `replace_entrypoint`. `None` when that leaves nothing to run.
pub fn image_command(
    config: &ImageConfig,
    args: &[String],
    replace_entrypoint: bool,
) -> Option<RunSpec> {
    let c = &config.config;
    let mut argv: Vec<String> = if replace_entrypoint {
        Vec::new()
    } else {
        c.entrypoint.clone().unwrap_or_default()
    };
    if args.is_empty() {
        argv.extend(c.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(args.iter().cloned());
    }
    if argv.is_empty() {
        return None;
    }
    Some(RunSpec {
        argv,
        env: c.env.clone().unwrap_or_default(),
        cwd: c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: c.user.clone().filter(|u| !u.is_empty()),
        mounts: Vec::new(),
        // As a RUN step's default (and `docker run`'s): a network of its own with outbound
        // access, the executor's shared namespace.
        network: NetworkMode::Private,
        netns: None,
        seccomp: None,
        insecure: false,
        settings: Default::default(),
        linux32: false,
        qemu_cpu: None,
        emulated: false,
    })
}

/// Sets what a command of `platform` runs with on this host (issue 16): the `PER_LINUX32`
/// personality for 32-bit platforms (`linux/386`, `linux/arm/*`), and the qemu CPU model of an
/// emulated platform (`arm926` for `linux/arm/v5`; `None` natively, where nothing reads it) with
/// the handler of the step's own binfmt_misc instance that applies it ([`QemuCpu`]), and
/// whether it is emulated at all ([`RunSpec::emulated`]).
pub fn set_platform(run: &mut RunSpec, platform: &crate::platform::Platform) {
    run.linux32 = platform.linux32();
    let native = crate::emulation::native_architectures();
    let emulated = !(platform.os == "linux" && native.contains(&platform.architecture.as_str()));
    run.qemu_cpu = platform
        .qemu_cpu()
        .filter(|_| emulated)
        .map(|model| QemuCpu {
            model: model.to_string(),
            handler: crate::emulation::handler_for(platform).and_then(|h| {
                Some(OwnHandler {
                    name: h.name.clone(),
                    magic: h.magic.clone(),
                    mask: h.mask.clone(),
                    qemu: crate::emulation::own_instance_qemu(h)?,
                })
            }),
        });
    run.emulated = emulated;
}

/// A `--smoke-test` command: a JSON array of strings is run as is (exec form), anything else
/// with `/bin/sh -c` (shell form), as a Dockerfile `RUN` reads them.
pub fn shell_or_exec(command: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(command) {
        Ok(argv) if !argv.is_empty() => argv,
        _ => vec!["/bin/sh".into(), "-c".into(), command.into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_settings_of_32_bit_and_emulated_platforms() {
        use crate::platform::Platform;
        let set = |p: &str| {
            let mut r = RunSpec::default();
            set_platform(&mut r, &Platform::parse(p).unwrap());
            (r.linux32, r.qemu_cpu.map(|c| c.model))
        };
        assert!(set("linux/386").0);
        assert!(!set("linux/arm64").0);
        if crate::emulation::native_architectures() == ["amd64", "386"] {
            assert_eq!(set("linux/arm/v5"), (true, Some("arm926".into())));
            assert_eq!(set("linux/armhf"), (true, Some("cortex-a8".into())));
            assert_eq!(set("linux/amd64"), (false, None));
            assert_eq!(set("linux/386"), (true, None));
            let emulated = |p: &str| {
                let mut r = RunSpec::default();
                set_platform(&mut r, &Platform::parse(p).unwrap());
                r.emulated
            };
            assert!(emulated("linux/arm64") && emulated("linux/arm/v7"));
            assert!(!emulated("linux/amd64") && !emulated("linux/386"));
        }
    }

    #[test]
    fn entrypoint_then_arguments_or_cmd() {
        let mut config = ImageConfig::default();
        config.config.entrypoint = Some(vec!["/init".into()]);
        config.config.cmd = Some(vec!["serve".into()]);
        config.config.working_dir = Some("/app".into());
        let s = image_command(&config, &[], false).unwrap();
        assert_eq!(s.argv, ["/init", "serve"]);
        assert_eq!(s.cwd, "/app");
        let s = image_command(&config, &["uname".into(), "-m".into()], false).unwrap();
        assert_eq!(s.argv, ["/init", "uname", "-m"]);
        let s = image_command(&config, &["true".into()], true).unwrap();
        assert_eq!(s.argv, ["true"]);
        assert!(image_command(&ImageConfig::default(), &[], false).is_none());
        assert_eq!(shell_or_exec("echo $A"), ["/bin/sh", "-c", "echo $A"]);
        assert_eq!(
            shell_or_exec(r#"["/app", "--version"]"#),
            ["/app", "--version"]
        );
    }
}
