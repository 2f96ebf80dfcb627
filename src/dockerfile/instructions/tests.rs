//! Tests of instruction parsing through [`parse`]: stages, argument forms, flags, JSON, heredocs,
//! errors with their locations, ONBUILD triggers.

use super::*;
use crate::dockerfile::{parse, ShellOrExec, Word};

fn one(text: &str) -> InstructionKind {
    let df = parse(&format!("FROM scratch\n{text}\n"), "Dockerfile").unwrap();
    df.stages[0].instructions[0].kind.clone()
}

fn err(text: &str) -> DockerfileError {
    parse(text, "Dockerfile").unwrap_err()
}

fn texts(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.text.as_str()).collect()
}

#[test]
fn stages_and_global_args() {
    let df = parse(
        "ARG V=1 W\nARG X\nfrom --platform=$BUILDPLATFORM alpine:$V AS Build\nRUN a\nFROM build\n",
        "Dockerfile",
    )
    .unwrap();
    let names: Vec<&str> = df.global_args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["V", "W", "X"]);
    assert_eq!(df.global_args[0].default.as_deref(), Some("1"));
    assert_eq!(df.global_args[1].default, None);
    assert_eq!(df.global_args[1].span, Span { line: 1, column: 9 });
    assert_eq!(df.stages.len(), 2);
    let s = &df.stages[0];
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(s.base.text, "alpine:$V");
    assert_eq!(
        s.base.span,
        Span {
            line: 3,
            column: 32
        }
    );
    assert_eq!(s.platform.as_ref().unwrap().text, "$BUILDPLATFORM");
    assert_eq!(s.instructions.len(), 1);
    assert_eq!(df.stages[1].base.text, "build");
    assert_eq!(df.stage_index("BUILD"), Some(0));
}

#[test]
fn run_cmd_entrypoint_forms() {
    assert_eq!(
        one("RUN echo \"hi there\" && ls"),
        InstructionKind::Run {
            command: ShellOrExec::Shell("echo \"hi there\" && ls".into()),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None,
        }
    );
    assert_eq!(
        one("run [\"echo\", \"a b\"]"),
        InstructionKind::Run {
            command: ShellOrExec::Exec(vec!["echo".into(), "a b".into()]),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None,
        }
    );
    // A shell test starting with `[` is shell form.
    assert!(matches!(
        one("RUN [ \"$A\" = x ] && echo yes"),
        InstructionKind::Run {
            command: ShellOrExec::Shell(_),
            ..
        }
    ));
    assert!(matches!(
        one("RUN [ -f /x ]"),
        InstructionKind::Run {
            command: ShellOrExec::Shell(_),
            ..
        }
    ));
    assert_eq!(
        one("CMD []"),
        InstructionKind::Cmd(ShellOrExec::Exec(vec![]))
    );
    assert_eq!(
        one("ENTRYPOINT [\"/bin/app\", \"--flag\"]"),
        InstructionKind::Entrypoint(ShellOrExec::Exec(vec!["/bin/app".into(), "--flag".into()]))
    );
    assert_eq!(
        one("CMD echo $HOME"),
        InstructionKind::Cmd(ShellOrExec::Shell("echo $HOME".into()))
    );
}

#[test]
fn bad_json() {
    let e = err("FROM a\nCMD [\"echo\", \"hi\"\n");
    assert_eq!(e.line, 2);
    assert!(matches!(*e.kind, ErrorKind::InvalidJson { .. }), "{e}");
    let e = err("FROM a\nRUN [\"echo\", 1]\n");
    assert!(
        e.to_string().contains("arrays must contain strings only"),
        "{e}"
    );
    // Single quotes are not JSON: BuildKit runs it through the shell, so do we.
    assert_eq!(
        one("ENTRYPOINT ['single', 'quotes']"),
        InstructionKind::Entrypoint(ShellOrExec::Shell("['single', 'quotes']".into()))
    );
    let e = err("FROM a\nRUN [\"a\",\n");
    assert_eq!((e.line, e.column), (2, 10), "{e}");
}

