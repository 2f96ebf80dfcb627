//! Unit and golden tests of the plan.

use super::config::expose_ports;
use super::gofmt::go_quote;
use super::paths::{clean_abs, normalize_path};
use super::*;
use crate::dockerfile::{parse, DockerfileError, ErrorKind};
use crate::platform::Platform;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn req(target: &str) -> PlanRequest {
    PlanRequest {
        target_platform: Platform::parse(target).unwrap(),
        build_platform: Platform::parse("linux/amd64").unwrap(),
        build_args: BTreeMap::new(),
        target_stage: None,
    }
}

fn plan_for(text: &str, r: &PlanRequest, base: &BaseConfig) -> Result<Plan, DockerfileError> {
    let df = parse(text, "Dockerfile")?;
    plan(&df, r, base)
}

fn run_env(p: &Plan, i: usize) -> Vec<String> {
    match &p.steps[i].kind {
        StepKind::Run { env, .. } => env.clone(),
        other => panic!("not a run: {other:?}"),
    }
}

#[test]
fn automatic_args_are_normalised() {
    let a = automatic_args(
        &Platform::parse("linux/arm64/v8").unwrap(),
        &Platform::parse("linux/amd64").unwrap(),
    );
    let m: BTreeMap<_, _> = a.into_iter().collect();
    assert_eq!(m["TARGETPLATFORM"], "linux/arm64");
    assert_eq!(m["TARGETARCH"], "arm64");
    assert_eq!(m["TARGETVARIANT"], "");
    assert_eq!(m["BUILDPLATFORM"], "linux/amd64");
    let a = automatic_args(
        &Platform::parse("linux/arm/v7").unwrap(),
        &Platform::parse("linux/amd64").unwrap(),
    );
    let m: BTreeMap<_, _> = a.into_iter().collect();
    assert_eq!(m["TARGETPLATFORM"], "linux/arm/v7");
    assert_eq!(m["TARGETVARIANT"], "v7");
    assert_eq!(m["TARGETOS"], "linux");
}

#[test]
fn platform_args_only_where_declared() {
    let text = "FROM scratch\nRUN echo $TARGETARCH\nARG TARGETARCH\nARG TARGETVARIANT\nRUN echo $TARGETARCH\n";
    let p = plan_for(text, &req("linux/arm/v7"), &BaseConfig::default()).unwrap();
    assert!(!run_env(&p, 0).iter().any(|e| e.starts_with("TARGETARCH")));
    let env = run_env(&p, 3);
    assert!(env.contains(&"TARGETARCH=arm".to_string()), "{env:?}");
    assert!(env.contains(&"TARGETVARIANT=v7".to_string()), "{env:?}");
    assert_eq!(
        p.steps[3].created_by,
        "RUN |2 TARGETARCH=arm TARGETVARIANT=v7 /bin/sh -c echo $TARGETARCH # buildkit"
    );
    let p = plan_for(text, &req("linux/arm64/v8"), &BaseConfig::default()).unwrap();
    assert!(run_env(&p, 3).contains(&"TARGETVARIANT=".to_string()));
}

#[test]
fn from_sees_global_and_automatic_args() {
    let text = "ARG TAG=3.20\nARG REPO\nFROM --platform=$BUILDPLATFORM ${REPO:-alpine}:${TAG}-$TARGETARCH\nRUN true\n";
    let df = parse(text, "Dockerfile").unwrap();
    let s = select(&df, &req("linux/arm64/v8")).unwrap();
    assert_eq!(s.base, BaseImage::Image("alpine:3.20-arm64".into()));
    assert_eq!(s.platform, Platform::parse("linux/amd64").unwrap());
    let mut r = req("linux/arm64");
    r.build_args.insert("TAG".into(), "edge".into());
    r.build_args.insert("REPO".into(), "reg/x".into());
    let s = select(&df, &r).unwrap();
    assert_eq!(s.base, BaseImage::Image("reg/x:edge-arm64".into()));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn arg_scoping() {
    let text = "ARG G=global\nARG H=h\nFROM scratch\nRUN echo\nARG G\nARG L=local-$G\nENV E=$L\nRUN echo\n";
    let mut r = req("linux/amd64");
    r.build_args.insert("L".into(), "from-cli".into());
    r.build_args.insert("UNUSED".into(), "x".into());
    r.build_args
        .insert("HTTP_PROXY".into(), "http://proxy:3128".into());
    let p = plan_for(text, &r, &BaseConfig::default()).unwrap();
    // Global ARGs are invisible in the stage until redeclared.
    assert_eq!(
        run_env(&p, 0),
        [
            format!("PATH={DEFAULT_PATH}"),
            "HTTP_PROXY=http://proxy:3128".into()
        ]
    );
    assert_eq!(
        run_env(&p, 4),
        [
            format!("PATH={DEFAULT_PATH}"),
            "E=from-cli".into(),
            "G=global".into(),
            "L=from-cli".into(),
            "HTTP_PROXY=http://proxy:3128".into()
        ]
    );
    assert_eq!(p.steps[1].created_by, "ARG G=global");
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("\"UNUSED\""));
    // Without the build arg, the default expands with the stage's G.
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    assert!(run_env(&p, 4).contains(&"E=local-global".to_string()));
}

