//! Executor tests: pure parts everywhere, real namespaces/overlayfs/chroot as root.
//!
//! The real tests re-execute this test binary as the helper: a constructor in `.init_array`
//! runs before libtest's `main` (so still single-threaded, as `sandbox_main` requires) and
//! dispatches `<test binary> __sandbox` the way the CLI dispatches `polyarch __sandbox`.

use super::process::{lines_of, MAX_LINE};
use super::protocol::SandboxFailure;
use super::sandbox::{
    default_mask, find_program, resolve_chown, resolve_run_user, step_resolv_conf,
};
use super::*;
use crate::context::{BuildContext, CopyEntry, EntryKind};
use crate::exit::{Classify, ExitCode};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;

#[used]
#[link_section = ".init_array"]
static SANDBOX_HOOK: extern "C" fn() = sandbox_hook;

extern "C" fn sandbox_hook() {
    let Ok(cmdline) = std::fs::read("/proc/self/cmdline") else {
        return;
    };
    let mut args = cmdline.split(|b| *b == 0);
    args.next();
    if args.next() == Some(SANDBOX_SUBCOMMAND.as_bytes()) {
        std::process::exit(sandbox_main());
    }
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nappgrp:x:1001:\nwheel:x:10:app,other\ndocker:x:999:app\n";

#[test]
fn run_user_resolution_follows_runc() {
    let r = |s| resolve_run_user(s, Some(PASSWD), Some(GROUP));
    assert_eq!(r("app").unwrap(), (1000, 1001, vec![1001, 10, 999]));
    assert_eq!(r("1000").unwrap(), (1000, 1001, vec![1001, 10, 999]));
    assert_eq!(r("app:wheel").unwrap(), (1000, 10, vec![10]));
    assert_eq!(r("app:42").unwrap(), (1000, 42, vec![42]));
    assert_eq!(r("4242").unwrap(), (4242, 0, vec![0]));
    assert_eq!(r("root").unwrap(), (0, 0, vec![0]));
    assert!(matches!(
        r("nobody").unwrap_err(),
        ExecError::UnknownUser { what: "user", .. }
    ));
    assert!(matches!(
        r("app:nogroup").unwrap_err(),
        ExecError::UnknownUser { what: "group", .. }
    ));
    assert_eq!(
        resolve_run_user("7:8", None, None).unwrap(),
        (7, 8, vec![8])
    );
}

// Issue 12: the capability set a step keeps is Docker's default, the mask `docker run` shows
// (`CapEff: 00000000a80425fb`, BuildKit's runc on this machine).
#[test]
fn default_capabilities_are_dockers_mask() {
    assert_eq!(default_mask(), 0xa804_25fb);
}

// Issue 12: on the default network a resolver on the host's loopback is out of reach; the
// step's resolv.conf names pasta's DNS forward address instead, once, and keeps the rest.
#[test]
fn loopback_resolvers_are_replaced_by_the_dns_forward_address() {
    assert_eq!(
        step_resolv_conf("nameserver 10.0.0.53\nsearch example\n"),
        None
    );
    assert_eq!(
        step_resolv_conf(
            "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.1\noptions edns0\n"
        )
        .as_deref(),
        Some("# generated\nnameserver 169.254.1.1\nnameserver 10.0.0.1\noptions edns0\n")
    );
}

#[test]
fn chown_resolution_defaults_group_to_uid() {
    let r = |s| resolve_chown(s, Some(PASSWD), Some(GROUP));
    assert_eq!(r("app").unwrap(), (1000, 1000));
    assert_eq!(r("app:appgrp").unwrap(), (1000, 1001));
    assert_eq!(r("10:11").unwrap(), (10, 11));
    assert!(r("ghost").is_err());
    assert_eq!(resolve_chown("5", None, None).unwrap(), (5, 5));
}

#[test]
fn program_lookup_uses_the_given_path() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("tool"), "not executable").unwrap();
    std::fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", a.display(), b.display());
    assert_eq!(find_program("tool", &path), Some(b.join("tool")));
    assert_eq!(find_program("missing", &path), None);
    assert_eq!(find_program("./x", &path), Some("./x".into()));
}

