//! `docker buildx build` flags (issue 14, README "buildx flags"): inputs from stdin, step
//! settings (`--add-host`, `--shm-size`, `--ulimit`), `--secret type=env`, `-q` and
//! `--iidfile`, named build contexts and `--call check`. Each builds linux/amd64 only, into an
//! OCI layout read back with skopeo and the layout's own blobs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{binfmt_shared, image_files, layout_index, Run, TestContext};

/// `polyarch build --platform linux/amd64 -t example/buildx:v1 -o type=oci,dest=OUT ARGS...`
/// with `stdin` on its standard input; returns the run and the layout directory.
fn build_amd64(ctx: &TestContext, name: &str, args: &[&str], stdin: &[u8]) -> (Run, String) {
    let out = ctx.dir.path().join(format!("out-{name}"));
    let spec = format!("type=oci,dest={}", out.display());
    let mut c = ctx.command();
    c.args([
        "build",
        "--platform",
        "linux/amd64",
        "-t",
        "example/buildx:v1",
        "-o",
        &spec,
    ]);
    c.args(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let _shared = binfmt_shared();
    let mut child = c.spawn().expect("spawn polyarch");
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let run = Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    (run, out.display().to_string())
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> String {
    String::from_utf8_lossy(
        files
            .get(path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", files.keys().collect::<Vec<_>>())),
    )
    .into_owned()
}

/// `tar -C dir -c .` (GNU tar, an independent writer), optionally gzipped.
fn tar_of(dir: &Path, gzip: bool) -> Vec<u8> {
    let mut c = Command::new("tar");
    c.arg("-C").arg(dir).arg(if gzip { "-czf" } else { "-cf" });
    c.args(["-", "."]);
    let o = c.output().expect("tar");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn dockerfile_and_context_from_stdin() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nCOPY data.txt /data.txt\nRUN cat /data.txt > /copied\n",
        ctx.base
    );
    // `-f -`: the Dockerfile on stdin, the context a directory (whose own Dockerfile is a
    // decoy that must not be used).
    let dir = ctx.context(
        "stdin-file",
        &[("data.txt", "from-dir\n"), ("Dockerfile", "FROM scratch\n")],
    );
    let (r, out) = build_amd64(
        &ctx,
        "file",
        &["-f", "-", dir.to_str().unwrap()],
        df.as_bytes(),
    );
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "copied"), "from-dir\n");

    // The context `-` as a gzipped tar, with -f naming a file inside it; then a plain tar.
    let tree = ctx.context(
        "stdin-tar",
        &[("data.txt", "from-tar\n"), ("sub/Build.df", &df)],
    );
    for (gzip, name) in [(true, "targz"), (false, "tar")] {
        let (r, out) = build_amd64(
            &ctx,
            name,
            &["-f", "sub/Build.df", "-"],
            &tar_of(&tree, gzip),
        );
        r.assert_code(0);
        let files = image_files(Path::new(&out), "v1", "amd64");
        assert_eq!(text(&files, "copied"), "from-tar\n", "{name}");
    }

    // The context `-` as a Dockerfile: an empty context (docker build - < Dockerfile).
    let plain = format!("FROM {}\nRUN echo no-context > /made\n", ctx.base);
    let (r, out) = build_amd64(&ctx, "dfonly", &["-"], plain.as_bytes());
    r.assert_code(0);
    assert_eq!(
        text(&image_files(Path::new(&out), "v1", "amd64"), "made"),
        "no-context\n"
    );
    // With COPY from that empty context: bad input naming the missing file.
    let (r, _) = build_amd64(&ctx, "dfcopy", &["-"], df.as_bytes());
    r.assert_code(2);
    assert!(r.stderr.contains("data.txt"), "{}", r.stderr);

    // Both on stdin: refused before anything is read or built.
    let (r, _) = build_amd64(&ctx, "both", &["-f", "-", "-"], df.as_bytes());
    r.assert_code(2);
    assert!(
        r.stderr.contains("cannot both be read from stdin"),
        "{}",
        r.stderr
    );
}

