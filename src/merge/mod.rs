//! `polyarch merge`: stitch images that are already pushed (by a CI matrix, one job per
//! platform) into one index and publish it to tags, in a way that cannot go half-right.
//!
//! Level 3 (orchestration over the [`Registry`] port). In order, and nothing is written before
//! every check passed:
//! 1. resolve every source (`REPO@DIGEST`, `REPO:TAG`, or a metadata file) to index entries:
//!    an index is flattened into its children, an image manifest gets its platform from its
//!    config; a just-pushed source that is not visible yet is waited for;
//! 2. with `--append`, what the first tag holds now goes first;
//! 3. choose the entries ([`index::select`]: duplicates, `--replace`, `--drop-attestations`),
//!    order them by `--platforms` when given, check that every required platform is there, and
//!    apply `--annotation`s;
//! 4. stitch the index with the same code `polyarch build` uses ([`index::stitch_with`]);
//! 5. unless `--dry-run`: make every child present in each target repository (a HEAD, waited
//!    for read-after-write lag when it should already be there; cross-repository mounts on the
//!    same registry; streamed copies from other registries), push the index to every tag, and
//!    read each tag back to check that it serves what was pushed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use crate::exit::{Classify, ExitCode};
use crate::index::{self, IndexError, IndexFormat, IndexOptions, Selection, StitchedIndex};
use crate::metadata::{self, MetadataError};
use crate::oci::{self, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest};
use crate::platform::{Platform, PlatformError};
use crate::progress::{Event, Sink};
use crate::registry::{BlobPush, RawManifest, Reference, Registry, RegistryError};

/// Longest pause between two looks at something not visible yet.
const MAX_POLL: Duration = Duration::from_secs(2);

/// One source as given on the command line, resolved to a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What to fetch.
    pub reference: Reference,
    /// Where it came from, for messages: the argument, or the metadata file's path.
    pub origin: String,
    /// The platform a metadata file says the image is for; checked against the image.
    pub platform: Option<Platform>,
}

/// Where an `--annotation` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationTarget {
    /// The index itself (`index:` or no prefix).
    Index,
    /// Entries of the index (`manifest-descriptor:`), all or those of one platform
    /// (`manifest-descriptor[linux/arm64]:`).
    Descriptor(Option<Platform>),
}

/// One `--annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Where it goes.
    pub target: AnnotationTarget,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Everything a merge needs, resolved and validated from the command line.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    /// The tags to push the index to (at least one; tags only, no digests).
    pub tags: Vec<Reference>,
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// OCI index or Docker list.
    pub format: IndexFormat,
    /// `--annotation`s.
    pub annotations: Vec<Annotation>,
    /// Platforms the result must have (`--platforms`); also the order of the entries.
    pub platforms: Vec<Platform>,
    /// `--replace`: a later image for a platform wins.
    pub replace: bool,
    /// `--drop-attestations`.
    pub drop_attestations: bool,
    /// `--append`: start from what the first tag holds now.
    pub append: bool,
    /// `--dry-run`: resolve and stitch, write nothing.
    pub dry_run: bool,
    /// How long to wait for content that should be visible (read-after-write lag).
    pub visibility_timeout: Duration,
    /// Children made present at once per target repository.
    pub jobs: usize,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The index (pushed unless a dry run).
    pub index: StitchedIndex,
    /// Tags it was pushed to and read back from.
    pub pushed_tags: Vec<String>,
    /// Blobs copied or mounted into target repositories.
    pub blobs_copied: usize,
}

