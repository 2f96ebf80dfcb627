//! Applying one config-only instruction to an image config: ENV, WORKDIR, USER, LABEL,
//! EXPOSE, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL, VOLUME, ONBUILD, MAINTAINER.
//!
//! The lowest room of the coordinator: plain values in, plain values out. No I/O, no async,
//! and nothing about stages, steps being run or platforms.

use std::collections::BTreeMap;

use crate::oci::{self, ImageConfig};
use crate::plan::StepKind;

/// Gives the config the default `PATH` (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:
/// /sbin:/bin`, [`crate::plan::DEFAULT_PATH`]) when its environment sets none, at the end of
/// `Env`, as BuildKit does for every stage it dispatches ("make sure that PATH is always set",
/// dockerfile2llb): a `FROM scratch` stage and a base image without `PATH` get it; any other
/// config is left as it is.
pub(super) fn ensure_path(config: &mut ImageConfig) {
    let env = config.config.env.get_or_insert_with(Vec::new);
    if !env
        .iter()
        .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH")
    {
        env.push(format!("PATH={}", crate::plan::DEFAULT_PATH));
    }
}

/// Applies a config-only step to the image config (Dockerfile reference: ENV, WORKDIR, USER,
/// LABEL, EXPOSE, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, STOPSIGNAL, VOLUME, ONBUILD,
/// MAINTAINER).
pub(super) fn apply_config(config: &mut ImageConfig, kind: &StepKind) {
    if let StepKind::Maintainer(m) = kind {
        // BuildKit sets the author; the issue asks for a `maintainer` label too.
        config.author = Some(m.clone());
        config
            .config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("maintainer".into(), m.clone());
        return;
    }
    let c = &mut config.config;
    match kind {
        StepKind::Env(pairs) => {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
                {
                    Some(slot) => *slot = entry,
                    None => env.push(entry),
                }
            }
        }
        StepKind::Workdir { path, .. } => c.working_dir = Some(path.clone()),
        StepKind::User(u) => c.user = Some(u.clone()),
        StepKind::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(k.clone(), v.clone());
            }
        }
        StepKind::Expose(ports) => {
            let map = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                map.insert(p.clone(), oci::EmptyObject {});
            }
        }
        StepKind::Cmd(argv) => c.cmd = Some(argv.clone()),
        StepKind::Entrypoint { argv, clears_cmd } => {
            c.entrypoint = Some(argv.clone());
            // Dockerfile reference: "If CMD is defined from the base image, setting ENTRYPOINT
            // will reset CMD to an empty value."
            if *clears_cmd {
                c.cmd = None;
            }
        }
        StepKind::Shell(shell) => c.shell = Some(shell.clone()),
        StepKind::Healthcheck(h) => {
            c.healthcheck = Some(oci::HealthConfig {
                test: h.test.clone(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                start_interval: h.start_interval,
                retries: h.retries,
            })
        }
        StepKind::StopSignal(sig) => c.stop_signal = Some(sig.clone()),
        StepKind::Volume(vols) => {
            let map = c.volumes.get_or_insert_with(BTreeMap::new);
            for v in vols {
                map.insert(v.clone(), oci::EmptyObject {});
            }
        }
        StepKind::Onbuild(trigger) => c
            .on_build
            .get_or_insert_with(Vec::new)
            .push(trigger.clone()),
        _ => {}
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn default_path_only_where_none_is_set() {
        let mut scratch = ImageConfig::default();
        ensure_path(&mut scratch);
        assert_eq!(
            scratch.config.env,
            Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()
            ])
        );
        let mut no_path = ImageConfig::default();
        no_path.config.env = Some(vec!["LANG=C.UTF-8".into()]);
        ensure_path(&mut no_path);
        let env = no_path.config.env.unwrap();
        assert_eq!(env.len(), 2);
        assert_eq!(env[0], "LANG=C.UTF-8");
        assert!(env[1].starts_with("PATH=/usr/local/sbin:"));
        let mut own = ImageConfig::default();
        own.config.env = Some(vec!["PATH=/opt/bin".into()]);
        ensure_path(&mut own);
        assert_eq!(own.config.env, Some(vec!["PATH=/opt/bin".to_string()]));
    }
}