#[test]
fn add_host_shm_size_and_ulimit_reach_every_run_step() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\n\
         RUN grep -w db.internal /etc/hosts > /hosts-line; grep -w localhost /etc/hosts > /hosts-local; \
             df -k /dev/shm | tail -n 1 | awk '{{print $2}}' > /shm-kb; \
             ulimit -n > /nofile-soft; ulimit -Hn > /nofile-hard\n",
        ctx.base
    );
    let dir = ctx.context("settings", &[("Dockerfile", &df)]);
    let args = [
        "--add-host",
        "db.internal:10.1.2.3",
        "--add-host",
        "v6.internal=[fd00::7]",
        "--shm-size",
        "32m",
        "--ulimit",
        "nofile=100:200",
        dir.to_str().unwrap(),
    ];
    let (r, out) = build_amd64(&ctx, "settings", &args, b"");
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "hosts-line"), "10.1.2.3\tdb.internal\n");
    assert!(text(&files, "hosts-local").starts_with("127.0.0.1\tlocalhost"));
    assert_eq!(text(&files, "shm-kb"), format!("{}\n", 32 * 1024));
    assert_eq!(text(&files, "nofile-soft"), "100\n");
    assert_eq!(text(&files, "nofile-hard"), "200\n");
    assert!(
        !files.contains_key("etc/hosts"),
        "the step's /etc/hosts reached its layer"
    );

    // Without the flag: Docker's 64 MiB /dev/shm; with another size the step runs again
    // (the settings are in its cache key).
    let df2 = format!(
        "FROM {}\nRUN df -k /dev/shm | tail -n 1 | awk '{{print $2}}' > /shm-kb\n",
        ctx.base
    );
    let dir2 = ctx.context("settings-default", &[("Dockerfile", &df2)]);
    let (r, out) = build_amd64(&ctx, "shm-default", &[dir2.to_str().unwrap()], b"");
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "shm-kb"), format!("{}\n", 64 * 1024));
    let (r, out) = build_amd64(
        &ctx,
        "shm-again",
        &["--shm-size", "16m", dir2.to_str().unwrap()],
        b"",
    );
    r.assert_code(0);
    assert!(r.stdout.contains("(1 steps run, 0 cached)"), "{}", r.stdout);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "shm-kb"), format!("{}\n", 16 * 1024));

    // Bad values: exit 2 naming the flag, before anything runs.
    for (flag, value, says) in [
        ("--add-host", "db:not-an-ip", "not an IP address"),
        ("--shm-size", "lots", "--shm-size"),
        ("--ulimit", "files=1", "unknown limit"),
    ] {
        let (r, _) = build_amd64(&ctx, "bad", &[flag, value, dir.to_str().unwrap()], b"");
        r.assert_code(2);
        assert!(r.stderr.contains(says), "{flag}: {}", r.stderr);
    }
}

#[test]
fn quiet_prints_the_image_id_iidfile_holds_it_and_env_secrets_are_read() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let secret = "env-secret-4c1e";
    let df = format!(
        "FROM {}\nRUN --mount=type=secret,id=tok,required test \"$(cat /run/secrets/tok)\" = {secret} && echo ok > /seen\n",
        ctx.base
    );
    let dir = ctx.context("quiet", &[("Dockerfile", &df)]);
    let iid = ctx.dir.path().join("iid");
    let iid_s = iid.display().to_string();
    let mut c = ctx.command();
    let out = ctx.dir.path().join("out-quiet");
    c.args([
        "build",
        "--platform",
        "linux/amd64",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        "-q",
        "--iidfile",
        &iid_s,
        "--secret",
        "type=env,id=tok,env=POLYARCH_TEST_TOKEN",
        dir.to_str().unwrap(),
    ]);
    c.env("POLYARCH_TEST_TOKEN", secret);
    let r = {
        let _shared = binfmt_shared();
        crate::harness::run(c)
    };
    r.assert_code(0);
    assert!(
        r.stderr.trim().is_empty(),
        "-q printed progress: {}",
        r.stderr
    );
    let id = r.stdout.trim();
    assert!(
        id.starts_with("sha256:") && r.stdout.lines().count() == 1,
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    // The id is the image's config digest, as the layout's manifest names it.
    let idx = layout_index(&out, "latest");
    let hex = idx.manifests[0].digest.to_string()[7..].to_string();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    assert_eq!(m["config"]["digest"], id);
    let files = image_files(&out, "latest", "amd64");
    assert_eq!(text(&files, "seen"), "ok\n");
}

