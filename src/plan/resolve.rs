//! Phase 2: the walk through one stage's instructions with its starting config.

use std::cell::Cell;
use std::rc::Rc;

use crate::dockerfile::shell::{expand_heredoc, expand_words};
use crate::dockerfile::{
    heredoc_name, parse_trigger, Dockerfile, DockerfileError, ErrorKind, Heredoc, Instruction,
    InstructionKind, ShellOrExec, Span, Word,
};

use super::chmod::SymbolicMode;
use super::config::expose_ports;
use super::expand::{expand, expansion_error, invalid};
use super::from::resolve_from;
use super::gofmt::go_quote_list;
use super::graph::Selection;
use super::mounts::{parse_mount, parse_network};
use super::paths::normalize_path;
use super::request::{BaseConfig, PlanRequest, DEFAULT_PATH, DEFAULT_SHELL, PREDEFINED_ARGS};
use super::scope::{get_var, set_var};
use super::select::select;
use super::step::{
    CopyFrom, CopyStep, Healthcheck, InlineFile, Network, Plan, RunMount, Step, StepKind,
};

/// The per-stage state while walking the instructions.
struct StageState {
    /// The image config env, in order.
    env: Vec<(String, String)>,
    /// ARGs declared in the stage, in declaration order.
    args: Vec<(String, Option<String>)>,
    workdir: String,
    user: Option<String>,
    shell: Vec<String>,
    cmd_set: bool,
    /// The base image's environment is not known (see [`super::check_graph`]).
    env_unknown: bool,
    /// Set when a lookup asked for a variable that only the unknown environment could set.
    touched_unknown: Rc<Cell<bool>>,
}

impl StageState {
    /// Variables for expansion: ENV wins over ARG (Dockerfile reference, "Using ARG
    /// variables").
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        // Without the base image, anything not set by an ENV of this stage might come from
        // the image's environment (which wins over ARG).
        if self.env_unknown {
            self.touched_unknown.set(true);
        }
        get_var(&self.args, name)
    }

    fn set_env(&mut self, key: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
    }

    /// The argv for a command: shell form through the stage's shell, exec form as written.
    fn argv(&self, c: &ShellOrExec) -> Vec<String> {
        match c {
            ShellOrExec::Shell(s) => {
                let mut v = self.shell.clone();
                v.push(s.clone());
                v
            }
            ShellOrExec::Exec(v) => v.clone(),
        }
    }
}

/// Go's `parser.ChompHeredocContent`: leading tabs removed from every line.
fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Phase 1 and 2 of the target stage in one call, for callers that already have its starting
/// config.
pub fn plan(
    df: &Dockerfile,
    req: &PlanRequest,
    base: &BaseConfig,
) -> Result<Plan, DockerfileError> {
    select(df, req)?.resolve(df, base)
}

/// Where a step of a trigger points: the stage's FROM line.
struct TriggerInfo<'a> {
    span: Span,
    text: &'a str,
}