/// Why a merge failed. Nothing was pushed to a tag when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No sources at all (e.g. an empty metadata directory).
    #[error("no sources to merge: refusing to publish an empty index")]
    NoSources,
    /// A flag value that makes no sense.
    #[error("{flag}: {message}")]
    Usage {
        /// The flag.
        flag: String,
        /// What is wrong.
        message: String,
    },
    /// A metadata file (`@FILE`) that cannot be used.
    #[error("metadata file {path}: {source}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: MetadataError,
    },
    /// A metadata file or directory that cannot be read.
    #[error("cannot read {path}: {source}")]
    ReadSource {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A reference that does not parse.
    #[error("{origin}: {source}")]
    BadReference {
        /// The argument or file.
        origin: String,
        /// The parse error.
        #[source]
        source: Box<RegistryError>,
    },
    /// A platform that does not parse (in a metadata file or `--platforms`).
    #[error("{origin}: {source}")]
    BadPlatform {
        /// Where it was.
        origin: String,
        /// The parse error.
        #[source]
        source: PlatformError,
    },
    /// Required platforms that no source provides.
    #[error("missing platform(s) {}: not among the sources (found: {})", .missing.join(", "), .found.join(", "))]
    MissingPlatforms {
        /// The required platforms not found, normalised.
        missing: Vec<String>,
        /// The platforms the sources provide, normalised.
        found: Vec<String>,
    },
    /// A metadata file's platform is not the image's.
    #[error("{origin} says {claimed} but {reference} is an image for {actual}")]
    PlatformMismatch {
        /// The metadata file.
        origin: String,
        /// What the file says.
        claimed: String,
        /// What the image's config says.
        actual: String,
        /// The image.
        reference: String,
    },
    /// A `manifest-descriptor[PLATFORM]` annotation for a platform not in the index.
    #[error("--annotation {spec}: no entry for platform {platform} in the index")]
    AnnotationPlatform {
        /// The annotation as given.
        spec: String,
        /// The platform.
        platform: String,
    },
    /// A source document that is not a manifest or index we can read.
    #[error("{origin}: {source}")]
    Malformed {
        /// The source.
        origin: String,
        /// The parse error.
        #[source]
        source: oci::OciError,
    },
    /// The index could not be stitched.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A registry operation failed (after retries).
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// A child that should be in the target repository did not show up in time.
    #[error("{reference} is not in the target repository (waited {waited_secs} s)")]
    ChildMissing {
        /// The child, `repo@digest`.
        reference: String,
        /// How long it was waited for.
        waited_secs: u64,
    },
    /// After the push, a tag serves something else than what was pushed.
    #[error("{tag} serves {found} after pushing {expected}")]
    TagMismatch {
        /// The tag.
        tag: String,
        /// What was pushed.
        expected: Digest,
        /// What the tag serves.
        found: String,
    },
}

impl Classify for MergeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::Registry { source, .. } | MergeError::BadReference { source, .. } => {
                source.exit_code()
            }
            MergeError::ReadSource { .. } => ExitCode::BadInput,
            MergeError::Index(e) => e.exit_code(),
            MergeError::ChildMissing { .. } | MergeError::TagMismatch { .. } => ExitCode::Registry,
            _ => ExitCode::BadInput,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            MergeError::NoSources => {
                Some("check that every matrix job uploaded its metadata file".into())
            }
            MergeError::MissingPlatforms { .. } => Some(
                "a build for those platforms failed or its metadata file was not collected; \
                 nothing was pushed"
                    .into(),
            ),
            MergeError::Registry { source, .. } | MergeError::BadReference { source, .. } => {
                source.hint()
            }
            MergeError::Index(e) => e.hint(),
            MergeError::ChildMissing { .. } => Some(
                "the registry has not made the image visible yet (or it was deleted); \
                 retry, or raise --visibility-timeout"
                    .into(),
            ),
            MergeError::TagMismatch { .. } => {
                Some("someone else pushed to the tag at the same time; retry".into())
            }
            _ => None,
        }
    }
}

