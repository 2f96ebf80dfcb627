//! Before anything is pulled: which platforms to build (`--platform all` expanded from the base
//! image's index), whether the base image offers each of them, and whether this host runs each.
//! Only manifests are fetched here, never a layer.
//!
//! Level 3 (coordinator). Checks only: builds, unpacks and pushes nothing.

use super::*;

/// What a base image reference offers, fetched once per reference.
pub(super) struct Offer {
    /// The reference as written.
    pub reference: String,
    /// The platforms of its index entries, in index order; `None` for a single-platform image
    /// (its platform is checked against its config when it is pulled).
    pub platforms: Option<Vec<Platform>>,
}

/// The platforms an index's entries declare (entries without one, such as attestation
/// manifests, are left out).
fn index_platforms(idx: &ImageIndex) -> Vec<Platform> {
    idx.manifests
        .iter()
        .filter_map(|d| d.platform.clone())
        .filter(|p| p.os != "unknown" && p.architecture != "unknown")
        .collect()
}

/// Fetches `reference`'s top-level manifest and returns what it offers.
pub(super) async fn offer<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    reference: &str,
) -> Result<Offer, BuildError> {
    let reg_err = |source| BuildError::Registry {
        platform: "base".into(),
        source,
    };
    let r: Reference = reference.parse().map_err(reg_err)?;
    let top = deps.registry.get_manifest(&r).await.map_err(reg_err)?;
    let platforms = if top.is_index() {
        let idx: ImageIndex =
            oci::from_bytes(&top.bytes, reference).map_err(|source| BuildError::Oci {
                platform: "base".into(),
                source,
            })?;
        Some(index_platforms(&idx))
    } else {
        None
    };
    Ok(Offer {
        reference: reference.to_string(),
        platforms,
    })
}

/// `--platform all`: the explicit targets, then every Linux platform `base` offers that this host
/// can build (any, when the stage runs nothing; else those [`emulation::verify`] accepts), without
/// duplicates after normalisation. Errors when the base is `scratch` or a single-platform image
/// (exit 2) or nothing it offers runs here (exit 4, naming what it offers).
pub(super) async fn expand_all<R: Registry, E: Executor>(
    req: &BuildRequest,
    deps: &Deps<R, E>,
    base: &BaseImage,
    needs_run: bool,
) -> Result<Vec<Platform>, BuildError> {
    let reference = match base {
        BaseImage::Scratch => {
            return Err(BuildError::Usage(
                "--platform all means the platforms of the base image, but the stage starts \
                 FROM scratch: name the platforms"
                    .into(),
            ))
        }
        BaseImage::Stage(_) => {
            return Err(BuildError::Usage(
                "--platform all means the platforms of the base image, but the target stage \
                 starts from a stage on another platform: name the platforms"
                    .into(),
            ))
        }
        BaseImage::Image(r) if super::named::context_name(r).is_some() => {
            return Err(BuildError::Usage(
                "--platform all means the platforms of the base image, but the target stage \
                 starts from a --build-context: name the platforms"
                    .into(),
            ))
        }
        BaseImage::Image(r) => r.clone(),
    };
    let offer = offer(deps, &reference).await?;
    let Some(offered) = offer.platforms else {
        return Err(BuildError::Usage(format!(
            "--platform all: {reference} is a single-platform image, not an index; name the \
             platform"
        )));
    };
    let mut out: Vec<Platform> = req.platforms.clone();
    let mut skipped = Vec::new();
    let work = deps
        .store
        .temp_dir("probe")
        .map_err(|source| BuildError::Store {
            platform: "all".into(),
            source,
        })?;
    for p in &offered {
        if out.iter().any(|q| q.same_as(p)) {
            continue;
        }
        if p.os != "linux" {
            skipped.push(format!("{p} (polyarch builds Linux images only)"));
            continue;
        }
        if needs_run {
            if let Err(e) = emulation::verify(p, &req.binfmt_dir, work.path()) {
                skipped.push(format!("{p} ({e})"));
                continue;
            }
        }
        out.push(p.clone());
    }
    for s in &skipped {
        deps.sink.emit(Event::Warning {
            message: format!("--platform all: skipping {s}"),
        });
    }
    if out.is_empty() {
        return Err(BuildError::NothingRunsHere {
            reference,
            offered: offered.iter().map(|p| p.to_string()).collect(),
            skipped,
        });
    }
    Ok(out)
}

/// Checks that every target platform's base image offers it, fetching each distinct base
/// reference's top manifest once. An index without a match is an error (exit 2) listing what it
/// offers; single-platform images are checked against their config when pulled.
pub(super) async fn check_offers<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    targets: &[(Platform, &BaseImage)],
) -> Result<(), BuildError> {
    let mut offers: Vec<Offer> = Vec::new();
    for (p, base) in targets {
        let BaseImage::Image(reference) = base else {
            continue;
        };
        // A directory or layout context is checked when it is loaded.
        if super::named::context_name(reference).is_some() {
            continue;
        }
        if !offers.iter().any(|o| &o.reference == reference) {
            offers.push(offer(deps, reference).await?);
        }
        let Some(o) = offers.iter().find(|o| &o.reference == reference) else {
            continue;
        };
        let Some(offered) = &o.platforms else {
            continue;
        };
        if platform::best_match(p, offered).is_none() {
            return Err(BuildError::NoMatchingPlatform {
                reference: reference.clone(),
                wanted: p.to_string(),
                available: offered
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}
