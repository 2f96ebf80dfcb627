//! The build's warnings as the metadata file's `buildx.build.warnings` objects: buildx's
//! `VertexWarning` fields (`level`, `short` and `detail` base64-encoded, `url`, `sourceInfo`,
//! `range`), so scripts written for buildx decode them unchanged, plus plain `rule`,
//! `description` and `location` for readers that want them as text.
//!
//! Level 4 (edge). Text in, JSON values out: no I/O.

use base64::Engine as _;
use serde_json::{json, Value};

/// BuildKit's lint rules polyarch reports, by the name its warnings carry, with their
/// documentation page (docs.docker.com/go/dockerfile/rule/...).
const RULES: &[(&str, &str)] = &[
    ("SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env"),
    ("NoEmptyContinuation", "no-empty-continuation"),
];

/// One warning object. `text` is the warning as progress shows it: `FILE:LINE: message` when
/// it has a place, with the rule in parentheses when it is one of BuildKit's checks.
pub(super) fn warning_object(text: &str) -> Value {
    let (location, message) = split_location(text);
    let rule = RULES
        .iter()
        .find(|(name, _)| message.contains(&format!("({name})")))
        .or_else(|| {
            message
                .starts_with("empty continuation line")
                .then_some(&RULES[1])
        });
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut v = json!({
        "level": 1,
        "rule": rule.map(|(name, _)| *name),
        "description": message,
        "location": location.as_ref().map(|(file, line)| json!({"file": file, "line": line})),
        "short": b64(text),
        "detail": [],
    });
    if let Some((_, page)) = rule {
        v["url"] = json!(format!(
            "https://docs.docker.com/go/dockerfile/rule/{page}/"
        ));
    }
    if let Some((file, line)) = &location {
        v["sourceInfo"] = json!({ "filename": file, "language": "Dockerfile" });
        v["range"] = json!([{ "start": { "line": line }, "end": { "line": line } }]);
    }
    v
}

/// `FILE:LINE: message` → (`Some((FILE, LINE))`, message); anything else has no place.
fn split_location(text: &str) -> (Option<(String, u64)>, &str) {
    let Some((head, message)) = text.split_once(": ") else {
        return (None, text);
    };
    match head.rsplit_once(':') {
        Some((file, line)) if !file.is_empty() && !file.contains(' ') => match line.parse() {
            Ok(n) => (Some((file.to_string(), n)), message),
            Err(_) => (None, text),
        },
        _ => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_rule_warnings_and_plain_ones() {
        let w = warning_object(
            "Dockerfile:3: ARG \"API_TOKEN\" looks like it holds a secret (SecretsUsedInArgOrEnv): pass it with --secret",
        );
        assert_eq!(w["rule"], "SecretsUsedInArgOrEnv");
        assert_eq!(w["location"]["file"], "Dockerfile");
        assert_eq!(w["location"]["line"], 3);
        assert_eq!(w["range"][0]["start"]["line"], 3);
        assert!(w["description"]
            .as_str()
            .unwrap()
            .starts_with("ARG \"API_TOKEN\""));
        let short = base64::engine::general_purpose::STANDARD
            .decode(w["short"].as_str().unwrap())
            .unwrap();
        assert!(String::from_utf8(short)
            .unwrap()
            .starts_with("Dockerfile:3: ARG"));
        assert!(w["url"]
            .as_str()
            .unwrap()
            .ends_with("/secrets-used-in-arg-or-env/"));
        let plain = warning_object("build argument \"X\" is not declared by any ARG instruction");
        assert!(plain["rule"].is_null() && plain["location"].is_null());
        assert_eq!(
            plain["description"],
            "build argument \"X\" is not declared by any ARG instruction"
        );
    }
}
