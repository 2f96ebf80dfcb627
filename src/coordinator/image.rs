//! One platform's image: run the steps, make the layers, write config and manifest, push.

use super::actions;
use super::stage::Stages;
use super::*;
use crate::plan::StageGraph;

/// Bytes of a step's output shown as progress before the rest is clipped (BuildKit's default
/// step log limit is 2 MiB).
const STEP_OUTPUT_LIMIT: usize = 2 << 20;

pub(super) async fn build_platform<'a, R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    stages: &'a Stages<'a, R, E>,
    platform: &Platform,
    graph: StageGraph,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let graph = Arc::new(graph);
    let built = stages.stage(graph.target(), &graph).await?;
    let mut config = built.config.clone();
    let layers = built.layers.clone();
    // The target platform as the user spelled it (normalised spelling) is what the config and
    // the index record (e.g. variant v8 for linux/arm64/v8).
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.os_version = platform.os_version.clone();
    config.created = Some(sh.created.clone());

    // Config and manifest: serialised once; these bytes are stored, hashed and pushed.
    let config_bytes = oci::to_bytes(&config);
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let (config_digest, config_size) = deps.store.put_bytes(&config_bytes).map_err(store_err)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations: None,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let (manifest_digest, manifest_size) =
        deps.store.put_bytes(&manifest_bytes).map_err(store_err)?;
    let mut blobs = vec![config_digest.clone()];
    blobs.extend(layers.iter().map(|l| l.descriptor.digest.clone()));

    if let Some(target) = push_target(sh.req) {
        let reg_err = |source| BuildError::Registry {
            platform: pname.clone(),
            source,
        };
        let origins = layers
            .iter()
            .map(|l| l.origin.as_ref())
            .chain(std::iter::once(None));
        for (desc, origin) in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
            .zip(origins)
        {
            // A base layer from another repository of the same registry is mounted there
            // (distribution-spec "Mounting a blob from another repository"), not uploaded again;
            // when the registry declines, it is uploaded from the store as any other blob.
            let mounted = match origin {
                Some(from)
                    if from.registry == target.registry && from.repository != target.repository =>
                {
                    match deps.registry.copy_blob(from, target, desc).await {
                        Ok(how) => Some(how),
                        Err(e) => {
                            tracing::info!(blob = %desc.digest, "mount from {from} failed, uploading: {e}");
                            None
                        }
                    }
                }
                _ => None,
            };
            let pushed = match mounted {
                Some(how) => how,
                None => {
                    let path = deps.store.blob_path(&desc.digest);
                    deps.registry
                        .push_blob(target, desc, &path)
                        .await
                        .map_err(reg_err)?
                }
            };
            deps.sink.emit(Event::BlobPushed {
                platform: pname.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                existed: pushed == BlobPush::AlreadyPresent,
                mounted: pushed == BlobPush::Mounted,
            });
        }
        let pushed = deps
            .registry
            .push_manifest(
                target,
                &manifest_digest.to_string(),
                &manifest_bytes,
                MEDIA_TYPE_OCI_MANIFEST,
            )
            .await
            .map_err(reg_err)?;
        if pushed != manifest_digest {
            return Err(BuildError::Oci {
                platform: pname.clone(),
                source: OciError::DigestMismatch {
                    what: format!("manifest pushed to {}", target.repo_string()),
                    expected: manifest_digest,
                    found: pushed,
                },
            });
        }
    }
    deps.sink.emit(Event::PlatformDone {
        platform: pname.clone(),
        digest: manifest_digest.clone(),
        size: manifest_size,
    });
    let mut descriptor = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, manifest_digest, manifest_size);
    descriptor.platform = Some(platform.clone());
    Ok(PlatformImage {
        platform: platform.clone(),
        manifest: descriptor,
        config: config_digest,
        blobs,
        node: None,
    })
}

