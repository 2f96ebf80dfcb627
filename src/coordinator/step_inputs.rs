//! What a step's cache key covers besides the state it runs on and its own instruction: the
//! files it selects from the build context (hashed), the results of the stages and images it
//! reads, and the content of `ADD <url>` sources without `--checksum` (downloaded now, into the
//! step's inputs directory, where preparing the step finds them on a miss).
//!
//! Level 3 (coordinator), under [`super::step`]. Reads the context and upstream results only:
//! must not run the step or look the key up.

use std::path::Path;

use super::scope::{StepScope, Upstream};
use super::sources::{self, SourceError};
use super::*;
use crate::cache::SourceInput;
use crate::context::{CopyEntry, Ignore};
use crate::plan::{CopyFrom, CopyStep, MountSource, RunMount};

/// File name under an ADD URL's download directory recording the entry it became, so that
/// preparing the step after a miss does not download it again.
pub(super) const PREFETCHED: &str = "entry.json";

/// The key inputs of `step` besides its parent state and instruction, in the order it names
/// them. `inputs` is the step's scratch directory (URL downloads are kept there).
///
/// Errors: selecting or hashing context files ([`BuildError::Context`], [`BuildError::Cache`]),
/// building or pulling an upstream stage or image, downloading a URL ([`BuildError::Source`]).
pub(super) async fn gather<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    inputs: &Path,
) -> Result<Vec<SourceInput>, BuildError> {
    let mut out = Vec::new();
    match &step.kind {
        StepKind::Run {
            mounts, network, ..
        } => {
            if let (crate::plan::Network::Default, Some(n)) =
                (network, scope.sh.req.buildx.default_network)
            {
                out.push(SourceInput::DefaultNetwork { network: n });
            }
            let settings = &scope.sh.req.buildx.run_settings;
            if !settings.is_default() {
                out.push(SourceInput::RunSettings {
                    extra_hosts: settings.extra_hosts.clone(),
                    shm_size: settings.shm_size,
                    ulimits: (settings.ulimits.iter())
                        .map(|u| (u.name.clone(), u.soft, u.hard))
                        .collect(),
                });
            }
            for m in mounts {
                if let RunMount::Secret { id, .. } = m {
                    out.push(SourceInput::Secret {
                        id: id.clone(),
                        given: scope.sh.req.secrets.contains_key(id),
                    });
                }
                if let RunMount::Ssh { id, .. } = m {
                    out.push(SourceInput::Ssh {
                        id: id.clone(),
                        given: scope.sh.req.buildx.ssh.contains_key(id),
                    });
                }
                if let RunMount::Bind { from, source, .. } = m {
                    out.push(match from {
                        MountSource::Context => {
                            let sel = vec![source.clone()];
                            context_input(scope, step, sel, "/".into(), Ignore::default()).await?
                        }
                        MountSource::Stage(i) => SourceInput::Filesystem {
                            result: scope.upstream.stage(*i).await?.result.clone(),
                        },
                        MountSource::Image(r) => SourceInput::Filesystem {
                            result: scope.upstream.image(r).await?.result.clone(),
                        },
                    });
                }
            }
        }
        StepKind::Copy(c) => match &c.from {
            CopyFrom::Context => copy_inputs(scope, step, c, inputs, &mut out).await?,
            CopyFrom::Stage(i) => out.push(SourceInput::Filesystem {
                result: scope.upstream.stage(*i).await?.result.clone(),
            }),
            CopyFrom::Image(r) => out.push(SourceInput::Filesystem {
                result: scope.upstream.image(r).await?.result.clone(),
            }),
        },
        _ => {}
    }
    Ok(out)
}

/// The inputs of a COPY or ADD from the context: each URL without `--checksum` (downloaded),
/// then the selection of its local sources.
async fn copy_inputs<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &CopyStep,
    inputs: &Path,
    out: &mut Vec<SourceInput>,
) -> Result<(), BuildError> {
    let (urls, paths): (Vec<&String>, Vec<&String>) =
        c.sources.iter().partition(|s| crate::plan::is_url(s));
    let dir_forced = c.sources.len() + c.inline.len() > 1;
    for (i, url) in urls.iter().enumerate() {
        if c.checksum.is_some() {
            // BuildKit: with --checksum the checksum is the key; nothing is fetched on a hit.
            continue;
        }
        let content = prefetch_url(scope, step, c, url, &inputs.join(format!("url-{i}"))).await?;
        out.push(SourceInput::Url {
            url: url.to_string(),
            content,
        });
    }
    if !paths.is_empty() {
        let dest = if dir_forced && !c.dest.ends_with('/') {
            format!("{}/", c.dest)
        } else {
            c.dest.clone()
        };
        let loc = location(scope.sh.dockerfile, step);
        let excludes = Ignore::from_patterns(&c.excludes, Path::new(&format!("{loc} --exclude")))
            .map_err(|e| BuildError::Context {
            platform: scope.label.to_string(),
            location: loc.clone(),
            source: Box::new(e),
        })?;
        let paths = paths.into_iter().cloned().collect();
        out.push(context_input(scope, step, paths, dest, excludes).await?);
    }
    Ok(())
}

/// Selects `sources` from the context for `dest` (after `.dockerignore` and `excludes`) and
/// hashes the selection.
async fn context_input<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    sources: Vec<String>,
    dest: String,
    excludes: Ignore,
) -> Result<SourceInput, BuildError> {
    let ctx = scope.sh.context.clone();
    let hasher = scope.sh.cache.hasher.clone();
    let label = scope.label.to_string();
    let loc = location(scope.sh.dockerfile, step);
    tokio::task::spawn_blocking(move || {
        let entries = ctx
            .resolve_copy_with(&sources, &dest, &excludes)
            .map_err(|e| BuildError::Context {
                platform: label,
                location: loc,
                source: Box::new(e),
            })?;
        let selection = hasher
            .selection_digest(&entries)
            .map_err(BuildError::Cache)?;
        Ok(SourceInput::Context { selection })
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
}

/// Downloads an ADD URL into `dir` (as preparing the step would), records the entry it became
/// there for [`prefetched`], and returns the digest of its content.
async fn prefetch_url<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &CopyStep,
    url: &str,
    dir: &Path,
) -> Result<crate::cache::ContentHash, BuildError> {
    let source_err = |source: SourceError| BuildError::Source {
        platform: scope.label.to_string(),
        location: location(scope.sh.dockerfile, step),
        source,
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Io {
            action: "write",
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir)
        .map_err(io(dir))
        .map_err(source_err)?;
    let dir_forced = c.sources.len() + c.inline.len() > 1;
    let entry = sources::fetch_url(url, None, dir, &c.dest, dir_forced)
        .await
        .map_err(source_err)?;
    let record = dir.join(PREFETCHED);
    std::fs::write(&record, serde_json::to_vec(&entry).unwrap_or_default())
        .map_err(io(&record))
        .map_err(source_err)?;
    scope
        .sh
        .cache
        .hasher
        .file_digest(&entry.src)
        .map_err(BuildError::Cache)
}

/// The entry an ADD URL became when [`gather`] downloaded it into `dir` already.
pub(super) fn prefetched(dir: &Path) -> Option<CopyEntry> {
    let bytes = std::fs::read(dir.join(PREFETCHED)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