#[test]
fn build_contexts_from_a_directory_an_image_and_an_oci_layout() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // The layout: the base image copied by skopeo (an independent writer), every platform, so
    // its index.json entry is an index the platform is chosen from.
    let layout = ctx.dir.path().join("layout");
    let o = Command::new("skopeo")
        .args(["copy", "--all", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}", ctx.base))
        .arg(format!("oci:{}:v1", layout.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = ctx.context("named-src", &[("lib.txt", "lib-1\n")]);
    // `tools` is a stage that would fail: the context of that name replaces it. `upstream` is
    // no image anywhere: the context of that name stands for it.
    let df = "FROM scratch AS tools\nRUN false\n\
              FROM src AS files\n\
              FROM upstream\n\
              COPY --from=src /lib.txt /from-dir.txt\n\
              RUN --mount=type=bind,from=src,target=/m cat /m/lib.txt > /mounted.txt\n\
              COPY --from=tools /bin/busybox /from-layout-busybox\n";
    let dir = ctx.context("named", &[("Dockerfile", df)]);
    let contexts = [
        format!("src={}", src.display()),
        format!("upstream=docker-image://{}", ctx.base),
        format!("tools=oci-layout://{}:v1", layout.display()),
    ];
    let mut args: Vec<&str> = Vec::new();
    for c in &contexts {
        args.extend(["--build-context", c.as_str()]);
    }
    args.push(dir.to_str().unwrap());
    let (r, out) = build_amd64(&ctx, "named", &args, b"");
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "from-dir.txt"), "lib-1\n");
    assert_eq!(text(&files, "mounted.txt"), "lib-1\n");
    assert!(files.contains_key("bin/sh"), "not FROM the image context");
    assert!(
        !files.contains_key("m/lib.txt"),
        "the mount reached the layer"
    );
    let layout_busybox = &files["from-layout-busybox"];
    assert!(
        layout_busybox.len() > 100_000 && files.get("bin/busybox") == Some(layout_busybox),
        "the amd64 busybox of the layout"
    );

    // The directory's content is in the step keys: changed, the steps reading it run again.
    std::fs::write(src.join("lib.txt"), "lib-2\n").unwrap();
    let (r, out) = build_amd64(&ctx, "named-again", &args, b"");
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(text(&files, "from-dir.txt"), "lib-2\n");
    assert_eq!(text(&files, "mounted.txt"), "lib-2\n");

    // FROM a directory context: the stage is its files.
    let mut target_args = vec!["--target", "files"];
    target_args.extend_from_slice(&args);
    let (r, out) = build_amd64(&ctx, "named-from", &target_args, b"");
    r.assert_code(0);
    let files = image_files(Path::new(&out), "v1", "amd64");
    assert_eq!(files.keys().collect::<Vec<_>>(), ["lib.txt"]);

    // Bad values: exit 2 naming the flag.
    for (value, says) in [
        ("src=/nonexistent/dir", "not a directory"),
        ("src=https://example.com/x.git", "not supported"),
        ("nothing", "expected NAME=SOURCE"),
    ] {
        let (r, _) = build_amd64(
            &ctx,
            "named-bad",
            &["--build-context", value, dir.to_str().unwrap()],
            b"",
        );
        r.assert_code(2);
        assert!(r.stderr.contains(says), "{value}: {}", r.stderr);
    }
}

#[test]
fn call_check_prints_the_warnings_and_builds_nothing() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nARG API_TOKEN\nRUN echo built > /built\n",
        ctx.base
    );
    let dir = ctx.context("check", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("check"));
    let check = |extra: &[&str], dir: &Path| {
        let mut args = vec!["build", "-t", &tag, "--push", "--platform", "linux/amd64"];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        ctx.run(&args, &[])
    };
    // Two warnings: a secret-looking ARG and an undeclared build argument. Exit 1, nothing
    // pushed, no step run.
    let r = check(&["--call", "check", "--build-arg", "NOT_DECLARED=1"], &dir);
    r.assert_code(1);
    assert!(r.stdout.contains("API_TOKEN"), "{}", r.stdout);
    assert!(r.stdout.contains("NOT_DECLARED"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Check complete, 2 warnings have been found!"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("RUN echo"), "a step ran: {}", r.stderr);
    assert!(crate::harness::skopeo_raw(&tag).is_none(), "pushed");
    // The progress ends with the exit code the command gives, not 0.
    assert!(!r.stderr.contains("(exit 0)"), "{}", r.stderr);
    assert!(r.stderr.contains("(exit 1)"), "{}", r.stderr);
    // In json mode the failure is an event, with no plain `error:` line after it.
    let r = check(
        &[
            "--call",
            "check",
            "--progress",
            "json",
            "--build-arg",
            "NOT_DECLARED=1",
        ],
        &dir,
    );
    r.assert_code(1);
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.to_string().contains("\"exit_code\":1")),
        "{}",
        r.stderr
    );
    // `--check` is the same; a clean Dockerfile passes.
    let clean = ctx.context(
        "check-clean",
        &[("Dockerfile", &format!("FROM {}\nRUN true\n", ctx.base))],
    );
    let r = check(&["--check"], &clean);
    r.assert_code(0);
    assert!(
        r.stdout.contains("Check complete, no warnings found."),
        "{}",
        r.stdout
    );
    assert!(crate::harness::skopeo_raw(&tag).is_none(), "pushed");
    // An error: exit 2 with the location.
    let bad = ctx.context(
        "check-bad",
        &[("Dockerfile", "FROM scratch\nCOPY --from=${STAGE}x /a /a\n")],
    );
    let r = check(&["--check"], &bad);
    r.assert_code(2);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
    // Other buildx methods are refused.
    let r = check(&["--call", "outline"], &clean);
    r.assert_code(2);
}

