//! `polyarch build` end to end: two platforms (amd64 natively, arm64 under qemu-user), pushed to
//! the real registry and read back with skopeo.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{
    digest_of, image_files, layout_index, pull_layout, run, skopeo_raw, TestContext,
};

const TWO: &str = "linux/amd64,linux/arm64/v8";

fn dockerfile_from_base(ctx: &TestContext, body: &str) -> String {
    format!("FROM {}\n{body}", ctx.base)
}

#[test]
fn two_platforms_record_their_machine_and_run_applets_under_emulation() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = dockerfile_from_base(
        &ctx,
        "ARG TARGETARCH\n\
         COPY greeting.txt /etc/greeting\n\
         RUN uname -m > /arch\n\
         RUN cat /etc/passwd /etc/greeting > /combined && ls /bin > /bin-list && echo \"$TARGETARCH\" > /targetarch\n\
         CMD [\"cat\", \"/arch\"]\n",
    );
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("greeting.txt", "hello\n")]);
    let tag = format!("{}:v1", ctx.repo("two"));
    let r = ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-t",
            &tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    // The base layers live in another repository of the same registry: mounted, not uploaded.
    assert!(r.stderr.contains("mounted blob"), "{}", r.stderr);

    // The tag is an OCI image index with exactly the two platforms, as skopeo reads it.
    let raw = skopeo_raw(&tag).expect("tag exists");
    assert_eq!(digest_of(&raw), r.index_digest());
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    let m = v["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{v}");
    assert_eq!(
        m[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        m[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );

    // Read the files back from the pushed layers (skopeo copy, then our own tar walk).
    let layout = pull_layout(&ctx, &tag);
    let amd = image_files(&layout, "pulled", "amd64");
    let arm = image_files(&layout, "pulled", "arm64");
    assert_eq!(amd["arch"], b"x86_64\n");
    assert_eq!(arm["arch"], b"aarch64\n");
    assert_eq!(amd["targetarch"], b"amd64\n");
    assert_eq!(arm["targetarch"], b"arm64\n");
    for files in [&amd, &arm] {
        let combined = String::from_utf8_lossy(&files["combined"]).into_owned();
        assert!(combined.starts_with("root:x:0:0:"), "{combined}");
        assert!(combined.ends_with("hello\n"), "{combined}");
        let list = String::from_utf8_lossy(&files["bin-list"]).into_owned();
        assert!(
            list.lines().any(|l| l == "cat") && list.lines().any(|l| l == "ls"),
            "{list}"
        );
        assert_eq!(files["etc/greeting"], b"hello\n");
        assert!(
            !files
                .keys()
                .any(|k| k.starts_with("proc/") || k.starts_with("dev/") || k == "etc/resolv.conf"),
            "mount points leaked"
        );
    }
}

#[test]
fn same_context_twice_gives_the_same_index_digest() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = dockerfile_from_base(
        &ctx,
        "COPY . /src/\nRUN ls -l /src > /listing && uname -m > /arch\nENV A=1\n",
    );
    let dir = ctx.context(
        "ctx",
        &[("Dockerfile", &df), ("a.txt", "a\n"), ("sub/b.txt", "b\n")],
    );
    let repo = ctx.repo("repro");
    let build = |tag: &str, state: &str| {
        let r = ctx.run(
            &[
                "build",
                "--platform",
                TWO,
                "-t",
                tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[("SOURCE_DATE_EPOCH", "0"), ("POLYARCH_STATE_DIR", state)],
        );
        r.assert_code(0);
        r.index_digest()
    };
    let s1 = ctx.dir.path().join("state1");
    let s2 = ctx.dir.path().join("state2");
    let first = build(&format!("{repo}:one"), s1.to_str().unwrap());
    // Different mtimes on every context file, and a fresh store, for the second run.
    for f in ["a.txt", "sub/b.txt", "Dockerfile", "sub"] {
        let st = Command::new("touch")
            .args(["-d", "2001-02-03 04:05:06"])
            .arg(dir.join(f))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let second = build(&format!("{repo}:two"), s2.to_str().unwrap());
    assert_eq!(
        first, second,
        "index digests differ between identical builds"
    );
    assert_eq!(
        digest_of(&skopeo_raw(&format!("{repo}:one")).unwrap()),
        digest_of(&skopeo_raw(&format!("{repo}:two")).unwrap())
    );
}

#[test]
fn a_step_failing_on_arm64_only_leaves_the_tag_alone() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let tag = format!("{}:stable", ctx.repo("fail"));
    let good = ctx.context(
        "good",
        &[(
            "Dockerfile",
            &dockerfile_from_base(&ctx, "RUN uname -m > /arch\n"),
        )],
    );
    ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-t",
            &tag,
            "--push",
            good.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let before = digest_of(&skopeo_raw(&tag).unwrap());

    let bad = ctx.context(
        "bad",
        &[(
            "Dockerfile",
            &dockerfile_from_base(
                &ctx,
                "RUN uname -m > /arch\n\
                 RUN echo checking; if [ \"$(uname -m)\" = aarch64 ]; then echo 'no arm64 here' >&2; exit 7; fi\n",
            ),
        )],
    );
    let r = ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-t",
            &tag,
            "--push",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(1);
    assert!(r.stderr.contains("linux/arm64"), "{}", r.stderr);
    assert!(r.stderr.contains("Dockerfile:3"), "{}", r.stderr);
    assert!(r.stderr.contains("exit status 7"), "{}", r.stderr);
    assert!(r.stderr.contains("no arm64 here"), "{}", r.stderr);
    assert_eq!(
        digest_of(&skopeo_raw(&tag).unwrap()),
        before,
        "the tag moved"
    );
}

#[test]
fn oci_layout_output_needs_no_registry() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // FROM scratch + COPY: nothing is pulled, nothing is pushed.
    let dir = ctx.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY files/ /data/\nLABEL arch=$TARGETARCH\n",
            ),
            ("files/one", "1\n"),
            ("files/ignored.log", "x\n"),
            (".dockerignore", "**/*.log\n"),
        ],
    );
    let dest = ctx.dir.path().join("layout");
    let out = format!("type=oci,dest={}", dest.display());
    ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-t",
            "example/local:v2",
            "--output",
            &out,
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let idx = layout_index(&dest, "v2");
    assert_eq!(idx.manifests.len(), 2);
    for arch in ["amd64", "arm64"] {
        let o = Command::new("skopeo")
            .args(["inspect", "--override-arch", arch])
            .arg(format!("oci:{}:v2", dest.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Architecture"], arch);
        assert_eq!(v["Labels"]["arch"], arch);
        let files = image_files(&dest, "v2", arch);
        assert_eq!(files["data/one"], b"1\n");
        assert!(
            !files.contains_key("data/ignored.log"),
            ".dockerignore not honoured"
        );
    }
}

#[test]
fn unsupported_instruction_and_syntax_error_exit_2_with_location() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let cases = [
        ("unsupported", "COPY --parents x /x\n", "Dockerfile:2"),
        ("syntax", "ENV\n", "Dockerfile:2"),
    ];
    for (name, body, loc) in cases {
        let df = dockerfile_from_base(&ctx, body);
        let dir = ctx.context(name, &[("Dockerfile", &df), ("x", "x")]);
        let tag = format!("{}:v1", ctx.repo(name));
        let r = ctx.run(
            &[
                "build",
                "--platform",
                TWO,
                "-t",
                &tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[],
        );
        r.assert_code(2);
        assert!(r.stderr.contains(loc), "{name}: {}", r.stderr);
        assert!(skopeo_raw(&tag).is_none(), "{name}: something was pushed");
    }
}

#[test]
fn a_platform_without_emulation_fails_before_any_pull() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // A platform with no handler registered on this machine (the qemu tests register some of
    // these only inside a private binfmt_misc, or restore them): never a silent skip.
    let candidates = [
        ("linux/mips64", "qemu-mips64"),
        ("linux/loong64", "qemu-loongarch64"),
        ("linux/mips64le", "qemu-mips64el"),
        ("linux/riscv64", "qemu-riscv64"),
    ];
    let (platform, _) = candidates
        .iter()
        .find(|(_, h)| {
            !std::path::Path::new("/proc/sys/fs/binfmt_misc")
                .join(h)
                .exists()
        })
        .expect("every candidate platform has a handler registered here");
    let dir = ctx.context(
        "ctx",
        &[("Dockerfile", "FROM 127.0.0.1:1/nothing/here:v1\nRUN true\n")],
    );
    let r = ctx.run(
        &["build", "--platform", platform, dir.to_str().unwrap()],
        &[],
    );
    r.assert_code(4);
    assert!(r.stderr.contains(platform), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
}

#[test]
fn run_steps_as_non_root_exit_4() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "ctx",
        &[("Dockerfile", &dockerfile_from_base(&ctx, "RUN true\n"))],
    );
    let state = ctx.dir.path().join("nobody-state");
    std::fs::create_dir_all(&state).unwrap();
    for p in [
        ctx.dir.path(),
        dir.as_path(),
        &dir.join("Dockerfile"),
        state.as_path(),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_polyarch"))
        .args(["build", "--platform", "linux/amd64", "--state-dir"])
        .arg(&state)
        .arg(&dir);
    let r = run(c);
    r.assert_code(4);
    assert!(r.stderr.contains("root"), "{}", r.stderr);
}