impl Selection {
    /// Phase 2: walks the stage with its starting config (the base image's, or the config an
    /// earlier stage ended with, see [`Selection::config_after`]) and produces the steps. The
    /// base's ONBUILD triggers run first.
    ///
    /// Errors (each pointing at the word): a word that fails to expand, an empty WORKDIR, USER
    /// or COPY source after expansion, a bad EXPOSE port, `--chmod` mode, `--mount`,
    /// `--network`, `--checksum` or STOPSIGNAL; an ONBUILD trigger that does not parse.
    pub fn resolve(&self, df: &Dockerfile, base: &BaseConfig) -> Result<Plan, DockerfileError> {
        let stage = &df.stages[self.stage_index];
        let mut st = StageState {
            env: Vec::new(),
            args: Vec::new(),
            workdir: base
                .working_dir
                .as_deref()
                .filter(|w| !w.is_empty())
                .map_or_else(|| "/".to_string(), |w| normalize_path("/", w, false)),
            user: base.user.clone().filter(|u| !u.is_empty()),
            shell: base
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()),
            cmd_set: false,
            env_unknown: base.env_unknown,
            touched_unknown: Rc::new(Cell::new(false)),
        };
        for entry in &base.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            st.set_env(k.to_string(), v.to_string());
        }
        if !st.env.iter().any(|(k, _)| k == "PATH") {
            st.env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        let initial_env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();

        let mut steps = Vec::with_capacity(stage.instructions.len() + base.on_build.len());
        // ONBUILD triggers of the base run first, as if written right after FROM (BuildKit
        // `initOnBuildTriggers`); errors in them point at the FROM line.
        for trigger in &base.on_build {
            let from_span = stage.span;
            let fail = |reason: String| {
                df.error_at(
                    from_span,
                    stage.source.chars().count(),
                    ErrorKind::Trigger {
                        trigger: trigger.clone(),
                        reason,
                    },
                )
            };
            let ins = parse_trigger(trigger, "ONBUILD").map_err(|e| fail(e.kind.to_string()))?;
            let info = TriggerInfo {
                span: from_span,
                text: trigger,
            };
            let step = self
                .step(df, &mut st, &ins, Some(&info))
                .map_err(|e| fail(e.kind.to_string()))?;
            steps.push(step);
        }
        for ins in &stage.instructions {
            st.touched_unknown.set(false);
            match self.step(df, &mut st, ins, None) {
                Ok(step) => steps.push(step),
                // Checking without the base image: a word that uses a variable the image might
                // set cannot be judged yet.
                Err(_) if st.env_unknown && st.touched_unknown.get() => {}
                Err(e) => return Err(e),
            }
        }

        Ok(Plan {
            stage_index: self.stage_index,
            stage_name: self.stage_name.clone(),
            base: self.base.clone(),
            platform: self.platform.clone(),
            initial_env,
            steps,
            warnings: self.warnings.clone(),
        })
    }

    /// Resolves one instruction. `trigger` is set for ONBUILD triggers of the base, whose words
    /// are not in the Dockerfile (errors are then reported against the trigger text).
    fn step(
        &self,
        df: &Dockerfile,
        st: &mut StageState,
        ins: &Instruction,
        trigger: Option<&TriggerInfo<'_>>,
    ) -> Result<Step, DockerfileError> {
        // A trigger's words are expanded and checked against a Dockerfile made of the trigger
        // text, so that error positions make sense in it.
        let trigger_df;
        let df = match trigger {
            Some(t) => {
                trigger_df =
                    crate::dockerfile::parse(&format!("FROM scratch\n{}", t.text), "ONBUILD")
                        .unwrap_or_else(|_| df.clone());
                &trigger_df
            }
            None => df,
        };
        let build_args = &self.request.build_args;
        // Every word of one instruction sees the variables as they were before it
        // (`ENV a=1 b=$a` gives b the old a), as BuildKit expands a whole command first.
        let snapshot = StageState {
            env: st.env.clone(),
            args: st.args.clone(),
            workdir: st.workdir.clone(),
            user: st.user.clone(),
            shell: st.shell.clone(),
            cmd_set: st.cmd_set,
            env_unknown: st.env_unknown,
            touched_unknown: st.touched_unknown.clone(),
        };
        let before = |n: &str| snapshot.lookup(n);
        let (created_by, kind) = match &ins.kind {
            InstructionKind::Arg(decls) => {
                let mut resolved = Vec::with_capacity(decls.len());
                for d in decls {
                    let value = if let Some(v) = build_args.get(&d.name) {
                        Some(v.clone())
                    } else if let Some(default) = &d.default {
                        let word = Word {
                            text: default.clone(),
                            span: d.span,
                        };
                        Some(expand(df, &word, &before)?)
                    } else {
                        // `ARG NAME` alone takes the global value (a global ARG or an
                        // automatic platform ARG), if there is one.
                        get_var(&self.meta, &d.name)
                    };
                    resolved.push((d.name.clone(), value));
                }
                for (k, v) in &resolved {
                    set_var(&mut st.args, k, v.clone());
                }
                let text: Vec<String> = resolved
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect();
                (format!("ARG {}", text.join(" ")), StepKind::Arg(resolved))
            }
            InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => {
                let is_env = matches!(ins.kind, InstructionKind::Env(_));
                let mut out = Vec::with_capacity(pairs.len());
                for kv in pairs {
                    let key = expand(df, &kv.key, &before)?;
                    if key.is_empty() {
                        return Err(invalid(df, &kv.key, "name", &key, "empty after expansion"));
                    }
                    out.push((key, expand(df, &kv.value, &before)?));
                }
                let text: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if is_env {
                    for (k, v) in &out {
                        st.set_env(k.clone(), v.clone());
                    }
                    (format!("ENV {}", text.join(" ")), StepKind::Env(out))
                } else {
                    (format!("LABEL {}", text.join(" ")), StepKind::Label(out))
                }
            }
            InstructionKind::Workdir(w) => {
                let p = expand(df, w, &before)?;
                if p.is_empty() {
                    return Err(invalid(df, w, "WORKDIR", &p, "empty after expansion"));
                }
                st.workdir = normalize_path(&st.workdir, &p, false);
                (
                    format!("WORKDIR {}", st.workdir),
                    StepKind::Workdir {
                        path: st.workdir.clone(),
                        user: st.user.clone(),
                    },
                )
            }
            InstructionKind::User(w) => {
                let u = expand(df, w, &before)?;
                if u.is_empty() {
                    return Err(invalid(df, w, "USER", &u, "empty after expansion"));
                }
                st.user = Some(u.clone());
                (format!("USER {u}"), StepKind::User(u))
            }
            InstructionKind::Expose(words) => {
                let mut ports: Vec<String> = Vec::new();
                // Ranges can name thousands of ports: membership through a set.
                let mut seen = std::collections::HashSet::new();
                for w in words {
                    let items = expand_words(&w.text, df.escape, &before)
                        .map_err(|e| expansion_error(df, w, e))?;
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
                (
                    format!("EXPOSE map[{}]", text.join(" ")),
                    StepKind::Expose(ports),
                )
            }
            InstructionKind::Cmd(c) => {
                let argv = st.argv(c);
                st.cmd_set = true;
                (format!("CMD {}", go_quote_list(&argv)), StepKind::Cmd(argv))
            }
            InstructionKind::Entrypoint(c) => {
                let argv = st.argv(c);
                (
                    format!("ENTRYPOINT {}", go_quote_list(&argv)),
                    StepKind::Entrypoint {
                        argv,
                        clears_cmd: !st.cmd_set,
                    },
                )
            }
            InstructionKind::Shell(shell) => {
                st.shell = shell.clone();
                (
                    format!("SHELL [{}]", shell.join(" ")),
                    StepKind::Shell(shell.clone()),
                )
            }
            InstructionKind::Healthcheck(spec) => {
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
            InstructionKind::StopSignal(w) => {
                let sig = expand(df, w, &before)?;
                if let Err(reason) = check_signal(&sig) {
                    return Err(invalid(df, w, "STOPSIGNAL", &sig, &reason));
                }
                (format!("STOPSIGNAL {sig}"), StepKind::StopSignal(sig))
            }
            InstructionKind::Volume(words) => {
                let mut vols = Vec::with_capacity(words.len());
                for w in words {
                    let v = expand(df, w, &before)?;
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
                (
                    format!("VOLUME [{}]", vols.join(" ")),
                    StepKind::Volume(vols),
                )
            }
            InstructionKind::Onbuild { expression, .. } => (
                format!("ONBUILD {expression}"),
                StepKind::Onbuild(expression.clone()),
            ),
            InstructionKind::Maintainer(w) => {
                // MAINTAINER is not expanded (BuildKit's MaintainerCommand has no Expand).
                let m = w.text.clone();
                (format!("MAINTAINER {m}"), StepKind::Maintainer(m))
            }
            InstructionKind::Run {
                command,
                heredocs,
                mounts,
                network,
            } => {
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
                    run_mounts.push(parse_mount(df, m, self.stage_index, &st.workdir, &before)?);
                }
                run_mounts.extend(extra);
                let network = match network {
                    Some(w) => parse_network(df, w)?,
                    None => Network::Default,
                };
                let mut env: Vec<String> = st.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                for (k, v) in &st.args {
                    if let Some(v) = v {
                        if !st.env.iter().any(|(ek, _)| ek == k) {
                            env.push(format!("{k}={v}"));
                        }
                    }
                }
                for name in PREDEFINED_ARGS {
                    if let Some(v) = build_args.get(*name) {
                        if !st.args.iter().any(|(k, _)| k == name) {
                            env.push(format!("{name}={v}"));
                        }
                    }
                }
                // BuildKit `runCommandString`: `|N K=V ...` for the stage's ARGs, then the
                // argv; unset ARGs show as `K=`.
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
                (
                    format!("RUN {} # buildkit", history.join(" ")),
                    StepKind::Run {
                        argv,
                        env,
                        workdir: st.workdir.clone(),
                        user: st.user.clone(),
                        mounts: run_mounts,
                        network,
                    },
                )
            }
            InstructionKind::Copy {
                from,
                chown,
                chmod,
                link,
                excludes,
                sources,
                dest,
                heredocs,
            } => {
                let from = match from {
                    None => CopyFrom::Context,
                    Some(w) => resolve_from(df, self.stage_index, w, &w.text, "COPY --from")
                        .or_else(|e| {
                            // In a trigger the stage list is the Dockerfile's, not the
                            // trigger's one-stage file: resolve against the real one.
                            if trigger.is_some() {
                                Ok(CopyFrom::Image(w.text.clone()))
                            } else {
                                Err(e)
                            }
                        })?,
                };
                self.copy_step(
                    df,
                    st,
                    &before,
                    CopyArgs {
                        add: false,
                        from,
                        chown: chown.as_ref(),
                        chmod: chmod.as_ref(),
                        link: *link,
                        excludes,
                        sources,
                        dest,
                        heredocs,
                        checksum: None,
                        unpack: None,
                    },
                )?
            }
            InstructionKind::Add {
                chown,
                chmod,
                link,
                checksum,
                unpack,
                excludes,
                sources,
                dest,
                heredocs,
            } => self.copy_step(
                df,
                st,
                &before,
                CopyArgs {
                    add: true,
                    from: CopyFrom::Context,
                    chown: chown.as_ref(),
                    chmod: chmod.as_ref(),
                    link: *link,
                    excludes,
                    sources,
                    dest,
                    heredocs,
                    checksum: checksum.as_ref(),
                    unpack: *unpack,
                },
            )?,
        };
        let span = trigger.map_or(ins.span, |t| t.span);
        Ok(Step {
            span,
            created_by,
            kind,
        })
    }

    fn copy_step(
        &self,
        df: &Dockerfile,
        st: &StageState,
        before: &dyn Fn(&str) -> Option<String>,
        a: CopyArgs<'_>,
    ) -> Result<(String, StepKind), DockerfileError> {
        let keyword = if a.add { "ADD" } else { "COPY" };
        let mut srcs = Vec::with_capacity(a.sources.len());
        let mut inline = Vec::new();
        let mut msg_sources = Vec::new();
        for s in a.sources {
            if !a.heredocs.is_empty() {
                if let Some(name) = heredoc_name(&s.text) {
                    let Some(doc) = a.heredocs.iter().find(|d| d.name == name) else {
                        continue;
                    };
                    let mut content = if doc.chomp {
                        chomp(&doc.content)
                    } else {
                        doc.content.clone()
                    };
                    if doc.expand {
                        content = expand_heredoc(&content, before)
                            .map_err(|e| expansion_error(df, s, e))?;
                    }
                    inline.push(InlineFile {
                        name: name.clone(),
                        content,
                    });
                    continue;
                }
            }
            let v = expand(df, s, before)?;
            if v.is_empty() {
                return Err(invalid(
                    df,
                    s,
                    &format!("{keyword} source"),
                    &v,
                    "empty after expansion",
                ));
            }
            if is_url(&v) {
                if !a.add {
                    return Err(invalid(
                        df,
                        s,
                        "COPY source",
                        &v,
                        "source can't be a URL for COPY (use ADD)",
                    ));
                }
                if a.from != CopyFrom::Context {
                    return Err(invalid(
                        df,
                        s,
                        "source",
                        &v,
                        "a URL cannot be copied from a stage",
                    ));
                }
            } else if a.add && is_git(&v) {
                return Err(df.error_at(
                    s.span,
                    s.text.chars().count(),
                    ErrorKind::Unsupported {
                        what: "ADD from a Git repository".into(),
                        reason: "polyarch fetches only http(s) URLs; clone in a RUN step instead"
                            .into(),
                    },
                ));
            }
            msg_sources.push(v.clone());
            srcs.push(v);
        }
        let raw_dest = expand(df, a.dest, before)?;
        let dest_abs = if raw_dest.is_empty() {
            st.workdir.clone()
        } else {
            normalize_path(&st.workdir, &raw_dest, true)
        };
        let chown = match a.chown {
            Some(w) => Some(expand(df, w, before)?).filter(|s| !s.is_empty()),
            None => None,
        };
        let mut chmod_text = None;
        let mut chmod_symbolic = None;
        let chmod_bits = match a.chmod {
            Some(w) => {
                let text = expand(df, w, before)?;
                // BuildKit: octal up to 07777, else a symbolic mode; text that looks numeric
                // but is not octal is reported as such.
                let bits = match u32::from_str_radix(&text, 8) {
                    Ok(bits) if bits <= 0o7777 => Some(bits),
                    _ if text.starts_with(|c: char| c.is_ascii_digit()) => {
                        return Err(invalid(
                            df,
                            w,
                            "--chmod",
                            &text,
                            "it should be an octal string between 0 and 07777 or a symbolic mode such as u+x",
                        ))
                    }
                    _ => {
                        chmod_symbolic = Some(SymbolicMode::parse(&text).map_err(|reason| {
                            invalid(
                                df,
                                w,
                                "--chmod",
                                &text,
                                &format!("not a symbolic mode: {reason}"),
                            )
                        })?);
                        None
                    }
                };
                chmod_text = Some(text);
                bits
            }
            None => None,
        };
        let checksum = match a.checksum {
            Some(w) => {
                let text = expand(df, w, before)?;
                if srcs.len() != 1 || !inline.is_empty() {
                    return Err(invalid(
                        df,
                        w,
                        "--checksum",
                        &text,
                        "checksum can't be specified for multiple sources",
                    ));
                }
                if !is_url(&srcs[0]) {
                    return Err(invalid(
                        df,
                        w,
                        "--checksum",
                        &text,
                        "checksum requires HTTP(S) sources",
                    ));
                }
                let hex = text.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(invalid(
                        df,
                        w,
                        "--checksum",
                        &text,
                        "expected sha256: followed by 64 lowercase hex digits",
                    ));
                }
                Some(text)
            }
            None => None,
        };
        // BuildKit's commit message: flags --chown/--chmod, the sources, heredocs as `<<NAME`,
        // the destination as written (expanded).
        let mut msg = String::from(keyword);
        if let Some(c) = &chown {
            msg.push_str(&format!(" --chown={c}"));
        }
        if let Some(t) = &chmod_text {
            msg.push_str(&format!(" --chmod={t}"));
        }
        for s in &msg_sources {
            msg.push(' ');
            msg.push_str(s);
        }
        for f in &inline {
            msg.push_str(" <<");
            msg.push_str(&f.name);
        }
        msg.push(' ');
        msg.push_str(&raw_dest);
        msg.push_str(" # buildkit");
        Ok((
            msg,
            StepKind::Copy(CopyStep {
                add: a.add,
                from: a.from,
                sources: srcs,
                inline,
                dest: dest_abs,
                chown,
                chmod: chmod_bits,
                chmod_symbolic,
                link: a.link,
                excludes: a.excludes.iter().map(|w| w.text.clone()).collect(),
                unpack: a.unpack,
                checksum,
            }),
        ))
    }
}