#[test]
fn env_wins_over_arg_and_sees_previous_values() {
    let text = "FROM scratch\nARG A=arg\nENV A=env B=$A\nENV C=$A\nRUN x\n";
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    assert_eq!(
        p.steps[1].kind,
        StepKind::Env(vec![("A".into(), "env".into()), ("B".into(), "arg".into())])
    );
    assert_eq!(
        p.steps[2].kind,
        StepKind::Env(vec![("C".into(), "env".into())])
    );
    let env = run_env(&p, 3);
    assert!(env.contains(&"A=env".to_string()) && !env.contains(&"A=arg".to_string()));
}

#[test]
fn base_config_is_used() {
    let base = BaseConfig {
        env: vec!["PATH=/bin".into(), "HOME=/root".into()],
        working_dir: Some("/srv".into()),
        user: Some("nobody".into()),
        ..Default::default()
    };
    let text = "FROM x\nWORKDIR app\nCOPY a .\nCOPY b c/\nCOPY d ../e\nRUN ls $HOME\nWORKDIR $HOME/../tmp\n";
    let p = plan_for(text, &req("linux/amd64"), &base).unwrap();
    assert_eq!(p.initial_env, ["PATH=/bin", "HOME=/root"]);
    assert_eq!(
        p.steps[0].kind,
        StepKind::Workdir {
            path: "/srv/app".into(),
            user: Some("nobody".into())
        }
    );
    let dests: Vec<&str> = p.steps[1..4]
        .iter()
        .map(|s| match &s.kind {
            StepKind::Copy(c) => c.dest.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(dests, ["/srv/app/", "/srv/app/c/", "/srv/e"]);
    match &p.steps[4].kind {
        StepKind::Run {
            workdir, user, env, ..
        } => {
            assert_eq!(workdir, "/srv/app");
            assert_eq!(user.as_deref(), Some("nobody"));
            assert_eq!(env, &["PATH=/bin", "HOME=/root"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.steps[5].kind,
        StepKind::Workdir {
            path: "/tmp".into(),
            user: Some("nobody".into())
        }
    );
}

#[test]
fn expose_and_history_strings() {
    let text = "FROM scratch\nARG P=8080\nEXPOSE 80 $P/UDP 53/udp 8000-8002\nCMD [\"a\", \"b \\\"c\\\"\"]\nENTRYPOINT run it\nCMD x\nENTRYPOINT y\nUSER 1000:1000\nLABEL a=\"b c\" d=e\n";
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    assert_eq!(
        p.steps[1].kind,
        StepKind::Expose(vec![
            "80/tcp".into(),
            "8080/udp".into(),
            "53/udp".into(),
            "8000/tcp".into(),
            "8001/tcp".into(),
            "8002/tcp".into()
        ])
    );
    assert_eq!(
        p.steps[1].created_by,
        "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{} 8002/tcp:{} 8080/udp:{}]"
    );
    assert_eq!(p.steps[2].created_by, r#"CMD ["a" "b \"c\""]"#);
    assert_eq!(
        p.steps[3].created_by,
        r#"ENTRYPOINT ["/bin/sh" "-c" "run it"]"#
    );
    assert_eq!(
        p.steps[3].kind,
        StepKind::Entrypoint {
            argv: vec!["/bin/sh".into(), "-c".into(), "run it".into()],
            clears_cmd: false
        }
    );
    assert_eq!(
        p.steps[5].kind,
        StepKind::Entrypoint {
            argv: vec!["/bin/sh".into(), "-c".into(), "y".into()],
            clears_cmd: false
        }
    );
    let p = plan_for(
        "FROM scratch\nENTRYPOINT [\"x\"]\n",
        &req("linux/amd64"),
        &BaseConfig::default(),
    )
    .unwrap();
    assert_eq!(
        p.steps[0].kind,
        StepKind::Entrypoint {
            argv: vec!["x".into()],
            clears_cmd: true
        }
    );
}

#[test]
fn plan_errors_point_at_words() {
    let base = BaseConfig::default();
    let e = plan_for(
        "FROM scratch\nEXPOSE 80/tcp 99999\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 15));
    assert!(
        e.to_string().contains("invalid EXPOSE port \"99999\""),
        "{e}"
    );
    let e = plan_for(
        "FROM a AS b\nCOPY --from=c x y\nFROM a AS c\n",
        &req("linux/amd64"),
        &base,
    );
    assert!(e.is_ok(), "stage c is not needed: {e:?}");
    let mut r = req("linux/amd64");
    r.target_stage = Some("b".into());
    let e = plan_for("FROM a AS b\nCOPY --from=c x y\nFROM a AS c\n", &r, &base).unwrap_err();
    assert_eq!((e.line, e.column), (2, 13));
    assert!(
        matches!(&*e.kind, ErrorKind::LaterStage { name, stage_line: 3, .. } if name == "c"),
        "{e}"
    );
    let e = plan_for("FROM a\nCOPY --from=$IMG a b\n", &req("linux/amd64"), &base).unwrap_err();
    assert!(matches!(*e.kind, ErrorKind::FromVariable { .. }), "{e}");
    let e = plan_for(
        "FROM a AS x\nCOPY --from=x a b\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert!(
        matches!(*e.kind, ErrorKind::LaterStage { .. }),
        "a stage cannot copy from itself: {e}"
    );
    let e = plan_for("FROM a\nCOPY --chmod=9z a b\n", &req("linux/amd64"), &base).unwrap_err();
    assert!(e.to_string().contains("invalid --chmod \"9z\""), "{e}");
    let e = plan_for(
        "FROM a\nWORKDIR ${X:?must be set}\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert!(e.to_string().contains("X: must be set"), "{e}");
    let e = plan_for("FROM --platform=linux/nope a\n", &req("linux/amd64"), &base).unwrap_err();
    assert!(
        e.to_string().contains("invalid platform \"linux/nope\""),
        "{e}"
    );
    let mut r = req("linux/amd64");
    r.target_stage = Some("missing".into());
    let e = plan_for("FROM a AS one\nFROM b AS two\n", &r, &base).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile: target stage \"missing\" not found (stages: one, two)"
    );
    let e = plan_for(
        "FROM a\nRUN --mount=type=cache make\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert!(e.to_string().contains("a target is required"), "{e}");
    let e = plan_for(
        "FROM a\nRUN --network=bridge x\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert!(e.to_string().contains("use default, none or host"), "{e}");
    let e = plan_for("FROM a\nSTOPSIGNAL NOPE\n", &req("linux/amd64"), &base).unwrap_err();
    assert!(e.to_string().contains("invalid signal"), "{e}");
    let e = plan_for(
        "FROM a\nADD --checksum=sha256:00 https://x/y /y\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap_err();
    assert!(e.to_string().contains("64 lowercase hex digits"), "{e}");
    let e = plan_for("FROM a\nCOPY https://x/y /y\n", &req("linux/amd64"), &base).unwrap_err();
    assert!(
        e.to_string().contains("source can't be a URL for COPY"),
        "{e}"
    );
}

#[test]
fn unneeded_stages_are_ignored() {
    let text = "FROM a AS build\nCOPY --from=x y z\nFROM build AS derived\nFROM alpine AS final\nRUN true\nFROM final\n";
    let df = parse(text, "Dockerfile").unwrap();
    let mut r = req("linux/amd64");
    r.target_stage = Some("FINAL".into());
    let g = select_graph(&df, &r).unwrap();
    let idx: Vec<usize> = g.stages.iter().map(|s| s.stage_index).collect();
    assert_eq!(idx, [2]);
    assert_eq!(g.target().base, BaseImage::Image("alpine".into()));
    let g = select_graph(&df, &req("linux/amd64")).unwrap();
    let idx: Vec<usize> = g.stages.iter().map(|s| s.stage_index).collect();
    assert_eq!(idx, [2, 3], "the last stage needs `final` only");
    assert_eq!(g.target().base, BaseImage::Stage(2));
    assert_eq!(g.target().deps, [2]);
}

/// The graph of the cross-compilation pattern for two targets: the builder runs as the build
/// platform; it is shared between targets unless it declares a target-dependent ARG.
#[test]
fn build_platform_stages_are_shared_between_targets() {
    let shared = "FROM --platform=$BUILDPLATFORM golang AS tools\nRUN make tools\n\
                  FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETARCH\nCOPY --from=tools /t /t\nRUN GOARCH=$TARGETARCH make\n\
                  FROM alpine\nCOPY --from=build /out /out\n";
    let df = parse(shared, "Dockerfile").unwrap();
    let amd = select_graph(&df, &req("linux/amd64")).unwrap();
    let arm = select_graph(&df, &req("linux/arm64/v8")).unwrap();
    let build = Platform::parse("linux/amd64").unwrap();
    for g in [&amd, &arm] {
        assert_eq!(g.stages.len(), 3);
        assert_eq!(g.get(0).unwrap().platform, build);
        assert_eq!(g.get(1).unwrap().platform, build);
        assert_eq!(g.get(2).unwrap().deps, [1]);
    }
    assert_eq!(
        arm.get(2).unwrap().platform,
        Platform::parse("linux/arm64/v8").unwrap()
    );
    assert_eq!(
        amd.get(0).unwrap().key,
        arm.get(0).unwrap().key,
        "`tools` uses no target ARG: built once"
    );
    assert_ne!(
        amd.get(1).unwrap().key,
        arm.get(1).unwrap().key,
        "`build` declares TARGETARCH: one build per target"
    );
    assert_ne!(amd.get(2).unwrap().key, arm.get(2).unwrap().key);
    assert!(amd.get(0).unwrap().key.0.starts_with("tools/linux/amd64/"));
    // The builder's RUN sees the target's arch while running as the build platform.
    let base = BaseConfig::default();
    let p = arm.get(1).unwrap().resolve(&df, &base).unwrap();
    match &p.steps[2].kind {
        StepKind::Run { env, .. } => assert!(env.contains(&"TARGETARCH=arm64".to_string())),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.platform, build);
    // A stage based on a build-platform stage runs as that platform too.
    let df = parse(
        "FROM --platform=$BUILDPLATFORM a AS b\nFROM b AS c\nRUN x\nFROM scratch\nCOPY --from=c / /\n",
        "Dockerfile",
    )
    .unwrap();
    let g = select_graph(&df, &req("linux/arm64")).unwrap();
    assert_eq!(g.get(1).unwrap().platform, build);
}

#[test]
fn mounts_are_parsed_and_expanded() {
    let text = "FROM a AS src\nFROM b\nARG ID=gomod\nWORKDIR /w\n\
                RUN --mount=type=cache,target=/root/.cache,id=${ID},sharing=locked,mode=0700,uid=1 \\\n\
                    --mount=type=bind,from=src,source=/out,target=out,rw \\\n\
                    --mount=type=secret,id=tok \\\n\
                    --mount=type=secret,id=env,env=TOKEN \\\n\
                    --mount=type=tmpfs,target=/tmp,size=1m \\\n\
                    --mount=target=/ctx \\\n\
                    --network=none make\n";
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    let StepKind::Run {
        mounts, network, ..
    } = &p.steps[2].kind
    else {
        panic!("{:?}", p.steps[2]);
    };
    assert_eq!(*network, Network::None);
    assert_eq!(
        mounts[0],
        RunMount::Cache {
            target: "/root/.cache".into(),
            id: "gomod".into(),
            sharing: CacheSharing::Locked,
            readonly: false,
            mode: 0o700,
            uid: 1,
            gid: 0
        }
    );
    assert_eq!(
        mounts[1],
        RunMount::Bind {
            target: "/w/out".into(),
            from: MountSource::Stage(0),
            source: "/out".into(),
            readonly: false
        }
    );
    assert_eq!(
        mounts[2],
        RunMount::Secret {
            id: "tok".into(),
            target: Some("/run/secrets/tok".into()),
            env: None,
            required: false,
            mode: 0o400,
            uid: 0,
            gid: 0
        }
    );
    assert!(
        matches!(&mounts[3], RunMount::Secret { target: None, env: Some(e), .. } if e == "TOKEN")
    );
    assert_eq!(
        mounts[4],
        RunMount::Tmpfs {
            target: "/tmp".into(),
            size: Some(1 << 20)
        }
    );
    assert_eq!(
        mounts[5],
        RunMount::Bind {
            target: "/ctx".into(),
            from: MountSource::Context,
            source: "/".into(),
            readonly: true
        }
    );
    // The cache id defaults to the target as written.
    let p = plan_for(
        "FROM a\nRUN --mount=type=cache,target=/var/cache/apt/ x\n",
        &req("linux/amd64"),
        &BaseConfig::default(),
    )
    .unwrap();
    match &p.steps[0].kind {
        StepKind::Run { mounts, .. } => {
            assert!(matches!(&mounts[0], RunMount::Cache { id, .. } if id == "/var/cache/apt"))
        }
        other => panic!("{other:?}"),
    }
    for (bad, msg) in [
        ("type=bogus,target=/x", "unsupported mount type \"bogus\""),
        ("type=cahce,target=/x", "did you mean cache?"),
        ("type=bind,target=/x,size=1", "unexpected key 'size'"),
        (
            "type=tmpfs,target=/x,mode=0700",
            "only allowed for cache, secret and ssh",
        ),
        (
            "type=bind,target=/x,sharing=locked",
            "only allowed for cache mounts",
        ),
        ("type=secret", "one of id, source or target"),
        ("type=secret,id=a,source=b", "both source and id"),
        ("type=cache,target=/", "invalid mount target \"/\""),
        ("target=/x,trget=/y", "did you mean target?"),
        ("type=ssh,source=/x", "ssh does not support source or from"),
        ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
        ("type=bind,target=/x,ro=maybe", "invalid value for ro"),
        ("type=bind,target=a\\\"b", "malformed"),
        ("type=bind,target=/x,from=$S", "cannot use variables"),
    ] {
        let e = plan_for(
            &format!("FROM a\nRUN --mount={bad} x\n"),
            &req("linux/amd64"),
            &BaseConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains(msg), "{bad}: {e}");
        assert_eq!(e.line, 2, "{bad}");
    }
}

#[test]
fn heredoc_runs() {
    let base = BaseConfig::default();
    let argv = |text: &str| -> (Vec<String>, Vec<RunMount>) {
        let p = plan_for(&format!("FROM a\n{text}"), &req("linux/amd64"), &base).unwrap();
        match &p.steps[0].kind {
            StepKind::Run { argv, mounts, .. } => (argv.clone(), mounts.clone()),
            other => panic!("{other:?}"),
        }
    };
    // Only a heredoc: its body is the script.
    let (a, m) = argv("RUN <<EOF\necho $HOME\nEOF\n");
    assert_eq!(a, ["/bin/sh", "-c", "echo $HOME\n"]);
    assert!(m.is_empty());
    // Chomped.
    let (a, _) = argv("RUN <<-EOF\n\techo hi\n\tEOF\n");
    assert_eq!(a, ["/bin/sh", "-c", "echo hi\n"]);
    // A shebang makes it a file under /dev/pipes.
    let (a, m) = argv("RUN <<EOF\n#!/bin/busybox sh\necho hi\nEOF\n");
    assert_eq!(a, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(
        m,
        [RunMount::File {
            target: "/dev/pipes/EOF".into(),
            content: "#!/bin/busybox sh\necho hi\n".into(),
            mode: 0o755
        }]
    );
    // Anything else: the shell gets the command and the bodies.
    let (a, _) = argv("RUN cat <<A <<'B' > /x\na $X\nA\nb\nB\n");
    assert_eq!(a, ["/bin/sh", "-c", "cat <<A <<'B' > /x\na $X\nA\nb\nB"]);
    // SHELL applies.
    let p = plan_for(
        "FROM a\nSHELL [\"/bin/bash\", \"-xc\"]\nRUN ls\nCMD run\n",
        &req("linux/amd64"),
        &base,
    )
    .unwrap();
    match &p.steps[1].kind {
        StepKind::Run { argv, .. } => assert_eq!(argv, &["/bin/bash", "-xc", "ls"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.steps[0].created_by, "SHELL [/bin/bash -xc]");
    assert_eq!(
        p.steps[2].kind,
        StepKind::Cmd(vec!["/bin/bash".into(), "-xc".into(), "run".into()])
    );
}

#[test]
fn copy_heredocs_expand_unless_quoted() {
    let text = "FROM a\nARG NAME=world\nCOPY <<hello <<'raw' /etc/\nhi \"$NAME\" \\$NAME\nhello\n$NAME\nraw\n";
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    let StepKind::Copy(c) = &p.steps[1].kind else {
        panic!("{:?}", p.steps[1]);
    };
    assert_eq!(c.inline[0].content, "hi \"world\" $NAME\n");
    assert_eq!(c.inline[1].content, "$NAME\n");
    assert_eq!(c.dest, "/etc/");
    assert!(c.sources.is_empty());
    assert_eq!(p.steps[1].created_by, "COPY <<hello <<raw /etc/ # buildkit");
}

#[test]
fn onbuild_triggers_run_first() {
    let base = BaseConfig {
        env: vec!["PATH=/bin".into()],
        on_build: vec!["ARG TARGETARCH".into(), "RUN echo $TARGETARCH".into()],
        ..Default::default()
    };
    let p = plan_for("FROM x\nRUN late\n", &req("linux/arm64"), &base).unwrap();
    assert_eq!(p.steps.len(), 3);
    assert_eq!(p.steps[0].span, p.steps[2].span.min(p.steps[0].span));
    match &p.steps[1].kind {
        StepKind::Run { env, .. } => assert!(env.contains(&"TARGETARCH=arm64".to_string())),
        other => panic!("{other:?}"),
    }
    let bad = BaseConfig {
        on_build: vec!["RUNN x".into()],
        ..Default::default()
    };
    let e = plan_for("FROM x\n", &req("linux/amd64"), &bad).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.to_string().contains("ONBUILD trigger \"RUNN x\""), "{e}");
    // The config after a stage keeps only its own triggers.
    let df = parse("FROM x\nONBUILD RUN a\nENV K=v\n", "Dockerfile").unwrap();
    let sel = select(&df, &req("linux/amd64")).unwrap();
    let plan = sel.resolve(&df, &base).unwrap();
    let after = Selection::config_after(&plan, &base);
    assert_eq!(after.on_build, ["RUN a"]);
    assert!(after.env.contains(&"K=v".to_string()));
    assert!(!plan.steps[2].in_history(), "ONBUILD has no history entry");
}

#[test]
fn paths_and_quoting_helpers() {
    assert_eq!(clean_abs("/a/./b/../c//"), "/a/c");
    assert_eq!(clean_abs("/../x"), "/x");
    assert_eq!(normalize_path("/w", ".", true), "/w/");
    assert_eq!(normalize_path("/w", "x/.", true), "/w/x/");
    assert_eq!(normalize_path("/w", "/abs/", true), "/abs/");
    assert_eq!(normalize_path("/w", "f", true), "/w/f");
    assert_eq!(go_quote("a\tb\u{1}é"), "\"a\\tb\\x01é\"");
    assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
    assert!(expose_ports("0").is_err());
    assert!(expose_ports("80/xyz").is_err());
    assert!(expose_ports("8080:80").is_err());
    assert!(expose_ports("90-80").is_err());
}

// --- golden tests -------------------------------------------------------------------

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dockerfile")
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Runs one case: the Dockerfile, plus optional `build-args` (KEY=VALUE lines), `target`
/// (stage name) and `base.json` ([`BaseConfig`] of every base image; by default an image's env
/// is just PATH). Target linux/arm64/v8, build platform linux/amd64. The result lists every
/// needed stage (dependencies first) with its key, dependencies and resolved plan; a stage
/// based on another starts from the config that one ends with.
fn run_case(dir: &Path) -> Result<serde_json::Value, DockerfileError> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let text = read("Dockerfile").expect("case without Dockerfile");
    let mut r = req("linux/arm64/v8");
    for line in read("build-args").unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once('=') {
            r.build_args.insert(k.to_string(), v.to_string());
        }
    }
    r.target_stage = read("target").map(|t| t.trim().to_string());
    let df = parse(&text, "Dockerfile")?;
    let graph = select_graph(&df, &r)?;
    let image_base = match read("base.json") {
        Some(j) => serde_json::from_str(&j).expect("bad base.json"),
        None => BaseConfig {
            env: vec![format!("PATH={DEFAULT_PATH}")],
            ..BaseConfig::default()
        },
    };
    let mut ends: BTreeMap<usize, BaseConfig> = BTreeMap::new();
    let mut out = Vec::new();
    for sel in &graph.stages {
        let base = match &sel.base {
            BaseImage::Scratch => BaseConfig::default(),
            BaseImage::Image(_) => image_base.clone(),
            BaseImage::Stage(i) => ends[i].clone(),
        };
        let plan = sel.resolve(&df, &base)?;
        ends.insert(sel.stage_index, Selection::config_after(&plan, &base));
        out.push(serde_json::json!({
            "key": sel.key,
            "deps": sel.deps,
            "images": sel.images,
            "plan": plan,
        }));
    }
    let mut result = serde_json::json!({ "stages": out, "warnings": graph.warnings });
    // `claims` (implicit or explicit): the platform the image claims, with or without an
    // explicit --platform (see StageGraph::claimed_platform).
    if let Some(mode) = read("claims") {
        let implicit = mode.trim() == "implicit";
        result["claims"] = serde_json::json!(graph
            .claimed_platform(&r.target_platform, implicit)
            .to_string());
    }
    Ok(result)
}

/// Compares with (or, with UPDATE_GOLDEN=1, rewrites) the expected file.
fn check(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want != got {
        failures.push(format!(
            "{}:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
}

#[test]
fn golden_positive() {
    let mut failures = Vec::new();
    let all = cases("positive");
    assert!(all.len() >= 60, "only {} positive cases", all.len());
    for dir in all {
        match run_case(&dir) {
            Ok(p) => {
                let got = serde_json::to_string_pretty(&p).unwrap() + "\n";
                check(&dir.join("expected.json"), &got, &mut failures);
            }
            Err(e) => failures.push(format!("{}: unexpected error:\n{e}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_negative() {
    let mut failures = Vec::new();
    let all = cases("negative");
    assert!(all.len() >= 20, "only {} negative cases", all.len());
    for dir in all {
        match run_case(&dir) {
            Ok(_) => failures.push(format!("{}: planned without error", dir.display())),
            Err(e) => check(&dir.join("expected.txt"), &format!("{e}\n"), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Before any pull, every error that no base image could avoid is found; one in a word that
/// uses a variable the image might set is left for later.
#[test]
fn check_graph_finds_what_the_base_cannot_change() {
    let check = |text: &str| {
        let df = parse(text, "Dockerfile").unwrap();
        let g = select_graph(&df, &req("linux/amd64")).unwrap();
        check_graph(&df, &g)
    };
    let e = check("FROM img\nRUN --mount=type=bogus,target=/x true\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = check("FROM img AS a\nRUN x\nFROM a\nEXPOSE 99999\n").unwrap_err();
    assert_eq!(
        e.line, 4,
        "errors in a stage based on a stage are found too"
    );
    let e = check("FROM scratch\nARG P=abc\nEXPOSE $P\n").unwrap_err();
    assert_eq!(e.line, 3, "with scratch every value is known");
    // `$PORT` may come from the image's ENV: not judged before the pull.
    assert!(check("FROM img\nEXPOSE $PORT\n").is_ok());
    assert!(check("FROM img\nWORKDIR ${APP_HOME:?}\n").is_ok());
    // ...but the same word with the value known is judged.
    assert!(check("FROM img\nENV PORT=x\nEXPOSE $PORT\n").is_err());
}

/// Regression (fuzz timeout): a port range is expanded once, with no quadratic work.
#[test]
fn a_large_expose_range_is_fast() {
    let start = std::time::Instant::now();
    let p = plan_for(
        "FROM scratch\nEXPOSE 1-65535 80 1-65535/udp\n",
        &req("linux/amd64"),
        &BaseConfig::default(),
    )
    .unwrap();
    match &p.steps[0].kind {
        StepKind::Expose(ports) => assert_eq!(ports.len(), 2 * 65535),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

// Issue 12: `RUN --network=host` and `RUN --security=insecure` need `--allow`, as in buildx;
// without it the plan fails at the flag's value (exit 2), in any selected stage.
#[test]
fn entitlements_are_checked_against_allow() {
    let text = "FROM a AS b\nRUN --network=host x\nFROM b\nRUN --security=insecure y\n";
    let df = parse(text, "Dockerfile").unwrap();
    let graph = select_graph(&df, &req("linux/amd64")).unwrap();
    let e = check_entitlements(&df, &graph, &[]).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "Dockerfile:2:15: RUN --network=host needs the network.host entitlement, which this build does not grant"
    );
    let e = check_entitlements(&df, &graph, &[Entitlement::NetworkHost]).unwrap_err();
    assert!(
        matches!(&*e.kind, ErrorKind::NotEntitled { entitlement, .. } if entitlement == "security.insecure")
    );
    check_entitlements(
        &df,
        &graph,
        &[Entitlement::NetworkHost, Entitlement::SecurityInsecure],
    )
    .unwrap();
    let p = plan_for(text, &req("linux/amd64"), &BaseConfig::default()).unwrap();
    assert!(matches!(
        p.steps.last().unwrap().kind,
        StepKind::Run {
            security: Security::Insecure,
            ..
        }
    ));
    let e = plan_for(
        "FROM a\nRUN --security=maybe x\n",
        &req("linux/amd64"),
        &BaseConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("use sandbox or insecure"), "{e}");
    assert_eq!("network.host".parse(), Ok(Entitlement::NetworkHost));
    assert!("network.bridge".parse::<Entitlement>().is_err());
}

// Issue 12 (BuildKit `SecretsUsedInArgOrEnv`): names that look like secrets get a warning with
// `file:line` pointing at --secret; ordinary names and `PUBLIC_` ones do not.
#[test]
fn secret_looking_arg_and_env_names_are_warned_about() {
    for name in [
        "API_TOKEN",
        "DB_PASSWORD",
        "DBPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "GH_KEY",
        "my_secret_value",
    ] {
        assert!(looks_secret(name), "{name}");
    }
    for name in [
        "KEYBOARD",
        "TOKENIZER_VERSION",
        "PUBLIC_KEY",
        "HTTP_PROXY",
        "PATH",
    ] {
        assert!(!looks_secret(name), "{name}");
    }
    let df = parse(
        "ARG API_TOKEN\nFROM a\nARG VERSION=1\nENV DB_PASSWORD=x OTHER=y\n",
        "Dockerfile",
    )
    .unwrap();
    let graph = select_graph(&df, &req("linux/amd64")).unwrap();
    let secret: Vec<&String> = graph
        .warnings
        .iter()
        .filter(|w| w.contains("SecretsUsedInArgOrEnv"))
        .collect();
    assert_eq!(secret.len(), 2, "{:?}", graph.warnings);
    assert!(
        secret[0].starts_with("Dockerfile:1: ARG \"API_TOKEN\""),
        "{}",
        secret[0]
    );
    assert!(secret[0].contains("--secret id=API_TOKEN,env=API_TOKEN"));
    assert!(
        secret[1].starts_with("Dockerfile:4: ENV \"DB_PASSWORD\""),
        "{}",
        secret[1]
    );
}