#[test]
fn spec_json_round_trips() {
    let spec = SandboxSpec {
        lowerdirs: vec!["/l/2".into(), "/l/1".into()],
        upperdir: "/u".into(),
        workdir: "/w".into(),
        action: Action::Copy(CopySpec {
            entries: vec![CopyEntry {
                src: "/ctx/a".into(),
                dest: "/a".into(),
                kind: EntryKind::Symlink("b".into()),
                mode: 0o777,
                mtime: 1,
                owner: None,
            }],
            chown: Some("1:2".into()),
            chmod: None,
            ..Default::default()
        }),
        hostname: "h".into(),
        snapshotter: Snapshotter::Auto,
    };
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<SandboxSpec>(&json).unwrap(), spec);
}

#[tokio::test]
async fn line_splitting_handles_partial_long_and_crlf_lines() {
    let data: Vec<u8> = [
        b"one\r\ntwo\n".to_vec(),
        vec![b'x'; MAX_LINE + 10],
        b"\nlast".to_vec(),
    ]
    .concat();
    let lines: Vec<String> = lines_of(std::io::Cursor::new(data), Stream::Stdout)
        .boxed()
        .map(|l| l.unwrap().line)
        .collect()
        .await;
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], "one");
    assert_eq!(lines[1], "two");
    assert_eq!(lines[2].len(), MAX_LINE);
    assert_eq!(lines[3].len(), 10);
    assert_eq!(lines[4], "last");
}

#[tokio::test]
async fn recording_executor_records_and_plays_back() {
    let rec = RecordingExecutor::new();
    let line = |s: &str| OutputLine {
        stream: Stream::Stderr,
        line: s.into(),
    };
    rec.push(2, vec![line("a"), line("b")]);
    let spec = SandboxSpec {
        lowerdirs: vec![],
        upperdir: "/u".into(),
        workdir: "/w".into(),
        action: Action::Run(RunSpec {
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: None,
            ..Default::default()
        }),
        hostname: "h".into(),
        snapshotter: Snapshotter::Auto,
    };
    let mut seen = Vec::new();
    let out = rec.run(&spec, |l| seen.push(l.line)).await.unwrap();
    assert_eq!(out.status, 2);
    assert_eq!(out.tail, ["a", "b"]);
    assert_eq!(seen, ["a", "b"]);
    let err = out.into_result().unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::StepFailed);
    let out = rec.run(&spec, |_| {}).await.unwrap();
    assert!(out.success());
    assert_eq!(rec.calls(), vec![spec.clone(), spec]);
}

#[test]
fn errors_classify() {
    let e = ExecError::NotRoot { uid: 1000 };
    assert_eq!(e.exit_code(), ExitCode::Host);
    assert!(e.to_string().starts_with("RUN steps need root here"));
    assert!(e.hint().is_some());
    assert_eq!(
        ExecError::Timeout {
            after: Duration::from_secs(1)
        }
        .exit_code(),
        ExitCode::StepFailed
    );
}

// ---- real sandbox tests (Linux, root) ----