/// The registry requests a `--progress json` run reports in its `registry_requests` event.
fn registry_requests(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "registry_requests")
        .and_then(|v| v["requests"].as_u64())
        .unwrap_or_else(|| panic!("no registry_requests event in {stderr}"))
}

#[test]
fn pull_reads_the_base_config_again() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\nRUN echo one > /one\n", ctx.base);
    let dir = ctx.context("pull", &[("Dockerfile", &df)]);
    let args = ["--progress", "json", dir.to_str().unwrap()];
    build_amd64(&ctx, "pull-0", &args, b"").0.assert_code(0);
    let (r, _) = build_amd64(&ctx, "pull-1", &args, b"");
    r.assert_code(0);
    let cached = registry_requests(&r.stderr);
    let (r, _) = build_amd64(
        &ctx,
        "pull-2",
        &["--pull", "--progress", "json", dir.to_str().unwrap()],
        b"",
    );
    r.assert_code(0);
    assert!(
        registry_requests(&r.stderr) > cached,
        "--pull fetched nothing more than a cached build ({cached} requests)"
    );
}

// README "buildx flags": the flags marked refused exit 2 naming the flag, before anything runs.
#[test]
fn refused_buildx_flags_exit_2_naming_the_flag() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context("refused", &[("Dockerfile", "FROM scratch\n")]);
    for flags in [
        &["--builder", "default"][..],
        &["--cgroup-parent", "x"],
        &["--debug"],
        &["--detach"],
        &["--root", "/tmp/x"],
        &["--server-config", "/tmp/x"],
        &["--call", "outline"],
        &["--call", "targets"],
        &["--allow", "device"],
        &["--progress", "rawjson"],
    ] {
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push(dir.to_str().unwrap());
        let r = ctx.run(&args, &[]);
        r.assert_code(2);
        assert!(r.stderr.contains(flags[0]), "{flags:?}: {}", r.stderr);
    }
}

/// An `ssh-agent -D` of the test's own on `sock`, killed (by its pid) when dropped.
struct Agent(std::process::Child);

