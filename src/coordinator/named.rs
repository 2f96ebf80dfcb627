//! Named build contexts (`--build-context NAME=SOURCE`, buildx's spelling): what each source
//! is ([`NamedContext`]), the reference the plan puts where the name is used
//! ([`crate::plan::apply_named_contexts`]), and loading the ones that are not registry images
//! as a base image would be pulled: an image of a local OCI layout, or a local directory as
//! one layer.
//!
//! Level 3 (coordinator), under [`super::stage`]. Reads the layout or directory and fills the
//! store only: must not run steps or push anything.

use super::base::{is_image_manifest, oci_layer_media_type, PulledBase};
use super::materialise::Origin;
use super::*;

/// Where a named context comes from (buildx `--build-context`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// `docker-image://REF`: the image, pulled as `FROM REF` would pull it.
    Image(String),
    /// `oci-layout://DIR[:TAG]`: the image tagged TAG (its `org.opencontainers.image.ref.name`)
    /// in a local OCI image layout, or its only image without TAG.
    Layout {
        /// The layout directory (holding `index.json`).
        dir: PathBuf,
        /// The ref name, if given.
        tag: Option<String>,
    },
    /// A local directory: its files as one layer over an empty config, as BuildKit's local
    /// source (the build context's `.dockerignore` does not apply to it).
    Dir(PathBuf),
}

impl NamedContext {
    /// Parses a `--build-context` value after `NAME=`: `docker-image://REF`,
    /// `oci-layout://DIR[:TAG]`, or a directory path (which must exist). Relative directories
    /// are taken as given (relative to the working directory).
    ///
    /// Errors: a message for a missing directory or an unsupported scheme (`https://`, git
    /// URLs, `target:`).
    pub fn parse(value: &str) -> Result<NamedContext, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            r.parse::<Reference>()
                .map_err(|e| format!("docker-image://{r}: {e}"))?;
            return Ok(NamedContext::Image(r.to_string()));
        }
        if let Some(rest) = value.strip_prefix("oci-layout://") {
            // DIR[:TAG]: the tag is after the last `:` that follows the last `/`.
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !t.is_empty() => (d, Some(t.to_string())),
                _ => (rest, None),
            };
            let dir = PathBuf::from(dir);
            if !dir.join("index.json").is_file() {
                return Err(format!(
                    "oci-layout://{rest}: {} holds no OCI layout (no index.json)",
                    dir.display()
                ));
            }
            return Ok(NamedContext::Layout { dir, tag });
        }
        if value.contains("://") || value.starts_with("target:") {
            return Err(format!(
                "{value}: not supported (give a directory, docker-image://REF or \
                 oci-layout://DIR[:TAG])"
            ));
        }
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(format!("{value}: not a directory"));
        }
        Ok(NamedContext::Dir(dir))
    }

    /// The reference the plan puts where `name` is used: the image reference itself for
    /// `docker-image://`, else [`plan::NAMED_CONTEXT_SCHEME`]`NAME`, loaded by [`load`].
    pub fn reference(&self, name: &str) -> String {
        match self {
            NamedContext::Image(r) => r.clone(),
            _ => format!("{}{name}", plan::NAMED_CONTEXT_SCHEME),
        }
    }
}

/// Puts `contexts` into `df` ([`plan::apply_named_contexts`] with each one's reference).
pub(super) fn apply(df: &mut Dockerfile, contexts: &BTreeMap<String, NamedContext>) {
    let names: BTreeMap<String, String> = (contexts.iter())
        .map(|(name, c)| (name.clone(), c.reference(name)))
        .collect();
    plan::apply_named_contexts(df, &names);
}

/// The name a reference made by [`NamedContext::reference`] stands for, if it is one.
pub(super) fn context_name(reference: &str) -> Option<&str> {
    reference.strip_prefix(plan::NAMED_CONTEXT_SCHEME)
}

/// Loads the named context `name` of the request for `platform`, as [`super::base::pull_base`]
/// resolves an image: its config, its layers (blobs in the store or in the layout), and the
/// digest its key is made from (the manifest's; for a directory, its layer's).
///
/// Errors: [`BuildError::Usage`] for a name the request lacks, a layout without the tag or
/// platform, or an unreadable layout; [`BuildError::Layer`] / [`BuildError::Store`] when a
/// directory cannot be written as a layer.
pub(super) async fn load<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    req: &BuildRequest,
    platform: &Platform,
    name: &str,
) -> Result<PulledBase, BuildError> {
    let ctx = req
        .buildx
        .named_contexts
        .get(name)
        .ok_or_else(|| BuildError::Usage(format!("no --build-context named {name:?}")))?;
    let base = match ctx {
        NamedContext::Image(r) => return super::base::pull_base(deps, platform, r, false).await,
        NamedContext::Layout { dir, tag } => from_layout(dir, tag.as_deref(), platform)?,
        NamedContext::Dir(dir) => from_dir(deps, req, platform, name, dir).await?,
    };
    deps.sink.emit(Event::BaseResolved {
        platform: platform.to_string(),
        reference: format!("{name} (--build-context)"),
        digest: Some(base.manifest.clone()),
    });
    Ok(base)
}

