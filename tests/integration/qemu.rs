//! `polyarch qemu` against the real kernel's binfmt_misc and Debian's qemu-user-static, and the
//! platform side of `polyarch build`: five platforms in one build, `--platform all`, a platform
//! the base lacks (exit 2) and one whose handler is gone (exit 4, before any pull).
//!
//! Tests that change registrations either use a private binfmt_misc instance (a user namespace
//! of their own, [`PrivateBinfmt`]), or hold the machine's exclusively and restore it
//! ([`BinfmtRestore`]); on the machine's instance they never remove aarch64's handler, which other
//! processes on this machine use.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{
    image_files, pull_layout, run, skopeo_raw, BinfmtRestore, PrivateBinfmt, Run, TestContext,
};

const FIVE_ARCHES: &[&str] = &["arm64", "arm", "ppc64le", "s390x", "riscv64"];
const FIVE_PLATFORMS: &str = "linux/amd64,linux/arm64/v8,linux/arm/v7,linux/ppc64le,linux/s390x";

/// `polyarch qemu status --json`, by platform.
fn status_of(r: &Run) -> BTreeMap<String, serde_json::Value> {
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", r.stdout));
    v["platforms"]
        .as_array()
        .expect("platforms array")
        .iter()
        .map(|p| (p["platform"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

/// The status rows of the five emulated platforms the issue names.
const FIVE_ROWS: &[&str] = &[
    "linux/arm64",
    "linux/arm/v7",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

fn assert_runnable(status: &BTreeMap<String, serde_json::Value>, rows: &[&str]) {
    for row in rows {
        let s = &status[*row];
        assert_eq!(s["runnable"], true, "{row}: {s}");
        assert_eq!(s["runs"], "emulated", "{row}: {s}");
        assert_eq!(s["probe"]["result"], "ran", "{row}: {s}");
        let flags = s["handler"]["flags"].as_str().unwrap();
        assert!(flags.contains('F') && flags.contains('P'), "{row}: {s}");
        assert_eq!(s["handler"]["enabled"], true, "{row}: {s}");
    }
}

fn assert_gone(status: &BTreeMap<String, serde_json::Value>, rows: &[&str]) {
    for row in rows {
        let s = &status[*row];
        assert_eq!(s["runnable"], false, "{row}: {s}");
        assert_eq!(s["handler"], serde_json::Value::Null, "{row}: {s}");
        // Nothing handles the format any more: execve fails with ENOEXEC.
        assert_eq!(s["probe"]["errno"], 8, "{row}: {s}");
    }
}

#[test]
fn install_status_idempotence_and_uninstall_in_a_private_binfmt_misc() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let ns = PrivateBinfmt::new();
    // A fresh instance: not even aarch64 runs, although the machine's instance has it.
    assert_gone(
        &status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"])),
        FIVE_ROWS,
    );

    let mut args = vec!["qemu", "install"];
    args.extend(FIVE_ARCHES);
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(0);
    // A line per platform: the arm handler serves arm/v5, v6 and v7, each with its CPU model
    // proven under the new registration (issue 16).
    assert_eq!(r.stdout.matches(" installed ").count(), 7, "{}", r.stdout);
    assert_eq!(r.stdout.matches(" (proven)").count(), 3, "{}", r.stdout);
    let first = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    assert_runnable(&first, FIVE_ROWS);
    // Debian's argv[0]-keeping wrappers were found and registered with P.
    assert_eq!(
        first["linux/arm64"]["handler"]["interpreter"],
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    );

    // Idempotent: a second install keeps every registration as it is.
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" kept ").count(), 7, "{}", r.stdout);
    let second = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    for row in FIVE_ROWS {
        assert_eq!(first[*row]["handler"], second[*row]["handler"], "{row}");
    }

    let mut args = vec!["qemu", "uninstall"];
    args.extend(FIVE_ARCHES);
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" removed ").count(), 5, "{}", r.stdout);
    assert_gone(
        &status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"])),
        FIVE_ROWS,
    );
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("not installed").count(), 5, "{}", r.stdout);
}

