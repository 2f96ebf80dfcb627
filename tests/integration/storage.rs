//! The state directory shared by processes: `polyarch prune --all` while a build runs keeps
//! what the build uses (the build succeeds), and a build killed with SIGKILL leaves a session
//! directory that the next polyarch process removes, never one a live process holds.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TestContext;

/// How many processes' command lines contain `marker`.
fn running(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(marker))
        .count()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `polyarch build` of a one-step Dockerfile whose step sleeps `secs` (a marker in its
/// command line), on this host's platform, in `state`.
fn sleeping_build(ctx: &TestContext, name: &str, marker: &str, state: &std::path::Path) -> Child {
    let df = format!(
        "FROM {}\nRUN sleep {marker} && cat /etc/passwd > /p\nRUN cat /p > /q\n",
        ctx.base
    );
    let dir = ctx.context(name, &[("Dockerfile", &df)]);
    ctx.command()
        .args(["build", "--platform", "linux/amd64", "-o"])
        .arg(format!(
            "type=oci,dest={}",
            ctx.dir.path().join(format!("out-{name}")).display()
        ))
        .arg(&dir)
        .env("POLYARCH_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sessions(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state.join("procs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn prune_all_during_a_build_keeps_what_it_uses() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let state = ctx.dir.path().join("state");
    let _shared = crate::harness::binfmt_shared();
    let marker = format!("2.{}1", std::process::id());
    let build = sleeping_build(&ctx, "busy", &marker, &state);
    wait_until("the step never started", || running(&marker) > 0);
    let pruned = ctx.run_unlocked(&["prune", "--all"], &[]);
    pruned.assert_code(0);
    assert!(
        pruned.stdout.contains("a running build uses"),
        "{}",
        pruned.stdout
    );
    let out = build.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the build survived the prune: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Afterwards nothing is in use: prune takes it all.
    let du = ctx.run_unlocked(&["du", "--json"], &[]);
    let usage: serde_json::Value = serde_json::from_str(&du.stdout).unwrap();
    let blobs = &usage.as_array().unwrap()[0];
    assert!(blobs["items"].as_u64().unwrap() > 0);
    assert_eq!(blobs["size"], blobs["reclaimable"], "{usage}");
}

#[test]
fn a_killed_build_s_leftovers_go_with_the_next_process_never_a_live_one_s() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let state = ctx.dir.path().join("state");
    let _shared = crate::harness::binfmt_shared();
    let killed_marker = format!("30.{}1", std::process::id());
    let live_marker = format!("3.{}2", std::process::id());
    let mut killed = sleeping_build(&ctx, "killed", &killed_marker, &state);
    wait_until("the killed build's step never started", || {
        running(&killed_marker) > 0
    });
    let live = sleeping_build(&ctx, "live", &live_marker, &state);
    wait_until("the live build's step never started", || {
        running(&live_marker) > 0
    });
    let st = Command::new("kill")
        .args(["-KILL", &killed.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    killed.wait().unwrap();
    // Its sandbox dies with it (PR_SET_PDEATHSIG); its session directory stays behind.
    wait_until("the killed build's step survived", || {
        running(&killed_marker) == 0
    });
    let before = sessions(&state);
    assert_eq!(before.len(), 2, "{before:?}");
    let leftover = before
        .iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&killed.id().to_string())
        })
        .unwrap()
        .clone();
    assert!(
        std::fs::read_dir(&leftover).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("step")),
        "a step directory was left"
    );
    // The next polyarch process removes it, and only it.
    ctx.run_unlocked(&["du"], &[]).assert_code(0);
    let after = sessions(&state);
    assert!(!leftover.exists(), "leftover removed");
    assert_eq!(
        after.len(),
        1,
        "the live build's session is kept: {after:?}"
    );
    let out = live.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A rebuild finds no step directory of anyone.
    let r = ctx.run_unlocked(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=oci,dest={}", ctx.dir.path().join("again").display()),
            ctx.dir.path().join("killed").to_str().unwrap(),
        ],
        &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
    );
    r.assert_code(0);
    assert!(sessions(&state).is_empty(), "{:?}", sessions(&state));
}

/// One HTTP/1.1 request to the registry at `addr`; returns the status and the `Location`.
fn http(addr: &str, method: &str, path: &str) -> (u16, Option<String>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let location = answer
        .lines()
        .find_map(|l| l.strip_prefix("Location: ").map(|v| v.trim().to_string()));
    (status, location)
}

#[test]
fn upload_sessions_a_killed_build_left_open_are_abandoned_by_the_next_build() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let repo = ctx.repo("abandoned");
    let name = repo.split_once('/').unwrap().1;
    // The session a build killed mid-upload would have left open at the registry...
    let (status, location) = http(&ctx.registry, "POST", &format!("/v2/{name}/blobs/uploads/"));
    assert_eq!(status, 202);
    let location = location.unwrap();
    let url = if location.starts_with("http") {
        location.clone()
    } else {
        format!("http://{}{location}", ctx.registry)
    };
    let path = url.split_once(&ctx.registry).unwrap().1.to_string();
    assert_eq!(
        http(&ctx.registry, "GET", &path).0,
        204,
        "the session is open"
    );
    // ...and its session directory: a lock nobody holds, the journal naming the session.
    let state = ctx.dir.path().join("state");
    let dead = state.join("procs/1-killed");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("lock"), "").unwrap();
    std::fs::write(
        dead.join("uploads"),
        format!("open {} {url}\n", ctx.registry),
    )
    .unwrap();
    // The next build removes the directory and abandons the session.
    let dir = ctx.context(
        "next",
        &[("Dockerfile", &format!("FROM {}\nENV A=1\n", ctx.base))],
    );
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &format!("{repo}:1"),
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    assert!(!dead.exists());
    assert_eq!(
        http(&ctx.registry, "GET", &path).0,
        404,
        "the session is gone"
    );
    assert!(sessions(&state).is_empty());
}

/// The registry client journals each upload session it opens and closes it when committed.
#[tokio::test]
async fn uploads_are_journaled_open_then_done() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    use polyarch::registry::{OciRegistry, Reference, Registry, RegistryOptions};
    let journal = ctx.dir.path().join("uploads");
    let client = OciRegistry::new(RegistryOptions {
        upload_journal: Some(journal.clone()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let repo: Reference = ctx.repo("journal").parse().unwrap();
    let bytes = format!("journal test {}", std::process::id()).into_bytes();
    let file = ctx.dir.path().join("blob");
    std::fs::write(&file, &bytes).unwrap();
    let desc = polyarch::oci::Descriptor::new(
        "application/octet-stream",
        polyarch::oci::Digest::of(&bytes),
        bytes.len() as u64,
    );
    client.push_blob(&repo, &desc, &file).await.unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let url = lines[0]
        .strip_prefix(&format!("open {} ", ctx.registry))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(lines[1], format!("done {url}"));
}
