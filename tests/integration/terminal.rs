//! What a person sees: the live view of a two-platform build in a real terminal (tmux, read
//! with `capture-pane` while it runs and after), plain lines when stderr is a pipe, and the
//! `--progress json` stream of a good and a failing build checked line by line against the
//! documented schema (tests/fixtures/progress/events.schema.json).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{binfmt_shared, skopeo_raw, TestContext};

const TWO: &str = "linux/amd64,linux/arm64/v8";

static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` (a shell command line) in a detached 200x50 session.
    fn start(command: &str) -> Tmux {
        let n = SESSIONS.fetch_add(1, Ordering::SeqCst);
        let socket = format!("polyarch-test-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "200", "-y", "50"])
            .arg(command)
            .env("TERM", "xterm-256color")
            .env_remove("POLYARCH_PROGRESS")
            .status()
            .expect("tmux must be installed (scripts/lib.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { socket }
    }

    /// The visible screen, as text.
    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The header's elapsed time and counts, from `[+] Building 2.3s (1/6)`.
fn header(screen: &str) -> Option<(f64, String)> {
    let line = screen.lines().find(|l| l.starts_with("[+] Building "))?;
    let rest = line.strip_prefix("[+] Building ")?;
    let (time, counts) = rest.split_once("s (")?;
    Some((time.parse().ok()?, counts.to_string()))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A context whose steps take a few seconds on each platform; `unique` keeps any step cache
/// from answering for them.
fn slow_context(ctx: &TestContext, name: &str, unique: &str) -> std::path::PathBuf {
    let df = format!(
        "FROM {}\nCOPY unique.txt /unique\nRUN echo started; sleep 3; echo slept\nRUN uname -m > /arch\n",
        ctx.base
    );
    ctx.context(name, &[("Dockerfile", &df), ("unique.txt", unique)])
}

#[test]
fn live_view_in_a_terminal_and_plain_lines_through_a_pipe() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let _shared = binfmt_shared();
    let tag = format!("{}:live", ctx.repo("terminal"));
    let dir = slow_context(&ctx, "live", &tag);
    let done = ctx.dir.path().join("done");
    let command = format!(
        "{} build --platform {TWO} -t {} --push {} 2>&1; echo EXIT=$? > {}; sleep 30",
        quote(env!("CARGO_BIN_EXE_polyarch")),
        quote(&tag),
        quote(dir.to_str().unwrap()),
        quote(done.to_str().unwrap()),
    );
    let tmux = Tmux::start(&command);

    // While it runs: the header's timer moves, and each platform has its own line per step.
    let started = Instant::now();
    let mut timers = Vec::new();
    let mut both_running = None;
    while !done.exists() && started.elapsed() < Duration::from_secs(120) {
        let screen = tmux.capture();
        if let Some((t, counts)) = header(&screen) {
            if !counts.contains("FINISHED") && !counts.contains("ERROR") {
                timers.push(t);
            }
        }
        let running = |p: &str| {
            screen
                .lines()
                .filter(|l| l.starts_with(&format!(" => [{p} 2/3] RUN echo started; sleep 3")))
                .count()
        };
        // Both RUN steps at once, each with its last output line under it.
        if running("linux/amd64") == 1
            && running("linux/arm64/v8") == 1
            && screen.matches(" => => # started").count() == 2
        {
            both_running.get_or_insert(screen);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // The file appears before its line is written.
    std::thread::sleep(Duration::from_millis(200));
    let end = std::fs::read_to_string(&done).unwrap_or_default();
    let screen = tmux.capture();
    assert_eq!(end.trim(), "EXIT=0", "{screen}");
    timers.dedup();
    assert!(
        timers.len() >= 3 && timers.windows(2).all(|w| w[0] < w[1]),
        "the header's timer should run while the build does: {timers:?}"
    );
    assert!(
        both_running.is_some(),
        "no screen showed both platforms' RUN step running with its output"
    );

    // After: every step of both platforms on one line each, then the summary table with both
    // manifest digests and the index digest.
    assert!(screen.contains("FINISHED"), "{screen}");
    for p in ["linux/amd64", "linux/arm64/v8"] {
        for (n, text) in [(1, "COPY unique.txt /unique"), (3, "RUN uname -m > /arch")] {
            let line = format!(" => [{p} {n}/3] {text}");
            assert_eq!(screen.matches(&line).count(), 1, "{line}\n{screen}");
        }
    }
    let raw = skopeo_raw(&tag).expect("tag pushed");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let table = screen
        .split_once("PLATFORM ")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no summary table:\n{screen}"));
    for (m, p) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["linux/amd64 ", "linux/arm64/v8 "])
    {
        let digest = m["digest"].as_str().unwrap();
        let row = table
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no row for {p}:\n{table}"));
        assert!(row.contains(digest), "{row}");
    }
    assert!(table.contains("qemu-aarch64"), "{table}");
    assert!(
        table.contains(&format!("index {}", crate::harness::digest_of(&raw))),
        "{table}"
    );
    drop(tmux);

    // A failure: the failing step's last 20 output lines right under its line, then the error
    // (without a second copy of them).
    let df = format!(
        "FROM {}\nCOPY unique.txt /unique\nRUN seq 1 30; test \"$(uname -m)\" = x86_64 || exit 3\n",
        ctx.base
    );
    let fail = ctx.context(
        "fail",
        &[("Dockerfile", &df), ("unique.txt", &format!("{tag}-fail"))],
    );
    let done = ctx.dir.path().join("done-fail");
    let tmux = Tmux::start(&format!(
        "{} build --platform {TWO} {} 2>&1; echo EXIT=$? > {}; sleep 30",
        quote(env!("CARGO_BIN_EXE_polyarch")),
        quote(fail.to_str().unwrap()),
        quote(done.to_str().unwrap()),
    ));
    let started = Instant::now();
    while !done.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default().trim(),
        "EXIT=1"
    );
    let screen = tmux.capture();
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(" => ERROR [linux/arm64/v8 2/2] RUN seq 1 30"))
        .unwrap_or_else(|| panic!("no failed step line:\n{screen}"));
    let under: Vec<String> = (11..=30).map(|i| format!(" => => # {i}")).collect();
    assert_eq!(lines[at + 1..at + 21], under[..], "{screen}");
    assert!(
        lines[at + 21].starts_with("error: linux/arm64/v8: step 2"),
        "{screen}"
    );
    assert!(!screen.contains("output (last lines)"), "{screen}");
    drop(tmux);

    // The same build with stderr piped: plain lines, no escape sequences, no live view.
    let dir = slow_context(&ctx, "piped", &format!("{tag}-piped"));
    let mut c = ctx.command();
    c.env_remove("POLYARCH_PROGRESS")
        .args(["build", "--platform", TWO, dir.to_str().unwrap()]);
    c.current_dir(ctx.dir.path());
    let r = crate::harness::run(c);
    r.assert_code(0);
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
    assert!(!r.stderr.contains("[+] Building"), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("[linux/arm64/v8] #2/3 ")
                && l.ends_with("Dockerfile:3: RUN echo started; sleep 3; echo slept")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[linux/amd64] #2 | slept"),
        "{}",
        r.stderr
    );
}

/// Every stderr line of a `--progress json` run, parsed and checked against the schema.
fn json_events(stderr: &str) -> Vec<serde_json::Value> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/progress/events.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    stderr
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{stderr}"));
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{line}: {errors:?}");
            v
        })
        .collect()
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

#[test]
fn json_events_of_a_good_and_a_failing_build_match_the_schema() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let tag = format!("{}:json", ctx.repo("terminal-json"));
    let df = format!(
        "FROM {} AS base\nCOPY unique.txt /unique\nRUN echo to-stderr >&2; uname -m\nFROM base\nRUN true\n",
        ctx.base
    );
    let dir = ctx.context("json", &[("Dockerfile", &df), ("unique.txt", &tag)]);
    let r = ctx.run(
        &[
            "build",
            "--progress",
            "json",
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
    let events = json_events(&r.stderr);
    let k = kinds(&events);
    assert_eq!(k.first(), Some(&"build_started"), "{k:?}");
    assert_eq!(k.last(), Some(&"build_finished"), "{k:?}");
    assert_eq!(events.last().unwrap()["exit_code"], 0);
    for kind in [
        "platform_planned",
        "step_started",
        "output",
        "step_finished",
        "blob_pushed",
        "platform_done",
        "index_pushed",
    ] {
        assert!(k.contains(&kind), "no {kind} in {k:?}");
    }
    // Stage names, vertex ids shared by a step's events, streams, durations.
    let started: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .collect();
    assert!(started.iter().any(|e| e["stage"] == "base"), "{started:?}");
    let stderr_line = events
        .iter()
        .find(|e| e["event"] == "output" && e["stream"] == "stderr")
        .expect("a stderr output line");
    assert_eq!(stderr_line["line"], "to-stderr");
    let vertex = stderr_line["vertex"].as_str().unwrap();
    assert!(events
        .iter()
        .any(|e| e["event"] == "step_finished" && e["vertex"] == vertex && e["millis"].is_u64()));
    assert_eq!(
        k.iter().filter(|k| **k == "platform_done").count(),
        2,
        "{k:?}"
    );
    let t0 = events[0]["time"].as_str().unwrap();
    let t1 = events.last().unwrap()["time"].as_str().unwrap();
    assert!(t0 <= t1, "{t0} {t1}");

    // A failing build: still nothing but schema-valid JSON, the failure and the error as
    // objects.
    let df = format!(
        "FROM {}\nCOPY unique.txt /unique\nRUN test \"$(uname -m)\" = x86_64 || (echo not-x86 >&2; exit 3)\n",
        ctx.base
    );
    let dir = ctx.context(
        "json-fail",
        &[("Dockerfile", &df), ("unique.txt", &format!("{tag}-fail"))],
    );
    let fail_tag = format!("{}:fail", ctx.repo("terminal-json"));
    // With -vv: diagnostics come as events too.
    let r = ctx.run(
        &[
            "build",
            "-vv",
            "--progress",
            "json",
            "--platform",
            TWO,
            "-t",
            &fail_tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(1);
    let events = json_events(&r.stderr);
    let k = kinds(&events);
    assert_eq!(k.last(), Some(&"build_finished"), "{k:?}");
    assert_eq!(events.last().unwrap()["exit_code"], 1);
    let failed = events
        .iter()
        .find(|e| e["event"] == "step_failed")
        .unwrap_or_else(|| panic!("no step_failed in {k:?}"));
    assert_eq!(failed["platform"], "linux/arm64/v8");
    assert_eq!(failed["status"], 3);
    let error = events.iter().find(|e| e["event"] == "error").unwrap();
    assert_eq!(error["exit_code"], 1);
    assert!(
        error["message"].as_str().unwrap().contains("not-x86"),
        "{error}"
    );
    assert!(k.contains(&"diagnostic"), "{k:?}");
    assert!(skopeo_raw(&fail_tag).is_none(), "no tag moves on failure");
}