/// Writes a tar entry with raw name and link name bytes (the `tar` crate refuses `..` in
/// `set_path`, which is exactly what these layers need).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    body: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(body.len() as u64);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    b.append(&h, body).unwrap();
}

/// Pushes a single-platform (linux/amd64) image with one layer made of `entries` to `reference`,
/// through an OCI layout and skopeo (an independent client).
fn push_crafted(
    ctx: &TestContext,
    reference: &str,
    entries: &[(tar::EntryType, &str, &str, &[u8])],
) {
    use polyarch::oci::{self, Descriptor, Digest, ImageConfig, ImageManifest};
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, body) in entries {
        raw_entry(&mut b, *kind, name, link, body);
    }
    let tar_bytes = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let layer = gz.finish().unwrap();
    let mut config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    config.rootfs.diff_ids.push(diff_id);
    let config_bytes = oci::to_bytes(&config);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(
            oci::MEDIA_TYPE_OCI_CONFIG,
            Digest::of(&config_bytes),
            config_bytes.len() as u64,
        ),
        layers: vec![Descriptor::new(
            oci::MEDIA_TYPE_OCI_LAYER_GZIP,
            Digest::of(&layer),
            layer.len() as u64,
        )],
        annotations: None,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let n = reference.len() + entries.len();
    let dir = ctx
        .dir
        .path()
        .join(format!("crafted-{n}-{}", Digest::of(&manifest_bytes).hex()));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for body in [&layer, &config_bytes, &manifest_bytes] {
        std::fs::write(blobs.join(Digest::of(body).hex()), body).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": oci::MEDIA_TYPE_OCI_MANIFEST,
            "digest": Digest::of(&manifest_bytes).to_string(),
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "crafted"}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let st = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:crafted", dir.display()))
        .arg(format!("docker://{reference}"))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy of the crafted image failed");
}