impl Agent {
    fn start(sock: &Path) -> Agent {
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client, scripts/lib.sh)");
        let agent = Agent(child);
        // The agent creates the socket before it serves; wait for it (bounded, not timed).
        for _ in 0..500 {
            if sock.exists() {
                return agent;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("ssh-agent did not create {}", sock.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ssh_agent_is_forwarded_into_run_steps_and_stored_nowhere() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context("ssh", &[]);
    // A static client per platform that lists the agent's identities (busybox has no ssh-add).
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh/list-identities.c");
    for (arch, cc) in [("amd64", "gcc"), ("arm64", "aarch64-linux-gnu-gcc")] {
        let o = Command::new(cc)
            .args(["-static", "-O1", "-o"])
            .arg(dir.join(format!("lister-{arch}")))
            .arg(&source)
            .output()
            .expect("gcc (scripts/lib.sh installs gcc and gcc-aarch64-linux-gnu)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let sock = ctx.dir.path().join("agent.sock");
    let _agent = Agent::start(&sock);
    let key = ctx.dir.path().join("id_ed25519");
    let comment = format!("polyarch-ssh-test-{}", std::process::id());
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let df = format!(
        "FROM {}\nARG TARGETARCH\n\
         RUN --mount=type=ssh --mount=type=bind,source=lister-$TARGETARCH,target=/lister \
             /lister > /identities && echo \"$SSH_AUTH_SOCK\" > /sock\n\
         RUN --mount=type=ssh,id=other,target=/tmp/agent.sock,required \
             --mount=type=bind,source=lister-$TARGETARCH,target=/lister \
             SSH_AUTH_SOCK=/tmp/agent.sock /lister > /other\n\
         RUN --mount=type=ssh,id=absent test ! -e /run/buildkit/ssh_agent.0 && echo skipped > /absent\n",
        ctx.base
    );
    std::fs::write(dir.join("Dockerfile"), &df).unwrap();
    let out = ctx.dir.path().join("out-ssh");
    let spec = format!("type=oci,dest={}", out.display());
    let other = format!("other={}", sock.display());
    let build = |ssh: &[&str]| {
        let mut c = ctx.command();
        c.args([
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "example/ssh:v1",
        ]);
        c.args(["-o", &spec]);
        for s in ssh {
            c.args(["--ssh", s]);
        }
        c.arg(&dir);
        c.env("SSH_AUTH_SOCK", &sock);
        let _shared = binfmt_shared();
        crate::harness::run(c)
    };
    let r = build(&["default", &other]);
    r.assert_code(0);
    for arch in ["amd64", "arm64"] {
        let files = image_files(&out, "v1", arch);
        let listed = format!("{comment}\n1 identities\n");
        assert_eq!(text(&files, "identities"), listed, "{arch}");
        assert_eq!(text(&files, "other"), listed, "{arch}");
        assert_eq!(
            text(&files, "sock"),
            "/run/buildkit/ssh_agent.0\n",
            "{arch}"
        );
        assert_eq!(text(&files, "absent"), "skipped\n", "{arch}");
        assert!(
            !files
                .keys()
                .any(|k| k.starts_with("run/buildkit") || k.starts_with("tmp/agent.sock")),
            "{arch}: an agent mount point reached a layer: {:?}",
            files.keys().collect::<Vec<_>>()
        );
    }
    // The socket's host path is in no blob (layers, configs, manifests).
    let needle = sock.display().to_string();
    for e in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let mut plain = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            use std::io::Read;
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut plain)
                .unwrap();
        } else {
            plain = raw;
        }
        assert!(
            !plain.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the agent socket's path is in a blob"
        );
    }

    // A required agent that was not given: exit 2 naming it; a key file is not an agent.
    let r = build(&["default"]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("ssh agent \"other\" is required"),
        "{}",
        r.stderr
    );
    let keyspec = format!("default={}", key.display());
    let r = build(&[&keyspec]);
    r.assert_code(2);
    assert!(r.stderr.contains("is not an agent socket"), "{}", r.stderr);
}

// Issue 14 item 7 (BuildKit `dockerfile2llb/convert.go`, implicit target): without --platform
// the image claims the platform its target stage ran as; with --platform, the one asked for.
#[test]
fn a_target_stage_from_another_platform_claims_it_only_without_platform() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM --platform=linux/arm64 {}\nRUN uname -m > /arch\n",
        ctx.base
    );
    let dir = ctx.context("implicit", &[("Dockerfile", &df)]);
    for (flags, claims) in [
        (&[][..], "arm64"),
        (&["--platform", "linux/amd64"][..], "amd64"),
    ] {
        let out = ctx.dir.path().join(format!("out-implicit-{claims}"));
        let spec = format!("type=oci,dest={}", out.display());
        let mut args = vec!["build", "-t", "example/implicit:v1", "-o", &spec];
        args.extend_from_slice(flags);
        args.push(dir.to_str().unwrap());
        ctx.run(&args, &[]).assert_code(0);
        let idx = layout_index(&out, "v1");
        assert_eq!(idx.manifests.len(), 1);
        let p = idx.manifests[0].platform.as_ref().unwrap();
        assert_eq!(p.architecture.to_string(), claims, "{flags:?}");
        // The files are arm64's either way (the stage ran as arm64).
        let files = image_files(&out, "v1", claims);
        assert_eq!(text(&files, "arch"), "aarch64\n", "{flags:?}");
        // The config says the same as the index (skopeo reads it from the layout).
        let o = Command::new("skopeo")
            .args(["inspect", "--config", "--override-arch", claims])
            .arg(format!("oci:{}:v1", out.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(config["architecture"], claims, "{flags:?}");
    }
}

/// A RUN line failing (exit 1) when one of `PATH=UID:GID` pairs has other owners.
fn owners_check(pairs: &str) -> String {
    format!(
        "RUN for pe in {pairs}; do p=${{pe%%=*}}; e=${{pe#*=}}; a=$(stat -c %u:%g $p); \
         [ \"$a\" = \"$e\" ] || {{ echo \"$p: expected $e, got $a\"; exit 1; }}; done\n"
    )
}

// Issue 14 item 7, from BuildKit's dockerfile_copy_test.go: `testCopyChownExistingDir` (a copied
// directory's missing destination is created as root or the --chown user; what is inside keeps
// its owners; an existing destination keeps its own), `testEmptyDestDir`,
// `testCopyLinkEmptyDestDir`, `testCopyLinkDotDestDir`, `testPreserveDestDirSlash`,
// `testEmptyWildcard`, and the ones named below. Each check fails the build when polyarch
// differs.
#[test]
fn copy_destinations_and_owners_as_buildkit() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let base = &ctx.base;
    let mut df = format!(
        "FROM {base} AS source\n\
         RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile \
             && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile\n\
         FROM {base} AS test_base\n\
         RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile \
             && chown 500:600 /existingdir && chown 501:601 /existingdir/existingsubdir \
             && chown 501:601 /existingdir/existingfile\n\
         FROM test_base AS copy_from\n\
         COPY --from=source /file .\n\
         COPY --from=source /dir /dir\n\
         COPY --from=source /dir/. /existingdir\n"
    );
    df.push_str(&owners_check(
        "/file=100:200 /dir=0:0 /dir/subdir=101:201 /dir/subdir/nestedfile=102:202 \
         /existingdir=500:600 /existingdir/existingsubdir=501:601 /existingdir/existingfile=501:601 \
         /existingdir/subdir=101:201 /existingdir/subdir/nestedfile=102:202",
    ));
    df.push_str(
        "FROM test_base AS copy_from_chowned\n\
         COPY --from=source --chown=300:400 /file .\n\
         COPY --from=source --chown=300:400 /dir /dir\n\
         COPY --from=source --chown=300:400 /dir/. /existingdir\n",
    );
    df.push_str(&owners_check(
        "/file=300:400 /dir=300:400 /dir/subdir=300:400 /dir/subdir/nestedfile=300:400 \
         /existingdir=500:600 /existingdir/existingsubdir=501:601 /existingdir/existingfile=501:601 \
         /existingdir/subdir=300:400 /existingdir/subdir/nestedfile=300:400",
    ));
    df.push_str(&format!(
        "FROM {base} AS dests\n\
         ENV empty=\"\"\n\
         COPY testfile $empty\n\
         RUN [ \"$(cat /testfile)\" = contents0 ]\n\
         COPY testfile /sample/\n\
         RUN [ \"$(cat /sample/testfile)\" = contents0 ]\n\
         WORKDIR /var/www\n\
         COPY --link testfile .\n\
         RUN [ \"$(cat /var/www/testfile)\" = contents0 ]\n\
         WORKDIR /var/www2\n\
         COPY --link testfile $empty\n\
         RUN [ \"$(cat /var/www2/testfile)\" = contents0 ]\n\
         COPY testfile nomatch* /wild/\n\
         RUN [ \"$(cat /wild/testfile)\" = contents0 ]\n"
    ));
    // `testCopyWildcards`, `testCopyOverrideFiles` (the same COPY twice: one layer twice in the
    // stack), `testCopyRelative`, `testCopyChmod` (missing parents take the --chmod bits).
    df.push_str(&format!(
        "FROM {base} AS wild\n\
         COPY *.go /gofiles/\n\
         COPY f*.go foo2.go\n\
         COPY sub/* /subdest/\n\
         COPY sub/*/dir2/foo /subdest2/\n\
         COPY sub/*/dir2/foo /subdest3/bar\n\
         COPY . all/\n\
         COPY sub/dir1/ subdest4\n\
         COPY sub/dir1/. subdest5\n\
         COPY sub/dir1 subdest6\n\
         COPY sub sub\n\
         COPY sub sub\n\
         COPY files/foo.go dest/foo.go\n\
         COPY files/foo.go dest/foo.go\n\
         COPY files dest\n\
         RUN for f in /gofiles/foo.go /gofiles/bar.go /foo2.go /subdest/dir2/foo /subdest2/foo \
             /subdest3/bar /all/foo.go /subdest4/dir2/foo /subdest5/dir2/foo /subdest6/dir2/foo \
             /sub/dir1/dir2/foo /dest/foo.go; do [ -f $f ] || {{ echo missing $f; exit 1; }}; done\n\
         FROM {base} AS rel\n\
         WORKDIR /test1\n\
         WORKDIR test2\n\
         COPY testfile ./\n\
         ADD testfile ./bar/baz\n\
         COPY testfile ./bar/baz2\n\
         WORKDIR ..\n\
         COPY testfile ./\n\
         COPY testfile /test3/\n\
         WORKDIR /test5/test6\n\
         COPY testfile ../\n\
         RUN for f in /test1/test2/testfile /test1/test2/bar/baz /test1/test2/bar/baz2 \
             /test1/testfile /test3/testfile /test5/testfile; do [ -f $f ] || {{ echo missing $f; exit 1; }}; done\n\
         FROM {base} AS chmod\n\
         COPY --chmod=0644 testfile /foo\n\
         COPY --chmod=777 testfile /baz\n\
         COPY --chmod=0 testfile /foobis\n\
         COPY --chmod=777 testfile /parent/foo\n\
         COPY --chmod=770 testfile /parent/sub/foo\n\
         RUN for pe in /foo=0644 /baz=0777 /foobis=0000 /parent=0777 /parent/sub=0770; do \
             p=${{pe%%=*}}; e=${{pe#*=}}; a=$(stat -c %04a $p); \
             [ \"$a\" = \"$e\" ] || {{ echo \"$p: expected $e, got $a\"; exit 1; }}; done\n"
    ));
    let dir = ctx.context(
        "copy-bk",
        &[
            ("Dockerfile", &df),
            ("testfile", "contents0"),
            ("foo.go", "foo-contents"),
            ("bar.go", "bar-contents"),
            ("sub/dir1/dir2/foo", "foo-contents"),
            ("files/foo.go", "foo.go-contents"),
        ],
    );
    for target in [
        "copy_from",
        "copy_from_chowned",
        "dests",
        "wild",
        "rel",
        "chmod",
    ] {
        let (r, _) = build_amd64(
            &ctx,
            &format!("copy-bk-{target}"),
            &["--target", target, dir.to_str().unwrap()],
            b"",
        );
        r.assert_code(0);
    }
}

/// The number of network interfaces `/proc/net/dev` lists (after its two header lines).
fn interfaces(text: &str) -> usize {
    text.lines().skip(2).count()
}

#[test]
fn network_sets_the_default_of_run_steps() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nRUN cat /proc/net/dev > /plain\nRUN --network=default cat /proc/net/dev > /default\n\
         RUN --network=none cat /proc/net/dev > /none\n",
        ctx.base
    );
    let dir = ctx.context("network", &[("Dockerfile", &df)]);
    let d = dir.to_str().unwrap();
    let count = |out: &str, file: &str| {
        interfaces(&text(&image_files(Path::new(out), "v1", "amd64"), file))
    };
    // Without --network: a private namespace with pasta's interface beside loopback.
    let (r, out) = build_amd64(&ctx, "net-unset", &[d], b"");
    r.assert_code(0);
    assert!(count(&out, "plain") >= 2, "no pasta interface");
    assert_eq!(count(&out, "none"), 1);
    // --network none: loopback only for the steps without their own mode (the step keys
    // differ, so they run again).
    let (r, out) = build_amd64(&ctx, "net-none", &["--network", "none", d], b"");
    r.assert_code(0);
    assert_eq!(count(&out, "plain"), 1);
    assert_eq!(count(&out, "default"), 1);
    // --network host needs the entitlement; with it the steps see the host's interfaces.
    let (r, _) = build_amd64(&ctx, "net-host-refused", &["--network", "host", d], b"");
    r.assert_code(2);
    assert!(r.stderr.contains("--allow network.host"), "{}", r.stderr);
    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let (r, out) = build_amd64(
        &ctx,
        "net-host",
        &["--network", "host", "--allow", "network.host", d],
        b"",
    );
    r.assert_code(0);
    assert_eq!(count(&out, "plain"), host);
    assert_eq!(count(&out, "none"), 1);
}
