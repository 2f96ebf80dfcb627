//! `polyarch run` and `build --smoke-test`: an arm64 image from the registry and from a layout
//! runs under qemu-user and says `aarch64`; stdin, stdout and exit codes pass through; a smoke
//! test that fails on one platform fails the build with exit 1 and leaves the tag where it was.

use std::io::Write;
use std::process::Stdio;

use crate::harness::{digest_of, skopeo_raw, TestContext};

const TWO: &str = "linux/amd64,linux/arm64/v8";

#[test]
fn run_passes_the_machine_stdio_and_exit_codes_through() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let tag = format!("{}:v1", ctx.repo("run"));
    let df = format!(
        "FROM {}\nCOPY unique.txt /unique\nCMD [\"cat\", \"/unique\"]\n",
        ctx.base
    );
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("unique.txt", &tag)]);
    let out = ctx.dir.path().join("out");
    let dest = format!("type=oci,dest={}", out.display());
    let args = [
        "build",
        "--platform",
        TWO,
        "-t",
        &tag,
        "--push",
        "-o",
        &dest,
    ];
    let mut args = args.to_vec();
    args.push(dir.to_str().unwrap());
    ctx.run(&args, &[]).assert_code(0);

    // From the registry: the arm64 image runs emulated; the image's CMD by default.
    let r = ctx.run(
        &["run", "--platform", "linux/arm64", &tag, "uname", "-m"],
        &[],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "aarch64\n", "{}", r.stderr);
    let r = ctx.run(&["run", "--platform", "linux/arm64", &tag], &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, tag);
    // From the layout, with no registry involved: amd64 natively.
    let layout = format!("oci:{}", out.display());
    let r = ctx.run(
        &["run", "--platform", "linux/amd64", &layout, "uname", "-m"],
        &[],
    );
    r.assert_code(0);
    assert_eq!(r.stdout, "x86_64\n");
    // The command's exit status is polyarch's, its stderr is ours.
    let r = ctx.run(
        &[
            "run",
            "--platform",
            "linux/arm64",
            &tag,
            "sh",
            "-c",
            "echo oops >&2; exit 7",
        ],
        &[],
    );
    r.assert_code(7);
    assert_eq!(r.stderr, "oops\n");
    // stdin reaches the command.
    let _shared = crate::harness::binfmt_shared();
    let mut c = ctx.command();
    c.args([
        "run",
        "--platform",
        "linux/arm64/v8",
        &layout,
        "tr",
        "a-z",
        "A-Z",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "THROUGH STDIN\n");
    assert_eq!(o.status.code(), Some(0));
    drop(_shared);
    // A platform the image lacks: exit 2, naming what it offers.
    let r = ctx.run(&["run", "--platform", "linux/s390x", &tag, "true"], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("linux/amd64, linux/arm64"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_smoke_test_failing_on_one_platform_moves_no_tag() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let tag = format!("{}:release", ctx.repo("smoke"));
    let df = format!("FROM {}\nCOPY unique.txt /unique\n", ctx.base);
    let build = |unique: &str, smoke: &str| {
        let dir = ctx.context(unique, &[("Dockerfile", &df), ("unique.txt", unique)]);
        ctx.run(
            &[
                "build",
                "--platform",
                TWO,
                "-t",
                &tag,
                "--push",
                "--smoke-test",
                smoke,
                dir.to_str().unwrap(),
            ],
            &[],
        )
    };
    // Passes everywhere: the tag is pushed, each platform's test ran in its own image.
    let r = build("first", "grep -q first /unique && uname -m");
    r.assert_code(0);
    assert!(
        r.stderr.contains("[linux/arm64/v8] smoke | aarch64"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[linux/amd64] smoke | x86_64"),
        "{}",
        r.stderr
    );
    let before = skopeo_raw(&tag).expect("tag pushed");
    assert_eq!(digest_of(&before), r.index_digest());

    // Fails on arm64 only: exit 1, the platform and its output named, the tag untouched.
    let r = build(
        "second",
        r#"test "$(uname -m)" = x86_64 || { echo "not on $(uname -m)"; exit 3; }"#,
    );
    r.assert_code(1);
    assert!(
        r.stderr.contains("linux/arm64/v8: the smoke test") && r.stderr.contains("exit status 3"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not on aarch64"), "{}", r.stderr);
    assert_eq!(skopeo_raw(&tag).expect("tag still there"), before);
}