/// Parses `--annotation`: `index:KEY=VALUE`, `manifest-descriptor:KEY=VALUE`,
/// `manifest-descriptor[PLATFORM]:KEY=VALUE`, or `KEY=VALUE` (the index). buildx's other
/// targets (`manifest:` and the like) would change the children's digests and are refused.
pub fn parse_annotation(spec: &str) -> Result<Annotation, MergeError> {
    let bad = |message: String| MergeError::Usage {
        flag: "--annotation".into(),
        message,
    };
    let (target, kv) = match spec.split_once('=') {
        Some((left, _)) if left.contains(':') => {
            let (prefix, kv) = spec.split_once(':').unwrap_or((spec, ""));
            let target = if prefix == "index" {
                AnnotationTarget::Index
            } else if prefix == "manifest-descriptor" {
                AnnotationTarget::Descriptor(None)
            } else if let Some(p) = prefix
                .strip_prefix("manifest-descriptor[")
                .and_then(|p| p.strip_suffix(']'))
            {
                let platform = Platform::parse(p).map_err(|e| bad(format!("{spec:?}: {e}")))?;
                AnnotationTarget::Descriptor(Some(platform))
            } else {
                return Err(bad(format!(
                    "{spec:?}: unknown target {prefix:?} (use index: or \
                     manifest-descriptor[PLATFORM]:; merge cannot change the manifests)"
                )));
            };
            (target, kv)
        }
        _ => (AnnotationTarget::Index, spec),
    };
    let (key, value) = kv
        .split_once('=')
        .ok_or_else(|| bad(format!("{spec:?}: expected KEY=VALUE")))?;
    if key.is_empty() {
        return Err(bad(format!("{spec:?}: empty key")));
    }
    Ok(Annotation {
        target,
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// Expands one source argument: `@FILE` (a metadata file), `@DIR` (every `*.json` in it, by
/// name), or a reference (`REPO@DIGEST`, `REPO:TAG`).
pub fn read_sources(arg: &str) -> Result<Vec<Source>, MergeError> {
    let Some(path) = arg.strip_prefix('@') else {
        let reference = Reference::parse(arg).map_err(|source| MergeError::BadReference {
            origin: arg.to_string(),
            source: Box::new(source),
        })?;
        return Ok(vec![Source {
            reference,
            origin: arg.to_string(),
            platform: None,
        }]);
    };
    let path = Path::new(path);
    let read_err = |source| MergeError::ReadSource {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.push(read_metadata_file(&f)?);
        }
        return Ok(out);
    }
    Ok(vec![read_metadata_file(path)?])
}

fn read_metadata_file(path: &Path) -> Result<Source, MergeError> {
    let bytes = std::fs::read(path).map_err(|source| MergeError::ReadSource {
        path: path.to_path_buf(),
        source,
    })?;
    let found = metadata::read_source(&bytes).map_err(|source| MergeError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let reference =
        Reference::parse(&found.reference).map_err(|source| MergeError::BadReference {
            origin: origin.clone(),
            source: Box::new(source),
        })?;
    let platform = match found.platform {
        Some(p) => Some(
            Platform::parse(&p).map_err(|source| MergeError::BadPlatform {
                origin: origin.clone(),
                source,
            })?,
        ),
        None => None,
    };
    Ok(Source {
        reference,
        origin,
        platform,
    })
}

/// An index entry and the repository its content is in now.
#[derive(Debug, Clone)]
struct Entry {
    desc: Descriptor,
    repo: Reference,
}

fn reg_err(what: impl Into<String>) -> impl FnOnce(RegistryError) -> MergeError {
    let what = what.into();
    move |source| MergeError::Registry {
        what,
        source: Box::new(source),
    }
}

/// Sleeps before the next look at something not visible yet; `false` when `deadline` passed.
async fn pause(deadline: Instant, wait: &mut Duration) -> bool {
    if Instant::now() >= deadline {
        return false;
    }
    tokio::time::sleep((*wait).min(deadline.saturating_duration_since(Instant::now()))).await;
    *wait = (*wait * 2).min(MAX_POLL);
    true
}

/// Fetches a manifest, waiting up to `timeout` while the registry says it does not exist (a
/// matrix job may have pushed it a moment ago).
async fn get_eventually<R: Registry>(
    registry: &R,
    reference: &Reference,
    timeout: Duration,
) -> Result<RawManifest, RegistryError> {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        match registry.get_manifest(reference).await {
            Err(RegistryError::NotFound { .. }) if pause(deadline, &mut wait).await => continue,
            other => return other,
        }
    }
}

/// The platform of an image manifest, from its config blob.
async fn image_platform<R: Registry>(
    registry: &R,
    repo: &Reference,
    raw: &RawManifest,
    origin: &str,
) -> Result<Platform, MergeError> {
    let manifest: ImageManifest =
        oci::from_bytes(&raw.bytes, origin).map_err(|source| MergeError::Malformed {
            origin: origin.to_string(),
            source,
        })?;
    let dir = tempfile::tempdir().map_err(|source| MergeError::ReadSource {
        path: std::env::temp_dir(),
        source,
    })?;
    let path = dir.path().join("config");
    registry
        .fetch_blob(repo, &manifest.config, &path)
        .await
        .map_err(reg_err(format!("config of {origin}")))?;
    let bytes = std::fs::read(&path).map_err(|source| MergeError::ReadSource {
        path: path.clone(),
        source,
    })?;
    let config: ImageConfig =
        oci::from_bytes(&bytes, origin).map_err(|source| MergeError::Malformed {
            origin: origin.to_string(),
            source,
        })?;
    Ok(config.platform())
}

/// A source's index entries: an index's children, or the image itself with its platform.
async fn resolve<R: Registry>(
    registry: &R,
    source: &Source,
    timeout: Duration,
) -> Result<Vec<Entry>, MergeError> {
    let raw = get_eventually(registry, &source.reference, timeout)
        .await
        .map_err(reg_err(format!("source {}", source.origin)))?;
    let repo = Reference {
        tag: None,
        digest: None,
        ..source.reference.clone()
    };
    if raw.is_index() {
        let idx: ImageIndex =
            oci::from_bytes(&raw.bytes, &source.origin).map_err(|e| MergeError::Malformed {
                origin: source.origin.clone(),
                source: e,
            })?;
        let mut out = Vec::new();
        for mut desc in idx.manifests {
            if desc.platform.is_none() {
                let child = registry
                    .get_manifest(&repo.with_digest(&desc.digest))
                    .await
                    .map_err(reg_err(format!(
                        "child {} of {}",
                        desc.digest, source.origin
                    )))?;
                if !child.is_index() {
                    desc.platform =
                        Some(image_platform(registry, &repo, &child, &source.origin).await?);
                }
            }
            out.push(Entry {
                desc,
                repo: repo.clone(),
            });
        }
        return Ok(out);
    }
    let platform = image_platform(registry, &repo, &raw, &source.origin).await?;
    if let Some(claimed) = &source.platform {
        if !claimed.same_as(&platform) {
            return Err(MergeError::PlatformMismatch {
                origin: source.origin.clone(),
                claimed: claimed.normalized().to_string(),
                actual: platform.normalized().to_string(),
                reference: source.reference.to_string(),
            });
        }
    }
    let mut desc = raw.descriptor();
    desc.platform = Some(platform);
    Ok(vec![Entry { desc, repo }])
}

/// Copies the manifest `desc` of `from` (and everything it refers to) into `to`.
fn copy_manifest<'a, R: Registry>(
    registry: &'a R,
    from: &'a Reference,
    to: &'a Reference,
    desc: &'a Descriptor,
    sink: &'a dyn Sink,
    label: &'a str,
) -> futures::future::BoxFuture<'a, Result<usize, MergeError>> {
    Box::pin(async move {
        let what = format!(
            "copy {}@{} to {}",
            from.repo_string(),
            desc.digest,
            to.repo_string()
        );
        let raw = registry
            .get_manifest(&from.with_digest(&desc.digest))
            .await
            .map_err(reg_err(what.clone()))?;
        let mut copied = 0;
        if raw.is_index() {
            let idx: ImageIndex =
                oci::from_bytes(&raw.bytes, &what).map_err(|source| MergeError::Malformed {
                    origin: what.clone(),
                    source,
                })?;
            for child in &idx.manifests {
                copied += copy_manifest(registry, from, to, child, sink, label).await?;
            }
        } else {
            let m: ImageManifest =
                oci::from_bytes(&raw.bytes, &what).map_err(|source| MergeError::Malformed {
                    origin: what.clone(),
                    source,
                })?;
            for blob in std::iter::once(&m.config).chain(&m.layers) {
                // Foreign / non-distributable layers are fetched from their URLs by clients,
                // not from the registry (image-spec layer.md).
                if blob.media_type.contains("foreign")
                    || blob.media_type.contains("nondistributable")
                {
                    continue;
                }
                let how = registry
                    .copy_blob(from, to, blob)
                    .await
                    .map_err(reg_err(what.clone()))?;
                if how != BlobPush::AlreadyPresent {
                    copied += 1;
                }
                sink.emit(Event::BlobPushed {
                    platform: label.to_string(),
                    digest: blob.digest.clone(),
                    size: blob.size,
                    existed: how == BlobPush::AlreadyPresent,
                    mounted: how == BlobPush::Mounted,
                });
            }
        }
        registry
            .push_manifest(to, &desc.digest.to_string(), &raw.bytes, &raw.media_type)
            .await
            .map_err(reg_err(what))?;
        Ok(copied)
    })
}

