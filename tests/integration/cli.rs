//! The command line itself: exit codes in `--help`, completion scripts and the man page
//! generated from the flags, and an unknown command suggesting the right one only when it is
//! close.

use std::process::Command;

use crate::harness::{run, Run};

fn polyarch(args: &[&str]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_polyarch"));
    c.args(args);
    run(c)
}

#[test]
fn help_completion_man_and_suggestions() {
    let r = polyarch(&["--help"]);
    r.assert_code(0);
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "130 "] {
        assert!(
            r.stdout.lines().any(|l| l.trim_start().starts_with(code)),
            "{code}: {}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("Exit codes:"), "{}", r.stdout);

    let bash = polyarch(&["completion", "bash"]);
    bash.assert_code(0);
    assert!(bash.stdout.contains("_polyarch()"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--smoke-test"), "{}", bash.stdout);
    // The script is valid bash.
    let script = std::env::temp_dir().join(format!("polyarch-completion-{}", std::process::id()));
    std::fs::write(&script, &bash.stdout).unwrap();
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    let _ = std::fs::remove_file(&script);
    assert!(status.success());
    let zsh = polyarch(&["completion", "zsh"]);
    assert!(
        zsh.stdout.starts_with("#compdef polyarch"),
        "{}",
        zsh.stdout
    );
    let fish = polyarch(&["completion", "fish"]);
    assert!(
        fish.stdout.contains("complete -c polyarch"),
        "{}",
        fish.stdout
    );

    let man = polyarch(&["man"]);
    man.assert_code(0);
    assert!(man.stdout.contains(".TH polyarch 1"), "{}", man.stdout);
    assert!(man.stdout.contains("polyarch\\-build"), "{}", man.stdout);

    // Close: suggested. Far: not.
    let r = polyarch(&["biuld"]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("a similar subcommand exists: 'build'"),
        "{}",
        r.stderr
    );
    let r = polyarch(&["frobnicate"]);
    r.assert_code(2);
    assert!(!r.stderr.contains("similar"), "{}", r.stderr);
}
