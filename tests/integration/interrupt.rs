//! Interrupted pushes (issue 13): a build killed with SIGKILL at random points of its push
//! leaves the tag on the old or the new index, complete either way, and a rerun succeeds; a
//! SIGTERM or SIGINT cancels the build with exit 143 or 130 and a line saying what was and was
//! not pushed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{binfmt_shared, digest_of, pull_layout, skopeo_raw, TestContext};

/// `polyarch build` of `dir` for two platforms to `tag`, deterministic (SOURCE_DATE_EPOCH=0),
/// with its own state directory.
fn build_command(ctx: &TestContext, dir: &str, tag: &str, n: &str) -> Command {
    let mut c = ctx.command();
    c.env("SOURCE_DATE_EPOCH", "0").args([
        "build",
        "--state-dir",
        ctx.dir.path().join("state").to_str().unwrap(),
        "--platform",
        "linux/amd64,linux/arm64",
        "--chunk-size",
        "1MiB",
        "--build-arg",
        &format!("N={n}"),
        "-t",
        tag,
        "--push",
        dir,
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// The index digest `tag` holds now; `None` when it holds nothing.
fn tag_digest(tag: &str) -> Option<String> {
    skopeo_raw(tag).map(|b| digest_of(&b))
}

#[test]
fn a_push_killed_at_random_points_leaves_the_old_or_the_new_index() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let _shared = binfmt_shared();
    let repo = ctx.repo("killed");
    let tag = format!("{repo}:v1");
    // Two layers per platform, new for every N and the same for the same N (a rerun gives
    // the index the killed run was making).
    let df = format!(
        "FROM {}\nARG N\nRUN yes \"layer a of run $N\" | head -c 4194304 > /a\n\
         RUN yes \"layer b of run $N\" | head -c 4194304 > /b\n",
        ctx.base
    );
    let dir = ctx.context("killed", &[("Dockerfile", &df)]);
    let dir = dir.to_str().unwrap();
    let started = Instant::now();
    let first = build_command(&ctx, dir, &tag, "first")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "the first build failed with {}:\n{}",
        first.status,
        String::from_utf8_lossy(&first.stderr)
    );
    let span = started.elapsed().as_millis() as u64;
    let mut old = tag_digest(&tag).expect("the first build moved the tag");
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    seed ^= std::process::id() as u64;
    eprintln!("kill points seeded with {seed}");
    let mut caught_old = 0;
    for i in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = Duration::from_millis(seed % (span + span / 4));
        let mut child = build_command(&ctx, dir, &tag, &i.to_string())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let after_kill = tag_digest(&tag).expect("the tag still exists");
        // The rerun with the same inputs succeeds and makes the new index.
        let rerun = build_command(&ctx, dir, &tag, &i.to_string())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            rerun.status.success(),
            "rerun {i} (after a kill at {at:?}) failed with {}:\n{}",
            rerun.status,
            String::from_utf8_lossy(&rerun.stderr)
        );
        let new = tag_digest(&tag).unwrap();
        assert!(
            after_kill == old || after_kill == new,
            "killed after {at:?}: the tag holds {after_kill}, neither {old} nor {new}"
        );
        if after_kill == old {
            caught_old += 1;
        }
        // Whatever it held is complete: skopeo copies every manifest and blob of it.
        let layout = pull_layout(&ctx, &format!("{repo}@{after_kill}"));
        let index = crate::harness::layout_index(&layout, "pulled");
        assert_eq!(index.manifests.len(), 2);
        old = new;
    }
    eprintln!("{caught_old} of 20 kills left the old index");
}

#[test]
fn sigterm_and_sigint_cancel_with_a_line_saying_what_was_pushed() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let _shared = binfmt_shared();
    let repo = ctx.repo("sigterm");
    let df = format!("FROM {}\nRUN sleep 60\n", ctx.base);
    let dir = ctx.context("sigterm", &[("Dockerfile", &df)]);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut c = ctx.command();
        c.args([
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &format!("{repo}:v1"),
            "--push",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            stderr.contains(&format!(
                "interrupted by SIG{signal}: the build was cancelled"
            )) && stderr.contains("not pushed: the image(s) of linux/amd64")
                && stderr.contains("no tag was moved"),
            "{stderr}"
        );
        assert!(skopeo_raw(&format!("{repo}:v1")).is_none(), "the tag moved");
    }
}