#[test]
fn crafted_base_layers_never_write_outside_their_directory() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let victim = ctx.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let v = victim.to_str().unwrap().trim_start_matches('/').to_string();
    let dotdot = format!("../../../../../../../../{v}/dotdot");
    let abs = format!("/{v}/absolute");
    let through = "link/through-symlink".to_string();
    let escaping_hardlink_target = format!("../../../../../../{v}/dotdot");
    let placeable: Vec<(tar::EntryType, &str, &str, &[u8])> = vec![
        (Regular, &dotdot, "", b"a"),
        (Regular, &abs, "", b"b"),
        (Directory, "bin", "", b""),
        (Symlink, "link", victim.to_str().unwrap(), b""),
        (Regular, &through, "", b"c"),
        (Symlink, "up", "../../../../..", b""),
        (Regular, "up/via-up", "", b"d"),
        // A hardlink whose target climbs out resolves inside, to the `dotdot` entry above.
        (Link, "hard", &escaping_hardlink_target, b""),
    ];
    let base = format!("{}:v1", ctx.repo("crafted-ok"));
    push_crafted(&ctx, &base, &placeable);
    let dir = ctx.context(
        "ok",
        &[
            ("Dockerfile", &format!("FROM {base}\nCOPY x /x\n")),
            ("x", "x"),
        ],
    );
    let dest = ctx.dir.path().join("out");
    let out = format!("type=oci,dest={}", dest.display());
    let state = ctx.dir.path().join("crafted-state");
    let st = state.to_str().unwrap();
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &out,
            dir.to_str().unwrap(),
        ],
        &[("POLYARCH_STATE_DIR", st)],
    )
    .assert_code(0);
    // Inside the unpacked layer, everything landed as if the layer directory were the root.
    let unpacked: Vec<_> = std::fs::read_dir(state.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("root"))
        .filter(|p| p.join(&v).join("dotdot").exists())
        .collect();
    assert_eq!(
        unpacked.len(),
        1,
        "the crafted layer was not unpacked where expected"
    );
    let root = &unpacked[0];
    for (name, body) in [("dotdot", "a"), ("absolute", "b"), ("through-symlink", "c")] {
        assert_eq!(
            std::fs::read_to_string(root.join(&v).join(name)).unwrap(),
            body,
            "{name}"
        );
    }
    assert_eq!(std::fs::read_to_string(root.join("via-up")).unwrap(), "d");
    assert_eq!(std::fs::read_to_string(root.join("hard")).unwrap(), "a");
    let left: Vec<_> = std::fs::read_dir(&victim).unwrap().collect();
    assert!(
        left.is_empty(),
        "a layer wrote outside its directory: {left:?}"
    );
    assert!(!std::path::Path::new("/via-up").exists());

    // An entry that cannot be placed inside (hardlink to nothing) fails with exit 2 naming it.
    let bad: Vec<(tar::EntryType, &str, &str, &[u8])> =
        vec![(Link, "dangling-hardlink", "no/such/target", b"")];
    let base2 = format!("{}:v1", ctx.repo("crafted-bad"));
    push_crafted(&ctx, &base2, &bad);
    let dir2 = ctx.context(
        "bad",
        &[
            ("Dockerfile", &format!("FROM {base2}\nCOPY x /x\n")),
            ("x", "x"),
        ],
    );
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &out,
            dir2.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("dangling-hardlink"), "{}", r.stderr);
}

