//! `--label`, `--annotation` and buildx's `BUILDX_GIT_LABELS` resolved into the coordinator's
//! [`ImageMeta`].
//!
//! Level 4 (edge). Runs `git` (explicit argument vectors, read-only commands) in the build
//! context when `BUILDX_GIT_LABELS` asks for the git labels; writes nothing. Errors are
//! [`UsageError`]s naming the flag.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::flags::BuildArgs;
use crate::attest::ProvenanceMode;
use crate::cli::{usage, UsageError};
use crate::coordinator::ImageMeta;
use crate::oci::Annotation;

/// The label buildx gives the Dockerfile's path relative to the git work tree's root.
const ENTRYPOINT_LABEL: &str = "com.docker.image.source.entrypoint";
/// image-spec `annotations.md`: the source's revision and URL.
const REVISION_LABEL: &str = "org.opencontainers.image.revision";
const SOURCE_LABEL: &str = "org.opencontainers.image.source";

/// `--label K=V` (`K` alone: an empty value, as docker), `--annotation` values (then those of
/// `-o ...,annotation.K=V` keys) and, with
/// `BUILDX_GIT_LABELS=1|true|full`, the git labels of the context's work tree. `--label` wins
/// over a git label of the same name.
pub(super) fn resolve_meta(
    args: &BuildArgs,
    (context_dir, dockerfile): (&Path, &Path),
    output_annotations: &[String],
    pushes: bool,
) -> Result<ImageMeta, UsageError> {
    let mut labels = git_labels(context_dir, dockerfile);
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(usage("--label", format!("{l:?}: empty name")));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let mut annotations = Vec::new();
    for a in &args.annotations {
        annotations.push(Annotation::parse(a).map_err(|e| usage("--annotation", e))?);
    }
    for a in output_annotations {
        annotations.push(Annotation::parse(a).map_err(|e| usage("--output", e))?);
    }
    let (provenance, sbom) = resolve_attestations(args)?;
    Ok(ImageMeta {
        labels,
        annotations,
        provenance: provenance.unwrap_or_else(|| default_provenance(pushes)),
        provenance_times: provenance.is_some(),
        sbom,
    })
}

/// buildx's default attestation: `mode=min` provenance on every image a build pushes to a
/// registry (`--push`, `-o type=registry`, `--push-by-digest`), none otherwise or when
/// `BUILDX_NO_DEFAULT_ATTESTATIONS` is true (buildx docs: "Provenance attestations", and
/// its environment variables). Its statement leaves the build times out unless
/// `SOURCE_DATE_EPOCH` gives them, so an unchanged rebuild pushes the same digests.
fn default_provenance(pushes: bool) -> Option<ProvenanceMode> {
    let off = std::env::var("BUILDX_NO_DEFAULT_ATTESTATIONS").is_ok_and(|v| {
        !matches!(
            v.as_str(),
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False"
        )
    });
    (pushes && !off).then_some(ProvenanceMode::Min)
}

/// `--provenance`, `--sbom` and `--attest` (buildx's spellings): provenance `true`/`mode=min`,
/// `mode=max`, `false`/`disabled=true`; `--sbom true|false`; `--attest type=provenance,...`,
/// `--attest type=sbom[,disabled=true]` (a `generator=` image is refused: the packages are
/// read by polyarch itself). The provenance is `None` when no flag names it (the default is
/// [`default_provenance`]'s), `Some(None)` when turned off.
fn resolve_attestations(
    args: &BuildArgs,
) -> Result<(Option<Option<ProvenanceMode>>, bool), UsageError> {
    let mut sbom = match args.sbom.as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(v) => {
            return Err(usage(
                "--sbom",
                format!("{v:?}: expected true or false (a generator= image is not supported)"),
            ))
        }
    };
    let mut mode = None;
    if let Some(p) = &args.provenance {
        mode = Some(parse_provenance("--provenance", p)?);
    }
    for a in &args.attest {
        let rest = a
            .strip_prefix("type=provenance")
            .map(|r| r.trim_start_matches(','));
        match rest {
            Some(r) => mode = Some(parse_provenance("--attest", r)?),
            None if a.starts_with("type=sbom") => {
                let rest = a["type=sbom".len()..].trim_start_matches(',');
                sbom = match rest {
                    "" | "disabled=false" => true,
                    "disabled=true" => false,
                    _ => {
                        return Err(usage(
                            "--attest",
                            format!("{a:?}: only disabled=true|false is supported for type=sbom (no generator= image: polyarch reads the packages itself)"),
                        ))
                    }
                };
            }
            None => {
                return Err(usage(
                    "--attest",
                    format!("{a:?}: expected type=provenance[,mode=min|max][,disabled=true]"),
                ))
            }
        }
    }
    Ok((mode, sbom))
}

