//! Fuzz target for the `.dockerignore` matcher (moby patternmatcher semantics): the input is
//! ignore-file text, then a NUL, then newline-separated paths. Nothing may panic or hang, and
//! the matcher's laws must hold: a path and its cleaned form get the same answer, and without
//! `!` exceptions whatever is inside an excluded (relative) directory is excluded too.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use polyarch::context::{clean_path, Ignore};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, "a/b/c\n.\nx"));
    let Ok(ignore) = Ignore::parse(patterns, Path::new(".dockerignore")) else {
        return;
    };
    let has_exceptions = patterns
        .lines()
        .any(|l| l.trim_start().starts_with('!') && !l.starts_with('#'));
    for path in paths.split('\n') {
        let excluded = ignore.is_excluded(path);
        assert_eq!(excluded, ignore.is_excluded(&clean_path(path)), "{path:?}");
        assert!(
            !ignore.is_excluded("."),
            "the context root is never excluded"
        );
        let _ = ignore.may_include_inside(path);
        // Context paths are relative; for an absolute one moby's parent walk never tries `/`
        // itself below the first level, so the law does not hold there (nor does it matter).
        if excluded && !has_exceptions && !clean_path(path).starts_with('/') {
            let child = format!("{}/child", clean_path(path));
            assert!(
                ignore.is_excluded(&child),
                "{path:?} excluded but {child:?} not, with patterns {patterns:?}"
            );
        }
    }
});
