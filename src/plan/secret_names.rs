//! BuildKit's `SecretsUsedInArgOrEnv` check: an `ARG` or `ENV` whose name looks like it holds a
//! secret (`API_TOKEN`, `DB_PASSWORD`, `AWS_SECRET_ACCESS_KEY`) gets a warning pointing at
//! `--secret`, because build args and environment values stay in the image's config and history
//! for anyone who pulls it.
//!
//! Level 0: pure, reads the parsed Dockerfile only; produces warning texts, never errors.

use crate::dockerfile::{Dockerfile, InstructionKind};

/// Name parts that mark a secret (BuildKit `linter` `secretsRegexp`: a part between `_`s or the
/// ends, any case).
const SECRET_PARTS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pass",
    "pword",
    "passwd",
    "secret",
    "token",
];

/// Substrings that mark a secret anywhere in the name (`DBPASSWORD`, `MYSECRETVALUE`).
const SECRET_WORDS: &[&str] = &["password", "secret"];

/// True when `name` looks like it holds a secret: one of its `_`-separated parts is a
/// [`SECRET_PARTS`] word, or it contains a [`SECRET_WORDS`] word, and no part is `public`
/// (BuildKit `secretsAllowRegexp`: `PUBLIC_KEY` is fine).
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    if parts.contains(&"public") {
        return false;
    }
    parts.iter().any(|p| SECRET_PARTS.contains(p)) || SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// One warning per `ARG` or `ENV` name of `df` (global ARGs and every stage) that
/// [`looks_secret`], as `file:line: ...` with the fix.
pub(super) fn secret_name_warnings(df: &Dockerfile) -> Vec<String> {
    let mut names: Vec<(&'static str, &str, usize)> = df
        .global_args
        .iter()
        .map(|a| ("ARG", a.name.as_str(), a.span.line))
        .collect();
    for stage in &df.stages {
        for ins in &stage.instructions {
            match &ins.kind {
                InstructionKind::Arg(decls) => {
                    names.extend(decls.iter().map(|a| ("ARG", a.name.as_str(), a.span.line)))
                }
                InstructionKind::Env(pairs) => names.extend(
                    pairs
                        .iter()
                        .map(|kv| ("ENV", kv.key.text.as_str(), ins.span.line)),
                ),
                _ => {}
            }
        }
    }
    names
        .into_iter()
        .filter(|(_, name, _)| looks_secret(name))
        .map(|(what, name, line)| {
            format!(
                "{}:{line}: {what} {name:?} looks like it holds a secret (SecretsUsedInArgOrEnv): \
                 its value stays in the image's config and history; pass it with \
                 --secret id={name},env={name} and RUN --mount=type=secret,id={name},env={name} \
                 instead",
                df.file
            )
        })
        .collect()
}
