//! The ten platforms Docker's official images publish (issue 16), each built as a board of that
//! platform would run it: one build of all ten on the ten-platform base (`uname -m` per
//! platform, a shell pipeline, the index's os/architecture/variant), the CPU model of emulated
//! 32-bit ARM (an ARMv7 binary traps under arm/v5 and arm/v6 and runs under arm/v7, also under
//! `env -i`; the model is in neither the step's environment nor its reach), and `qemu status
//! --json` rows for all ten.
//!
//! Needs the ten-platform base (`POLYARCH_TEST_TEN_BASE`, made by scripts/lib.sh
//! `ensure_ten_base_image`) and Debian's armhf busybox (`POLYARCH_BUSYBOX_ARMHF`); under `CI`
//! a missing one is a failure. Changes no binfmt_misc registration.

use std::path::{Path, PathBuf};

use crate::harness::{platform_files, pull_layout, skopeo_raw, Run, TestContext};

/// The ten platforms, as the base records them, with the machine a board of each reports.
const TEN: &[(&str, &str, Option<&str>, &str)] = &[
    ("linux/amd64", "amd64", None, "x86_64"),
    ("linux/arm/v5", "arm", Some("v5"), "armv5tel"),
    ("linux/arm/v6", "arm", Some("v6"), "armv6l"),
    ("linux/arm/v7", "arm", Some("v7"), "armv7l"),
    ("linux/arm64/v8", "arm64", Some("v8"), "aarch64"),
    ("linux/386", "386", None, "i686"),
    ("linux/mips64le", "mips64le", None, "mips64"),
    ("linux/ppc64le", "ppc64le", None, "ppc64le"),
    ("linux/riscv64", "riscv64", None, "riscv64"),
    ("linux/s390x", "s390x", None, "s390x"),
];

/// An environment variable the set-up provides, or `None` (skip) outside CI.
fn required(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{name} unset under CI: run scripts/test (scripts/lib.sh ensure_ten_base_image)"
            );
            eprintln!("skipped: {name} unset");
            None
        }
    }
}

/// `polyarch build --progress plain --platform PLATFORM --output type=KIND,dest=OUT DIR`, OUT
/// being `NAME-<platform>` in the test's directory; returns the run and OUT.
fn build_one(
    ctx: &TestContext,
    dir: &Path,
    platform: &str,
    kind: &str,
    name: &str,
) -> (Run, PathBuf) {
    let out = ctx
        .dir
        .path()
        .join(format!("{name}-{}", platform.replace('/', "-")));
    let output = format!("type={kind},dest={}", out.display());
    let args = [
        "build",
        "--progress",
        "plain",
        "--platform",
        platform,
        "--output",
        &output,
        dir.to_str().unwrap(),
    ];
    (ctx.run(&args, &[]), out)
}

#[test]
fn ten_platforms_in_one_build_report_their_boards_machine() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(base) = required("POLYARCH_TEST_TEN_BASE") else {
        return;
    };
    // `uname -m` as the first process, then a pipeline of several processes (each exec goes
    // through binfmt_misc again) whose last one also reports the machine.
    // The last step's layer is the same on every platform (its mtimes clamped): the ten make
    // it at once, and all but one take the first one's blob.
    let df = format!(
        "FROM {base}\nRUN uname -m > /m\n\
         RUN echo hello board | tr a-z A-Z | sed 's/BOARD/ALL/' > /p && uname -m | cat > /m2\n\
         RUN echo same > /same\n"
    );
    let dir = ctx.context("ten", &[("Dockerfile", &df)]);
    let tag = format!("{}:ten", ctx.repo("ten"));
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
        &[("SOURCE_DATE_EPOCH", "0")],
    );
    r.assert_code(0);

    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&tag).unwrap()).unwrap();
    let got: Vec<serde_json::Value> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform"].clone())
        .collect();
    let want: Vec<serde_json::Value> = TEN
        .iter()
        .map(|(_, arch, variant, _)| match variant {
            Some(v) => serde_json::json!({"architecture": arch, "os": "linux", "variant": v}),
            None => serde_json::json!({"architecture": arch, "os": "linux"}),
        })
        .collect();
    assert_eq!(got, want, "the index's ten entries, in the base's order");
    let last_layers: std::collections::BTreeSet<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let repo = tag.rsplit_once(':').unwrap().0;
            let at = format!("{repo}@{}", d["digest"].as_str().unwrap());
            let m: serde_json::Value = serde_json::from_slice(&skopeo_raw(&at).unwrap()).unwrap();
            m["layers"].as_array().unwrap().last().unwrap()["digest"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(last_layers.len(), 1, "{last_layers:?}");

    let layout = pull_layout(&ctx, &tag);
    for (platform, arch, variant, machine) in TEN {
        let files = platform_files(&layout, "pulled", arch, *variant);
        for f in ["m", "m2"] {
            assert_eq!(
                String::from_utf8_lossy(&files[f]),
                format!("{machine}\n"),
                "{platform} /{f}"
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&files["p"]),
            "HELLO ALL\n",
            "{platform}"
        );
    }
}

