//! Named build contexts (`--build-context NAME=...`, BuildKit's `NamedContext`) put into a
//! parsed Dockerfile before planning: a stage of that name becomes the context (its FROM
//! replaced, its instructions dropped, as BuildKit's frontend replaces the stage's state), and
//! a `FROM`, `COPY --from` or `RUN --mount=...,from=` naming it (when no stage has the name)
//! names the context's image reference instead.
//!
//! Level 0: pure. The references are plain strings the coordinator understands (an image
//! reference, or [`NAMED_CONTEXT_SCHEME`] + name for contexts it loads itself); nothing here
//! reads a file.

use std::collections::BTreeMap;

use super::mounts::csv_fields;
use crate::dockerfile::{Dockerfile, InstructionKind, Word};

/// The scheme of the references that stand for a named context the coordinator loads itself
/// (a directory or an OCI layout): `named-context://NAME`.
pub const NAMED_CONTEXT_SCHEME: &str = "named-context://";

/// Puts the named contexts `names` (name → reference) into `df`: stages with those names
/// become the reference, and `FROM` / `COPY --from` / mount `from=` values naming them (and no
/// stage) are replaced by the reference. Names match as BuildKit matches them: a stage name
/// case-insensitively, other values as written (FROM before variable expansion).
pub fn apply_named_contexts(df: &mut Dockerfile, names: &BTreeMap<String, String>) {
    if names.is_empty() {
        return;
    }
    let lookup = |v: &str| -> Option<&String> {
        names.get(v).or_else(|| {
            names
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(v))
                .map(|(_, r)| r)
        })
    };
    let stage_names: Vec<Option<String>> = df.stages.iter().map(|s| s.name.clone()).collect();
    let is_stage = |v: &str| {
        stage_names
            .iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(v))
    };
    for stage in &mut df.stages {
        if let Some(reference) = stage.name.as_deref().and_then(lookup) {
            stage.base.text = reference.clone();
            stage.instructions.clear();
            continue;
        }
        if !is_stage(&stage.base.text) {
            if let Some(reference) = lookup(&stage.base.text) {
                stage.base.text = reference.clone();
            }
        }
        for ins in &mut stage.instructions {
            match &mut ins.kind {
                InstructionKind::Copy { from: Some(w), .. } if !is_stage(&w.text) => {
                    if let Some(reference) = lookup(&w.text) {
                        w.text = reference.clone();
                    }
                }
                InstructionKind::Run { mounts, .. } => {
                    for m in mounts.iter_mut() {
                        rewrite_mount_from(m, &lookup, &is_stage);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Replaces a mount's `from=NAME` field when NAME is a named context and no stage.
fn rewrite_mount_from<'a>(
    m: &mut Word,
    lookup: &impl Fn(&str) -> Option<&'a String>,
    is_stage: &impl Fn(&str) -> bool,
) {
    let Some(fields) = csv_fields(&m.text) else {
        return;
    };
    let mut changed = false;
    let fields: Vec<String> = fields
        .into_iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("from") && !is_stage(v) => match lookup(v) {
                Some(reference) => {
                    changed = true;
                    format!("{k}={reference}")
                }
                None => f,
            },
            _ => f,
        })
        .collect();
    if changed {
        m.text = fields.join(",");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_precedence_over_stages_and_images() {
        let mut df = crate::dockerfile::parse(
            "FROM busybox AS tools\nRUN make\n\
             FROM alpine\n\
             COPY --from=tools /a /a\n\
             COPY --from=src /b /b\n\
             COPY --from=other /c /c\n\
             RUN --mount=type=bind,from=src,target=/s true\n",
            "Dockerfile",
        )
        .unwrap();
        let names = BTreeMap::from([
            ("tools".to_string(), "reg/tools:1".to_string()),
            ("src".to_string(), format!("{NAMED_CONTEXT_SCHEME}src")),
            ("alpine".to_string(), "alpine:3.20".to_string()),
        ]);
        apply_named_contexts(&mut df, &names);
        assert_eq!(df.stages[0].base.text, "reg/tools:1");
        assert!(
            df.stages[0].instructions.is_empty(),
            "the stage is replaced"
        );
        assert_eq!(df.stages[1].base.text, "alpine:3.20");
        let froms: Vec<String> = df.stages[1]
            .instructions
            .iter()
            .filter_map(|i| match &i.kind {
                InstructionKind::Copy { from: Some(w), .. } => Some(w.text.clone()),
                InstructionKind::Run { mounts, .. } => Some(mounts[0].text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            froms,
            [
                "tools",
                "named-context://src",
                "other",
                "type=bind,from=named-context://src,target=/s"
            ]
        );
    }
}