/// One provenance value: `true`, `false`, `min`, `max`, or `mode=min|max`, `disabled=B`.
fn parse_provenance(flag: &str, v: &str) -> Result<Option<ProvenanceMode>, UsageError> {
    let mut mode = Some(ProvenanceMode::Min);
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None if matches!(part, "true" | "1" | "min") => mode = Some(ProvenanceMode::Min),
            None if part == "max" => mode = Some(ProvenanceMode::Max),
            None if matches!(part, "false" | "0") => mode = None,
            Some(("mode", "min")) => mode = Some(ProvenanceMode::Min),
            Some(("mode", "max")) => mode = Some(ProvenanceMode::Max),
            Some(("disabled", "true")) => mode = None,
            Some(("disabled", "false")) => {}
            _ => {
                return Err(usage(
                    flag,
                    format!("{v:?}: {part:?} is not understood (valid: true, false, mode=min, mode=max, disabled=true)"),
                ))
            }
        }
    }
    Ok(mode)
}

/// buildx's `BUILDX_GIT_LABELS` (`build/git.go`): `full`, or a true boolean, adds the
/// revision (`git rev-parse HEAD`, `-dirty` when `BUILDX_GIT_CHECK_DIRTY` is true and the tree
/// has changes), the source (the `origin` remote's URL, credentials removed) and the
/// Dockerfile's path in the work tree. Nothing when unset, false, or not in a git work tree.
fn git_labels(context_dir: &Path, dockerfile: &Path) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    if !env_true("BUILDX_GIT_LABELS", true) {
        return labels;
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(context_dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(root) = git(&["rev-parse", "--show-toplevel"]) else {
        return labels;
    };
    if let Some(sha) = git(&["rev-parse", "HEAD"]).filter(|s| !s.is_empty()) {
        let dirty = env_true("BUILDX_GIT_CHECK_DIRTY", false)
            && git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        let sha = if dirty { format!("{sha}-dirty") } else { sha };
        labels.insert(REVISION_LABEL.to_string(), sha);
    }
    let remote = git(&["remote", "get-url", "origin"]).or_else(|| {
        let first = git(&["remote"])?.lines().next()?.to_string();
        git(&["remote", "get-url", &first])
    });
    if let Some(url) = remote.filter(|u| !u.is_empty()) {
        labels.insert(SOURCE_LABEL.to_string(), redact(&url));
    }
    let root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.into());
    let file = std::fs::canonicalize(dockerfile).unwrap_or_else(|_| dockerfile.to_path_buf());
    if let Ok(rel) = file.strip_prefix(&root) {
        labels.insert(ENTRYPOINT_LABEL.to_string(), rel.display().to_string());
    }
    labels
}

/// Whether the variable is set to `full` (when `full_counts`) or a true boolean (Go's
/// `strconv.ParseBool`).
fn env_true(name: &str, full_counts: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => {
            (full_counts && v == "full")
                || matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True")
        }
        Err(_) => false,
    }
}

/// A remote URL without the user information of `scheme://user:secret@host/...`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}/{path}");
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_values() {
        assert_eq!(
            parse_provenance("-", "true").unwrap(),
            Some(ProvenanceMode::Min)
        );
        assert_eq!(
            parse_provenance("-", "mode=max").unwrap(),
            Some(ProvenanceMode::Max)
        );
        assert_eq!(parse_provenance("-", "false").unwrap(), None);
        assert_eq!(
            parse_provenance("-", "mode=min,disabled=true").unwrap(),
            None
        );
        assert!(parse_provenance("-", "mode=full").is_err());
    }

    #[test]
    fn credentials_never_reach_a_label() {
        assert_eq!(
            redact("https://user:tok3n@example.com/org/repo.git"),
            "https://example.com/org/repo.git"
        );
        assert_eq!(
            redact("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
        assert_eq!(
            redact("https://example.com/r.git"),
            "https://example.com/r.git"
        );
    }
}