/// True when the real tests can run; when `CI` is set, a missing prerequisite is a failure.
fn can_sandbox(extra: Option<&Path>) -> bool {
    let mut missing = Vec::new();
    if require_root().is_err() {
        missing.push("root".to_string());
    }
    if !Path::new("/usr/bin/busybox").exists() {
        missing.push("/usr/bin/busybox (busybox-static)".to_string());
    }
    if let Some(p) = extra {
        if !p.exists() {
            missing.push(p.display().to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but sandbox prerequisites are missing: {missing:?}"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

struct Rootfs {
    tmp: tempfile::TempDir,
}

impl Rootfs {
    /// A lower directory with `bin/busybox` and applet symlinks, plus empty upper and work dirs.
    fn busybox(busybox: &Path) -> Rootfs {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        std::fs::create_dir_all(lower.join("bin")).unwrap();
        std::fs::copy(busybox, lower.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "uname", "cat", "env", "ls", "id", "mkdir", "hostname", "pwd", "echo", "kill",
            "sleep", "test", "stat",
        ] {
            std::os::unix::fs::symlink("busybox", lower.join("bin").join(applet)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("upper")).unwrap();
        std::fs::create_dir_all(tmp.path().join("work")).unwrap();
        Rootfs { tmp }
    }

    fn lower(&self) -> PathBuf {
        self.tmp.path().join("lower")
    }

    fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }

    fn spec(&self, action: Action) -> SandboxSpec {
        SandboxSpec {
            lowerdirs: vec![self.lower()],
            upperdir: self.upper(),
            workdir: self.tmp.path().join("work"),
            action,
            hostname: "polyarch-test".into(),
            snapshotter: Snapshotter::Auto,
        }
    }

    /// Every path in the upper directory, relative, sorted.
    fn upper_tree(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.upper(), &self.upper(), &mut out);
        out.sort();
        out
    }
}

fn sh(script: &str) -> Action {
    Action::Run(RunSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: None,
        ..Default::default()
    })
}

fn executor() -> SandboxExecutor {
    SandboxExecutor {
        network: Default::default(),
        program: std::env::current_exe().unwrap(),
        timeout: Some(Duration::from_secs(120)),
        snapshotter: Snapshotter::Auto,
    }
}

async fn run(spec: &SandboxSpec) -> (StepOutcome, Vec<OutputLine>) {
    let mut lines = Vec::new();
    let out = executor()
        .run(spec, |l| lines.push(l))
        .await
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
    (out, lines)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn run_in_busybox_rootfs_leaves_only_its_changes() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let spec = fs.spec(sh(
        "uname -m > /arch; echo hi; echo oops >&2; test -c /dev/null && test -e /proc/self/stat && echo mounts-ok; hostname",
    ));
    let (out, lines) = run(&spec).await;
    assert_eq!(out.status, 0, "{lines:?}");
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| l.line.as_str())
        .collect();
    assert_eq!(stdout, ["hi", "mounts-ok", "polyarch-test"]);
    assert!(lines
        .iter()
        .any(|l| l.stream == Stream::Stderr && l.line == "oops"));
    assert_eq!(out.tail.len(), 4);
    assert_eq!(
        std::fs::read_to_string(fs.upper().join("arch")).unwrap(),
        "x86_64\n"
    );
    assert_eq!(fs.upper_tree(), ["arch"], "no proc/dev/etc leftovers");
    assert!(
        !fs.lower().join("arch").exists(),
        "the lower dir is untouched"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn exit_status_and_signals_propagate() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let (out, _) = run(&fs.spec(sh("exit 3"))).await;
    assert_eq!(out.status, 3);
    // The command is PID 1 of its namespace, so it ignores its own `kill -9 $$`
    // (pid_namespaces(7)); the host, an ancestor namespace, can still SIGKILL it.
    let (out, _) = run(&fs.spec(sh("kill -9 $$; exit 4"))).await;
    assert_eq!(out.status, 4);
    let spec = fs.spec(Action::Run(RunSpec {
        argv: vec!["sleep".into(), "31337".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: None,
        ..Default::default()
    }));
    let killer = async {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(proc_entry.path().join("cmdline")).unwrap_or_default();
                if cmdline == b"sleep\x0031337\x00" {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    return;
                }
            }
        }
        panic!("the sleeping step never showed up");
    };
    let ((out, _), ()) = tokio::join!(run(&spec), killer);
    assert_eq!(out.status, 128 + 9);
    let (out, lines) = run(&fs.spec(Action::Run(RunSpec {
        argv: vec!["no-such-tool".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: None,
        ..Default::default()
    })))
    .await;
    assert_eq!(out.status, 127);
    assert!(lines[0].line.contains("no-such-tool"), "{lines:?}");
    assert_eq!(fs.upper_tree(), Vec::<String>::new());
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn environment_is_exactly_the_given_one() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let env = vec!["PATH=/bin".to_string(), "FOO=bar baz".to_string()];
    let (out, lines) = run(&fs.spec(Action::Run(RunSpec {
        argv: vec!["env".into()],
        env: env.clone(),
        cwd: "/".into(),
        user: None,
        ..Default::default()
    })))
    .await;
    assert_eq!(out.status, 0);
    let got: Vec<String> = lines.into_iter().map(|l| l.line).collect();
    assert_eq!(got, env);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn user_cwd_and_existing_etc_are_handled() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    std::fs::create_dir_all(fs.lower().join("etc")).unwrap();
    std::fs::write(fs.lower().join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(fs.lower().join("etc/group"), GROUP).unwrap();
    let spec = fs.spec(Action::Run(RunSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), "id; pwd".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/srv/app".into(),
        user: Some("app".into()),
        ..Default::default()
    }));
    let (out, lines) = run(&spec).await;
    assert_eq!(out.status, 0, "{lines:?}");
    assert!(
        lines[0].line.starts_with("uid=1000(app) gid=1001(appgrp)"),
        "{lines:?}"
    );
    assert_eq!(lines[1].line, "/srv/app");
    // The working directory is a real change; /etc was only copied up for resolv.conf and goes.
    assert_eq!(fs.upper_tree(), ["srv", "srv/app"]);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn copy_entries_into_the_root() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let lower = fs.lower();
    // Image symlinks: a relative parent link, an absolute one, and a final-component link that
    // points at a host path.
    std::fs::create_dir_all(lower.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", lower.join("lib")).unwrap();
    std::os::unix::fs::symlink("/", lower.join("abs")).unwrap();
    let host_target = fs.tmp.path().join("host-file");
    std::fs::write(&host_target, "host").unwrap();
    std::os::unix::fs::symlink(&host_target, lower.join("evil")).unwrap();

    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("src/sub")).unwrap();
    std::fs::write(ctx.path().join("src/a.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        ctx.path().join("src/a.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(ctx.path().join("src/sub/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("a.sh", ctx.path().join("src/link")).unwrap();
    std::fs::write(ctx.path().join("one"), "one").unwrap();
    let bc = BuildContext::open(ctx.path(), &ctx.path().join("Dockerfile")).unwrap();
    let mut entries = bc.resolve_copy(&["src".into()], "/app").unwrap();
    for dest in ["/lib/one", "/abs/etc/one", "/evil"] {
        entries.extend(bc.resolve_copy(&["one".into()], dest).unwrap());
    }
    let spec = fs.spec(Action::Copy(CopySpec {
        entries,
        chown: Some("1000:1001".into()),
        chmod: None,
        ..Default::default()
    }));
    let (out, lines) = run(&spec).await;
    assert_eq!(out.status, 0, "{lines:?}");
    let up = fs.upper();
    assert_eq!(
        fs.upper_tree(),
        [
            "app",
            "app/a.sh",
            "app/link",
            "app/sub",
            "app/sub/b.txt",
            "etc",
            "etc/one",
            "evil",
            "usr",
            "usr/lib",
            "usr/lib/one"
        ]
    );
    let md = std::fs::metadata(up.join("app/a.sh")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    let src_md = std::fs::metadata(ctx.path().join("src/a.sh")).unwrap();
    assert_eq!(md.mtime(), src_md.mtime());
    assert_eq!(
        std::fs::read_link(up.join("app/link")).unwrap(),
        Path::new("a.sh")
    );
    assert_eq!(std::fs::read_to_string(up.join("evil")).unwrap(), "one");
    assert!(std::fs::symlink_metadata(up.join("evil"))
        .unwrap()
        .is_file());
    assert_eq!(std::fs::read_to_string(&host_target).unwrap(), "host");
    assert!(!Path::new("/etc/one").exists(), "never written on the host");
    let etc = std::fs::metadata(up.join("etc")).unwrap();
    assert_eq!(
        (etc.mode() & 0o7777, etc.uid()),
        (0o755, 0),
        "parents are 0755 root"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn scratch_copy_uses_an_empty_lower() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("f"), "x").unwrap();
    let bc = BuildContext::open(ctx.path(), &ctx.path().join("Dockerfile")).unwrap();
    let mut spec = fs.spec(Action::Copy(CopySpec {
        entries: bc.resolve_copy(&["f".into()], "/f").unwrap(),
        chown: None,
        chmod: Some(0o600),
        ..Default::default()
    }));
    spec.lowerdirs.clear();
    let (out, _) = run(&spec).await;
    assert_eq!(out.status, 0);
    assert_eq!(fs.upper_tree(), ["f"]);
    let md = std::fs::metadata(fs.upper().join("f")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o600);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sandbox_errors_are_reported_as_such() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let mut spec = fs.spec(sh("true"));
    spec.lowerdirs = vec![fs.tmp.path().join("does-not-exist")];
    let err = executor().run(&spec, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, ExecError::Sandbox { message, .. } if message.contains("mount overlay")),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), ExitCode::Host);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn timeout_kills_the_step() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let ex = SandboxExecutor {
        network: Default::default(),
        program: std::env::current_exe().unwrap(),
        timeout: Some(Duration::from_millis(1500)),
        snapshotter: Snapshotter::Auto,
    };
    let started = std::time::Instant::now();
    let err = ex.run(&fs.spec(sh("sleep 60")), |_| {}).await.unwrap_err();
    assert!(matches!(err, ExecError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The arm64 busybox: `POLYARCH_BUSYBOX_ARM64`, else where the setup unpacks Debian's
/// busybox-static:arm64 (`dpkg -x busybox-static_*_arm64.deb /opt/polyarch/testdata/arm64`).
fn arm64_busybox() -> PathBuf {
    std::env::var_os("POLYARCH_BUSYBOX_ARM64")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/polyarch/testdata/arm64/bin/busybox"))
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn run_arm64_busybox_under_qemu() {
    let busybox = arm64_busybox();
    if !can_sandbox(Some(&busybox)) {
        return;
    }
    let handler = crate::emulation::classify(
        &crate::platform::Platform::parse("linux/arm64").unwrap(),
        Path::new("/proc/sys/fs/binfmt_misc"),
    );
    if let Err(e) = handler {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but arm64 emulation is missing: {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    let fs = Rootfs::busybox(&busybox);
    let (out, lines) = run(&fs.spec(sh("uname -m > /arch; cat /arch"))).await;
    assert_eq!(out.status, 0, "{lines:?}");
    assert_eq!(lines[0].line, "aarch64");
    assert_eq!(fs.upper_tree(), ["arch"]);
}

// Regression (user review): helper errors all reached the user as exit 4; the error line now
// carries the class and hint, and unknown lines stay host failures.
#[test]
fn sandbox_error_line_carries_class_and_hint() {
    let e = ExecError::UnknownUser {
        what: "user",
        name: "nosuchuser".into(),
        file: "passwd",
    };
    let f = SandboxFailure::of(&e);
    assert_eq!(f.exit_code(), ExitCode::BadInput);
    let back = SandboxFailure::parse(&serde_json::to_string(&f).unwrap());
    assert_eq!(back, f);
    assert!(back.hint.unwrap().contains("numeric uid"));
    let raw = SandboxFailure::parse("mount overlay failed");
    assert_eq!(
        (raw.exit_code(), raw.message.as_str()),
        (ExitCode::Host, "mount overlay failed")
    );
}

// Regression (user review): ENOTDIR/EEXIST on a path the Dockerfile names is bad input, the
// same errno from a mount is the host's.
#[test]
fn image_path_conflicts_are_bad_input() {
    let io = |e: rustix::io::Errno| std::io::Error::from(e);
    let workdir = ExecError::sys(
        "create working directory",
        "/etc/passwd",
        io(rustix::io::Errno::EXIST),
    );
    assert_eq!(workdir.exit_code(), ExitCode::BadInput);
    assert!(workdir.hint().unwrap().contains("WORKDIR /etc/passwd"));
    let dest = ExecError::sys(
        "open directory",
        "/etc/passwd",
        io(rustix::io::Errno::NOTDIR),
    );
    assert_eq!(dest.exit_code(), ExitCode::BadInput);
    assert!(dest.hint().is_some());
    let mount = ExecError::sys("mount overlay", "/m", io(rustix::io::Errno::NOTDIR));
    assert_eq!(mount.exit_code(), ExitCode::Host);
    let perm = ExecError::sys("open directory", "/x", io(rustix::io::Errno::ACCESS));
    assert_eq!(perm.exit_code(), ExitCode::Host);
}

// Regression (user review): `USER nosuchuser` then RUN exited 4 with a raw sandbox message.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn unknown_run_user_is_bad_input_with_a_hint() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    let mut action = sh("true");
    if let Action::Run(r) = &mut action {
        r.user = Some("nosuchuser".into());
    }
    let err = executor().run(&fs.spec(action), |_| {}).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    assert!(
        err.to_string().contains("unknown user \"nosuchuser\""),
        "{err}"
    );
    assert!(!err.to_string().starts_with("sandbox:"), "{err}");
    assert!(err.hint().unwrap().contains("/etc/passwd"));
}

// Regression (user review): `WORKDIR /etc/passwd` then RUN exited 4 ("File exists").
#[cfg(target_os = "linux")]
#[tokio::test]
async fn workdir_on_a_file_is_bad_input() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    std::fs::create_dir_all(fs.lower().join("etc")).unwrap();
    std::fs::write(fs.lower().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    let mut action = sh("true");
    if let Action::Run(r) = &mut action {
        r.cwd = "/etc/passwd".into();
    }
    let err = executor().run(&fs.spec(action), |_| {}).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    assert!(
        err.hint().unwrap().contains("WORKDIR /etc/passwd"),
        "{err:?}"
    );
}

// Regression (user review): `COPY x /etc/passwd/x` exited 4 ("Not a directory"), and
// `COPY x /hd/` with /hd a dangling symlink failed instead of creating the link's target.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn copy_under_a_file_is_bad_input_and_dangling_links_are_created() {
    if !can_sandbox(None) {
        return;
    }
    let fs = Rootfs::busybox(Path::new("/usr/bin/busybox"));
    std::fs::create_dir_all(fs.lower().join("etc")).unwrap();
    std::fs::write(fs.lower().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/data/sub", fs.lower().join("hd")).unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("x"), "x").unwrap();
    let bc = BuildContext::open(ctx.path(), &ctx.path().join("Dockerfile")).unwrap();
    let copy = |dest: &str| {
        fs.spec(Action::Copy(CopySpec {
            entries: bc.resolve_copy(&["x".into()], dest).unwrap(),
            ..Default::default()
        }))
    };
    let err = executor()
        .run(&copy("/etc/passwd/x"), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    assert!(err.to_string().contains("/etc/passwd"), "{err}");
    assert!(err.hint().is_some(), "{err:?}");

    let (out, lines) = run(&copy("/hd/")).await;
    assert_eq!(out.status, 0, "{lines:?}");
    assert_eq!(fs.upper_tree(), ["data", "data/sub", "data/sub/x"]);
}