/// The inputs of one COPY/ADD.
struct CopyArgs<'a> {
    add: bool,
    from: CopyFrom,
    chown: Option<&'a Word>,
    chmod: Option<&'a Word>,
    link: bool,
    excludes: &'a [Word],
    sources: &'a [Word],
    dest: &'a Word,
    heredocs: &'a [Heredoc],
    checksum: Option<&'a Word>,
    unpack: Option<bool>,
}

/// True for an ADD source BuildKit fetches over HTTP: `http://` or `https://`, and not a Git
/// repository (BuildKit `isHTTPSource`).
pub fn is_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && !is_git(s)
}

/// A Git source as BuildKit recognises the common forms (`git@host:repo`, `*.git` URLs,
/// `git://`, `https://host/x.git#ref`).
fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || s.starts_with("ssh://")
        || ((s.starts_with("http://") || s.starts_with("https://"))
            && s.split('#').next().is_some_and(|u| u.ends_with(".git")))
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
        let data = if first.chomp {
            chomp(&first.content)
        } else {
            first.content.clone()
        };
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

/// Go's `time.Duration.String()` for non-negative nanoseconds (`0s`, `1.5s`, `300ms`,
/// `1h2m3s`).
pub(crate) fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let rem = ns % 3_600_000_000_000;
    let m = rem / 60_000_000_000;
    let s_ns = rem % 60_000_000_000;
    let secs = frac(s_ns, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `n / div` with the fraction's trailing zeros dropped (`1500, 1000` → `1.5`).
fn frac(n: u64, div: u64) -> String {
    let whole = n / div;
    let rest = n % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rest:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
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
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(300_000_000_000), "5m0s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(1_500), "1.5µs");
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "sigusr1"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "-1", "SIGFOO", "RTMIN+99", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chomping() {
        assert_eq!(chomp("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
