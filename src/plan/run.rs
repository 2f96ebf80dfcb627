//! RUN step resolution (BuildKit `dispatchRun`, `runCommandString`): the argv through the
//! stage's shell (heredoc scripts included), the `--mount`s and `--network`, the environment
//! the command sees, and the history string.
//!
//! Level 0: pure, no I/O. Mount flags are read by `mounts.rs`, the environment rules are
//! `scope.rs`'s.

use std::collections::BTreeMap;

use super::entitlements::parse_security;
use super::heredoc::heredoc_body;
use super::mounts::{parse_mount, parse_network};
use super::scope::StageState;
use super::step::{Network, RunMount, Security, StepKind};
use crate::dockerfile::{
    heredoc_name, Dockerfile, DockerfileError, ErrorKind, Heredoc, Instruction, InstructionKind,
    ShellOrExec,
};

/// Resolves a RUN instruction `ins` of stage `stage_index`; `before` gives the variables as they
/// were before it, `build_args` the `--build-arg` values (for the predefined proxy ARGs).
/// Returns the history string and the step.
///
/// Errors: an empty exec-form command, a bad `--mount`, `--network` or `--security`.
pub(super) fn run_step(
    df: &Dockerfile,
    st: &StageState,
    before: &dyn Fn(&str) -> Option<String>,
    ins: &Instruction,
    stage_index: usize,
    build_args: &BTreeMap<String, String>,
) -> Result<(String, StepKind), DockerfileError> {
    let InstructionKind::Run {
        command,
        heredocs,
        mounts,
        network,
        security,
    } = &ins.kind
    else {
        unreachable!("run_step resolves RUN instructions only")
    };
    let (argv, extra) = run_argv(st, command, heredocs);
    if argv.is_empty() {
        return Err(df.error_at(
            ins.span,
            3,
            ErrorKind::Arguments {
                instruction: "RUN".into(),
                message: "requires a command: the JSON array is empty".into(),
            },
        ));
    }
    let mut run_mounts = Vec::with_capacity(mounts.len() + 1);
    for m in mounts {
        run_mounts.push(parse_mount(df, m, stage_index, &st.workdir, before)?);
    }
    run_mounts.extend(extra);
    let ssh_sock = ssh_targets(&mut run_mounts);
    let network = match network {
        Some(w) => parse_network(df, w)?,
        None => Network::Default,
    };
    let security = match security {
        Some(w) => parse_security(df, w)?,
        None => Security::Sandbox,
    };
    let mut env = st.run_env(build_args);
    if let Some(sock) = ssh_sock {
        // BuildKit `llb.AddSSHSocket`: the first agent socket is the step's SSH_AUTH_SOCK.
        env.retain(|e| !e.starts_with("SSH_AUTH_SOCK="));
        env.push(format!("SSH_AUTH_SOCK={sock}"));
    }
    Ok((
        run_history(st, &argv),
        StepKind::Run {
            argv,
            env,
            workdir: st.workdir.clone(),
            user: st.user.clone(),
            mounts: run_mounts,
            network,
            security,
        },
    ))
}

/// BuildKit `runCommandString`: `RUN |N K=V ... argv # buildkit`, with the stage's ARGs (their
/// values as the command sees them; unset ARGs show as `K=`), then the argv.
fn run_history(st: &StageState, argv: &[String]) -> String {
    let mut history: Vec<String> = st
        .args
        .iter()
        .map(|(k, v)| {
            let v = st.lookup(k).or_else(|| v.clone()).unwrap_or_default();
            format!("{k}={v}")
        })
        .collect();
    if !history.is_empty() {
        history.insert(0, format!("|{}", history.len()));
    }
    history.extend(argv.iter().cloned());
    format!("RUN {} # buildkit", history.join(" "))
}

/// The argv of a RUN and the files it needs (BuildKit `dispatchRun`): a command that is just one
/// heredoc runs the body (a `#!` body as a file under `/dev/pipes/`), any other heredoc use gives
/// the shell the command with the bodies appended.
fn run_argv(
    st: &StageState,
    command: &ShellOrExec,
    heredocs: &[Heredoc],
) -> (Vec<String>, Vec<RunMount>) {
    let ShellOrExec::Shell(cmd) = command else {
        return (st.argv(command), Vec::new());
    };
    let Some(first) = heredocs.first() else {
        return (st.argv(command), Vec::new());
    };
    if heredoc_name(cmd.trim()).is_some() {
        let data = heredoc_body(first);
        if data.starts_with("#!") {
            let target = format!("/dev/pipes/{}", first.name);
            let argv = st.argv(&ShellOrExec::Shell(target.clone()));
            return (
                argv,
                vec![RunMount::File {
                    target,
                    content: data,
                    mode: 0o755,
                }],
            );
        }
        return (st.argv(&ShellOrExec::Shell(data)), Vec::new());
    }
    let mut full = cmd.clone();
    for d in heredocs {
        full.push('\n');
        full.push_str(&d.content);
        full.push_str(&d.name);
    }
    (st.argv(&ShellOrExec::Shell(full)), Vec::new())
}

/// Fills in the default target of each `type=ssh` mount, `/run/buildkit/ssh_agent.N` (N
/// counting the step's ssh mounts from 0, as BuildKit's `llb` does); returns the first one's.
fn ssh_targets(mounts: &mut [RunMount]) -> Option<String> {
    let mut first = None;
    let mut n = 0;
    for m in mounts.iter_mut() {
        if let RunMount::Ssh { target, .. } = m {
            if target.is_empty() {
                *target = format!("/run/buildkit/ssh_agent.{n}");
            }
            n += 1;
            first.get_or_insert_with(|| target.clone());
        }
    }
    first
}
