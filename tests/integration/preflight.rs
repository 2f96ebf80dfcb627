//! Pre-flight checks of push targets: before any step runs, a registry whose name does not
//! resolve, whose port refuses connections, whose TLS certificate is not trusted, which refuses
//! the password, or whose token gives no push scope stops the build with exit 3, the registry
//! and the cause named, and the fix as a hint. "No step ran" is proven twice: the progress shows
//! no step, and a `RUN` that leaves a marker in a cache mount (kept in the state directory) left
//! none. The TLS, password and scope cases live beside their registries in `auth.rs` and
//! `token.rs` and use the helpers here.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{Run, TestContext};

/// A build context whose only step leaves a marker in a cache mount, and a fresh state
/// directory for it.
pub(crate) fn marker_build(ctx: &TestContext, name: &str) -> (PathBuf, PathBuf) {
    let df = format!(
        "FROM {}\nRUN --mount=type=cache,target=/c,id=preflight-marker touch /c/ran\n",
        ctx.base
    );
    let dir = ctx.context(name, &[("Dockerfile", &df)]);
    let state = ctx.dir.path().join(format!("{name}-state"));
    (dir, state)
}

/// Whether the marker step of [`marker_build`] ran with `state`.
fn marker_left(state: &Path) -> bool {
    let root = state.join("cache-mounts");
    let mut pending = vec![root];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "ran") {
                return true;
            }
            if p.is_dir() {
                pending.push(p);
            }
        }
    }
    false
}

/// Checks that `run` stopped in pre-flight: exit 3, every `expect`ed text in its stderr, no
/// step started, no marker left in `state`.
pub(crate) fn stopped_before_any_step(run: &Run, state: &Path, expect: &[&str]) {
    run.assert_code(3);
    for e in expect {
        assert!(run.stderr.contains(e), "no {e:?} in:\n{}", run.stderr);
    }
    assert!(
        !run.stderr.contains("] #1/"),
        "a step started:\n{}",
        run.stderr
    );
    assert!(!marker_left(state), "the step ran");
}

/// `polyarch build --push` of the marker build to `tag` with `state` and `extra` flags.
pub(crate) fn push_marker(
    ctx: &TestContext,
    dir: &Path,
    state: &Path,
    tag: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "build",
        "--state-dir",
        state.to_str().unwrap(),
        "--retries",
        "1",
        "--retry-delay",
        "10ms",
        "-t",
        tag,
        "--push",
    ];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    ctx.run(&args, &[])
}

#[test]
fn unknown_hosts_and_refused_ports_stop_the_build_before_any_step() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let (dir, state) = marker_build(&ctx, "preflight");
    // The control: built without a push, the step runs and leaves its marker.
    let control = ctx.dir.path().join("control-state");
    let out = ctx.dir.path().join("out");
    let meta = ctx.dir.path().join("control.json");
    ctx.run(
        &[
            "build",
            "--state-dir",
            control.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    assert!(marker_left(&control), "the marker step leaves no marker");
    // Its metadata has buildx's keys: the index descriptor, the one platform's config digest,
    // and the build's ref (BUILDER/NODE/REF).
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(
        m["containerimage.descriptor"]["digest"],
        m["containerimage.digest"]
    );
    assert_eq!(
        m["containerimage.config.digest"],
        m["platforms"][0]["config"]
    );
    let build_ref = m["buildx.build.ref"].as_str().unwrap();
    assert!(
        build_ref.starts_with("polyarch/") && build_ref.split('/').count() == 3,
        "{build_ref}"
    );

    // `.invalid` never resolves (RFC 6761).
    let run = push_marker(
        &ctx,
        &dir,
        &state,
        "registry.polyarch.invalid/team/app:1",
        &[],
    );
    stopped_before_any_step(
        &run,
        &state,
        &[
            "registry.polyarch.invalid",
            "does not resolve",
            "hint: check the registry name",
        ],
    );

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let run = push_marker(&ctx, &dir, &state, &format!("{addr}/team/app:1"), &[]);
    stopped_before_any_step(
        &run,
        &state,
        &[&addr, "refused", "hint: nothing listens on"],
    );
    assert!(
        !run.stderr.contains("--insecure-registry"),
        "{}",
        run.stderr
    );
}

#[test]
fn merging_a_digest_that_does_not_exist_fails_at_once() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let repo = ctx.repo("missing");
    let absent = format!("{repo}@sha256:{}", "0".repeat(64));
    let started = Instant::now();
    let run = ctx.run(
        &[
            "merge",
            "--progress",
            "json",
            "-t",
            &format!("{repo}:1"),
            &absent,
        ],
        &[],
    );
    let took = started.elapsed();
    assert!(
        run.code == 2 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    // 404 is final: no retry (the request count says so), and no wait. Alone it takes about
    // half a second here; the bound leaves room for a loaded CI machine.
    assert!(
        run.stderr
            .contains(r#""event":"registry_requests","requests":2,"retries":0"#),
        "{}",
        run.stderr
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
