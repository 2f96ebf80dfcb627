//! Shared step caches end to end: `--cache-to type=registry,mode=max`, `polyarch prune --all`,
//! then `--cache-from` on the emptied state directory (every step cached, same digests); two
//! jobs exporting `linux/amd64` and `linux/arm64` to one cache ref at the same time, then a
//! two-platform build from it on an empty state directory (both fully cached); and a
//! `type=local` cache (an OCI layout) that umoci reads.

use std::process::{Command, Stdio};

use crate::cache::steps;
use crate::harness::{run, Run, TestContext};

fn all_cached(r: &Run) -> bool {
    let s = steps(r);
    !s.is_empty() && s.iter().all(|(_, _, cached)| *cached)
}

fn none_cached(r: &Run) -> bool {
    steps(r).iter().all(|(_, _, cached)| !cached)
}

#[test]
fn a_registry_cache_fills_a_pruned_state_directory() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {0} AS build\n\
         ARG TARGETARCH\n\
         RUN od -An -N8 -tx1 /dev/urandom > /built && echo $TARGETARCH > /arch\n\
         FROM {0}\n\
         COPY --from=build /built /arch /\n\
         RUN cat /arch > /copied\n\
         LABEL stage=final\n",
        ctx.base
    );
    let dir = ctx.context("shared", &[("Dockerfile", &df)]);
    let repo = ctx.repo("shared");
    let cache = format!("type=registry,ref={repo}:cache,mode=max");
    let state = ctx.dir.path().join("state");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--progress",
            "json",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "-t",
            "",
            "--push",
        ];
        let tag = format!("{repo}:1");
        args[6] = &tag;
        args.extend(extra);
        args.push(dir.to_str().unwrap());
        let r = ctx.run(&args, &[]);
        r.assert_code(0);
        r
    };
    let first = build(&["--cache-to", &cache]);
    assert!(none_cached(&first));
    assert!(first.stderr.contains("cache_exported"), "{}", first.stderr);

    let pruned = ctx.run(&["prune", "--all"], &[]);
    pruned.assert_code(0);
    let du = ctx.run(&["du", "--json"], &[]);
    du.assert_code(0);
    let usage: serde_json::Value = serde_json::from_str(&du.stdout).unwrap();
    for kind in usage.as_array().unwrap() {
        assert_eq!(kind["items"], 0, "prune --all emptied it: {kind}");
    }
    assert!(state.join("blobs/sha256").is_dir());

    let second = build(&["--cache-from", &format!("{repo}:cache")]);
    assert!(all_cached(&second), "{}", second.stderr);
    assert_eq!(second.index_digest(), first.index_digest());
    // Nothing had to be downloaded to push: every layer stayed in the registry.
    let layers = std::fs::read_dir(state.join("layers")).unwrap().count();
    assert_eq!(layers, 0, "no layer was unpacked for a fully cached build");
}

#[test]
fn two_jobs_exporting_one_cache_ref_at_once_merge_their_entries() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // Both jobs spend about a second in their step (natively and under qemu), so that their
    // exports meet.
    let df = format!(
        "FROM {}\nARG TARGETARCH\nRUN sleep 1 && uname -m > /arch\nCOPY f /f\n",
        ctx.base
    );
    let dir = ctx.context("matrix", &[("Dockerfile", &df), ("f", "f\n")]);
    let repo = ctx.repo("matrix");
    let cache = format!("type=registry,ref={repo}:cache");
    let jobs: Vec<_> = ["linux/amd64", "linux/arm64"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = ctx.command();
            c.args(["build", "--progress", "json", "--platform", p])
                .arg("--push-by-digest")
                .arg(&repo)
                .args(["--cache-to", &cache])
                .env("POLYARCH_STATE_DIR", ctx.dir.path().join(format!("job{i}")))
                .arg(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let _shared = crate::harness::binfmt_shared();
    for j in jobs {
        let out = j.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(_shared);
    let r = ctx.run(
        &[
            "build",
            "--progress",
            "json",
            "--platform",
            "linux/amd64,linux/arm64",
            "--cache-from",
            &format!("{repo}:cache"),
            "-o",
            &format!("type=oci,dest={}", ctx.dir.path().join("out").display()),
            dir.to_str().unwrap(),
        ],
        &[(
            "POLYARCH_STATE_DIR",
            ctx.dir.path().join("empty").to_str().unwrap(),
        )],
    );
    r.assert_code(0);
    assert!(all_cached(&r), "both platforms fully cached: {}", r.stderr);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            steps(&r).iter().any(|(label, _, _)| label == p),
            "{p} was built"
        );
    }
}

#[test]
fn a_local_cache_is_an_oci_layout_that_fills_an_empty_state_directory() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {0} AS tools\nRUN od -An -N8 -tx1 /dev/urandom > /t\nFROM {0}\nCOPY a /a\nRUN od -An -N8 -tx1 /dev/urandom > /stamp\n",
        ctx.base
    );
    let dir = ctx.context("local", &[("Dockerfile", &df), ("a", "a\n")]);
    let cache = ctx.dir.path().join("cache");
    let build = |state: &str, extra: &[&str]| {
        let out = format!(
            "type=oci,dest={}",
            ctx.dir.path().join(format!("out-{state}")).display()
        );
        let mut args = vec!["build", "--progress", "json", "--platform", "linux/amd64"];
        args.extend(["-o", &out]);
        args.extend(extra);
        args.push(dir.to_str().unwrap());
        let st = ctx.dir.path().join(state);
        let r = ctx.run(&args, &[("POLYARCH_STATE_DIR", st.to_str().unwrap())]);
        r.assert_code(0);
        r
    };
    let dest = format!("type=local,dest={}", cache.display());
    let first = build("s1", &["--cache-to", &dest]);
    // mode=min: the final stage's steps only (the unused `tools` stage is not even built).
    let ls = run({
        let mut c = Command::new("umoci");
        c.args(["ls", "--layout"]).arg(&cache);
        c
    });
    ls.assert_code(0);
    assert_eq!(ls.stdout.trim(), "cache");
    let src = format!("type=local,src={}", cache.display());
    let second = build("s2", &["--cache-from", &src]);
    assert!(all_cached(&second), "{}", second.stderr);
    assert_eq!(second.index_digest(), first.index_digest());
    // A second export of the same entries changes nothing.
    let again = build("s2", &["--cache-to", &dest]);
    assert!(again.stderr.contains("\"added\":0"), "{}", again.stderr);
}
