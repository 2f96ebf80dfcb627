//! The step cache end to end: which steps each kind of change runs again (a random marker
//! after each step, `RUN od -An -N8 -tx1 /dev/urandom`, shows it in the image; busybox's
//! `date +%s%N` has whole seconds only, so two fast builds gave equal markers), the json progress says it per step), a
//! corrupt entry dropped and rebuilt, and an unchanged two-platform rebuild (one emulated)
//! that gives the same index digest with every step `CACHED` and no blob upload, counted in a
//! private registry's access log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::{image_files, Run, TestContext};
use crate::registry::RegistryProcess;

const F: &str = "linux/amd64";
const O: &str = "linux/amd64 other";

/// `(stage label, step number, cached)` of every step a build started (json progress).
pub(crate) fn steps(r: &Run) -> Vec<(String, usize, bool)> {
    r.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "step_started")
        .map(|v| {
            (
                v["platform"].as_str().unwrap_or_default().to_string(),
                v["step"].as_u64().unwrap_or_default() as usize,
                v["cached"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// The steps a build ran (did not take from the cache).
fn ran(r: &Run) -> BTreeSet<(String, usize)> {
    steps(r)
        .into_iter()
        .filter(|(_, _, cached)| !cached)
        .map(|(p, n, _)| (p, n))
        .collect()
}

fn set(steps: &[(&str, usize)]) -> BTreeSet<(String, usize)> {
    steps.iter().map(|(p, n)| (p.to_string(), *n)).collect()
}

/// The marker files and the step whose run writes each one.
const STAMPS: [(&str, &str, usize); 5] = [
    ("s1", F, 3),
    ("s2", F, 5),
    ("s3", F, 7),
    ("s4", F, 8),
    ("other-stamp", O, 1),
];

struct Rules<'a> {
    ctx: &'a TestContext,
    dir: std::path::PathBuf,
    out: std::path::PathBuf,
    args: Vec<String>,
    stamps: BTreeMap<String, Vec<u8>>,
}

impl Rules<'_> {
    fn build(&self, extra: &[&str]) -> Run {
        let out = format!("type=oci,dest={}", self.out.display());
        let mut args: Vec<&str> = vec![
            "build",
            "--progress",
            "json",
            "--platform",
            "linux/amd64",
            "-o",
            &out,
        ];
        args.extend(self.args.iter().map(String::as_str));
        args.extend(extra);
        args.push(self.dir.to_str().unwrap());
        let r = self.ctx.run(&args, &[]);
        r.assert_code(0);
        r
    }

    /// Builds and checks that exactly `expected` ran, and that exactly their markers changed.
    fn expect(&mut self, what: &str, extra: &[&str], expected: &[(&str, usize)]) -> Run {
        let r = self.build(extra);
        assert_eq!(ran(&r), set(expected), "{what}: steps run");
        let files = image_files(&self.out, "latest", "amd64");
        for (file, label, step) in STAMPS {
            let now = files[file].clone();
            let reran = expected.contains(&(label, step));
            if let Some(before) = self.stamps.get(file) {
                assert_eq!(&now != before, reran, "{what}: marker /{file}");
            }
            self.stamps.insert(file.to_string(), now);
        }
        r
    }

    fn write(&self, path: &str, body: &str) {
        std::fs::write(self.dir.join(path), body).unwrap();
    }
}

fn all(other: bool) -> Vec<(&'static str, usize)> {
    let mut v: Vec<(&str, usize)> = (1..=9).map(|n| (F, n)).collect();
    if other {
        v.push((O, 1));
    }
    v
}

fn from(first: usize) -> Vec<(&'static str, usize)> {
    (first..=9).map(|n| (F, n)).collect()
}

/// Pushes a one-platform base image of our own (the shared base plus a label) to `tag`.
fn push_base(ctx: &TestContext, tag: &str, label: &str) {
    let dir = ctx.context(
        &format!("base-{label}"),
        &[(
            "Dockerfile",
            &format!("FROM {}\nLABEL v={label}\n", ctx.base),
        )],
    );
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
}

fn dockerfile(base: &str, owner: &str) -> String {
    format!(
        "FROM {base} AS other\n\
         RUN od -An -N8 -tx1 /dev/urandom > /other-stamp\n\
         FROM {base}\n\
         ARG USED\n\
         COPY f1.txt /f1.txt\n\
         RUN od -An -N8 -tx1 /dev/urandom > /s1\n\
         COPY --chown={owner} f2.txt /f2.txt\n\
         RUN od -An -N8 -tx1 /dev/urandom > /s2\n\
         COPY dir/ /dir/\n\
         RUN od -An -N8 -tx1 /dev/urandom > /s3\n\
         RUN echo \"$USED\" > /used && od -An -N8 -tx1 /dev/urandom > /s4\n\
         COPY --from=other /other-stamp /other-stamp\n"
    )
}

#[test]
fn each_change_runs_exactly_the_steps_it_should() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let base = format!("{}:t", ctx.repo("cache-base"));
    push_base(&ctx, &base, "1");
    let dir = ctx.context(
        "rules",
        &[
            ("Dockerfile", &dockerfile(&base, "1:1")),
            ("f1.txt", "one\n"),
            ("f2.txt", "two\n"),
            ("dir/a.txt", "a\n"),
            ("dir/b.txt", "b\n"),
        ],
    );
    let mut t = Rules {
        ctx: &ctx,
        out: ctx.dir.path().join("out"),
        dir,
        args: Vec::new(),
        stamps: BTreeMap::new(),
    };
    t.expect("first build", &[], &all(true));
    t.expect("nothing changed", &[], &[]);

    // Touching mtimes busts nothing.
    let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for f in ["f1.txt", "f2.txt", "dir/a.txt", "dir/b.txt"] {
        let file = std::fs::File::options()
            .write(true)
            .open(t.dir.join(f))
            .unwrap();
        file.set_modified(past).unwrap();
    }
    t.expect("mtimes touched", &[], &[]);

    // Content and mode of a selected file: that COPY and everything after it.
    t.write("f1.txt", "ONE\n");
    t.expect("file content", &[], &from(2));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.dir.join("f1.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    t.expect("file mode", &[], &from(2));

    // The --chown owner.
    t.write("Dockerfile", &dockerfile(&base, "2:2"));
    t.expect("--chown owner", &[], &from(4));

    // .dockerignore: a pattern that removes a selected file; one for a new file (nothing
    // selected changes); then letting that file in.
    t.write(".dockerignore", "dir/b.txt\n");
    t.expect(".dockerignore removes a file", &[], &from(6));
    t.write("dir/c.txt", "c\n");
    t.write(".dockerignore", "dir/b.txt\ndir/c.txt\n");
    t.expect(".dockerignore: an excluded new file", &[], &[]);
    t.write(".dockerignore", "dir/b.txt\n");
    t.expect(".dockerignore adds a file", &[], &from(6));

    // An unused build arg busts nothing; a used one busts its ARG step (config only) and the
    // steps that see it (every RUN after it, and what follows them), not the COPY before.
    t.expect("unused build arg", &["--build-arg", "UNUSED=1"], &[]);
    t.args = vec!["--build-arg".into(), "USED=x".into()];
    let mut used: Vec<(&str, usize)> = vec![(F, 1)];
    used.extend(from(3));
    t.expect("used build arg", &[], &used);

    // A moved base tag: a new digest, every step of both stages.
    push_base(&ctx, &base, "2");
    t.expect("changed base digest", &[], &all(true));

    // --no-cache runs everything; --no-cache-filter only the stage named, and the step that
    // reads what it made.
    t.expect("--no-cache", &["--no-cache"], &all(true));
    t.expect(
        "--no-cache-filter other",
        &["--no-cache-filter", "other"],
        &[(O, 1), (F, 9)],
    );
    let r = t.expect(
        "--no-cache-filter other",
        &["--no-cache-filter", "other"],
        &[(O, 1), (F, 9)],
    );
    assert!(
        r.stderr.contains("--no-cache-filter other"),
        "the reason is said: {}",
        r.stderr
    );
    let bad = ctx.run(
        &[
            "build",
            "--no-cache-filter",
            "nope",
            t.dir.to_str().unwrap(),
        ],
        &[],
    );
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("no stage named \"nope\""),
        "{}",
        bad.stderr
    );
}

/// The entry file whose step's history text contains `needle`.
fn entry_file(state: &Path, needle: &str) -> std::path::PathBuf {
    std::fs::read_dir(state.join("cache/steps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).contains(needle))
        .unwrap_or_else(|| panic!("no entry for {needle}"))
}

#[test]
fn a_corrupt_entry_is_dropped_with_a_warning_and_its_step_runs_again() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.context(
        "corrupt",
        &[(
            "Dockerfile",
            &format!(
                "FROM {}\nRUN od -An -N8 -tx1 /dev/urandom > /a\nRUN od -An -N8 -tx1 /dev/urandom > /marker-b\nRUN od -An -N8 -tx1 /dev/urandom > /c\n",
                ctx.base
            ),
        )],
    );
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
    let build = || {
        let r = ctx.run(
            &[
                "build",
                "--progress",
                "json",
                "--platform",
                "linux/amd64",
                "-o",
                &out,
                dir.to_str().unwrap(),
            ],
            &[],
        );
        r.assert_code(0);
        r
    };
    build();
    let state = ctx.dir.path().join("state");
    // A power loss mid-write on a file system without data journaling: the file is cut short.
    let file = entry_file(&state, "/marker-b");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let r = build();
    assert_eq!(ran(&r), set(&[(F, 2), (F, 3)]), "{}", r.stderr);
    assert!(
        r.stderr.contains("cache entry dropped") && r.stderr.contains("corrupt"),
        "{}",
        r.stderr
    );
    // Rebuilt and recorded again: the next build takes everything from the cache.
    assert_eq!(ran(&build()), BTreeSet::new());
}

/// A registry of the test's own with its access log on, so that uploads can be counted.
fn logging_registry() -> Option<RegistryProcess> {
    RegistryProcess::start_custom(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: @ROOT@\n  delete:\n    enabled: true\n\
         http:\n  addr: @ADDR@\n",
        &[],
    )
}

/// Blob uploads the registry committed (`PUT /v2/<name>/blobs/uploads/<id>?digest=...`).
pub(crate) fn uploads(registry: &RegistryProcess) -> usize {
    registry
        .log_text()
        .lines()
        // Committed uploads: the closing `PUT ...?digest=`. (A build's pre-flight opens an
        // upload session to prove push rights and abandons it: that is no upload.)
        .filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/"))
        .count()
}

#[test]
fn an_unchanged_two_platform_rebuild_is_cached_byte_identical_and_uploads_nothing() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(registry) = logging_registry() else {
        return;
    };
    let dir = ctx.context(
        "same",
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nARG TARGETARCH\nWORKDIR /app\nCOPY app.sh .\n\
                     RUN uname -m > /arch && od -An -N8 -tx1 /dev/urandom > /stamp\nENV MODE=prod\n\
                     COPY <<EOF /etc/motd\nhello\nEOF\nCMD [\"/app/app.sh\"]\n",
                    ctx.base
                ),
            ),
            ("app.sh", "#!/bin/sh\ncat /arch\n"),
        ],
    );
    let tag = format!("{}/test/same:1", registry.addr);
    let build = || {
        let r = ctx.run(
            &[
                "build",
                "--progress",
                "json",
                "--platform",
                "linux/amd64,linux/arm64/v8",
                "-t",
                &tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[],
        );
        r.assert_code(0);
        r
    };
    let first = build();
    assert!(
        steps(&first).iter().all(|s| !s.2),
        "a cold build runs everything"
    );
    let before = uploads(&registry);
    assert!(before > 0, "the first build uploaded its blobs");
    // Without SOURCE_DATE_EPOCH, a second apart: times would show if anything were redone.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build();
    let all = steps(&second);
    assert_eq!(all.len(), steps(&first).len());
    assert!(all.iter().all(|s| s.2), "every step CACHED: {all:?}");
    assert_eq!(
        second.index_digest(),
        first.index_digest(),
        "same index digest"
    );
    assert_eq!(uploads(&registry), before, "no blob was uploaded again");
    // The summary counts them per platform.
    for p in ["linux/amd64", "linux/arm64/v8"] {
        let line = second
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap_or_else(|| panic!("{p} in {}", second.stdout));
        assert!(line.ends_with("(0 steps run, 7 cached)"), "{line}");
    }
    // Plain progress says CACHED on each step.
    let plain = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "-t",
            &tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    plain.assert_code(0);
    assert!(
        plain
            .stderr
            .contains("[linux/arm64/v8] #4 CACHED RUN uname -m > /arch"),
        "{}",
        plain.stderr
    );
    assert_eq!(plain.index_digest(), first.index_digest());
}

