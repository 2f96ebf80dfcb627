//! The image-config instructions (ENV, LABEL, WORKDIR, USER, EXPOSE, CMD, ENTRYPOINT, SHELL,
//! HEALTHCHECK, STOPSIGNAL, VOLUME, ONBUILD, MAINTAINER): each expanded, checked as Docker and
//! BuildKit check it (port specs, signal names, empty values), applied to the stage's state
//! where later instructions see it (env, working directory, user, shell), and given BuildKit's
//! history string.
//!
//! Each function takes the variables as they were before the instruction (`before`: every word
//! of one instruction sees them so, as BuildKit expands a whole command first) and returns the
//! history string with the step.
//!
//! Level 0: pure, no I/O. Semantics follow BuildKit's `dockerfile2llb/convert.go`
//! (`dispatchEnv`, `dispatchWorkdir`, `dispatchExpose`, `dispatchEntrypoint`, ...).

use std::collections::HashSet;

use super::expand::{expand, expansion_error, invalid};
use super::gofmt::{go_duration, go_quote_list};
use super::paths::normalize_path;
use super::scope::StageState;
use super::step::{Healthcheck, StepKind};
use crate::dockerfile::shell::expand_words;
use crate::dockerfile::{
    Dockerfile, DockerfileError, HealthcheckSpec, KeyValue, ShellOrExec, Word,
};

/// The `KEY=VALUE` pairs of ENV or LABEL, expanded; an empty key is an error.
fn expand_pairs(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    pairs: &[KeyValue],
) -> Result<Vec<(String, String)>, DockerfileError> {
    let mut out = Vec::with_capacity(pairs.len());
    for kv in pairs {
        let key = expand(df, &kv.key, before)?;
        if key.is_empty() {
            return Err(invalid(df, &kv.key, "name", &key, "empty after expansion"));
        }
        out.push((key, expand(df, &kv.value, before)?));
    }
    Ok(out)
}

/// `ENV`: sets the variables in the image env, visible to the instructions after it.
pub(super) fn env(
    df: &Dockerfile,
    st: &mut StageState,
    before: &dyn Fn(&str) -> Option<String>,
    pairs: &[KeyValue],
) -> Result<(String, StepKind), DockerfileError> {
    let out = expand_pairs(df, before, pairs)?;
    let text: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (k, v) in &out {
        st.set_env(k.clone(), v.clone());
    }
    Ok((format!("ENV {}", text.join(" ")), StepKind::Env(out)))
}

/// `LABEL`: adds labels.
pub(super) fn label(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    pairs: &[KeyValue],
) -> Result<(String, StepKind), DockerfileError> {
    let out = expand_pairs(df, before, pairs)?;
    let text: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok((format!("LABEL {}", text.join(" ")), StepKind::Label(out)))
}

/// `WORKDIR`: the new working directory, relative to the current one.
pub(super) fn workdir(
    df: &Dockerfile,
    st: &mut StageState,
    before: &dyn Fn(&str) -> Option<String>,
    w: &Word,
) -> Result<(String, StepKind), DockerfileError> {
    let p = expand(df, w, before)?;
    if p.is_empty() {
        return Err(invalid(df, w, "WORKDIR", &p, "empty after expansion"));
    }
    st.workdir = normalize_path(&st.workdir, &p, false);
    Ok((
        format!("WORKDIR {}", st.workdir),
        StepKind::Workdir {
            path: st.workdir.clone(),
            user: st.user.clone(),
        },
    ))
}

/// `USER`.
pub(super) fn user(
    df: &Dockerfile,
    st: &mut StageState,
    before: &dyn Fn(&str) -> Option<String>,
    w: &Word,
) -> Result<(String, StepKind), DockerfileError> {
    let u = expand(df, w, before)?;
    if u.is_empty() {
        return Err(invalid(df, w, "USER", &u, "empty after expansion"));
    }
    st.user = Some(u.clone());
    Ok((format!("USER {u}"), StepKind::User(u)))
}

/// `EXPOSE`: every word may expand to several items, each a port or a range; ports are kept
/// once, in order.
pub(super) fn expose(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    words: &[Word],
) -> Result<(String, StepKind), DockerfileError> {
    let mut ports: Vec<String> = Vec::new();
    // Ranges can name thousands of ports: membership through a set.
    let mut seen = HashSet::new();
    for w in words {
        let items =
            expand_words(&w.text, df.escape, before).map_err(|e| expansion_error(df, w, e))?;
        for item in items {
            let list = expose_ports(&item)
                .map_err(|reason| invalid(df, w, "EXPOSE port", &item, &reason))?;
            for p in list {
                if seen.insert(p.clone()) {
                    ports.push(p);
                }
            }
        }
    }
    // BuildKit records `fmt.Sprintf("EXPOSE %v", portMap)`: Go prints a map
    // with sorted keys as `map[k:{} ...]`.
    let mut sorted = ports.clone();
    sorted.sort();
    let text: Vec<String> = sorted.iter().map(|p| format!("{p}:{{}}")).collect();
    Ok((
        format!("EXPOSE map[{}]", text.join(" ")),
        StepKind::Expose(ports),
    ))
}