/// Runs one step of the stage `sel`; returns the layer it made, or `None` for config-only steps
/// and steps that changed nothing. `label` names the stage's platform in progress and errors.
pub(super) async fn run_step<'a, R: Registry, E: Executor>(
    stages: &'a Stages<'a, R, E>,
    sel: &Selection,
    graph: &Arc<StageGraph>,
    label: &str,
    layers: &[BuiltLayer],
    step: &Step,
    n: usize,
) -> Result<Option<BuiltLayer>, BuildError> {
    let sh = stages.sh;
    let deps = stages.deps;
    let pname = label.to_string();
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let scratch = deps.store.temp_dir("step").map_err(store_err)?;
    let inputs = scratch.path().join("inputs");
    std::fs::create_dir_all(&inputs).map_err(|source| {
        store_err(StoreError::Io {
            action: "create directory",
            path: inputs.clone(),
            source,
        })
    })?;
    let Some(prepared) = actions::prepare(stages, sel, graph, label, layers, step, &inputs).await?
    else {
        return Ok(None);
    };
    let upper = scratch.path().join("upper");
    let work = scratch.path().join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|source| {
            store_err(StoreError::Io {
                action: "create directory",
                path: d.to_path_buf(),
                source,
            })
        })?;
    }
    let spec = SandboxSpec {
        lowerdirs: prepared.lowerdirs,
        upperdir: upper.clone(),
        workdir: work.clone(),
        action: prepared.action,
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    let sink = deps.sink.clone();
    let p2 = pname.clone();
    // Progress output is capped per step, as BuildKit caps step logs: a step that prints
    // hundreds of megabytes must not flood the terminal or a CI log. The executor still keeps
    // the tail of the output for the error message.
    let mut shown = 0usize;
    let outcome = deps
        .executor
        .run(&spec, move |line| {
            if shown > STEP_OUTPUT_LIMIT {
                return;
            }
            // Each line also costs its rendered prefix (`[platform] #n | `), about 32 bytes.
            shown += line.line.len() + 32;
            let text = if shown > STEP_OUTPUT_LIMIT {
                format!(
                    "[output clipped: this step printed more than {} MiB; the rest is not shown]",
                    STEP_OUTPUT_LIMIT >> 20
                )
            } else {
                line.line
            };
            sink.emit(Event::Output {
                platform: p2.clone(),
                step: n,
                stream: line.stream,
                line: text,
            })
        })
        .await
        .map_err(|source| BuildError::Exec {
            platform: pname.clone(),
            step: n,
            location: location(sh.dockerfile, step),
            source,
        })?;
    if let Some(snapshotter) = outcome.snapshotter {
        tracing::debug!(platform = %pname, step = n, %snapshotter, "step changes captured");
    }
    // Cache directories are released (unlocked) as soon as the step is over.
    drop(prepared.leases);
    if outcome.status != 0 {
        return Err(BuildError::StepFailed {
            platform: pname,
            step: n,
            location: location(sh.dockerfile, step),
            instruction: step.created_by.clone(),
            status: outcome.status,
            tail: outcome.tail,
        });
    }
    if dir_is_empty(&upper) {
        return Ok(None);
    }
    // Tar, compress and hash on a blocking thread: plain `Write` code (STYLE habit 9).
    let store = deps.store.clone();
    let opts = LayerOptions {
        source_date_epoch: sh.req.source_date_epoch.map(|e| e.max(0) as u64),
        ..LayerOptions::default()
    };
    let upper2 = upper.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
        let mut w = store.blob_writer().map_err(|source| BuildError::Store {
            platform: String::new(),
            source,
        })?;
        let blob =
            layer::write_layer(&upper2, &mut w, &opts).map_err(|source| BuildError::Layer {
                platform: String::new(),
                source,
            })?;
        w.commit(Some(&blob.digest))
            .map_err(|source| BuildError::Store {
                platform: String::new(),
                source,
            })?;
        let dir = store
            .adopt_layer_dir(&upper2, &blob.diff_id)
            .map_err(|source| BuildError::Store {
                platform: String::new(),
                source,
            })?;
        Ok((blob, dir))
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
    .map_err(|e| with_platform(e, &pname))?;
    let (blob, dir) = written;
    Ok(Some(BuiltLayer {
        descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
        diff_id: blob.diff_id.clone(),
        dir,
        origin: None,
    }))
}

pub(super) fn with_platform(e: BuildError, p: &str) -> BuildError {
    match e {
        BuildError::Store { source, .. } => BuildError::Store {
            platform: p.into(),
            source,
        },
        BuildError::Layer { source, .. } => BuildError::Layer {
            platform: p.into(),
            source,
        },
        other => other,
    }
}

pub(super) fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}