#[test]
fn install_mounts_binfmt_misc_when_it_is_not_mounted() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let ns = PrivateBinfmt::unmounted();
    let r = ns.polyarch(&ctx, &["qemu", "status"]);
    r.assert_code(0);
    assert!(r.stdout.contains("(not mounted)"), "{}", r.stdout);
    assert!(r.stdout.contains("not mounted at /proc/sys/fs/binfmt_misc"));
    ns.polyarch(&ctx, &["qemu", "install", "mips64el"])
        .assert_code(0);
    let status = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    assert_runnable(&status, &["linux/mips64le"]);
    assert_eq!(status["linux/mips64le"]["handler"]["name"], "qemu-mips64el");
}

#[test]
fn install_and_status_on_the_machines_binfmt_misc() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let _restore = BinfmtRestore::take();
    let mut args = vec!["qemu", "install"];
    args.extend(FIVE_ARCHES);
    ctx.run_unlocked(&args, &[]).assert_code(0);
    let status = status_of(&ctx.run_unlocked(&["qemu", "status", "--json"], &[]));
    assert_runnable(&status, FIVE_ROWS);
    assert_eq!(status["linux/amd64"]["runs"], "native");

    // Idempotent on the real instance too: nothing changes.
    let before =
        polyarch::emulation::read_entries(std::path::Path::new(crate::harness::BINFMT_DIR))
            .unwrap();
    let r = ctx.run_unlocked(&args, &[]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" kept ").count(), 7, "{}", r.stdout);
    let after = polyarch::emulation::read_entries(std::path::Path::new(crate::harness::BINFMT_DIR))
        .unwrap();
    assert_eq!(before, after);

    // Uninstall (all but aarch64, which other processes on this machine rely on; the private
    // instance test removes that one too), then status shows them gone; the guard restores.
    let gone = ["arm", "ppc64le", "s390x", "riscv64"];
    let mut args = vec!["qemu", "uninstall"];
    args.extend(gone);
    ctx.run_unlocked(&args, &[]).assert_code(0);
    let status = status_of(&ctx.run_unlocked(&["qemu", "status", "--json"], &[]));
    assert_gone(&status, &FIVE_ROWS[1..]);
    assert_runnable(&status, &FIVE_ROWS[..1]);
}

#[test]
fn broken_registrations_are_reported_and_replaced_only_with_force() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let ns = PrivateBinfmt::new();
    let line = |name: &str, interp: &str, flags: &str| {
        let h = polyarch::emulation::handlers()
            .iter()
            .find(|h| h.name == name)
            .unwrap();
        format!(":qemu-{name}:M::{}:{}:{interp}:{flags}", h.magic, h.mask)
    };
    // riscv64: disabled. s390x: no F. arm: an interpreter that is not an emulator.
    // ppc64le: qemu itself without P, so argv[0] is lost.
    ns.write(
        "register",
        &line(
            "riscv64",
            "/usr/libexec/qemu-binfmt/riscv64-binfmt-P",
            "POF",
        ),
    );
    ns.write("qemu-riscv64", "0");
    ns.write(
        "register",
        &line("s390x", "/usr/libexec/qemu-binfmt/s390x-binfmt-P", "PO"),
    );
    ns.write("register", &line("arm", "/usr/bin/true", "F"));
    ns.write(
        "register",
        &line("ppc64le", "/usr/bin/qemu-ppc64le-static", "OF"),
    );
    let status = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    let problem = |row: &str| {
        assert_eq!(status[row]["runnable"], false, "{row}");
        status[row]["problem"].as_str().unwrap().to_string()
    };
    assert!(problem("linux/riscv64").contains("disabled"));
    assert_eq!(status["linux/riscv64"]["handler"]["enabled"], false);
    assert!(problem("linux/s390x").contains("lacks the F (fix binary) flag"));
    assert!(problem("linux/s390x").contains("RUN steps cannot start"));
    assert!(problem("linux/arm/v7").contains("broken"));
    assert!(problem("linux/arm/v7").contains("/usr/bin/true"));
    assert!(problem("linux/ppc64le").contains("argv[0]"));
    assert_eq!(status["linux/ppc64le"]["probe"]["result"], "argv0-lost");

    let targets = ["riscv64", "s390x", "arm", "ppc64le"];
    let mut args = vec!["qemu", "install"];
    args.extend(targets);
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(4);
    // A row per platform: arm's handler serves arm/v5, arm/v6 and arm/v7.
    assert_eq!(r.stdout.matches("FAILED").count(), 6, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("polyarch qemu install --force riscv64 s390x arm ppc64le"),
        "{}",
        r.stderr
    );
    // Nothing was replaced without --force.
    let still = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    assert_eq!(
        still["linux/arm/v7"]["handler"]["interpreter"],
        "/usr/bin/true"
    );

    let mut args = vec!["qemu", "install", "--force"];
    args.extend(targets);
    let r = ns.polyarch(&ctx, &args);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("replacing").count(), 6, "{}", r.stdout);
    let status = status_of(&ns.polyarch(&ctx, &["qemu", "status", "--json"]));
    assert_runnable(
        &status,
        &[
            "linux/riscv64",
            "linux/s390x",
            "linux/arm/v7",
            "linux/ppc64le",
        ],
    );
}

