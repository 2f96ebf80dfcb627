//! `polyarch inspect` of OCI layouts: a directory written by a build and an `oci-archive`
//! written by skopeo (an independent writer), read with no network at all (a new network
//! namespace), compared with what skopeo reads from the same layout.

use std::process::Command;

use crate::harness::{digest_of, run, Run, TestContext};

/// polyarch in a network namespace of its own (no interface but a down loopback), in `cwd`.
fn offline(ctx: &TestContext, cwd: &std::path::Path, args: &[&str]) -> Run {
    let mut c = Command::new("unshare");
    c.args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_polyarch"))
        .args(args)
        .current_dir(cwd)
        .env("POLYARCH_STATE_DIR", ctx.dir.path().join("state"));
    run(c)
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn layouts_and_archives_are_inspected_offline() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n",
        ctx.base
    );
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("a.txt", "a\n")]);
    let out = ctx.dir.path().join("out");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let layout = format!("oci:{}:latest", out.display());
    let index = skopeo(&["inspect", "--raw", &layout]);

    // A plain local path is a layout, never a registry lookup: this runs with no network.
    let r = offline(&ctx, ctx.dir.path(), &["inspect", "out", "--json"]);
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["digest"], digest_of(&index));
    assert_eq!(v["manifests"][1]["platform"], "linux/arm64");

    // One platform's config, exactly the bytes skopeo reads.
    let r = offline(
        &ctx,
        ctx.dir.path(),
        &["inspect", &layout, "--platform", "linux/arm64", "--config"],
    );
    r.assert_code(0);
    let config = skopeo(&[
        "--override-arch",
        "arm64",
        "inspect",
        "--config",
        "--raw",
        &layout,
    ]);
    assert_eq!(r.stdout.as_bytes(), &config[..]);

    // Layers with sizes and the history in the human view; fields through --format.
    let r = offline(
        &ctx,
        ctx.dir.path(),
        &["inspect", &layout, "--platform", "linux/arm64/v8"],
    );
    r.assert_code(0);
    assert!(r.stdout.contains("History ("), "{}", r.stdout);
    assert!(r.stdout.contains("COPY a.txt /a.txt"), "{}", r.stdout);
    let r = offline(
        &ctx,
        ctx.dir.path(),
        &[
            "inspect",
            &layout,
            "--platform",
            "linux/arm64",
            "--format",
            "{{.Platform}} {{len .Layers}} {{range .Layers}}{{.Size}},{{end}}",
        ],
    );
    r.assert_code(0);
    let idx: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let arm = idx["manifests"][1]["digest"].as_str().unwrap();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            out.join("blobs/sha256")
                .join(arm.strip_prefix("sha256:").unwrap()),
        )
        .unwrap(),
    )
    .unwrap();
    let sizes: String = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{},", l["size"]))
        .collect();
    let n = m["layers"].as_array().unwrap().len();
    assert_eq!(r.stdout, format!("linux/arm64 {n} {sizes}\n"));

    // An oci-archive written by skopeo reads the same.
    let archive = ctx.dir.path().join("img.tar");
    skopeo(&[
        "copy",
        "--all",
        "--quiet",
        &layout,
        &format!("oci-archive:{}:latest", archive.display()),
    ]);
    let r = offline(
        &ctx,
        ctx.dir.path(),
        &[
            "inspect",
            &format!("oci-archive:{}", archive.display()),
            "--format",
            "{{.Digest}}",
        ],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), digest_of(&index));

    // A ref name the layout lacks: exit 2, naming the ones it has.
    let r = offline(&ctx, ctx.dir.path(), &["inspect", "oci:out:nope"]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("ref names in index.json: latest"),
        "{}",
        r.stderr
    );
}