/// `CMD`.
pub(super) fn cmd(st: &mut StageState, c: &ShellOrExec) -> (String, StepKind) {
    let argv = st.argv(c);
    st.cmd_set = true;
    (format!("CMD {}", go_quote_list(&argv)), StepKind::Cmd(argv))
}

/// `ENTRYPOINT`: clears the inherited CMD unless a CMD came earlier in the stage.
pub(super) fn entrypoint(st: &StageState, c: &ShellOrExec) -> (String, StepKind) {
    let argv = st.argv(c);
    (
        format!("ENTRYPOINT {}", go_quote_list(&argv)),
        StepKind::Entrypoint {
            argv,
            clears_cmd: !st.cmd_set,
        },
    )
}

/// `SHELL`: the shell for later shell-form commands.
pub(super) fn shell(st: &mut StageState, shell: &[String]) -> (String, StepKind) {
    st.shell = shell.to_vec();
    (
        format!("SHELL [{}]", shell.join(" ")),
        StepKind::Shell(shell.to_vec()),
    )
}

/// `HEALTHCHECK`: `NONE` (no spec) or the test command with its options.
pub(super) fn healthcheck(spec: Option<&HealthcheckSpec>) -> (String, StepKind) {
    let hc = match spec {
        None => Healthcheck {
            test: vec!["NONE".into()],
            interval: 0,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        },
        Some(s) => Healthcheck {
            test: match &s.command {
                ShellOrExec::Exec(v) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(v.iter().cloned());
                    t
                }
                ShellOrExec::Shell(c) => vec!["CMD-SHELL".into(), c.clone()],
            },
            interval: s.interval,
            timeout: s.timeout,
            start_period: s.start_period,
            start_interval: s.start_interval,
            retries: s.retries,
        },
    };
    // BuildKit: `fmt.Sprintf("HEALTHCHECK %+v", config)`.
    let text = format!(
        "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        hc.test.join(" "),
        go_duration(hc.interval),
        go_duration(hc.timeout),
        go_duration(hc.start_period),
        go_duration(hc.start_interval),
        hc.retries
    );
    (text, StepKind::Healthcheck(hc))
}

/// `STOPSIGNAL`: a signal number or a name Linux knows.
pub(super) fn stop_signal(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    w: &Word,
) -> Result<(String, StepKind), DockerfileError> {
    let sig = expand(df, w, before)?;
    if let Err(reason) = check_signal(&sig) {
        return Err(invalid(df, w, "STOPSIGNAL", &sig, &reason));
    }
    Ok((format!("STOPSIGNAL {sig}"), StepKind::StopSignal(sig)))
}

/// `VOLUME`: no volume may be blank.
pub(super) fn volume(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    words: &[Word],
) -> Result<(String, StepKind), DockerfileError> {
    let mut vols = Vec::with_capacity(words.len());
    for w in words {
        let v = expand(df, w, before)?;
        if v.trim().is_empty() {
            return Err(invalid(
                df,
                w,
                "VOLUME",
                &v,
                "a volume can not be an empty string",
            ));
        }
        vols.push(v);
    }
    Ok((
        format!("VOLUME [{}]", vols.join(" ")),
        StepKind::Volume(vols),
    ))
}

/// `ONBUILD`: the trigger as written.
pub(super) fn onbuild(expression: &str) -> (String, StepKind) {
    (
        format!("ONBUILD {expression}"),
        StepKind::Onbuild(expression.to_string()),
    )
}

/// `MAINTAINER`: not expanded (BuildKit's MaintainerCommand has no Expand).
pub(super) fn maintainer(w: &Word) -> (String, StepKind) {
    let m = w.text.clone();
    (format!("MAINTAINER {m}"), StepKind::Maintainer(m))
}

/// Parses one EXPOSE item `port[-port][/proto]` into `port/proto` entries (docker
/// `nat.ParsePortSpecs`; ranges are expanded as BuildKit does).
pub(crate) fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    if spec.contains(':') {
        return Err("EXPOSE does not publish ports: write port[/protocol]".into());
    }
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("unknown protocol {proto:?}: use tcp, udp or sctp"));
    }
    let num = |s: &str| -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n),
            _ => Err(format!("{s:?} is not a port number between 1 and 65535")),
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(ports)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} ends before it starts"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Signal names Linux knows (moby `signal.SignalMap`), without the `SIG` prefix.
const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// moby `signal.ParseSignal`: a positive number, or a known name with or without `SIG`, or
/// `RTMIN+n` / `RTMAX-n`.
fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<i64>() {
        return if n > 0 {
            Ok(())
        } else {
            Err("invalid signal: a signal number is positive".into())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) {
        return Ok(());
    }
    let rt = |prefix: &str, limit: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=limit).contains(&n))
    };
    if rt("RTMIN+", 15) || rt("RTMAX-", 14) {
        return Ok(());
    }
    Err(format!("invalid signal: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "sigusr1"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "-1", "SIGFOO", "RTMIN+99", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