#[test]
fn an_armv7_binary_traps_under_arm_v5_and_v6_and_runs_under_v7() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let (Some(base), Some(armhf)) = (
        required("POLYARCH_TEST_TEN_BASE"),
        required("POLYARCH_BUSYBOX_ARMHF"),
    ) else {
        return;
    };
    // Debian's armhf busybox is Thumb-2 code for ARMv7. Once as a child of the base's (armel)
    // shell, so the CPU model has to hold across an exec; once in the exec form, the command
    // the step starts itself (regression: as PID 1 of the step, qemu could not die of the
    // SIGILL it raises for the guest, and the step hung).
    // Once more under `env -i`: the model must not live in the environment a step can clear.
    for (name, run) in [
        ("child", "RUN /v7/busybox echo v7-ran && echo after"),
        ("exec", r#"RUN ["/v7/busybox", "echo", "v7-ran"]"#),
        (
            "cleared",
            "RUN env -i /v7/busybox echo v7-ran && echo after",
        ),
    ] {
        let df = format!("FROM {base}\nCOPY busybox /v7/busybox\n{run}\n");
        let dir = ctx.context(&format!("armv7-{name}"), &[("Dockerfile", &df)]);
        std::fs::copy(&armhf, dir.join("busybox")).unwrap();
        for (platform, ok) in [
            ("linux/arm/v5", false),
            ("linux/arm/v6", false),
            ("linux/arm/v7", true),
        ] {
            let (r, _) = build_one(&ctx, &dir, platform, "oci", &format!("out-{name}"));
            if ok {
                r.assert_code(0);
                assert!(
                    r.stderr.contains("| v7-ran"),
                    "{name} {platform}: {}",
                    r.stderr
                );
            } else {
                r.assert_code(1);
                // 128 + SIGILL, as a shell reports a command killed by signal 4.
                assert!(
                    r.stderr.contains("exit status 132")
                        && r.stderr.contains("Illegal instruction"),
                    "{name} {platform}: {}",
                    r.stderr
                );
                assert!(!r.stderr.contains("| v7-ran"), "{name} {platform}");
            }
        }
    }
}

#[test]
fn an_emulated_steps_cpu_model_is_out_of_its_sight_and_reach() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(base) = required("POLYARCH_TEST_TEN_BASE") else {
        return;
    };
    // What the step's environment shows, what its process's own environ holds, and whether it
    // can add a handler to the binfmt_misc instance its CPU model lives in.
    let df = format!(
        "FROM {base}\n\
         RUN env > /env && tr '\\0' '\\n' < /proc/self/environ > /environ && \
         uname -m > /m && \
         if echo ':x:M::\\x7fELF:\\xff\\xff\\xff\\xff:/bin/sh:' \
         > /dev/.polyarch-emulator/binfmt_misc/register 2>/dev/null; \
         then echo registered; else echo refused; fi > /register\n"
    );
    let dir = ctx.context("cpu-hidden", &[("Dockerfile", &df)]);
    for platform in ["linux/arm/v5", "linux/arm/v7"] {
        let (r, out) = build_one(&ctx, &dir, platform, "local", "hidden");
        r.assert_code(0);
        let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!read("env").contains("QEMU"), "{platform}: {}", read("env"));
        assert!(
            !read("environ").contains("QEMU"),
            "{platform}: {}",
            read("environ")
        );
        assert!(read("env").contains("PATH="), "{platform}: {}", read("env"));
        assert_eq!(read("register"), "refused\n", "{platform}");
        assert!(!r.stderr.contains("QEMU_CPU"), "{platform}: {}", r.stderr);
    }
}

#[test]
fn qemu_status_json_has_a_row_for_each_of_the_ten() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let r = ctx.run(&["qemu", "status", "--json"], &[]);
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v["platforms"].as_array().unwrap();
    for (platform, _, _, _) in TEN {
        let normal = polyarch::platform::Platform::parse(platform)
            .unwrap()
            .normalized()
            .to_string();
        let row = rows
            .iter()
            .find(|r| r["platform"] == normal.as_str())
            .unwrap_or_else(|| panic!("no row for {normal}: {}", r.stdout));
        assert_eq!(row["runnable"], true, "{row}");
        // The 32-bit ARM rows carry their CPU model, proven by the CPU checks.
        if let Some(cpu) = polyarch::platform::Platform::parse(platform)
            .unwrap()
            .qemu_cpu()
        {
            assert_eq!(row["cpu"]["model"], cpu, "{row}");
            assert_eq!(row["cpu"]["proven"], true, "{row}");
            let checks = row["cpu"]["checks"].as_array().unwrap();
            assert!(checks.iter().all(|c| c["as_expected"] == true), "{row}");
            // arm/v5 and arm/v6 refuse the ARMv7 instruction.
            let movw = checks
                .iter()
                .find(|c| c["instruction"].as_str().unwrap().starts_with("movw"))
                .unwrap();
            assert_eq!(movw["must_run"], *platform == "linux/arm/v7", "{row}");
        }
    }
    for extra in ["linux/loong64", "linux/mips64"] {
        assert!(rows.iter().any(|r| r["platform"] == extra), "{extra}");
    }
}