#[test]
fn copy_forms_and_flags() {
    match one("COPY --chown=app:app --chmod=0755 a b* /dst/") {
        InstructionKind::Copy {
            from,
            chown,
            chmod,
            sources,
            dest,
            ..
        } => {
            assert_eq!(from, None);
            assert_eq!(chown.unwrap().text, "app:app");
            assert_eq!(chmod.unwrap().text, "0755");
            assert_eq!(texts(&sources), ["a", "b*"]);
            assert_eq!(dest.text, "/dst/");
        }
        other => panic!("{other:?}"),
    }
    match one("COPY [\"a b\", \"c\", \"/d\"]") {
        InstructionKind::Copy { sources, dest, .. } => {
            assert_eq!(texts(&sources), ["a b", "c"]);
            assert_eq!(dest.text, "/d");
        }
        other => panic!("{other:?}"),
    }
    match one("COPY --from=build /out /in") {
        InstructionKind::Copy { from, .. } => assert_eq!(from.unwrap().text, "build"),
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nCOPY onlyone\n");
    assert!(
        e.to_string()
            .contains("COPY requires at least two arguments"),
        "{e}"
    );
    let e = err("FROM a\nCOPY --parents a b\n");
    assert!(
        matches!(&*e.kind, ErrorKind::UnsupportedFlag { flag, .. } if flag == "parents"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 6));
    let e = err("FROM a\nCOPY --link=maybe a b\n");
    assert!(e.to_string().contains("expecting a boolean value"), "{e}");
    match one("COPY --link --exclude=*.md --exclude=tmp a b") {
        InstructionKind::Copy { link, excludes, .. } => {
            assert!(link);
            assert_eq!(texts(&excludes), ["*.md", "tmp"]);
        }
        other => panic!("{other:?}"),
    }
    match one("COPY --link=false a b") {
        InstructionKind::Copy { link, .. } => assert!(!link),
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nCOPY --chown a b\n");
    assert!(e.to_string().contains("missing a value"), "{e}");
    let e = err("FROM a\nCOPY --chown=a --chown=b a b\n");
    assert!(e.to_string().contains("given more than once"), "{e}");
}

#[test]
fn env_label_arg_forms() {
    match one("ENV A=1 B=\"two words\" C='$x'") {
        InstructionKind::Env(kv) => {
            let pairs: Vec<(&str, &str)> = kv
                .iter()
                .map(|p| (p.key.text.as_str(), p.value.text.as_str()))
                .collect();
            assert_eq!(pairs, [("A", "1"), ("B", "\"two words\""), ("C", "'$x'")]);
            assert_eq!(
                kv[1].value.span,
                Span {
                    line: 2,
                    column: 11
                }
            );
        }
        other => panic!("{other:?}"),
    }
    match one("ENV LEGACY  some value here") {
        InstructionKind::Env(kv) => {
            assert_eq!(kv[0].key.text, "LEGACY");
            assert_eq!(kv[0].value.text, "some value here");
        }
        other => panic!("{other:?}"),
    }
    match one("LABEL org.opencontainers.image.title=\"My app\" version=1") {
        InstructionKind::Label(kv) => assert_eq!(kv.len(), 2),
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nENV ONLY\n");
    assert!(e.to_string().contains("ENV must have two arguments"), "{e}");
    let e = err("FROM a\nENV A=1 B\n");
    assert!(e.to_string().contains("can't find = in \"B\""), "{e}");
    assert_eq!(e.column, 9);
    match one("ARG A B=2 C=") {
        InstructionKind::Arg(a) => {
            let got: Vec<(&str, Option<&str>)> = a
                .iter()
                .map(|d| (d.name.as_str(), d.default.as_deref()))
                .collect();
            assert_eq!(got, [("A", None), ("B", Some("2")), ("C", Some(""))]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_with_locations() {
    let e = err("FROM a\nRUN x\n\nADD a\n");
    assert_eq!(
        e.to_string(),
        "Dockerfile:4:1: ADD requires at least two arguments: one or more sources and a destination\n    ADD a\n    ^^^"
    );
    let e = err("FROM a\n  COPPY a b\n");
    assert_eq!(
        e.to_string(),
        "Dockerfile:2:3: unknown instruction: COPPY (did you mean COPY?)\n      COPPY a b\n      ^^^^^"
    );
    let e = err("FROM a\nXYZZY a\n");
    assert_eq!(
        *e.kind,
        ErrorKind::UnknownInstruction {
            word: "XYZZY".into(),
            suggestion: None
        }
    );
    let e = err("FROM a\nentrypiont x\n");
    assert!(e.to_string().contains("did you mean ENTRYPOINT?"), "{e}");
    let e = err("RUN x\nFROM a\n");
    assert_eq!(
        *e.kind,
        ErrorKind::BeforeFrom {
            instruction: "RUN".into()
        }
    );
    let e = err("ARG A\n");
    assert_eq!(
        e.to_string(),
        "Dockerfile:1:1: no FROM instruction: a Dockerfile needs at least one build stage\n    ARG A\n    ^^^^^"
    );
    let e = err("FROM a b\n");
    assert!(
        e.to_string()
            .contains("FROM requires either one or three arguments"),
        "{e}"
    );
    let e = err("FROM a AS 1x\n");
    assert!(matches!(*e.kind, ErrorKind::InvalidStageName { .. }));
    assert_eq!(e.column, 11);
    let e = err("FROM a AS x\nFROM b AS X\n");
    assert_eq!(
        *e.kind,
        ErrorKind::DuplicateStage {
            name: "x".into(),
            first_line: 1
        }
    );
    let e = err("FROM a\nRUN --device=x make\n");
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "Dockerfile:2:5: RUN --device is not supported: CDI devices are a BuildKit labs feature"
    );
    let e = err("FROM a\nENV --x=1 A=1\n");
    assert_eq!(
        *e.kind,
        ErrorKind::UnknownFlag {
            instruction: "ENV".into(),
            flag: "x".into(),
            suggestion: None,
        }
    );
    let e = err("FROM --plat=x a\n");
    assert_eq!(
        *e.kind,
        ErrorKind::UnknownFlag {
            instruction: "FROM".into(),
            flag: "plat".into(),
            suggestion: Some("platform".into()),
        }
    );
    let e = err("FROM a\nRUN --mont=type=cache,target=/x make\n");
    assert!(e.to_string().contains("(did you mean --mount?)"), "{e}");
    let e = err("FROM a\nEXPOSE\n");
    assert!(
        e.to_string()
            .contains("EXPOSE requires at least one argument"),
        "{e}"
    );
    let e = err("FROM a\nWORKDIR\n");
    assert!(
        e.to_string()
            .contains("WORKDIR requires exactly one argument"),
        "{e}"
    );
}

#[test]
fn tab_indented_caret() {
    let e = err("FROM a\n\tVOLUMES /x\n");
    assert!(
        e.to_string().ends_with("\n    \tVOLUMES /x\n    \t^^^^^^^"),
        "{e:?}"
    );
}

#[test]
fn add_flags_and_forms() {
    match one("ADD --checksum=sha256:abc --unpack --chown=1 https://h/x.tgz /x/") {
        InstructionKind::Add {
            checksum,
            unpack,
            chown,
            sources,
            dest,
            ..
        } => {
            assert_eq!(checksum.unwrap().text, "sha256:abc");
            assert_eq!(unpack, Some(true));
            assert_eq!(chown.unwrap().text, "1");
            assert_eq!(texts(&sources), ["https://h/x.tgz"]);
            assert_eq!(dest.text, "/x/");
        }
        other => panic!("{other:?}"),
    }
    match one("ADD a.tar /") {
        InstructionKind::Add { unpack, link, .. } => {
            assert_eq!(unpack, None);
            assert!(!link);
        }
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nADD --from=x a b\n");
    assert!(e.to_string().contains("unknown flag --from for ADD"), "{e}");
    let e = err("FROM a\nADD --keep-git-dir a b\n");
    assert!(e.to_string().contains("not supported"), "{e}");
}

#[test]
fn heredoc_sources_and_runs() {
    let df = parse(
        "FROM a\nCOPY <<one <<\"two\" /etc/\nfirst $X\none\nsecond $X\ntwo\nRUN <<EOF\necho hi\nEOF\n",
        "Dockerfile",
    )
    .unwrap();
    match &df.stages[0].instructions[0].kind {
        InstructionKind::Copy {
            sources, heredocs, ..
        } => {
            assert_eq!(texts(sources), ["<<one", "<<\"two\""]);
            assert_eq!(heredocs.len(), 2);
            assert!(heredocs[0].expand && !heredocs[1].expand);
            assert_eq!(heredocs[1].content, "second $X\n");
        }
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nCOPY x <<EOF\nbody\nEOF\n");
    assert!(
        e.to_string()
            .contains("cannot accept a heredoc as a destination"),
        "{e}"
    );
}

#[test]
fn config_instructions() {
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-ec\"]"),
        InstructionKind::Shell(vec!["/bin/bash".into(), "-ec".into()])
    );
    let e = err("FROM a\nSHELL /bin/bash -c\n");
    assert!(e.to_string().contains("JSON form"), "{e}");
    assert_eq!(one("HEALTHCHECK NONE"), InstructionKind::Healthcheck(None));
    match one("HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://x/") {
        InstructionKind::Healthcheck(Some(h)) => {
            assert_eq!(h.interval, 300_000_000_000);
            assert_eq!(h.timeout, 3_000_000_000);
            assert_eq!(h.retries, 3);
            assert_eq!(h.command, ShellOrExec::Shell("curl -f http://x/".into()));
        }
        other => panic!("{other:?}"),
    }
    match one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]") {
        InstructionKind::Healthcheck(Some(h)) => assert_eq!(
            h.command,
            ShellOrExec::Exec(vec!["/bin/check".into(), "-q".into()])
        ),
        other => panic!("{other:?}"),
    }
    for (bad, msg) in [
        (
            "HEALTHCHECK --interval=1us CMD x",
            "cannot be less than 1ms",
        ),
        ("HEALTHCHECK --interval=5 CMD x", "missing unit"),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "not a non-negative number",
        ),
        ("HEALTHCHECK NONE x", "NONE takes no arguments"),
        ("HEALTHCHECK PING x", "unknown type"),
        ("HEALTHCHECK CMD", "missing a command"),
    ] {
        let e = err(&format!("FROM a\n{bad}\n"));
        assert!(e.to_string().contains(msg), "{bad}: {e}");
    }
    match one("VOLUME [\"/data\", \"/logs\"]") {
        InstructionKind::Volume(v) => assert_eq!(texts(&v), ["/data", "/logs"]),
        other => panic!("{other:?}"),
    }
    match one("VOLUME /a $B") {
        InstructionKind::Volume(v) => assert_eq!(texts(&v), ["/a", "$B"]),
        other => panic!("{other:?}"),
    }
    match one("STOPSIGNAL SIGKILL") {
        InstructionKind::StopSignal(w) => assert_eq!(w.text, "SIGKILL"),
        other => panic!("{other:?}"),
    }
    match one("MAINTAINER Jane Doe <jane@example.com>") {
        InstructionKind::Maintainer(w) => assert_eq!(w.text, "Jane Doe <jane@example.com>"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn onbuild_triggers() {
    match one("ONBUILD RUN echo hi") {
        InstructionKind::Onbuild {
            expression,
            trigger,
        } => {
            assert_eq!(expression, "RUN echo hi");
            assert!(matches!(*trigger, InstructionKind::Run { .. }));
        }
        other => panic!("{other:?}"),
    }
    let df = parse("FROM a\nONBUILD COPY <<EOF /x\nbody\nEOF\n", "Dockerfile").unwrap();
    match &df.stages[0].instructions[0].kind {
        InstructionKind::Onbuild { expression, .. } => {
            assert_eq!(expression, "COPY <<EOF /x\nbody\nEOF")
        }
        other => panic!("{other:?}"),
    }
    let e = err("FROM a\nONBUILD ONBUILD RUN x\n");
    assert!(e.to_string().contains("Chaining ONBUILD"), "{e}");
    assert_eq!((e.line, e.column), (2, 9));
    let e = err("FROM a\nONBUILD FROM x\n");
    assert!(e.to_string().contains("FROM isn't allowed"), "{e}");
    let e = err("FROM a\nONBUILD  RUNN x\n");
    assert_eq!((e.line, e.column), (2, 10));
    assert!(e.to_string().contains("did you mean RUN?"), "{e}");
    let e = err("FROM a\nONBUILD\n");
    assert!(e.to_string().contains("at least one argument"), "{e}");
    let t = parse_trigger("RUN make \\\n  install", "t").unwrap();
    assert!(matches!(t.kind, InstructionKind::Run { .. }));
    assert!(parse_trigger("FROM x", "t").is_err());
    assert!(parse_trigger("RUN a\nRUN b", "t").is_err());
}
