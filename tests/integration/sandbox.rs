//! Issue 12: RUN steps are contained as runc contains them. Escape attempts run as RUN steps
//! natively (amd64) and under emulation (arm64), each next to a control that must succeed: the
//! attack programs are `tests/attacks/attack.c`, built static for both architectures here.
//! Also: the default network reaches the Debian mirror through pasta, the entitlements, the
//! exit 4 without pasta, the secret-name warning and escaped control characters.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{binfmt_shared, run, Run, TestContext};

/// The checks `attack all` runs, each as a control and as an attack.
const CHECKS: &[&str] = &[
    "chroot-escape",
    "mount-tmpfs",
    "proc-sys-write",
    "sysrq-trigger",
    "binfmt-register",
    "setns-net",
    "unshare-userns",
    "inherited-fd",
    "remount-cache",
    "proc-keys",
    "host-loopback",
];

/// The descriptor the test leaves open (without close-on-exec) in polyarch's process.
const LEAKED_FD: i32 = 77;

/// Builds the attack program for `arch` (`amd64`, `arm64`) into `dir/attack-ARCH`; `None`
/// (skipped) when the compiler is missing and `CI` is unset.
fn compile(arch: &str, dir: &Path) -> Option<()> {
    let cc = match arch {
        "amd64" => "gcc",
        _ => "aarch64-linux-gnu-gcc",
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/attack.c");
    let out = dir.join(format!("attack-{arch}"));
    match Command::new(cc)
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&source)
        .arg("-lpthread")
        .output()
    {
        Ok(o) if o.status.success() => Some(()),
        other => {
            let why = format!("{cc} cannot build {}: {other:?}", source.display());
            if std::env::var_os("CI").is_some() {
                panic!("{why} (scripts/lib.sh installs gcc-aarch64-linux-gnu)");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A listener on the host's 127.0.0.1 that counts the connections it accepts.
fn host_listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    (port, accepted)
}

/// Runs `polyarch args` with `file` open as descriptor [`LEAKED_FD`], inherited as a careless
/// caller would leave it (no close-on-exec).
fn run_with_leaked_fd(ctx: &TestContext, args: &[&str], file: &Path) -> Run {
    let f = std::fs::File::open(file).unwrap();
    let mut c = ctx.command();
    c.args(args);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if nix::libc::dup2(raw, LEAKED_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _shared = binfmt_shared();
    let r = run(c);
    drop(f);
    r
}

/// The step output lines of `platform` (`[linux/arm64] #N | ...`), prefix removed.
fn step_lines<'a>(stderr: &'a str, platform: &str) -> Vec<&'a str> {
    let prefix = format!("[{platform}] #");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.split_once(" | ").map(|(_, rest)| rest))
        .collect()
}

/// The verdict of `check` in `mode` printed on `platform`.
fn verdict<'a>(lines: &[&'a str], check: &str, mode: &str) -> Vec<&'a str> {
    let head = format!("VERDICT {check} {mode} ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(head.as_str()))
        .collect()
}

#[test]
fn escape_attempts_fail_natively_and_under_emulation_while_controls_succeed() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = ctx.dir.path().join("attacks");
    std::fs::create_dir_all(&dir).unwrap();
    if compile("amd64", &dir).is_none() || compile("arm64", &dir).is_none() {
        return;
    }
    // A marker on the host the chroot escape looks for, also the file behind the leaked fd.
    let marker = ctx.dir.path().join("host-marker");
    std::fs::write(&marker, "host secret\n").unwrap();
    let (port, accepted) = host_listener();
    let df = format!(
        "FROM {}\nARG TARGETARCH\nCOPY attack-${{TARGETARCH}} /attack\n\
         RUN --mount=type=cache,target=/cache,id=attacks,readonly \
         grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status \
         && /attack all {} {port} {LEAKED_FD}\n\
         RUN --network=none /attack host-loopback attack {port}\n\
         RUN ls /bin | wc -l | grep -q . && echo PIPELINE-OK\n\
         RUN if head -c 4 /proc/1/exe >/dev/null 2>&1; then echo INIT-EXE-READ; \
         else echo INIT-EXE-BLOCKED; fi\n",
        ctx.base,
        marker.display()
    );
    std::fs::write(dir.join("Dockerfile"), df).unwrap();
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
    let r = run_with_leaked_fd(
        &ctx,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &out,
            dir.to_str().unwrap(),
        ],
        &marker,
    );
    r.assert_code(0);
    for platform in ["linux/amd64", "linux/arm64"] {
        let lines = step_lines(&r.stderr, platform);
        // Docker's default capabilities, no_new_privs and a seccomp filter (mode 2).
        for want in ["CapEff:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"] {
            assert!(
                lines.contains(&want),
                "{platform}: no {want:?} in\n{}",
                r.stderr
            );
        }
        for check in CHECKS {
            let control = verdict(&lines, check, "control");
            assert!(
                control.len() == 1 && control[0].starts_with("ok "),
                "{platform}: control of {check} must succeed: {control:?}\n{}",
                r.stderr
            );
            let attack = verdict(&lines, check, "attack");
            assert!(
                !attack.is_empty() && attack.iter().all(|v| v.starts_with("blocked ")),
                "{platform}: attack {check} must fail: {attack:?}\n{}",
                r.stderr
            );
        }
        // The escape got as far as the step's own root: chroot works, the host is not there.
        assert_eq!(
            verdict(&lines, "chroot-escape", "attack"),
            ["blocked marker not reachable"],
            "{platform}"
        );
        // Under --network=none too (the second RUN).
        assert_eq!(verdict(&lines, "host-loopback", "attack").len(), 2);
        // busybox, a shell pipeline and a multi-threaded program still run under the filter.
        assert_eq!(
            verdict(&lines, "threads", "control"),
            ["ok 4 threads joined"]
        );
        assert!(lines.contains(&"PIPELINE-OK"), "{platform}");
        // PID 1 of an emulated step is polyarch's helper (the init that reaps qemu): its
        // binary, a host file, stays out of reach; natively PID 1 is the step's own shell.
        let init = if platform == "linux/amd64" {
            "INIT-EXE-READ"
        } else {
            "INIT-EXE-BLOCKED"
        };
        assert!(lines.contains(&init), "{platform}: no {init}\n{}", r.stderr);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a step reached the host"
    );
}

