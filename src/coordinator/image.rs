//! One platform's image: run the steps, make the layers, write config and manifest, push.

use super::base::pull_base;
use super::*;

pub(super) async fn build_platform<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    selection: Selection,
) -> Result<PlatformImage, BuildError> {
    let pname = platform.to_string();
    let (mut config, mut layers) = match &selection.base {
        BaseImage::Scratch => {
            deps.sink.emit(Event::BaseResolved {
                platform: pname.clone(),
                reference: "scratch".into(),
                digest: None,
            });
            (ImageConfig::default(), Vec::new())
        }
        BaseImage::Image(reference) => pull_base(deps, platform, reference).await?,
    };
    // The target platform as the user spelled it (normalised spelling) is what the config and
    // the index record (e.g. variant v8 for linux/arm64/v8).
    config.architecture = platform.architecture.clone();
    config.os = platform.os.clone();
    config.variant = platform.variant.clone();
    config.os_version = platform.os_version.clone();
    config.created = Some(sh.created.clone());

    let plan = selection.resolve(
        sh.dockerfile,
        &BaseConfig {
            env: config.config.env.clone().unwrap_or_default(),
            working_dir: config.config.working_dir.clone(),
            user: config.config.user.clone(),
        },
    )?;
    let steps = plan.steps;
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let started = Instant::now();
        deps.sink.emit(Event::StepStarted {
            platform: pname.clone(),
            step: n,
            total,
            location: location(sh.dockerfile, step),
            text: step.created_by.clone(),
        });
        let made = run_step(sh, deps, platform, &layers, step, n).await?;
        let layer_digest = made.as_ref().map(|l| l.descriptor.digest.clone());
        if let Some(layer) = made {
            config.rootfs.diff_ids.push(layer.diff_id.clone());
            layers.push(layer);
        } else {
            apply_config(&mut config, &step.kind);
        }
        config.history.push(History {
            created: Some(sh.created.clone()),
            created_by: Some(step.created_by.clone()),
            comment: Some("polyarch".into()),
            empty_layer: layer_digest.is_none(),
        });
        deps.sink.emit(Event::StepFinished {
            platform: pname.clone(),
            step: n,
            millis: started.elapsed().as_millis() as u64,
            layer: layer_digest,
        });
    }

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
        for desc in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            let path = deps.store.blob_path(&desc.digest);
            let pushed = deps
                .registry
                .push_blob(target, desc, &path)
                .await
                .map_err(reg_err)?;
            deps.sink.emit(Event::BlobPushed {
                platform: pname.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                existed: pushed == BlobPush::AlreadyPresent,
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

/// Runs one step; returns the layer it made, or `None` for config-only steps and steps that
/// changed nothing.
pub(super) async fn run_step<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    platform: &Platform,
    layers: &[BuiltLayer],
    step: &Step,
    n: usize,
) -> Result<Option<BuiltLayer>, BuildError> {
    let pname = platform.to_string();
    let action = match &step.kind {
        StepKind::Run {
            argv,
            env,
            workdir,
            user,
        } => Action::Run(RunSpec {
            argv: argv.clone(),
            env: env.clone(),
            cwd: workdir.clone(),
            user: user.clone(),
        }),
        StepKind::Copy {
            sources,
            dest,
            chown,
            chmod,
        } => {
            let mut entries =
                sh.context
                    .resolve_copy(sources, dest)
                    .map_err(|source| BuildError::Context {
                        platform: pname.clone(),
                        location: location(sh.dockerfile, step),
                        source: Box::new(source),
                    })?;
            // With SOURCE_DATE_EPOCH, copied files get clamped mtimes already in the rootfs,
            // not only in the layer tar: later RUN steps (`ls -l`, make) then see the same
            // times whatever the context's mtimes were, and the build stays reproducible.
            if let Some(epoch) = sh.req.source_date_epoch {
                for e in &mut entries {
                    e.mtime = e.mtime.min(epoch);
                }
            }
            Action::Copy(CopySpec {
                entries,
                chown: chown.clone(),
                chmod: *chmod,
            })
        }
        _ => return Ok(None),
    };
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let scratch = deps.store.temp_dir("step").map_err(store_err)?;
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
        lowerdirs: layers.iter().rev().map(|l| l.dir.clone()).collect(),
        upperdir: upper.clone(),
        workdir: work.clone(),
        action,
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    let sink = deps.sink.clone();
    let p2 = pname.clone();
    let outcome = deps
        .executor
        .run(&spec, move |line| {
            sink.emit(Event::Output {
                platform: p2.clone(),
                step: n,
                stream: line.stream,
                line: line.line,
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

/// Applies a config-only step to the image config (Dockerfile reference: ENV, WORKDIR, USER,
/// LABEL, EXPOSE, CMD, ENTRYPOINT).
pub(super) fn apply_config(config: &mut ImageConfig, kind: &StepKind) {
    let c = &mut config.config;
    match kind {
        StepKind::Env(pairs) => {
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
                {
                    Some(slot) => *slot = entry,
                    None => env.push(entry),
                }
            }
        }
        StepKind::Workdir(w) => c.working_dir = Some(w.clone()),
        StepKind::User(u) => c.user = Some(u.clone()),
        StepKind::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(k.clone(), v.clone());
            }
        }
        StepKind::Expose(ports) => {
            let map = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in ports {
                map.insert(p.clone(), oci::EmptyObject {});
            }
        }
        StepKind::Cmd(argv) => c.cmd = Some(argv.clone()),
        StepKind::Entrypoint { argv, clears_cmd } => {
            c.entrypoint = Some(argv.clone());
            // Dockerfile reference: "If CMD is defined from the base image, setting ENTRYPOINT
            // will reset CMD to an empty value."
            if *clears_cmd {
                c.cmd = None;
            }
        }
        _ => {}
    }
}