/// An HTTP server on loopback serving whatever `body` holds now, counting the requests.
struct Served {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn serve(body: &[u8]) -> Served {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/file", listener.local_addr().unwrap());
    let served = Served {
        url,
        body: std::sync::Arc::new(std::sync::Mutex::new(body.to_vec())),
        hits: Default::default(),
    };
    let (b, hits) = (served.body.clone(), served.hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            hits.fetch_add(1, Ordering::SeqCst);
            let body = b.lock().unwrap().clone();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    served
}

#[test]
fn add_url_follows_buildkit_checksum_is_the_key_else_the_content() {
    use std::sync::atomic::Ordering;
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let pinned = serve(b"pinned\n");
    let loose = serve(b"loose v1\n");
    let checksum = crate::harness::digest_of(b"pinned\n");
    let df = format!(
        "FROM {}\nADD --checksum={checksum} {} /pinned\nADD {} /loose\nRUN od -An -N8 -tx1 /dev/urandom > /s\n",
        ctx.base, pinned.url, loose.url
    );
    let dir = ctx.context("urls", &[("Dockerfile", &df)]);
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
    let build = || {
        let r = ctx.run(
            &[
                "build",
                "--progress",
                "json",
                "--platform",
                "linux/amd64",
                "-o",
                &out,
                dir.to_str().unwrap(),
            ],
            &[],
        );
        r.assert_code(0);
        r
    };
    build();
    assert_eq!(pinned.hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        loose.hits.load(Ordering::SeqCst),
        1,
        "fetched once, not again to run"
    );
    // Unchanged: the pinned URL is not fetched at all; the other is, to key on its content.
    assert_eq!(ran(&build()), BTreeSet::new());
    assert_eq!(
        pinned.hits.load(Ordering::SeqCst),
        1,
        "nothing fetched on a hit"
    );
    assert_eq!(loose.hits.load(Ordering::SeqCst), 2);
    // New content at the URL: that ADD and what follows run again, fetched once.
    *loose.body.lock().unwrap() = b"loose v2\n".to_vec();
    assert_eq!(ran(&build()), set(&[(F, 2), (F, 3)]));
    assert_eq!(loose.hits.load(Ordering::SeqCst), 3);
    assert_eq!(pinned.hits.load(Ordering::SeqCst), 1);
}
