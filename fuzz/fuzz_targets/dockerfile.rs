//! Fuzz target for the Dockerfile front end: parsing (directives, continuations, heredocs,
//! flags, JSON forms), both planning phases for two target platforms (stage graph, ARG scoping,
//! mounts, ONBUILD triggers), and shell-word expansion with every substitution form. Nothing may
//! panic, hang or blow up memory, and every error must point inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyarch::dockerfile::{self, shell, DockerfileError};
use polyarch::plan::{self, BaseConfig, PlanRequest};
use polyarch::platform::Platform;

/// An error's place is a real line and column of the text (or the whole file).
fn check_error(e: &DockerfileError, text: &str) {
    let rendered = e.to_string();
    assert!(rendered.starts_with(&e.file), "{rendered}");
    let lines = text.split('\n').count();
    assert!(e.line <= lines, "line {} of {lines}: {rendered}", e.line);
    if e.line > 0 {
        assert!(e.column >= 1, "{rendered}");
        assert!(rendered.contains('^'), "no caret: {rendered}");
    }
}

fn lookup(name: &str) -> Option<String> {
    match name {
        "A" => Some("a*b/c.d?e".into()),
        "E" => Some(String::new()),
        "HOME" => Some("/root".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match dockerfile::parse(&text, "Dockerfile") {
        Err(e) => check_error(&e, &text),
        Ok(df) => {
            for target in ["linux/amd64", "linux/arm64/v8"] {
                let req = PlanRequest {
                    target_platform: Platform::parse(target).unwrap(),
                    build_platform: Platform::parse("linux/amd64").unwrap(),
                    build_args: [("A".to_string(), "x".to_string())].into_iter().collect(),
                    target_stage: None,
                };
                match plan::select_graph(&df, &req) {
                    Err(e) => check_error(&e, &text),
                    Ok(graph) => {
                        if let Err(e) = plan::check_graph(&df, &graph) {
                            check_error(&e, &text);
                        }
                        let base = BaseConfig {
                            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
                            on_build: vec!["RUN echo trigger".into()],
                            ..BaseConfig::default()
                        };
                        for sel in &graph.stages {
                            match sel.resolve(&df, &base) {
                                Err(e) => check_error(&e, &text),
                                Ok(p) => assert_eq!(p.stage_index, sel.stage_index),
                            }
                        }
                    }
                }
            }
        }
    }
    if let Err(e) = dockerfile::parse_trigger(&text, "ONBUILD") {
        check_error(&e, &text);
    }
    // Word expansion on the raw text, as words, word lists and heredoc bodies.
    for escape in ['\\', '`'] {
        if let Ok(w) = shell::expand_word(&text, escape, &lookup) {
            assert!(w.len() <= text.len() + shell::MAX_EXPANSION);
        }
        let _ = shell::expand_words(&text, escape, &lookup);
    }
    let _ = shell::expand_heredoc(&text, &lookup);
});
