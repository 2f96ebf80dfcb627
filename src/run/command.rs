//! What runs in an image: its config's entrypoint, command, environment, working directory
//! and user turned into a [`RunSpec`], as `docker run` does (the entrypoint, then the
//! arguments given or else the image's `CMD`).
//!
//! Level 3 (under `run/`), pure: no I/O. Shared with the build's `--smoke-test`.

use crate::executor::{NetworkMode, RunSpec};
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
    })
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