/// The machine's configured Debian mirror (`URIs:` of a deb822 source, or a `deb` line) and
/// a suite it serves.
fn debian_mirror() -> Option<(String, String)> {
    let mut texts = Vec::new();
    for f in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        if let Ok(t) = std::fs::read_to_string(f) {
            texts.push(t);
        }
    }
    for t in &texts {
        let uri = t.lines().find_map(|l| l.strip_prefix("URIs:"));
        let suite = t.lines().find_map(|l| l.strip_prefix("Suites:"));
        if let (Some(u), Some(s)) = (uri, suite) {
            let u = u.split_whitespace().next()?.to_string();
            return Some((u, s.split_whitespace().next()?.to_string()));
        }
        if let Some(l) = t.lines().find(|l| l.starts_with("deb http")) {
            let w: Vec<&str> = l.split_whitespace().collect();
            return Some((w.get(1)?.to_string(), w.get(2)?.to_string()));
        }
    }
    None
}

#[test]
fn the_default_network_reaches_the_debian_mirror_through_pasta() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some((mirror, suite)) = debian_mirror() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Debian mirror configured"
        );
        return;
    };
    let url = format!("{}/dists/{suite}/Release", mirror.trim_end_matches('/'));
    let df = format!(
        "FROM {}\nRUN wget -q -O /release {url} && grep -m1 '^Suite:' /release && rm /release\n",
        ctx.base
    );
    let dir = ctx.context("net", &[("Dockerfile", &df)]);
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
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
    assert!(r.stderr.contains("| Suite: "), "{}", r.stderr);
}

#[test]
fn entitlements_warnings_and_a_missing_pasta() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nARG API_TOKEN\nARG SHOWN\nLABEL shown=$SHOWN\n\
         RUN --network=host echo \"shown=$SHOWN\"\n\
         RUN --security=insecure grep CapEff /proc/self/status\n",
        ctx.base
    );
    let dir = ctx.context("ent", &[("Dockerfile", &df)]);
    let out = format!("type=oci,dest={}", ctx.dir.path().join("out").display());
    let base = ["build", "--platform", "linux/amd64", "-o", &out];
    let path = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        a.push(dir.to_str().unwrap());
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let go = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.run(&a, &[])
    };
    // Without the entitlements: exit 2 at the flag, naming what to add, before anything runs.
    let r = go(path(&[]));
    r.assert_code(2);
    assert!(r.stderr.contains("Dockerfile:5:"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow network.host"), "{}", r.stderr);
    let r = go(path(&["--allow", "network.host"]));
    r.assert_code(2);
    assert!(
        r.stderr.contains("--allow security.insecure"),
        "{}",
        r.stderr
    );
    // With both: the insecure step keeps every capability; a build arg with terminal escapes
    // is shown escaped when a step prints it (progress shows instructions as written, so the
    // value reaches progress only through a step's output), and the secret-looking ARG gets
    // its warning.
    let r = go(path(&[
        "--allow",
        "network.host",
        "--allow",
        "security.insecure",
        "--build-arg",
        "SHOWN=a\u{1b}[2Jb",
    ]));
    r.assert_code(0);
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
    assert!(r.stderr.contains("a\\x1b[2Jb"), "{}", r.stderr);
    let cap = r
        .stderr
        .lines()
        .find_map(|l| l.split_once("| CapEff:\t").map(|(_, v)| v.to_string()))
        .expect("CapEff line");
    assert_ne!(cap, "00000000a80425fb", "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Dockerfile:2: ARG \"API_TOKEN\" looks like it holds a secret"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--secret id=API_TOKEN"), "{}", r.stderr);
    // Without pasta on the PATH the default network cannot be given: exit 4 with the fix,
    // never the host's network instead.
    let df = format!("FROM {}\nRUN true\n", ctx.base);
    let dir = ctx.context("nopasta", &[("Dockerfile", &df)]);
    let empty = ctx.dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &out,
            dir.to_str().unwrap(),
        ],
        &[("PATH", empty.to_str().unwrap())],
    );
    r.assert_code(4);
    assert!(r.stderr.contains("install passt"), "{}", r.stderr);
}