/// Makes `entry` present in `target` and waits until the registry serves it there.
async fn ensure_child<R: Registry>(
    registry: &R,
    entry: &Entry,
    target: &Reference,
    timeout: Duration,
    sink: &dyn Sink,
) -> Result<usize, MergeError> {
    let here = target.with_digest(&entry.desc.digest);
    let label = entry
        .desc
        .platform
        .as_ref()
        .map(|p| p.normalized().to_string())
        .unwrap_or_default();
    let mut copied = 0;
    if entry.repo.repo_string() != target.repo_string()
        && registry
            .head_manifest(&here)
            .await
            .map_err(reg_err(format!("check {here}")))?
            .is_none()
    {
        copied = copy_manifest(registry, &entry.repo, target, &entry.desc, sink, &label).await?;
    }
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        let found = registry
            .head_manifest(&here)
            .await
            .map_err(reg_err(format!("check {here}")))?;
        if found.is_some() {
            return Ok(copied);
        }
        if !pause(deadline, &mut wait).await {
            return Err(MergeError::ChildMissing {
                reference: here.to_string(),
                waited_secs: timeout.as_secs(),
            });
        }
    }
}

/// Orders entries: images by their platform's place in `order` (others after, in source
/// order), then attestations in the order of the images they name.
fn arrange(entries: Vec<Entry>, order: &[Platform]) -> Vec<Entry> {
    let rank = |e: &Entry| {
        e.desc
            .platform
            .as_ref()
            .and_then(|p| order.iter().position(|q| q.same_as(p)))
            .unwrap_or(order.len())
    };
    let (mut images, attestations): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| !index::is_attestation(&e.desc));
    images.sort_by_key(rank);
    let mut out = images.clone();
    let mut rest = attestations;
    for img in &images {
        let (mine, others): (Vec<Entry>, Vec<Entry>) = rest
            .into_iter()
            .partition(|a| index::attestation_subject(&a.desc).as_ref() == Some(&img.desc.digest));
        out.extend(mine);
        rest = others;
    }
    out.extend(rest);
    out
}