/// Builds `df` (with `x` in the context) for linux/amd64 into an OCI layout.
fn build_amd64(ctx: &TestContext, name: &str, df: &str) -> crate::harness::Run {
    let dir = ctx.context(name, &[("Dockerfile", df), ("x", "x\n")]);
    let out = format!(
        "type=oci,dest={}",
        ctx.dir.path().join(name).join("out").display()
    );
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            "example/fixes:v1",
            "-o",
            &out,
            dir.to_str().unwrap(),
        ],
        &[],
    )
}

// Regression (user review): errors inside the sandbox helper were all exit 4 with a raw
// "sandbox: ..." message; an unknown USER, a WORKDIR on a file and a COPY under a file are bad
// input (2), named by platform and Dockerfile line, with a hint.
#[test]
fn sandbox_input_errors_exit_2_with_a_hint() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let cases = [
        (
            "user",
            "USER nosuchuser\nRUN true\n",
            "unknown user \"nosuchuser\"",
            "Dockerfile:3",
        ),
        (
            "workdir",
            "WORKDIR /etc/passwd\nRUN true\n",
            "cannot copy to /etc/passwd",
            "Dockerfile:2",
        ),
        (
            "copy",
            "COPY x /etc/passwd/x\n",
            "/etc/passwd",
            "Dockerfile:2",
        ),
    ];
    for (name, body, what, line) in cases {
        let r = build_amd64(&ctx, name, &dockerfile_from_base(&ctx, body));
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(what), "{name}: {}", r.stderr);
        assert!(r.stderr.contains(line), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("linux/amd64"), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("hint:"), "{name}: {}", r.stderr);
        assert!(!r.stderr.contains("sandbox:"), "{name}: {}", r.stderr);
    }
}

// Regression (user review): `COPY x /hd/` with /hd a dangling symlink in the image failed; like
// Docker, the link's target is created inside the image and receives the file.
#[test]
fn copy_into_a_dangling_symlink_creates_its_target() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = dockerfile_from_base(&ctx, "RUN ln -s /data/sub /hd\nCOPY x /hd/\n");
    let r = build_amd64(&ctx, "dangling", &df);
    r.assert_code(0);
    let layout = ctx.dir.path().join("dangling").join("out");
    let files = image_files(&layout, "v1", "amd64");
    assert_eq!(files["data/sub/x"], b"x\n");
}

// Regression (user review): a non-Linux platform exited 4 ("no qemu-user emulation is known");
// polyarch builds Linux images only, so it is bad input.
#[test]
fn non_linux_platforms_are_bad_input() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    for p in ["windows/amd64", "darwin/arm64", "linux/amd64,windows/amd64"] {
        let r = ctx.run(&["build", "--platform", p, dir.to_str().unwrap()], &[]);
        assert_eq!(r.code, 2, "{p}: {}", r.stderr);
        assert!(r.stderr.contains("Linux images only"), "{p}: {}", r.stderr);
    }
}

// Regression (user review): POLYARCH_CREDS exported globally made every local build exit 2;
// from the environment it is ignored when nothing is pushed, an explicit --creds is refused.
#[test]
fn polyarch_creds_from_the_environment_does_not_stop_a_local_build() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
    let args = [
        "build",
        "--platform",
        "linux/amd64",
        "-o",
        &out,
        dir.to_str().unwrap(),
    ];
    let r = ctx.run(&args, &[("POLYARCH_CREDS", "alice:pw")]);
    r.assert_code(0);
    assert!(!r.stderr.contains("pw"), "{}", r.stderr);
    let mut flagged = args.to_vec();
    flagged.insert(1, "--creds=alice:pw");
    let r = ctx.run(&flagged, &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("--creds"), "{}", r.stderr);
}