#[test]
fn not_root_and_unknown_architectures() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    for args in [
        &["qemu", "install", "riscv64"][..],
        &["qemu", "uninstall", "riscv64"][..],
    ] {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_polyarch"))
            .args(["--state-dir", "/nonexistent/polyarch"])
            .args(args);
        let r = run(c);
        r.assert_code(4);
        assert!(r.stderr.contains("needs root"), "{}", r.stderr);
    }
    // status works without root: probes then run on the host, F judged from the entries.
    let state = ctx.dir.path().join("nobody-state");
    std::fs::create_dir_all(&state).unwrap();
    for p in [ctx.dir.path(), state.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_polyarch"))
        .arg("--state-dir")
        .arg(&state)
        .args(["qemu", "status"]);
    let r = run(c);
    r.assert_code(0);
    assert!(r.stdout.contains("on the host"), "{}", r.stdout);

    for bad in ["sparc64", "linux/ppc64el", "wasm"] {
        let r = ctx.run_unlocked(&["qemu", "install", bad], &[]);
        r.assert_code(2);
        assert!(r.stderr.contains("aarch64 (arm64)"), "{}", r.stderr);
    }
}

fn base_platforms(ctx: &TestContext) -> Vec<String> {
    let raw = skopeo_raw(&ctx.base).expect("base image exists");
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p: polyarch::platform::Platform =
                serde_json::from_value(m["platform"].clone()).unwrap();
            p.to_string()
        })
        .collect()
}

fn require_five_platform_base(ctx: &TestContext) {
    let offered = base_platforms(ctx);
    for p in FIVE_PLATFORMS.split(',') {
        assert!(
            offered.iter().any(|o| o == p),
            "the base {} offers {offered:?}, not {p}: run scripts/test (POLYARCH_BASE_ARCHES)",
            ctx.base
        );
    }
}