/// The image of an OCI layout for `platform` (image-spec `image-layout.md`): the `index.json`
/// entry tagged `tag` (or its only entry), through a nested index when it is one.
fn from_layout(
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<PulledBase, BuildError> {
    let bad = |why: String| BuildError::Usage(format!("oci-layout://{}: {why}", dir.display()));
    let read = |digest: &Digest| {
        std::fs::read(dir.join("blobs/sha256").join(digest.hex()))
            .map_err(|e| bad(format!("blob {digest}: {e}")))
    };
    let top = std::fs::read(dir.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
    let top: ImageIndex = oci::from_bytes(&top, "index.json").map_err(|e| bad(e.to_string()))?;
    let ref_name = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name"))
            .cloned()
    };
    let entry = match tag {
        Some(t) => top
            .manifests
            .iter()
            .find(|d| ref_name(d).as_deref() == Some(t)),
        None if top.manifests.len() == 1 => top.manifests.first(),
        None => None,
    }
    .ok_or_else(|| {
        let names: Vec<String> = top.manifests.iter().filter_map(ref_name).collect();
        bad(format!(
            "no image {} (its tags: {}); give oci-layout://DIR:TAG",
            tag.unwrap_or("without a tag"),
            names.join(", ")
        ))
    })?;
    let desc = platform_entry(entry.clone(), platform, &read, &bad)?;
    if !is_image_manifest(&desc.media_type) {
        return Err(bad(format!("{} is not an image manifest", desc.media_type)));
    }
    let manifest: ImageManifest =
        oci::from_bytes(&read(&desc.digest)?, "manifest").map_err(|e| bad(e.to_string()))?;
    let config: ImageConfig = oci::from_bytes(&read(&manifest.config.digest)?, "config")
        .map_err(|e| bad(e.to_string()))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(bad(
            "its config and manifest list different layer counts".into()
        ));
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(d, diff_id)| {
            let mut d = d.clone();
            d.media_type = oci_layer_media_type(&d.media_type);
            d.platform = None;
            BuiltLayer {
                descriptor: d,
                diff_id: diff_id.clone(),
                origin: Some(Origin::Layout(dir.to_path_buf())),
            }
        })
        .collect();
    Ok(PulledBase {
        config,
        layers,
        manifest: desc.digest,
    })
}

/// `desc` itself, or when it is an index, its entry that best matches `platform`.
fn platform_entry(
    mut desc: Descriptor,
    platform: &Platform,
    read: &impl Fn(&Digest) -> Result<Vec<u8>, BuildError>,
    bad: &impl Fn(String) -> BuildError,
) -> Result<Descriptor, BuildError> {
    if desc.media_type == MEDIA_TYPE_OCI_INDEX || desc.media_type == MEDIA_TYPE_DOCKER_LIST {
        let idx: ImageIndex =
            oci::from_bytes(&read(&desc.digest)?, "index").map_err(|e| bad(e.to_string()))?;
        let offered: Vec<Platform> = idx
            .manifests
            .iter()
            .map(|d| d.platform.clone().unwrap_or_else(Platform::host))
            .collect();
        let i = platform::best_match(platform, &offered).ok_or_else(|| {
            bad(format!(
                "no image for {platform} (it has {})",
                offered
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        desc = idx.manifests[i].clone();
    }
    Ok(desc)
}

/// A directory as an image of one layer (written into the store as a step's layer is, with
/// `SOURCE_DATE_EPOCH` and the build's compression) over an empty config for `platform`.
async fn from_dir<R: Registry, E: Executor>(
    deps: &Deps<R, E>,
    req: &BuildRequest,
    platform: &Platform,
    name: &str,
    dir: &Path,
) -> Result<PulledBase, BuildError> {
    let pname = platform.to_string();
    let opts = LayerOptions {
        source_date_epoch: req.source_date_epoch.map(|e| e.max(0) as u64),
        compression: req.compression,
        threads: 0,
        exact: Vec::new(),
    };
    let (store, dir) = (deps.store.clone(), dir.to_path_buf());
    let blob = tokio::task::spawn_blocking(move || {
        let mut w = store.blob_writer().map_err(|source| BuildError::Store {
            platform: String::new(),
            source,
        })?;
        let blob = layer::write_layer(&dir, &mut w, &opts).map_err(|source| BuildError::Layer {
            platform: String::new(),
            source,
        })?;
        w.commit(Some(&blob.digest))
            .map_err(|source| BuildError::Store {
                platform: String::new(),
                source,
            })?;
        Ok::<_, BuildError>(blob)
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
    .map_err(|e| super::step::with_platform(e, &pname))?;
    let mut config = ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        ..ImageConfig::default()
    };
    config.rootfs.diff_ids.push(blob.diff_id.clone());
    config.history.push(History {
        created_by: Some(format!("--build-context {name}")),
        ..History::default()
    });
    Ok(PulledBase {
        config,
        layers: vec![BuiltLayer {
            descriptor: blob.descriptor(),
            diff_id: blob.diff_id,
            origin: None,
        }],
        manifest: blob.digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_context_values() {
        assert_eq!(
            NamedContext::parse("docker-image://reg:5000/a/b:1").unwrap(),
            NamedContext::Image("reg:5000/a/b:1".into())
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        let d = dir.path().display().to_string();
        assert_eq!(
            NamedContext::parse(&format!("oci-layout://{d}:v2")).unwrap(),
            NamedContext::Layout {
                dir: dir.path().into(),
                tag: Some("v2".into())
            }
        );
        assert_eq!(
            NamedContext::parse(&format!("oci-layout://{d}")).unwrap(),
            NamedContext::Layout {
                dir: dir.path().into(),
                tag: None
            }
        );
        assert_eq!(
            NamedContext::parse(&d).unwrap(),
            NamedContext::Dir(dir.path().into())
        );
        assert!(NamedContext::parse("oci-layout:///nonexistent:v1").is_err());
        assert!(NamedContext::parse("https://example.com/x.git").is_err());
        assert!(NamedContext::parse("target:base").is_err());
        assert!(NamedContext::parse("/nonexistent/dir").is_err());
        assert!(NamedContext::parse("docker-image://UPPER/Case").is_err());
        let r = NamedContext::Dir("/x".into()).reference("src");
        assert_eq!(context_name(&r), Some("src"));
    }
}