/// Regression: RUN steps inherited the Rust runtime's ignored SIGPIPE, so `yes | head` never
/// ended (yes spun on EPIPE). Steps must start with default signal dispositions.
#[test]
fn run_steps_start_with_default_signal_dispositions() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "ctx",
        &[(
            "Dockerfile",
            &dockerfile_from_base(
                &ctx,
                "RUN yes 0123456789 | head -c 100 > /yes && grep SigIgn /proc/self/status > /sigign\n",
            ),
        )],
    );
    let dest = ctx.dir.path().join("out");
    let out = format!("type=oci,dest={}", dest.display());
    let mut c = Command::new("timeout");
    c.args([
        "120",
        env!("CARGO_BIN_EXE_polyarch"),
        "build",
        "--platform",
        "linux/amd64",
        "-o",
        &out,
    ])
    .arg(&dir)
    .env("POLYARCH_PROGRESS", "plain");
    let r = run(c);
    r.assert_code(0);
    let files = image_files(&dest, "latest", "amd64");
    assert_eq!(files["yes"].len(), 100);
    // SigIgn is a hex mask, bit n-1 for signal n: SIGPIPE (13) must not be ignored. (busybox sh
    // itself may ignore others, e.g. SIGQUIT, as shells do.)
    let sigign = String::from_utf8_lossy(&files["sigign"]).into_owned();
    let mask = u64::from_str_radix(sigign.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << 12), 0, "SIGPIPE is ignored in RUN: {sigign}");
}

/// Regression: SIGTERM/SIGINT to polyarch left the sandbox helpers and their steps running and
/// the step directories behind. Now the build is cancelled: exit 130 (143 for SIGTERM), nothing
/// left.
#[test]
fn an_interrupted_build_leaves_no_process_and_no_step_directory() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let marker = format!("{}", 3000 + std::process::id() % 997);
    let dir = ctx.context(
        "ctx",
        &[(
            "Dockerfile",
            &dockerfile_from_base(&ctx, &format!("RUN sleep {marker}1 & sleep {marker}2\n")),
        )],
    );
    let state = ctx.dir.path().join("state");
    let tag = format!("{}:v1", ctx.repo("interrupt"));
    for sig in ["TERM", "INT"] {
        let _guard = crate::harness::binfmt_shared();
        let mut child = ctx
            .command()
            .args([
                "build",
                "--platform",
                TWO,
                "-t",
                &tag,
                "--push",
                "--state-dir",
            ])
            .arg(&state)
            .arg(&dir)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until both platforms' steps run (their sleeps exist), then signal polyarch alone.
        let sleeping = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
                .filter(|c| String::from_utf8_lossy(c).contains(&format!("{marker}2")))
                .count()
        };
        let started = std::time::Instant::now();
        while sleeping() < 2 {
            assert!(started.elapsed().as_secs() < 60, "the steps never started");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let status = child.wait().unwrap();
        // 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM (issue 13).
        let code = if sig == "TERM" { 143 } else { 130 };
        assert_eq!(status.code(), Some(code), "SIG{sig}");
        let started = std::time::Instant::now();
        while sleeping() > 0 {
            assert!(
                started.elapsed().as_secs() < 10,
                "SIG{sig}: step processes survived"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let left: Vec<_> = std::fs::read_dir(state.join("procs")).unwrap().collect();
        assert!(left.is_empty(), "SIG{sig}: step directories left: {left:?}");
        assert!(
            skopeo_raw(&tag).is_none(),
            "SIG{sig}: something was published"
        );
    }
}

/// Regression: a step printing hundreds of megabytes flooded the progress output; it is clipped
/// after 2 MiB per step (as BuildKit clips step logs), and the build still succeeds.
#[test]
fn a_step_s_progress_output_is_clipped() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "ctx",
        &[(
            "Dockerfile",
            &dockerfile_from_base(&ctx, "RUN seq 1 1000000\n"),
        )],
    );
    let dest = ctx.dir.path().join("out");
    let out = format!("type=oci,dest={}", dest.display());
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &out,
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    assert!(r.stderr.contains("[output clipped"), "no clipping note");
    assert!(
        r.stderr.len() < 4 << 20,
        "{} bytes of progress",
        r.stderr.len()
    );
    assert!(r.stderr.contains("| 1\n"), "the first lines are shown");
}