#[test]
fn five_platforms_in_one_build_record_their_machine() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    require_five_platform_base(&ctx);
    let df = format!(
        "FROM {}\nARG TARGETARCH TARGETVARIANT\nRUN uname -m > /arch && echo \"$TARGETARCH/$TARGETVARIANT\" > /target\n",
        ctx.base
    );
    let dir = ctx.context("five", &[("Dockerfile", &df)]);
    let tag = format!("{}:five", ctx.repo("five"));
    let r = ctx.run(
        &[
            "build",
            "--platform",
            FIVE_PLATFORMS,
            "-t",
            &tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);

    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&tag).unwrap()).unwrap();
    let m = v["manifests"].as_array().unwrap();
    let platforms: Vec<serde_json::Value> = m.iter().map(|d| d["platform"].clone()).collect();
    assert_eq!(
        platforms,
        [
            serde_json::json!({"architecture": "amd64", "os": "linux"}),
            serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"}),
            serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"}),
            serde_json::json!({"architecture": "ppc64le", "os": "linux"}),
            serde_json::json!({"architecture": "s390x", "os": "linux"}),
        ]
    );
    let layout = pull_layout(&ctx, &tag);
    for (arch, machine, target) in [
        ("amd64", "x86_64", "amd64/"),
        ("arm64", "aarch64", "arm64/"),
        ("arm", "armv7l", "arm/v7"),
        ("ppc64le", "ppc64le", "ppc64le/"),
        ("s390x", "s390x", "s390x/"),
    ] {
        let files = image_files(&layout, "pulled", arch);
        assert_eq!(
            String::from_utf8_lossy(&files["arch"]),
            format!("{machine}\n"),
            "{arch}"
        );
        // TARGETVARIANT from the normalised platform: empty for arm64/v8, v7 for arm.
        assert_eq!(
            String::from_utf8_lossy(&files["target"]),
            format!("{target}\n"),
            "{arch}"
        );
    }
}

#[test]
fn platform_all_builds_every_platform_of_the_base() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    require_five_platform_base(&ctx);
    let df = format!("FROM {}\nRUN uname -m > /arch\n", ctx.base);
    let dir = ctx.context("all", &[("Dockerfile", &df)]);
    let tag = format!("{}:all", ctx.repo("all"));
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "all",
            "-t",
            &tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&tag).unwrap()).unwrap();
    let built: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p: polyarch::platform::Platform =
                serde_json::from_value(m["platform"].clone()).unwrap();
            p.to_string()
        })
        .collect();
    assert_eq!(built, base_platforms(&ctx));
    assert_eq!(built.len(), 5, "{built:?}");
}

#[test]
fn a_platform_the_base_lacks_exits_2_listing_what_it_offers() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    require_five_platform_base(&ctx);
    // riscv64 runs (in a private binfmt_misc, so the machine's stays as it is); the base simply
    // has no riscv64 image.
    let ns = PrivateBinfmt::new();
    ns.polyarch(&ctx, &["qemu", "install", "riscv64"])
        .assert_code(0);
    let df = format!("FROM {}\nRUN uname -m > /arch\n", ctx.base);
    let dir = ctx.context("riscv", &[("Dockerfile", &df)]);
    let r = ns.polyarch(
        &ctx,
        &[
            "build",
            "--platform",
            "linux/riscv64",
            dir.to_str().unwrap(),
        ],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains("has no image for linux/riscv64"),
        "{}",
        r.stderr
    );
    for p in FIVE_PLATFORMS.split(',') {
        assert!(r.stderr.contains(p), "{p} not listed: {}", r.stderr);
    }
}

#[test]
fn a_platform_whose_handler_was_uninstalled_exits_4_before_any_pull() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    require_five_platform_base(&ctx);
    let ns = PrivateBinfmt::new();
    ns.polyarch(&ctx, &["qemu", "install", "s390x"])
        .assert_code(0);
    ns.polyarch(&ctx, &["qemu", "uninstall", "s390x"])
        .assert_code(0);
    let df = format!("FROM {}\nRUN uname -m > /arch\n", ctx.base);
    let dir = ctx.context("s390x", &[("Dockerfile", &df)]);
    let r = ns.polyarch(
        &ctx,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/s390x",
            dir.to_str().unwrap(),
        ],
    );
    r.assert_code(4);
    assert!(r.stderr.contains("linux/s390x"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: run as root: `polyarch qemu install s390x`"),
        "{}",
        r.stderr
    );
    // Nothing was pulled: the store has no blob and no layer, and no base was resolved.
    let state = ctx.dir.path().join("ns-state");
    for sub in ["blobs/sha256", "layers"] {
        let n = std::fs::read_dir(state.join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{sub} is not empty");
    }
    assert!(!r.stderr.contains("] base "), "{}", r.stderr);
}
