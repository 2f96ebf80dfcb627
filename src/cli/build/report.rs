//! What `polyarch build` reports besides progress: the metadata file (buildx's keys), the
//! `--push-by-digest` record, and the `--dry-run` plan text.
//!
//! Level 4 (edge). Turns results into JSON values and text only: writes no file and prints
//! nothing itself.

use crate::coordinator::{BuildOutcome, BuildPlan, BuildRequest, NodeState};
use crate::registry::Reference;

/// The metadata file: the keys CI users parse from buildx (`containerimage.digest`,
/// `containerimage.descriptor`, `containerimage.config.digest` for one platform,
/// `buildx.build.ref`, `image.name` when the image is named, `buildx.build.warnings` as
/// objects, see [`super::warnings`]) plus the per-platform manifests.
pub(super) fn metadata_json(
    outcome: &BuildOutcome,
    req: &BuildRequest,
    build_ref: &str,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "buildx.build.ref": build_ref,
        "containerimage.digest": outcome.result.digest.to_string(),
        "containerimage.descriptor": outcome.result,
        "pushed": outcome.pushed_tags,
        "platforms": outcome.images.iter().map(|i| serde_json::json!({
            "platform": i.platform.to_string(),
            "digest": i.manifest.digest.to_string(),
            "size": i.manifest.size,
            "mediaType": i.manifest.media_type,
            "config": i.config.to_string(),
            "node": i.node.as_deref().unwrap_or("local"),
            "attestation": attestation_of(outcome, &i.manifest.digest),
        })).collect::<Vec<_>>(),
    });
    // buildx writes `image.name` only when the build names the image.
    if !req.tags.is_empty() {
        v["image.name"] = serde_json::json!(req
            .tags
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","));
    }
    if !outcome.warnings.is_empty() {
        v["buildx.build.warnings"] = outcome
            .warnings
            .iter()
            .map(|w| super::warnings::warning_object(w))
            .collect();
    }
    if let [one] = outcome.images.as_slice() {
        v["containerimage.config.digest"] = serde_json::json!(one.config.to_string());
    }
    v
}

/// The digest of the attestation manifest about `image` in the index, if there is one.
fn attestation_of(outcome: &BuildOutcome, image: &crate::oci::Digest) -> Option<String> {
    outcome
        .index
        .index
        .manifests
        .iter()
        .find(|d| crate::index::attestation_subject(d).as_ref() == Some(image))
        .map(|d| d.digest.to_string())
}

/// buildx's `buildx.build.ref`, `BUILDER/NODE/REF`: `polyarch`, this host's name, and a random
/// 25-character id of this build (BuildKit's ref ids have that shape).
pub(super) fn build_ref() -> String {
    use rand::Rng;
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy().into_owned();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: String = (0..25)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("polyarch/{host}/{id}")
}

/// What `--push-by-digest` pushed, for the metadata and digest files: the image when the
/// result is one platform's manifest, else the index (several platforms, or one with its
/// attestation), as buildx's `containerimage.*` keys and plain ones.
pub(super) fn pushed_by_digest(
    outcome: &BuildOutcome,
    repo: &Reference,
    build_ref: &str,
) -> crate::metadata::PushedByDigest {
    let platforms: Vec<crate::metadata::PlatformEntry> = outcome
        .images
        .iter()
        .map(|i| crate::metadata::PlatformEntry {
            platform: i.platform.normalized().to_string(),
            digest: i.manifest.digest.clone(),
            size: i.manifest.size,
            media_type: i.manifest.media_type.clone(),
            config: i.config.clone(),
        })
        .collect();
    let (descriptor, config, platform) = match outcome.images.as_slice() {
        [one] if outcome.result.digest == one.manifest.digest => (
            one.manifest.clone(),
            Some(one.config.clone()),
            Some(one.platform.normalized().to_string()),
        ),
        _ => (outcome.index.descriptor(), None, None),
    };
    crate::metadata::PushedByDigest {
        build_ref: Some(build_ref.to_string()),
        containerimage_digest: descriptor.digest.clone(),
        containerimage_config_digest: config,
        image_name: repo.repo_string(),
        repository: repo.repo_string(),
        reference: format!("{}@{}", repo.repo_string(), descriptor.digest),
        digest: descriptor.digest.clone(),
        size: descriptor.size,
        media_type: descriptor.media_type.clone(),
        platform,
        platforms,
        containerimage_descriptor: descriptor,
    }
}

/// The `--dry-run` report: per platform where it runs, why, and the fallback; then the nodes.
pub(super) fn plan_text(plan: &BuildPlan) -> String {
    let mut s = format!("plan (--node-policy {}):\n", plan.schedule.policy);
    for pl in &plan.schedule.placements {
        s.push_str(&format!(
            "  {:<16} {}\n",
            pl.platform.to_string(),
            pl.first().describe()
        ));
        s.push_str(&format!("  {:<16}   why: {}\n", "", pl.why));
        let fallback = pl
            .fallback()
            .map(|p| p.describe())
            .unwrap_or_else(|| "none (the build fails if it drops)".into());
        if pl.first().node().is_some() {
            s.push_str(&format!("  {:<16}   if the node drops: {fallback}\n", ""));
        }
    }
    if !plan.nodes.is_empty() {
        s.push_str("nodes:\n");
        for n in &plan.nodes {
            let state = match &n.state {
                NodeState::Ready {
                    version,
                    running_builds,
                    used_for,
                    ..
                } => format!(
                    "polyarch {version}, {running_builds} build(s) running, limit {}, used for {}",
                    n.spec.limit,
                    if used_for.is_empty() {
                        "nothing".to_string()
                    } else {
                        used_for
                            .iter()
                            .map(|(p, r)| format!("{p} ({})", r.describe()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                NodeState::Unreachable { error } => format!("left out: {error}"),
                NodeState::NotProbed { why } => format!("not used: {why}"),
            };
            s.push_str(&format!(
                "  {:<12} {:<32} {state}\n",
                n.spec.name,
                n.spec.address()
            ));
        }
    }
    for note in &plan.notes {
        s.push_str(&format!("note: {note}\n"));
    }
    s
}