/// Runs a merge; see the module documentation for the steps.
///
/// Errors: see [`MergeError`]. On any error no tag has been pushed (children may have been
/// copied into the target repository, which is harmless).
pub async fn merge<R: Registry>(
    req: &MergeRequest,
    registry: &R,
    sink: &dyn Sink,
) -> Result<MergeOutcome, MergeError> {
    if req.tags.is_empty() {
        return Err(MergeError::Usage {
            flag: "--tag".into(),
            message: "at least one -t/--tag is needed to say where the index goes".into(),
        });
    }
    if req.sources.is_empty() {
        return Err(MergeError::NoSources);
    }
    let mut entries = Vec::new();
    if req.append {
        let first = &req.tags[0];
        match registry.get_manifest(first).await {
            Ok(_) => {
                let current = Source {
                    reference: first.clone(),
                    origin: format!("{first} (--append)"),
                    platform: None,
                };
                entries.extend(resolve(registry, &current, Duration::ZERO).await?);
            }
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(reg_err(format!("read {first} for --append"))(e)),
        }
    }
    let resolved: Vec<Vec<Entry>> = futures::stream::iter(&req.sources)
        .map(|s| resolve(registry, s, req.visibility_timeout))
        .buffered(req.jobs.max(1))
        .try_collect()
        .await?;
    entries.extend(resolved.into_iter().flatten());

    let descs: Vec<Descriptor> = entries.iter().map(|e| e.desc.clone()).collect();
    let kept = index::select(
        &descs,
        Selection {
            replace: req.replace,
            drop_attestations: req.drop_attestations,
        },
    )?;
    let chosen: Vec<Entry> = kept.into_iter().map(|i| entries[i].clone()).collect();
    let mut chosen = arrange(chosen, &req.platforms);

    let found: Vec<Platform> = chosen
        .iter()
        .filter(|e| !index::is_attestation(&e.desc))
        .filter_map(|e| e.desc.platform.clone())
        .collect();
    let missing: Vec<String> = req
        .platforms
        .iter()
        .filter(|p| !found.iter().any(|f| f.same_as(p)))
        .map(|p| p.normalized().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingPlatforms {
            missing,
            found: found.iter().map(|p| p.normalized().to_string()).collect(),
        });
    }

    let mut options = IndexOptions {
        format: req.format,
        annotations: BTreeMap::new(),
    };
    for a in &req.annotations {
        match &a.target {
            AnnotationTarget::Index => {
                options.annotations.insert(a.key.clone(), a.value.clone());
            }
            AnnotationTarget::Descriptor(platform) => {
                let mut hit = false;
                for e in chosen
                    .iter_mut()
                    .filter(|e| !index::is_attestation(&e.desc))
                {
                    let matches = match (platform, &e.desc.platform) {
                        (None, _) => true,
                        (Some(want), Some(have)) => want.same_as(have),
                        (Some(_), None) => false,
                    };
                    if matches {
                        hit = true;
                        e.desc
                            .annotations
                            .get_or_insert_with(BTreeMap::new)
                            .insert(a.key.clone(), a.value.clone());
                    }
                }
                if let (Some(p), false) = (platform, hit) {
                    return Err(MergeError::AnnotationPlatform {
                        spec: format!("manifest-descriptor[{p}]:{}={}", a.key, a.value),
                        platform: p.normalized().to_string(),
                    });
                }
            }
        }
    }
    let children: Vec<Descriptor> = chosen.iter().map(|e| e.desc.clone()).collect();
    let stitched = index::stitch_with(&children, &options)?;
    if req.dry_run {
        return Ok(MergeOutcome {
            index: stitched,
            pushed_tags: Vec::new(),
            blobs_copied: 0,
        });
    }

    // Every child in every target repository before any tag moves.
    let mut targets: Vec<Reference> = Vec::new();
    for t in &req.tags {
        let repo = Reference {
            tag: None,
            digest: None,
            ..t.clone()
        };
        if !targets.contains(&repo) {
            targets.push(repo);
        }
    }
    let mut blobs_copied = 0;
    for target in &targets {
        let counts: Vec<usize> = futures::stream::iter(&chosen)
            .map(|e| ensure_child(registry, e, target, req.visibility_timeout, sink))
            .buffer_unordered(req.jobs.max(1))
            .try_collect()
            .await?;
        blobs_copied += counts.iter().sum::<usize>();
    }

    let media_type = req.format.media_type();
    let mut pushed_tags = Vec::new();
    for tag in &req.tags {
        let name = tag.tag.clone().unwrap_or_else(|| "latest".into());
        let shown = format!("{}:{name}", tag.repo_string());
        registry
            .push_manifest(tag, &name, &stitched.bytes, media_type)
            .await
            .map_err(reg_err(format!("push {shown}")))?;
        pushed_tags.push(shown);
    }
    // Read every tag back: it must serve what was pushed (a registry that lags is waited for;
    // one that serves something else, e.g. a concurrent push, is an error).
    for (tag, shown) in req.tags.iter().zip(&pushed_tags) {
        let deadline = Instant::now() + req.visibility_timeout;
        let mut wait = Duration::from_millis(100);
        loop {
            let got = registry
                .get_manifest(tag)
                .await
                .map_err(reg_err(format!("read back {shown}")))?;
            if got.digest == stitched.digest {
                break;
            }
            if !pause(deadline, &mut wait).await {
                return Err(MergeError::TagMismatch {
                    tag: shown.clone(),
                    expected: stitched.digest.clone(),
                    found: got.digest.to_string(),
                });
            }
        }
        sink.emit(Event::IndexPushed {
            tag: shown.clone(),
            digest: stitched.digest.clone(),
        });
    }
    Ok(MergeOutcome {
        index: stitched,
        pushed_tags,
        blobs_copied,
    })
}

#[cfg(test)]
mod tests;
